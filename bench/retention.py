"""A simulated year of one home: does retention keep the aggregator's state bounded?

The real aggregator core on a real SQLite file, fed in accelerated event time: five nodes,
``--events-per-day`` windows each per day (what nodes send with a reporting floor), twenty
doorbells a day (each an alert that resolves), a smoke alarm a week (acknowledged), and
feedback on a third of the alerts. After each simulated day the retention pass runs as the
service runs it. The baseline, side by side in the same run, is the same year without
retention. It prints the database size (and rows) at points through the year.

    python -m bench.retention [--days 365] [--events-per-day 1000] [--retention-days 90]
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from schemas.messages import ClassificationEvent, Feedback
from services.aggregator.core import Aggregator
from services.aggregator.metrics import AggregatorMetrics
from services.aggregator.policy import load_policy
from services.aggregator.store import Store

NODES = ("kitchen", "hall", "bedroom", "living", "garage")
DAY = 86400.0
START = datetime(2026, 1, 1, tzinfo=UTC).timestamp()


class Home:
    def __init__(self, path: Path) -> None:
        self.core = Aggregator(load_policy(), Store(path), AggregatorMetrics())
        self.seq = dict.fromkeys(NODES, 0)
        self.path = path

    def window(self, node: str, at: float, label: str, score: float, kind: str = "yamnet"
               ) -> list[str]:  # fmt: skip
        seq = self.seq[node]
        self.seq[node] += 1
        start = datetime.fromtimestamp(at, UTC)
        event = ClassificationEvent.model_validate({
            "event_id": f"{node}.{seq}", "site": "home", "node": node, "seq": seq,
            "window_start": start, "window_end": start + timedelta(seconds=0.975),
            "source": {"kind": kind, "model": kind, "version": "1"},
            "labels": [{"label": label, "score": score}], "level_dbfs": -30.0,
        })  # fmt: skip
        with self.core.store.isolated():
            alerts = self.core.handle_event(event, at + 1.0)
            self.core.flush()
        return [a.alert_id for a in alerts if a.state == "raised"]

    def feedback(self, alert_id: str, verdict: str, at: float) -> None:
        feedback = Feedback(alert_id=alert_id, verdict=verdict, by="bench",
                            at=datetime.fromtimestamp(at, UTC))  # fmt: skip
        with self.core.store.isolated():
            self.core.handle_feedback(feedback, "home", at)

    def day(self, index: int, events_per_day: int) -> None:
        base = START + index * DAY
        step = DAY / events_per_day
        raised: list[str] = []
        for i in range(events_per_day):
            at = base + i * step
            for node in NODES:
                raised += self.window(node, at + NODES.index(node) * 0.01, "Speech", 0.7)
            if i % (events_per_day // 20) == 0:  # twenty doorbells a day
                for k in range(2):
                    raised += self.window("hall", at + 0.5 + 0.48 * k, "Doorbell", 0.9)
            if index % 7 == 3 and i == events_per_day // 2:  # a smoke alarm a week
                raised += self.window("kitchen", at + 0.3, "t3", 0.95, kind="pattern")
            self.core.tick(at + 2.0)
            if i % 256 == 0:
                self.core.store.commit()
        for n, alert_id in enumerate(raised):
            self.feedback(alert_id, "false_alarm" if n % 3 == 0 else "acknowledged",
                          base + DAY - 60)  # fmt: skip
        self.core.store.commit()

    def prune(self, now: float, retention_days: float) -> None:
        while True:
            with self.core.store.isolated():
                deleted = self.core.store.prune(now - retention_days * DAY, limit=20_000)
            self.core.store.commit()
            if not any(count >= 20_000 for count in deleted.values()):
                return

    def sizes_mb(self) -> tuple[float, float]:
        """(bytes in use, file size incl. its write-ahead log), in MB."""
        self.core.store.checkpoint()
        wal = self.path.with_name(self.path.name + "-wal")
        on_disk = self.path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
        return self.core.store.used_bytes() / 1e6, on_disk / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--events-per-day", type=int, default=1000)
    parser.add_argument("--retention-days", type=float, default=90.0)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="soundalert-retention-"))
    kept, baseline = Home(workdir / "retention.sqlite3"), Home(workdir / "baseline.sqlite3")
    print(f"retention: {args.days} days of a 5-node home, {args.events_per_day} windows per "
          f"node per day, retention {args.retention_days:g} days vs none (baseline)")  # fmt: skip
    print("| day | with retention: MB in use (file) | rows (events, alerts, history) | "
          "without: MB in use (file) | ratio in use |")  # fmt: skip
    print("|---|---|---|---|---|")
    checkpoints = {30, 60, 90, 120, 180, 270, 365, args.days}
    for day in range(args.days):
        for home in (kept, baseline):
            home.day(day, args.events_per_day)
        kept.prune(START + (day + 1) * DAY, args.retention_days)
        if day + 1 in checkpoints:
            rows = kept.core.store.row_counts()
            (a, a_file), (b, b_file) = kept.sizes_mb(), baseline.sizes_mb()
            print(f"| {day + 1} | {a:.1f} ({a_file:.1f}) | {rows['events']:,}, "
                  f"{rows['alerts']:,}, {rows['alert_history']:,} | {b:.1f} ({b_file:.1f}) | "
                  f"{a / b:.2f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
