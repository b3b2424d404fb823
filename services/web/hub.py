"""Fan-out of live updates to the pages connected to ``/api/stream``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from services.web.auth import Grant
from services.web.core import Update

__all__ = ["Hub", "Subscriber"]

log = logging.getLogger(__name__)

_QUEUE = 1000


class Subscriber:
    def __init__(self, grant: Grant) -> None:
        self.grant = grant
        self.queue: asyncio.Queue[Update | None] = asyncio.Queue(maxsize=_QUEUE)
        self.closed = False

    def close(self) -> None:
        """End this subscriber's stream (the page reconnects and gets a fresh snapshot)."""
        if self.closed:
            return
        self.closed = True
        while True:  # make room for the end marker
            try:
                self.queue.put_nowait(None)
            except asyncio.QueueFull:
                self.queue.get_nowait()
                continue
            return


class Hub:
    def __init__(self, on_count: Callable[[int], None] | None = None) -> None:
        self._subscribers: set[Subscriber] = set()
        self._on_count = on_count

    def __len__(self) -> int:
        return len(self._subscribers)

    def subscribe(self, grant: Grant) -> Subscriber:
        sub = Subscriber(grant)
        self._subscribers.add(sub)
        self._count()
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)
        self._count()

    def publish(self, updates: list[Update]) -> None:
        for update in updates:
            for sub in list(self._subscribers):
                if sub.closed or not (update.site.startswith("_") or sub.grant.allows(update.site)):
                    continue
                try:
                    sub.queue.put_nowait(update)
                except asyncio.QueueFull:
                    log.warning("a live-stream client fell %d updates behind; dropping it", _QUEUE)
                    sub.close()

    def close(self) -> None:
        for sub in list(self._subscribers):
            sub.close()

    def _count(self) -> None:
        if self._on_count is not None:
            self._on_count(len(self._subscribers))
