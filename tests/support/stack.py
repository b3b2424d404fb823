"""`soundalert up --broker URL` as a real process, for tests of the whole stack."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.support.mosquitto import Mosquitto, free_port

__all__ = ["TOKEN", "Stack"]

TOKEN = "stack-test-token-0123456789"  # noqa: S105 - a test token


class Stack:
    def __init__(self, broker: Mosquitto, workdir: Path, *, state: Path | None = None) -> None:
        self.metrics_port = free_port()
        self.web_port = free_port()
        self.log = workdir / "stack.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "soundalert", "up", "--broker", broker.url("service"),
             "--state", str(state or workdir / "state"), "--metrics-port", str(self.metrics_port),
             "--web-port", str(self.web_port), "--token", TOKEN, "--log-level", "warning"],
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while "Alerts appear below" not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"stack did not start: {self.tail()}")
            time.sleep(0.1)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def alive(self) -> bool:
        return self.process.poll() is None

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            return str(response.read().decode())

    def alerts(self) -> list[dict[str, object]]:
        """The alerts the display shows (the alert documents of its history entries)."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.web_port}/api/alerts",
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            body = json.loads(response.read())
        entries = body["alerts"] if isinstance(body, dict) else body
        return [entry["alert"] for entry in entries]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
