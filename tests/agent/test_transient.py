"""A file replay announces itself as transient (issue 14): its end raises no sensor alert."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from edge.agent.demo import write_wav
from edge.agent.service import AgentService
from edge.agent.settings import AgentSettings
from edge.agent.sources import StdinSource, WavFileSource
from schemas.messages import TRANSIENT


def _capabilities(tmp_path: Path, source: object) -> list[str]:
    settings = AgentSettings(broker="mqtt://127.0.0.1:1", node="kitchen",
                             state_dir=tmp_path)  # fmt: skip
    service = AgentService(settings, source)  # type: ignore[arg-type]
    try:
        return service._status("online").capabilities  # noqa: SLF001
    finally:
        service.outbox.close()


def test_a_replay_is_transient_and_a_live_source_is_not(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "a.wav", np.zeros(16000))
    assert TRANSIENT in _capabilities(tmp_path / "file", WavFileSource(wav))
    assert TRANSIENT not in _capabilities(tmp_path / "stdin", StdinSource(io.BytesIO()))
