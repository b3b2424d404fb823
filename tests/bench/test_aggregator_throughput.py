"""The aggregator throughput bench runs end to end (``--quick``) and prints its figures.

Timings on a shared machine are not asserted: only that every figure is there and is a number.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NUMBER = r"\d+(?:\.\d+)?"


def test_quick_run_prints_well_formed_figures() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.aggregator_throughput", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, done.stderr[-3000:]
    for consumer in ("bare aiomqtt", "aggregator"):
        rows = [
            line.removeprefix(f"  {consumer} ").split()
            for line in out.splitlines()
            if line.startswith(f"  {consumer} ")
        ]
        figures = [len(row) for row in rows if all(re.fullmatch(NUMBER, w) for w in row)]
        # drain: events, drained/s, published/s, CPU; latency: events, p50, p99, max, CPU
        assert figures == [4, 5], out
    summary = re.search(
        rf"drain: aggregator ({NUMBER}) ev/s, bare ({NUMBER}) ev/s, ratio ({NUMBER})", out
    )
    assert summary is not None, out
    assert float(summary[1]) > 0
    assert float(summary[2]) > 0
    latency = re.search(
        rf"aggregator p50 ({NUMBER}) ms p99 ({NUMBER}) ms; bare p50 ({NUMBER}) ms "
        rf"p99 ({NUMBER}) ms",
        out,
    )
    assert latency is not None, out
    assert re.search(rf"soundalert_processing_seconds at \S+: p50 {NUMBER} ms, p99 {NUMBER}", out)
    assert "warning" not in out, out  # every event published was processed
