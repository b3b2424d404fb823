"""The node's recent background, as embeddings: what a sound is learned *against*.

The agent keeps the embeddings of its latest windows that passed the level gate (a few minutes
of them) and saves a sample of them beside its outbox now and then, so that ``soundalert sounds
learn`` on the same node learns against what this room sounds like. Embeddings only: the audio
cannot be played back from them.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["BackgroundBuffer", "RecentWindows", "background_path", "load_background"]

log = logging.getLogger(__name__)

KEEP: Final = 600
"""Windows kept in memory: about 5 minutes at one every 0.48 s."""
SAVED: Final = 120
"""Windows saved (spread evenly over those kept)."""
SAVE_EVERY_S: Final = 30.0
RECENT: Final = 1250
"""Windows kept for "this was my ...": 10 minutes (2.5 MB of float16 embeddings)."""


def background_path(outbox: Path, node: str) -> Path:
    """Beside the node's outbox (by default in its state directory)."""
    return outbox.with_name(f"agent-{node}.background.npz")


def load_background(path: Path) -> npt.NDArray[np.float32]:
    """The saved background embeddings (rows), or an empty matrix when there are none."""
    try:
        with np.load(path) as saved:
            return np.asarray(saved["embeddings"], np.float32)
    except (OSError, KeyError, ValueError):
        return np.zeros((0, 0), np.float32)


class BackgroundBuffer:
    """A rolling buffer of window embeddings, saved to ``path`` every ``every_s`` seconds."""

    def __init__(self, path: Path, *, every_s: float = SAVE_EVERY_S, keep: int = KEEP) -> None:
        self.path = path
        self.every_s = every_s
        self._rows: deque[npt.NDArray[np.float32]] = deque(maxlen=keep)
        self._saved_at = time.monotonic()

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, embedding: npt.NDArray[np.float32]) -> None:
        self._rows.append(embedding.astype(np.float16))
        if time.monotonic() - self._saved_at >= self.every_s:
            self.save()

    def recent(self, count: int) -> npt.NDArray[np.float32]:
        """The latest ``count`` embeddings, oldest first."""
        rows = list(self._rows)[-count:]
        return np.stack(rows).astype(np.float32) if rows else np.zeros((0, 0), np.float32)

    def save(self) -> None:
        """Write a sample of the buffer (atomically); a failure is logged, never raised."""
        self._saved_at = time.monotonic()
        if not self._rows:
            return
        rows = np.stack(list(self._rows))
        pick = np.linspace(0, rows.shape[0] - 1, min(SAVED, rows.shape[0])).round().astype(int)
        tmp = self.path.with_suffix(".tmp.npz")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(tmp, embeddings=rows[np.unique(pick)])
            tmp.replace(self.path)
        except OSError as exc:
            log.warning("could not save the background embeddings to %s: %s", self.path, exc)


class RecentWindows:
    """The embeddings of a node's latest windows with their event times and levels, for
    "this was my ...": learning from what the node heard, after the fact."""

    def __init__(self, keep: int = RECENT) -> None:
        self._rows: deque[tuple[float, float, float, npt.NDArray[np.float16]]] = deque(maxlen=keep)

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, start: float, end: float, level: float,
            embedding: npt.NDArray[np.float32]) -> None:  # fmt: skip
        self._rows.append((start, end, level, embedding.astype(np.float16)))

    def between(self, start: float, end: float
                ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:  # fmt: skip
        """(embeddings, levels) of the windows that overlap [start, end] (event time, s)."""
        rows = [(lev, emb) for s, e, lev, emb in self._rows if e > start and s < end]
        if not rows:
            return np.zeros((0, 0), np.float32), np.zeros(0, np.float32)
        return (np.stack([emb for _, emb in rows]).astype(np.float32),
                np.asarray([lev for lev, _ in rows], np.float32))  # fmt: skip
