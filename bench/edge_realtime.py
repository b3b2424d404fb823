"""Edge real-time benchmark: the agent's CPU seconds per second of audio, and its peak memory.

The agent runs as its own process pinned to one core, in streaming mode: raw s16le PCM on stdin,
written in real time in 0.1 s blocks (as ``arecord | soundalert agent --stdin`` would), publishing
to a real Mosquitto, with end-to-end delivery: the bench acknowledges every event as the
aggregator would (a retained DeliveryAck per event), so the agent deletes what is acknowledged.
CPU is counted from the first audio block to the process's exit (start-up is reported apart);
peak resident memory is the kernel's high-water mark for the process.

Beside it, as a baseline: the same audio through the bare YAMNet interpreter, one inference
per 0.48 s hop, with nothing else (no gate, patterns, outbox or MQTT).

    .venv/bin/python -m bench.edge_realtime [--seconds 60]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge.agent.demo import demo_signal
from edge.agent.model import YamnetModel
from edge.agent.windowing import SAMPLE_RATE, WINDOW_SAMPLES, hop_samples
from edge.dsp import synth
from schemas.common import utc_now
from schemas.messages import DeliveryAck
from schemas.topics import Topics
from tests.support.mosquitto import Mosquitto

__all__ = ["main"]

RTF_TARGET: Final = 0.05
RSS_TARGET_MB: Final = 150.0
BLOCK: Final = SAMPLE_RATE // 10
AGENT: Final = [sys.executable, "-c", "from soundalert.cli import main; main()", "agent"]
TOPICS: Final = Topics()


def _audio(seconds: float) -> npt.NDArray[np.int16]:
    """Room noise with a T3 alarm from 6 s on (the demo recording, at any length)."""
    return synth.to_int16(demo_signal(seconds, alarm_at_s=6.0))


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


def _pin() -> None:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


class _Acker:
    """Plays the aggregator's acknowledgements: every event it hears is acknowledged at once."""

    def __init__(self, port: int) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-acker")
        self.client.username_pw_set("node", "secret")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(TOPICS.events("bench", "edge"), qos=1)
        self.client.loop_start()

    def _on_message(self, client: paho.Client, _userdata: object, msg: paho.MQTTMessage) -> None:
        seq = json.loads(msg.payload)["seq"]
        ack = DeliveryAck(site="bench", node="edge", seq=seq, at=utc_now())
        client.publish(TOPICS.ack("bench", "edge"), ack.to_json(), qos=1, retain=True)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def run_agent(audio: npt.NDArray[np.int16], workdir: Path) -> dict[str, float]:
    broker = Mosquitto(workdir / "mosquitto", users={"node": "secret"},
                       acl="user node\ntopic readwrite #\n")  # fmt: skip
    broker.start()
    acker = _Acker(broker.port)
    try:
        proc = subprocess.Popen(
            [*AGENT, "--stdin", "--broker", broker.url("node"), "--site", "bench",
             "--node", "edge", "--outbox", str(workdir / "outbox.sqlite3"),
             "--log-level", "warning"],
            stdin=subprocess.PIPE, preexec_fn=_pin,  # noqa: PLW1509 - affinity before exec
        )  # fmt: skip
        assert proc.stdin is not None
        time.sleep(4.0)  # imports, model load, connection
        startup = _cpu_s(proc.pid)
        began = time.monotonic()
        for i, at in enumerate(range(0, audio.size, BLOCK)):
            proc.stdin.write(audio[at : at + BLOCK].astype("<i2").tobytes())
            proc.stdin.flush()
            time.sleep(max(0.0, began + (i + 1) * BLOCK / SAMPLE_RATE - time.monotonic()))
        proc.stdin.close()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        acker.stop()
        broker.kill()
    total = usage.ru_utime + usage.ru_stime
    return {
        "returncode": float(proc.returncode),
        "startup_cpu_s": startup,
        "stream_cpu_s": total - startup,
        "peak_rss_mb": usage.ru_maxrss / 1024.0,
    }


def run_baseline(audio: npt.NDArray[np.int16]) -> dict[str, float]:
    model = YamnetModel()
    x = audio.astype(np.float32) / 32768.0
    hop = hop_samples(0.48)
    before = resource.getrusage(resource.RUSAGE_SELF)
    for start in range(0, x.size - WINDOW_SAMPLES + 1, hop):
        model(x[start : start + WINDOW_SAMPLES])
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {"stream_cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)}


def main() -> None:
    parser = argparse.ArgumentParser(description="Agent CPU per audio second, and peak RSS.")
    parser.add_argument("--seconds", type=float, default=60.0, help="audio streamed in real time")
    args = parser.parse_args()
    audio = _audio(args.seconds)
    with tempfile.TemporaryDirectory(prefix="soundalert-edge-") as tmp:
        agent = run_agent(audio, Path(tmp))
    _pin()
    baseline = run_baseline(audio)
    seconds = audio.size / SAMPLE_RATE
    rtf = agent["stream_cpu_s"] / seconds
    base_rtf = baseline["stream_cpu_s"] / seconds
    print(f"audio streamed: {seconds:.0f} s, one core, agent exit code "
          f"{agent['returncode']:.0f}")  # fmt: skip
    print(f"{'':<34} {'agent':>10} {'bare YAMNet':>12}")
    print(f"{'CPU s per audio s (RTF)':<34} {rtf:>10.4f} {base_rtf:>12.4f}")
    print(f"{'CPU s while streaming':<34} {agent['stream_cpu_s']:>10.2f} "
          f"{baseline['stream_cpu_s']:>12.2f}")  # fmt: skip
    print(f"{'CPU s at start-up (imports, model)':<34} {agent['startup_cpu_s']:>10.2f}")
    print(f"{'peak RSS MB':<34} {agent['peak_rss_mb']:>10.1f}")
    print(f"agent / bare-model CPU ratio: {rtf / base_rtf:.1f}x" if base_rtf else "")
    ok_rtf = rtf < RTF_TARGET
    ok_rss = agent["peak_rss_mb"] < RSS_TARGET_MB
    print(f"[{'ok' if ok_rtf else 'FAIL'}] RTF {rtf:.4f} < {RTF_TARGET}")
    print(f"[{'ok' if ok_rss else 'FAIL'}] peak RSS {agent['peak_rss_mb']:.1f} MB "
          f"< {RSS_TARGET_MB:.0f} MB")  # fmt: skip
    if not (ok_rtf and ok_rss) or agent["returncode"] != 0:
        sys.exit(1)


if __name__ == "__main__":
    main()
