"""Does the aggregator's per-event cost grow with the world? And its /metrics?

Builds worlds of 0 to 10,000 homes (one to five nodes and one open smoke alarm each, in the real
core on a real SQLite file), then times the same stream of events from one more home: quiet windows,
windows a category counts, and a doorbell that raises and resolves. The baseline is the empty
world, measured in the same run; the ratio is what each bigger world costs per event. It also
prints the size and render time of the aggregator's /metrics for each world.

    python -m bench.core_scaling [--worlds 0 1000 10000] [--events 3000] [--nodes-per-home 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import generate_latest

from schemas.messages import ClassificationEvent
from services.aggregator.core import Aggregator
from services.aggregator.metrics import AggregatorMetrics
from services.aggregator.policy import load_policy
from services.aggregator.store import Store

T0 = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)
NOW = T0.timestamp() + 3.0
BATCH = 256  # the service commits this many messages at a time


def _event(site: str, node: str, seq: int, label: str, score: float, *, kind: str = "yamnet"
           ) -> ClassificationEvent:  # fmt: skip
    start = T0 + timedelta(seconds=0.48 * seq)
    return ClassificationEvent.model_validate({
        "event_id": f"{site}.{node}.{seq}", "site": site, "node": node, "seq": seq,
        "window_start": start, "window_end": start + timedelta(seconds=0.975),
        "source": {"kind": kind, "model": kind, "version": "1"},
        "labels": [{"label": label, "score": score}], "level_dbfs": -30.0,
    })  # fmt: skip


NODES = ("kitchen", "hall", "bedroom", "living", "garage")


def build_world(
    homes: int, nodes_per_home: int, path: Path, metrics: AggregatorMetrics | None = None
) -> Aggregator:
    """``homes`` homes, each with its nodes (one quiet window each) and an open smoke alarm."""
    core = Aggregator(load_policy(), Store(path), metrics or AggregatorMetrics())
    for i in range(homes):
        for node in NODES[:nodes_per_home]:
            core.handle_event(_event(f"home{i}", node, 0, "Silence", 0.9), NOW)
        core.handle_event(_event(f"home{i}", "kitchen", 1, "t3", 0.95, kind="pattern"), NOW)
        core.flush()
        if i % BATCH == 0:
            core.store.commit()
    core.store.commit()
    return core


def _stream(first: int, n: int) -> list[ClassificationEvent]:
    """Quiet windows, windows a category counts, and now and then a doorbell."""
    out = []
    for seq in range(first, first + n):
        if seq % 50 in (10, 11):
            out.append(_event("bench", "hall", seq, "Doorbell", 0.9))
        elif seq % 3 == 0:
            out.append(_event("bench", "hall", seq, "Speech", 0.8))
        else:
            out.append(_event("bench", "hall", seq, "Silence", 0.9))
    return out


def _per_event_us(core: Aggregator, events: list[ClassificationEvent]) -> float:
    started = time.perf_counter()
    for i, event in enumerate(events):
        with core.store.isolated():
            core.handle_event(event, event.window_end.timestamp() + 0.1)
            core.flush()
        if i % BATCH == BATCH - 1:
            core.store.commit()
    core.store.commit()
    return (time.perf_counter() - started) / len(events) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worlds", type=int, nargs="+", default=[0, 100, 1000, 10000])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nodes-per-home", type=int, default=1, choices=range(1, 6))
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="soundalert-scaling-"))
    print(f"core_scaling: worlds of {args.worlds} homes ({args.nodes_per_home} nodes and one "
          f"open smoke alarm each); {args.events} events from one more home, best of "
          f"{args.rounds} rounds")  # fmt: skip
    rows = []
    for homes in args.worlds:
        path = workdir / f"world-{homes}x{args.nodes_per_home}.sqlite3"
        core = build_world(homes, args.nodes_per_home, path)
        timings = []
        for r in range(args.rounds):
            stream = _stream(r * args.events, args.events)
            timings.append(_per_event_us(core, stream))
        started = time.perf_counter()
        text = generate_latest(core.metrics.registry)
        render_ms = (time.perf_counter() - started) * 1e3
        rows.append((homes, len(core.active_episodes()), min(timings),
                     statistics.median(timings), len(text), render_ms))  # fmt: skip
        core.store.close()
    base = rows[0][2]
    print("| homes | nodes | active alerts | us/event (best) | median | ratio to first | "
          "/metrics bytes | render ms |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for homes, active, best, median, size, render in rows:
        print(f"| {homes} | {homes * args.nodes_per_home} | {active} | {best:.1f} | "
              f"{median:.1f} | {best / base:.2f} | {size:,} | {render:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
