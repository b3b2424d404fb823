"""Fuzz the serial line: the real `soundalert serial-bridge` process reads a pseudo-terminal
that hypothesis fills with line noise, CRC-valid frames with extreme fields, frame types it
does not know and boards that reboot mid-line. Afterwards the bridge is alive, its rejections
are counted by reason, and the board's next T3 detection reaches the real aggregator as a
smoke alarm."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tty
import urllib.request
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from edge.dsp.protocol import REJECT_REASONS, Detection, Hello, crc16, encode
from tests.support.mosquitto import Mosquitto, free_port

pytestmark = pytest.mark.integration

_NUMBERS = st.sampled_from([
    "0", "-1", "4294967295", "4294967296", "18446744073709551616", "9" * 40, "1.5", "1e9", "NaN",
    "", "00", "0.99", "-120.00",
])  # fmt: skip
_WORDS = st.sampled_from(["HELLO", "DET", "LEVEL", "HB", "ERR", "NOPE", "t3", "t4", "lf520",
                          "overrun", "rp2040-X", "0.1.0", "\u00e9", ",", "*", "$"])  # fmt: skip


def _framed(body: bytes) -> bytes:
    return b"$" + body + b"*%04X\r\n" % crc16(body)


@st.composite
def _valid_crc_frames(draw: st.DrawFn) -> bytes:
    """Lines with a correct CRC whose fields are anything: only the grammar can refuse them."""
    tag = draw(st.sampled_from(["SA1", "SA2", "SA0", "XX1"]))
    fields = draw(st.lists(_NUMBERS | _WORDS | st.text(max_size=12), min_size=0, max_size=12))
    return _framed(",".join([tag, *fields]).encode("utf-8", "replace"))


_NOISE = st.one_of(
    st.binary(max_size=300),
    _valid_crc_frames(),
    st.binary(max_size=600).map(lambda b: b"$SA1," + b),  # long lines, no newline
    st.just(b"\r\n"),
    st.just(encode(Hello(0, 0, "rp2040-FUZZ", "0.1.0", 16000, 6))),  # a reboot mid-stream
)


def _openpty(link: Path) -> int:
    master, slave = os.openpty()
    tty.setraw(slave)
    link.symlink_to(os.ttyname(slave))
    os.close(slave)
    return master


def _spawn(*args: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "soundalert", *args],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)  # fmt: skip


def _metric_lines(port: int, name: str) -> dict[str, float]:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels = line.split("{", 1)[1].split("}", 1)[0]
            out[labels] = float(line.rsplit(" ", 1)[1])
    return out


def test_line_noise_and_hostile_frames_never_stop_the_bridge(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    link = tmp_path / "ttyACM0"
    master = _openpty(link)
    bridge_metrics = free_port()
    broker = mosquitto.url("service")
    aggregator = _spawn("aggregator", "--broker", broker, "--state", str(tmp_path / "agg"),
                        "--log-level", "warning", log=tmp_path / "aggregator.log")  # fmt: skip
    bridge = _spawn("serial-bridge", "--port", str(link), "--site", "home", "--node", "kitchen",
                    "--broker", broker, "--state", str(tmp_path / "bridge"),
                    "--metrics-port", str(bridge_metrics), "--log-level", "warning",
                    log=tmp_path / "bridge.log")  # fmt: skip
    alerts: list[dict[str, object]] = []
    watcher = paho.Client(CallbackAPIVersion.VERSION2, client_id="fuzz-watch")
    watcher.username_pw_set("service", mosquitto.users["service"])
    watcher.on_message = lambda _c, _u, m: alerts.append(json.loads(m.payload))
    watcher.on_connect = lambda c, *_: c.subscribe("soundalert/v1/+/alerts", qos=1)
    watcher.connect("127.0.0.1", mosquitto.port)
    watcher.loop_start()

    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(master, view) :]

    try:
        deadline = time.monotonic() + 30
        while True:  # the bridge has opened the port and serves /metrics
            try:
                _metric_lines(bridge_metrics, "soundalert_serial_frames_total")
                break
            except OSError:
                assert bridge.poll() is None, (tmp_path / "bridge.log").read_text()
                assert time.monotonic() < deadline, "the bridge did not start"
                time.sleep(0.2)
        time.sleep(1.0)

        @given(st.lists(_NOISE, min_size=1, max_size=8))
        @settings(max_examples=150, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
        def feed(chunks: list[bytes]) -> None:
            write(b"".join(chunks))
            time.sleep(0.01)
            assert bridge.poll() is None, (tmp_path / "bridge.log").read_text()[-3000:]

        feed()
        time.sleep(1.0)
        assert bridge.poll() is None, (tmp_path / "bridge.log").read_text()[-3000:]
        rejected = _metric_lines(bridge_metrics, "soundalert_serial_frames_rejected_total")
        reasons = {labels.split('"')[1]: n for labels, n in rejected.items()}
        assert sum(reasons.values()) > 100, reasons
        assert set(reasons) <= set(REJECT_REASONS), reasons
        # The board reboots cleanly and hears a smoke alarm: it gets through.
        write(b"\r\n" + encode(Hello(0, 0, "rp2040-FUZZ", "0.1.0", 16000, 6)))
        write(encode(Detection(1, 9000, "t3", 0.93, 4900, 3125, 1)))
        deadline = time.monotonic() + 20
        while not any(a.get("category") == "smoke_alarm" for a in alerts):
            assert time.monotonic() < deadline, (tmp_path / "aggregator.log").read_text()[-3000:]
            time.sleep(0.1)
        assert bridge.poll() is None
        assert aggregator.poll() is None
    finally:
        watcher.loop_stop()
        for process in (bridge, aggregator):
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        os.close(master)
