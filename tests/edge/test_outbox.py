"""The durable outbox: order, idempotence, the bound and its drop count, crash survival."""

from __future__ import annotations

import os
import signal
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
    assert dropped == 1
    assert [p.key for p in box.peek()] == ["alarm", "quiet2", "new"]
    assert box.put([_msg("newer"), _msg("newest")]) == 2
    assert [p.key for p in box.peek()] == ["alarm", "newer", "newest"]
    assert box.dropped == 3
    box.close()
    reopened = Outbox(path, max_messages=3)
    assert reopened.dropped == 3, "the drop count survives a restart"
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
