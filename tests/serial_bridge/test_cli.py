"""The commands' error paths: one clear line, exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.mosquitto import Mosquitto

CLI = [sys.executable, "-c", "from soundalert.cli import main; main()"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.integration
def test_wrong_broker_credentials_are_one_clear_line(
    mosquitto: Mosquitto, topic_root: str, tmp_path: Path
) -> None:
    broker = f"mqtt://kitchen:wrong@127.0.0.1:{mosquitto.port}"
    done = _run("serial-bridge", "--port", str(tmp_path / "ttyACM0"), "--node", "kitchen",
                "--broker", broker, "--topic-root", topic_root, "--state", str(tmp_path),
                "--log-level", "error")  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: the broker at 127.0.0.1")
    assert "refused the credentials (user 'kitchen')" in lines[0]


def test_port_or_auto_is_required() -> None:
    done = _run("serial-bridge", "--node", "kitchen")
    assert done.returncode == 2
    assert done.stderr.strip() == "error: give exactly one of --port DEVICE or --auto"


def test_simulate_board_with_a_missing_core_binary_says_so(tmp_path: Path) -> None:
    wav = tmp_path / "x.wav"
    wav.write_bytes(b"RIFF")
    done = _run("simulate-board", "--port", str(tmp_path / "tty"), "--input", str(wav),
                "--core", str(tmp_path / "nope"))  # fmt: skip
    assert done.returncode == 2
    assert "does not exist or is not executable" in done.stderr
    assert not (tmp_path / "tty").exists()


def test_simulate_board_reports_a_bad_recording(tmp_path: Path) -> None:
    import shutil  # noqa: PLC0415

    if shutil.which("gcc") is None or shutil.which("make") is None:
        pytest.skip("gcc and make are needed to build the firmware core")
    wav = tmp_path / "bad.wav"
    wav.write_bytes(b"not a wav at all")
    done = _run("simulate-board", "--port", str(tmp_path / "tty"), "--input", str(wav))
    assert done.returncode == 2
    assert done.stderr.startswith("error: the firmware core rejected")
