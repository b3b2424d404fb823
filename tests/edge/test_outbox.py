"""The durable outbox: order, idempotence, the bound and its drop count, crash survival, and
end-to-end acknowledgements (rows leave only when an ack covers their seq)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge.outbox import Outbox, OutboxMessage


def _msg(key: str, priority: int = 0) -> OutboxMessage:
    return OutboxMessage(key, "t/events", key.encode(), priority=priority)


def test_messages_come_back_in_queue_order_and_go_when_removed(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    box.put([_msg("a"), _msg("b")])
    box.put([_msg("c")])
    assert [p.key for p in box.peek()] == ["a", "b", "c"]
    assert [p.payload for p in box.peek(2)] == [b"a", b"b"]
    first = box.peek(1)[0]
    box.remove([first.id])
    assert [p.key for p in box.peek()] == ["b", "c"]
    assert box.depth == 2


def test_queueing_the_same_key_twice_keeps_one_copy(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    box.put([_msg("a"), _msg("a")])
    box.put([_msg("a")])
    assert box.depth == 1
    assert len(box.peek()) == 1


def test_full_queue_drops_oldest_lowest_priority_and_counts_it(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    box = Outbox(path, max_messages=3)
    box.put([_msg("alarm", priority=2), _msg("quiet1"), _msg("quiet2")])
    dropped = box.put([_msg("new")])
    assert dropped == {"outbox_full": 1}
    assert [p.key for p in box.peek()] == ["alarm", "quiet2", "new"]
    assert box.put([_msg("newer"), _msg("newest")]) == {"outbox_full": 2}
    assert [p.key for p in box.peek()] == ["alarm", "newer", "newest"]
    assert box.dropped == 3
    box.close()
    reopened = Outbox(path, max_messages=3)
    assert reopened.dropped == 3, "the drop count survives a restart"
    assert reopened.drops == {"outbox_full": 3, "disk_full": 0, "storage_error": 0}
    assert reopened.depth == 3


def test_meta_values_are_committed_with_the_messages(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    box = Outbox(path)
    assert box.meta("next_seq") == 0
    box.put([_msg("a")], meta={"next_seq": 7})
    box.close()
    assert Outbox(path).meta("next_seq") == 7


def test_invalid_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_messages"):
        Outbox(tmp_path / "o.sqlite3", max_messages=0)
    with pytest.raises(ValueError, match="synchronous"):
        Outbox(tmp_path / "o.sqlite3", synchronous="off")  # type: ignore[arg-type]


def test_a_sigkilled_writer_loses_nothing_it_committed(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    code = textwrap.dedent(
        f"""
        import os, sys
        from edge.outbox import Outbox, OutboxMessage
        box = Outbox({str(path)!r}, synchronous="normal")
        for i in range(200):
            box.put([OutboxMessage(f"k{{i}}", "t", b"x")])
        print("ready", flush=True)
        sys.stdin.read()
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    box = Outbox(path)
    assert [p.key for p in box.peek(1000)] == [f"k{i}" for i in range(200)]


def _event(seq: int, priority: int = 0) -> OutboxMessage:
    payload = json.dumps({"event_id": f"e{seq}", "seq": seq}).encode()
    return OutboxMessage(f"e{seq}", "t/events", payload, priority=priority, seq=seq)


def test_an_acknowledgement_deletes_what_it_covers_and_nothing_else(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    box.put([_event(s) for s in range(5)], meta={"next_seq": 5})
    assert box.pending_from_seq == 0
    assert box.acknowledge(2) == 3
    assert [p.seq for p in box.peek()] == [3, 4]
    assert (box.depth, box.pending_from_seq, box.acked_seq) == (2, 3, 2)
    assert box.acknowledge(1) == 0, "an older acknowledgement changes nothing"
    assert box.acknowledge(2) == 0
    assert box.acknowledge(4) == 2
    assert box.peek() == []
    assert (box.depth, box.pending_from_seq) == (0, 5), "none held: the next seq"
    box.close()
    assert Outbox(tmp_path / "o.sqlite3").depth == 0, "the deletes were committed"


def test_pending_reads_after_a_cursor_so_each_row_is_sent_once_per_connection(
    tmp_path: Path,
) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    box.put([_event(s) for s in range(5)])
    first = box.pending(0, 3)
    assert [p.seq for p in first] == [0, 1, 2]
    assert [p.seq for p in box.pending(first[-1].id, 10)] == [3, 4]
    box.put([_event(5)])
    assert [p.seq for p in box.pending(first[-1].id, 10)] == [3, 4, 5]
    box.acknowledge(3)
    assert [p.seq for p in box.pending(0, 10)] == [4, 5], "after a reconnect: the unacked"


def test_a_message_without_seq_leaves_only_on_remove(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    box.put([_msg("status"), _event(0)])
    box.acknowledge(10)
    assert [p.key for p in box.peek()] == ["status"]
    assert box.remove([p.id for p in box.peek()]) == 1
    assert box.depth == 0


def test_broker_delivery_removes_by_id(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    box.put([_event(s) for s in range(3)], meta={"next_seq": 3})
    assert box.remove([box.peek()[0].id]) == 1
    assert (box.depth, box.pending_from_seq) == (2, 1)


def test_an_outbox_of_an_older_version_gets_its_seqs_from_the_payloads(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    with sqlite3.connect(path) as db:  # the schema before end-to-end delivery
        db.executescript(
            "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE,"
            " topic TEXT NOT NULL, payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER "
            "NOT NULL, priority INTEGER NOT NULL);"
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
            "INSERT INTO meta VALUES ('dropped', 4), ('next_seq', 9);"
        )
        for seq in (6, 7, 8):
            m = _event(seq)
            db.execute("INSERT INTO outbox (key, topic, payload, qos, retain, priority) "
                       "VALUES (?, ?, ?, 1, 0, 0)", (m.key, m.topic, m.payload))  # fmt: skip
    box = Outbox(path)
    assert [p.seq for p in box.peek()] == [6, 7, 8]
    assert (box.pending_from_seq, box.next_seq, box.drops["outbox_full"]) == (6, 9, 4)
    box.acknowledge(7)
    assert [p.seq for p in box.peek()] == [8]
    box.put([_event(9)])
    assert box.peek()[-1].id > box.peek()[0].id, "new rows still come after the old ones"
