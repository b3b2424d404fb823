"""Small builders for aggregator tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from schemas.messages import ClassificationEvent, NodeStatus
from services.aggregator.core import Aggregator
from services.aggregator.metrics import AggregatorMetrics
from services.aggregator.policy import Policy
from services.aggregator.store import Store
from tests.support.policy import quick_policy

__all__ = ["HOP", "SMOKE", "T0", "WINDOW", "StoreOpener", "event", "make_aggregator", "status",
           "use_store"]  # fmt: skip

StoreOpener = Callable[[Path | str], Store]
"""Opens the store at a path (``":memory:"``: a new empty one); the same path reopens it."""

_open_store: StoreOpener = Store


def use_store(opener: StoreOpener) -> StoreOpener:
    """Make :func:`make_aggregator` open its stores with ``opener``; returns the previous one
    (the ``store_backend`` fixture runs a test module on SQLite and on PostgreSQL)."""
    global _open_store
    previous, _open_store = _open_store, opener
    return previous


T0 = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)
SMOKE = "Smoke detector, smoke alarm"
HOP = 0.48
WINDOW = 0.975


def event(
    i: int,
    *,
    node: str = "kitchen",
    site: str = "home",
    label: str = SMOKE,
    score: float = 0.7,
    kind: str = "yamnet",
    level: float = -20.0,
    offset: float = 0.0,
) -> ClassificationEvent:
    start = T0 + timedelta(seconds=offset + HOP * i)
    return ClassificationEvent.model_validate(
        {
            "event_id": f"{site}-{node}-{kind}-{i:06d}-{int(offset * 1000)}",
            "site": site,
            "node": node,
            "seq": i,
            "window_start": start,
            "window_end": start + timedelta(seconds=WINDOW),
            "source": {"kind": kind, "model": kind, "version": "1"},
            "labels": [{"label": label, "score": score}],
            "level_dbfs": level,
        }
    )


def status(
    state: str = "online", *, node: str = "kitchen", site: str = "home", at: float,
    heartbeat_s: float = 15.0,
) -> NodeStatus:  # fmt: skip
    return NodeStatus.model_validate(
        {"site": site, "node": node, "state": state, "heartbeat_s": heartbeat_s,
         "at": datetime.fromtimestamp(at, UTC)}
    )  # fmt: skip


def make_aggregator(path: Path | str = ":memory:", policy: Policy | None = None) -> Aggregator:
    """An aggregator on the test policy (:mod:`tests.support.policy`) unless one is given."""
    return Aggregator(policy or quick_policy(), _open_store(path), AggregatorMetrics())
