"""Finding 4 of issue 11: a full disk must never stop a node listening or publishing.

The outbox lives on a real tmpfs of 300 KB. When the disk refuses, the outbox drops the oldest
unprotected rows first (pattern detections are protected), then keeps new messages in memory
(bounded, published from there), moves them to disk when it can write again, and counts every
drop by reason. (On today's main the first "disk full" raised "cannot rollback - no transaction
is active" out of ``Outbox.put``, which ended the agent.)
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.outbox import Outbox, OutboxMessage
from tests.support.tmpfs import fill, tmpfs

PATTERN = 2


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "disk", 300) as path:
        yield path


def _event(seq: int, pattern_every: int) -> OutboxMessage:
    """~900 bytes, like a YAMNet window with ten labels; every n-th a pattern detection."""
    priority = PATTERN if seq % pattern_every == 0 else seq % 2
    payload = json.dumps({"event_id": f"kitchen.1.{seq}", "seq": seq, "pad": "x" * 850})
    return OutboxMessage(f"kitchen.1.{seq}", "t/events", payload.encode(), priority, seq=seq)


def _queue(box: Outbox, seqs: range, pattern_every: int = 20) -> Counter[str]:
    drops: Counter[str] = Counter()
    for seq in seqs:
        drops.update(box.put([_event(seq, pattern_every)], meta={"next_seq": seq + 1}))
    return drops


def _held(box: Outbox) -> list[int]:
    return [p.seq for p in box.peek(100_000) if p.seq is not None]


def test_a_full_disk_drops_the_oldest_unprotected_rows_and_keeps_every_pattern(
    disk: Path,
) -> None:
    box = Outbox(disk / "o.sqlite3", protected_priority=PATTERN)
    drops = _queue(box, range(1200))  # ~1 MB of events into 300 KB: never raises
    assert drops["disk_full"] > 900
    assert drops["outbox_full"] == 0
    held = _held(box)
    assert held[-1] == 1199, "the newest event is kept"
    assert set(range(0, 1200, 20)) <= set(held), "every pattern detection is kept"
    assert box.writable, "room was made on disk"
    assert box.in_memory == 0
    assert box.drops["disk_full"] == drops["disk_full"]
    assert (box.depth, box.pending_from_seq) == (len(held), 0)
    assert (disk / "o.sqlite3-reserve").stat().st_size == 64 * 1024, "the reserve is back"
    box.close()
    reopened = Outbox(disk / "o.sqlite3")
    assert _held(reopened) == held
    assert reopened.drops["disk_full"] == drops["disk_full"], "the count survives a restart"


def test_when_only_protected_rows_are_left_new_ones_wait_in_memory_until_space_returns(
    disk: Path,
) -> None:
    box = Outbox(disk / "o.sqlite3", memory_messages=40, protected_priority=PATTERN)
    filler = fill(disk, leave_kib=120)
    drops = _queue(box, range(400), pattern_every=1)  # every one protected
    assert not box.writable
    assert "full" in (box.problem or "")
    assert box.in_memory == 40, "bounded"
    held = _held(box)
    assert held[-1] == 399, "the newest is published from memory"
    assert drops["disk_full"] == 400 - len(held) > 0, "memory overflow is counted too"
    assert held == sorted(held)

    filler.unlink()  # space returns (a log was rotated away): ~70 KB
    _queue(box, range(400, 405), pattern_every=1)
    assert box.writable, box.problem
    assert box.in_memory == 0
    assert _held(box) == [*held, *range(400, 405)]
    counts = box.drops
    box.close()
    reopened = Outbox(disk / "o.sqlite3")
    assert reopened.drops == counts, "counts made while the disk refused were saved"
    assert reopened.next_seq == 405
    assert _held(reopened) == [*held, *range(400, 405)]


def test_acknowledgements_make_room_on_a_full_disk(disk: Path) -> None:
    box = Outbox(disk / "o.sqlite3", memory_messages=1000, protected_priority=PATTERN)
    fill(disk, leave_kib=120)
    _queue(box, range(300), pattern_every=1)
    assert box.in_memory > 0
    before, in_memory = _held(box), box.in_memory
    box.acknowledge(before[40])  # the aggregator stored the 41 oldest
    box.flush()
    assert _held(box) == before[41:], "only the acknowledged left"
    assert box.in_memory < in_memory - 30, "their room took rows from memory to disk"
    assert box.drops["disk_full"] == 0


def test_a_node_restarting_on_a_full_disk_opens_its_outbox_and_keeps_going(disk: Path) -> None:
    box = Outbox(disk / "o.sqlite3", protected_priority=PATTERN)
    _queue(box, range(600))
    held = _held(box)
    box.close()
    fill(disk, leave_kib=0)
    reopened = Outbox(disk / "o.sqlite3", protected_priority=PATTERN)
    assert _held(reopened) == held
    _queue(reopened, range(600, 650))
    assert _held(reopened)[-1] == 649, "new events are kept"


def test_an_outbox_that_cannot_even_be_created_lives_in_memory(disk: Path) -> None:
    fill(disk, leave_kib=0)
    box = Outbox(disk / "o.sqlite3", memory_messages=10)
    assert box.volatile is not None
    assert "o.sqlite3" in box.volatile
    assert not box.writable
    _queue(box, range(5))
    assert _held(box) == [0, 1, 2, 3, 4], "still queued and published, from memory"
    box.acknowledge(2)
    assert _held(box) == [3, 4]
