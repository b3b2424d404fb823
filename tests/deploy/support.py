"""Helpers for the deployment tests: processes, a real Prometheus, the PromQL arithmetic.

``histogram_quantile`` mirrors Prometheus' own (linear interpolation inside the bucket, the
lowest bucket starting at 0), so the test can compute what the recording rules must produce
from the observations it drove.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

__all__ = [
    "PROMETHEUS",
    "REPO",
    "SOUNDALERT",
    "Process",
    "Prometheus",
    "bucket_counts",
    "histogram_quantile",
    "require",
    "scrape",
    "wait_until",
]

REPO = Path(__file__).resolve().parents[2]
SOUNDALERT = str(Path(sys.executable).with_name("soundalert"))
PROMETHEUS = shutil.which("prometheus")


def require(binary: str) -> str:
    """The path of ``binary``, or skip the test saying which Debian package provides it."""
    found = shutil.which(binary) or (
        f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None
    )
    if found is None:
        package = {"promtool": "prometheus", "mosquitto_sub": "mosquitto-clients"}.get(
            binary, binary
        )
        pytest.skip(f"{binary} is not installed (apt-get install {package})")
    return found


def wait_until(check: Callable[[], Any], within_s: float, what: str, every_s: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy; fail saying ``what`` did not happen."""
    deadline = time.monotonic() + within_s
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, KeyError):
            last = check()
            if last:
                return last
        time.sleep(every_s)
    pytest.fail(f"{what} within {within_s} s (last: {last!r})")


@dataclass
class Process:
    """A child process with its output in a log file, stopped with SIGTERM then SIGKILL."""

    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> Process:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd
            )
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def output(self, tail: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-tail:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=5)


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics page: (name, sorted labels) -> value."""
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - local test URL
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def bucket_counts(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], metric: str, **labels: str
) -> dict[float, float]:
    """``le`` -> cumulative count of one histogram series in a :func:`scrape` result."""
    out: dict[float, float] = {}
    for (name, label_items), value in samples.items():
        found = dict(label_items)
        if name == f"{metric}_bucket" and all(found.get(k) == v for k, v in labels.items()):
            out[float(found["le"])] = value
    return out


def histogram_quantile(q: float, buckets: dict[float, float]) -> float:
    """Prometheus' histogram_quantile over cumulative bucket counts (``le`` -> count)."""
    bounds = sorted(buckets)
    total = buckets[math.inf]
    if total == 0:
        return math.nan
    rank = q * total
    for i, upper in enumerate(bounds):
        if buckets[upper] >= rank:
            if upper == math.inf:
                return bounds[-2]
            lower = bounds[i - 1] if i > 0 else 0.0
            below = buckets[bounds[i - 1]] if i > 0 else 0.0
            if i == 0 and upper <= 0:
                return upper
            return lower + (upper - lower) * (rank - below) / (buckets[upper] - below)
    return math.nan


def observe(bounds: Sequence[float], values: Sequence[float]) -> dict[float, float]:
    """Cumulative bucket counts of ``values`` in a histogram with upper bounds ``bounds``."""
    uppers = [*bounds, math.inf]
    return {le: float(sum(1 for v in values if v <= le)) for le in uppers}


@dataclass
class Prometheus:
    """Debian's prometheus binary on a free port, with its own config and storage."""

    workdir: Path
    port: int
    config: str
    rule_files: dict[str, str] = field(default_factory=dict)
    process: Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, binary: str) -> Prometheus:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for name, text in self.rule_files.items():
            (self.workdir / name).write_text(text)
        config = self.workdir / "prometheus.yml"
        config.write_text(self.config)
        self.process = Process(
            "prometheus",
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            self.workdir / "prometheus.log",
        ).start()
        wait_until(self.ready, 30, "prometheus did not become ready")
        return self

    def ready(self) -> bool:
        if self.process is not None and not self.process.alive():
            pytest.fail(f"prometheus exited: {self.process.output()}")
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:  # noqa: S310
            return bool(response.status == 200)

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - local test URL
            body = json.loads(response.read())
        if body.get("status") != "success":
            raise ValueError(f"query {expr!r} failed: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def values(self, expr: str, *by: str) -> dict[tuple[str, ...], float]:
        """Instant vector -> {label values of ``by``: value}."""
        return {
            tuple(r["metric"].get(k, "") for k in by): float(r["value"][1])
            for r in self.query(expr)
        }

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


@contextlib.contextmanager
def running(*processes: Process | Prometheus) -> Iterator[None]:
    try:
        yield
    finally:
        for process in reversed(processes):
            process.stop()


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a soundalert child process: no SOUNDALERT_* from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOUNDALERT_")}
    env["PATH"] = f"{Path(SOUNDALERT).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    env.update(extra)
    return env
