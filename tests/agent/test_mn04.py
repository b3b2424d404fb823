"""mn04_as as the agent runs it (numpy front end + TFLite) against the reference: EfficientAT's
front end and the checkpoint in torch, as ``tools/convert_mn04.py`` recorded them in
``tests/data/mn04_golden.npz`` (torch is never imported here)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Final

import numpy as np
import pytest

from edge.agent import mn04
from edge.agent.labels import LabelMap
from edge.agent.model import ModelError
from tests.dsp.devaudio import require_dev_audio

GOLDEN: Final = Path(__file__).resolve().parents[1] / "data" / "mn04_golden.npz"
LOGMEL_TOLERANCE: Final = 5e-4
"""Largest difference allowed between the numpy and the reference log-mel (normalised units;
measured: 1.4e-4, float64 here against float32 in torch)."""
SCORE_TOLERANCE: Final = 1e-4
"""Largest score difference allowed between the agent's mn04 and the checkpoint in torch
(measured: 1.2e-6 end to end, 8e-7 for the network alone)."""


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN) as saved:
        return {key: saved[key] for key in saved.files}


@pytest.fixture(scope="module")
def model() -> mn04.Mn04Model:
    return mn04.Mn04Model()


def _row(golden: dict[str, np.ndarray], name: str) -> int:
    return int(np.flatnonzero(golden["names"] == name)[0])


@pytest.mark.parametrize("name", mn04.GOLDEN_SYNTHETIC)
def test_numpy_front_end_matches_the_reference(golden: dict[str, np.ndarray], name: str) -> None:
    patch = mn04.LogMel()(mn04.upsample(mn04.golden_synthetic(name)))
    reference = golden["logmel"][mn04.GOLDEN_SYNTHETIC.index(name)]
    assert patch.shape == reference.shape == (mn04.MEL_BANDS, mn04.FRAMES)
    assert float(np.abs(patch - reference).max()) < LOGMEL_TOLERANCE


@pytest.mark.parametrize("name", mn04.GOLDEN_SYNTHETIC)
def test_converted_network_matches_the_checkpoint(
    golden: dict[str, np.ndarray], model: mn04.Mn04Model, name: str
) -> None:
    """The TFLite network on the reference's own log-mel patch: the conversion alone."""
    patch = golden["logmel"][mn04.GOLDEN_SYNTHETIC.index(name)]
    reference = golden["scores"][_row(golden, name)]
    assert float(np.abs(model.scores(patch) - reference).max()) < SCORE_TOLERANCE


@pytest.mark.parametrize("name", mn04.GOLDEN_SYNTHETIC)
def test_agent_model_matches_the_reference_on_synthetic_windows(
    golden: dict[str, np.ndarray], model: mn04.Mn04Model, name: str
) -> None:
    scores = model(mn04.golden_synthetic(name)).scores
    assert float(np.abs(scores - golden["scores"][_row(golden, name)]).max()) < SCORE_TOLERANCE


def test_agent_model_matches_the_reference_on_recordings(
    golden: dict[str, np.ndarray], model: mn04.Mn04Model
) -> None:
    root = require_dev_audio()
    checked = 0
    for name, source, reference in zip(golden["names"], golden["sources"], golden["scores"],
                                       strict=True):  # fmt: skip
        if source == "synthetic":
            continue
        found = re.fullmatch(r"(\S+) sha256=([0-9a-f]{64}) at=([0-9.]+)", str(source))
        assert found, source
        path = root / found[1]
        if hashlib.sha256(path.read_bytes()).hexdigest() != found[2]:
            pytest.fail(f"{path} is not the recording the golden file was made from")
        scores = model(mn04.golden_dev_window(path, float(found[3]))).scores
        assert float(np.abs(scores - reference).max()) < SCORE_TOLERANCE, name
        checked += 1
    assert checked >= 5


def test_model_and_class_map_agree(model: mn04.Mn04Model) -> None:
    names = LabelMap.from_csv(mn04.DEFAULT_CLASS_MAP)
    assert model.classes == len(names) == 527
    assert names.names[:2] == ("Speech", "Male speech, man speaking")
    assert "Smoke detector, smoke alarm" in names.names
    assert model.version == hashlib.sha256(mn04.DEFAULT_MODEL.read_bytes()).hexdigest()[:12]


def test_audio_of_another_length_is_refused(model: mn04.Mn04Model) -> None:
    with pytest.raises(ValueError, match="expected 31200 samples"):
        model(np.zeros(15_600, np.float32))


def test_a_missing_model_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        mn04.Mn04Model(tmp_path / "nothing.tflite")


def test_the_licence_notice_ships_beside_the_model() -> None:
    notice = (mn04.DEFAULT_MODEL.parent / "NOTICE").read_text(encoding="utf-8")
    digest = hashlib.sha256(mn04.DEFAULT_MODEL.read_bytes()).hexdigest()
    assert "Copyright (c) 2022 Florian Schmid" in notice
    assert "Permission is hereby granted, free of charge" in notice
    assert f"mn04_as.tflite        sha256 {digest}" in notice
