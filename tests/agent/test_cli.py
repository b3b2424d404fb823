"""The command line: clear one-line errors, and a clean SIGTERM that keeps the outbox."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edge.agent.cli import parse_start_time
from edge.agent.demo import write_wav
from tests.agent.conftest import AGENT
from tests.support.mosquitto import Mosquitto, free_port

pytestmark = pytest.mark.integration


def _wav(tmp_path: Path) -> Path:
    return write_wav(tmp_path / "in.wav", 0.1 * np.sin(np.arange(16000 * 5) / 5.0))


def test_refused_credentials_are_one_clear_line(mosquitto: Mosquitto, tmp_path: Path) -> None:
    url = f"mqtt://service:wrong@127.0.0.1:{mosquitto.port}"
    result = subprocess.run(
        [*AGENT, "--broker", url, "--input", str(_wav(tmp_path)), "--speed", "0",
         "--outbox", str(tmp_path / "o.sqlite3"), "--log-level", "error"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    assert "refused the credentials" in lines[0]
    assert "wrong" not in result.stderr, "the password is never printed"


def test_bad_arguments_are_one_clear_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [*AGENT, "--broker", "http://x", "--input", str(_wav(tmp_path))],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "scheme must be mqtt" in result.stderr
    assert "Traceback" not in result.stderr


async def test_no_broker_retries_with_a_clear_line_and_sigterm_keeps_the_outbox(
    tmp_path: Path,
) -> None:
    outbox = tmp_path / "o.sqlite3"
    proc = await asyncio.create_subprocess_exec(
        *AGENT, "--broker", f"mqtt://127.0.0.1:{free_port()}", "--input", str(_wav(tmp_path)),
        "--speed", "0", "--outbox", str(outbox), "--log-level", "warning",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    await asyncio.sleep(4)
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    text = err.decode()
    assert proc.returncode == 0, text
    assert "Traceback" not in text
    assert "nothing is accepting MQTT connections at 127.0.0.1" in text
    with sqlite3.connect(outbox) as db:
        (queued,) = db.execute("SELECT COUNT(*) FROM outbox").fetchone()
    assert queued >= 9, "the 5 s of audio wait in the outbox for the broker"


def test_start_time_needs_a_timezone() -> None:
    assert parse_start_time("2024-01-01T08:00:00Z").utcoffset() is not None
    with pytest.raises(ValueError, match="timezone"):
        parse_start_time("2024-01-01T08:00:00")
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_start_time("yesterday")
