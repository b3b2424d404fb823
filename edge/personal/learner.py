"""Learning a personal sound from a few examples: YAMNet embeddings in, a small model out. Pure.

No audio here, only embeddings (1024 numbers per 0.975 s window, from which the sound cannot be
played back). A learned sound is

* a *centre*: the mean embedding of the node's own recent background, subtracted first, so that
  what every window of the home shares (room tone, the fridge) weighs nothing;
* *prototypes*: one unit vector per example (the mean of its windows, centred);
* *background centroids*: a few unit vectors summarising the node's background (k-means);
* an open-set rule: a window is the sound when its cosine to the nearest prototype reaches
  ``threshold`` *and* beats its cosine to the nearest background centroid by ``margin``.

The threshold is set from what the node has (never from test data): the background's own
scores against the prototypes (the open set), and the leave-one-out scores of the examples
(each example scored against the prototypes of the others). ``bench/personal.py`` measures the
rule on recordings it never saw.

Why prototypes and not a trained head (TFLite's on-device training signatures): with 3 to 10
examples a linear head fit by gradient descent has more weights (1024) than windows and needs
a regulariser tuned per sound; nearest-prototype is the regularised limit of that head
(ProtoNets), needs no training loop, no optimiser state and no TFLite training ops (the shipped
YAMNet has no training signature, and ai-edge-litert runs training signatures only for models
converted with them), and its numbers are measured in ``bench/personal.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_MARGIN",
    "MAX_BACKGROUND_CENTROIDS",
    "MAX_PROTOTYPES",
    "MIN_EXAMPLES",
    "Learned",
    "Quality",
    "SoundModel",
    "kmeans",
    "learn",
    "match",
    "sound_mask",
    "sound_windows",
]

Matrix = npt.NDArray[np.float32]

MIN_EXAMPLES: Final = 3
"""Fewer examples than this are accepted, with a warning: the leave-one-out check needs three."""
MAX_PROTOTYPES: Final = 10
MAX_BACKGROUND_CENTROIDS: Final = 8
DEFAULT_MARGIN: Final = 0.05
"""A window must be this much closer (cosine) to the sound than to the node's background."""
_FLOOR: Final = 0.5
"""The threshold never goes below this cosine, however unlike the background the examples are."""
_ONE_EXAMPLE_FLOOR: Final = 0.7
"""... nor below this when there is no second example to say how alike examples are."""
_CEILING: Final = 0.9
_OVER_BACKGROUND: Final = 0.08
"""The threshold sits this far above the best score of any background window."""
_SPREAD_QUANTILE: Final = 0.35
"""... and at this quantile of the examples' own windows scored against the other examples'
prototypes: a sound whose examples are all alike gets a high threshold (bench/personal.py
chose it: 0.25 took 6 % of 3 s negative stretches, 0.4 cost a fifth of the accuracy)."""
_SOUND_IN_BACKGROUND: Final = 0.1
"""A background window within this (cosine) of how alike the examples are is the sound."""
_TOO_ALIKE: Final = 0.8
"""Two sounds whose prototypes are closer than this (cosine) are warned about."""
_WITHIN_DB: Final = 12.0
_GATE_DBFS: Final = -70.0


def _unit(x: Matrix) -> Matrix:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    out: Matrix = (x / np.maximum(norms, 1e-9)).astype(np.float32)
    return out


def sound_mask(
    levels: npt.NDArray[np.float32], *, within_db: float = _WITHIN_DB
) -> npt.NDArray[np.bool_]:
    """Which windows of one example hold the sound: louder than the gate and within
    ``within_db`` of its loudest window (a recording's lead-in and tail are not the sound)."""
    loud = levels >= _GATE_DBFS
    if not loud.any():
        return loud
    keep: npt.NDArray[np.bool_] = loud & (levels >= levels[loud].max() - within_db)
    return keep


def sound_windows(
    embeddings: Matrix, levels: npt.NDArray[np.float32], *, within_db: float = _WITHIN_DB
) -> Matrix:
    """The embeddings of one example's windows of sound (see :func:`sound_mask`)."""
    if embeddings.shape[0] != levels.shape[0]:
        raise ValueError("one level per embedding")
    out: Matrix = embeddings[sound_mask(levels, within_db=within_db)]
    return out


def kmeans(x: Matrix, k: int, *, iterations: int = 20, seed: int = 0) -> Matrix:
    """Spherical k-means of unit rows: ``min(k, rows)`` unit centroids."""
    k = min(k, x.shape[0])
    if k == 0:
        empty: Matrix = x[:0]
        return empty
    rng = np.random.default_rng(seed)
    centroids = x[rng.choice(x.shape[0], k, replace=False)]
    for _ in range(iterations):
        nearest = np.argmax(x @ centroids.T, axis=1)
        moved = np.stack([x[nearest == j].sum(0) if (nearest == j).any() else centroids[j]
                          for j in range(k)])  # fmt: skip
        moved = _unit(moved)
        if np.allclose(moved, centroids):
            break
        centroids = moved
    return centroids


@dataclass(frozen=True)
class SoundModel:
    """One learned sound, as a sound pack carries it."""

    sound: str
    centre: Matrix
    """(D,) subtracted from every embedding before it is normalised."""
    prototypes: Matrix
    """(k, D) unit rows, one per example."""
    background: Matrix
    """(b, D) unit rows: the learning node's background centroids."""
    threshold: float
    margin: float = DEFAULT_MARGIN

    def similarity(self, embeddings: Matrix) -> tuple[Matrix, Matrix]:
        """Per window: cosine to the nearest prototype, and to the nearest background
        centroid (-1 when there is none)."""
        z = _unit(np.atleast_2d(embeddings).astype(np.float32) - self.centre)
        to_sound = (z @ self.prototypes.T).max(axis=1)
        to_background = (
            (z @ self.background.T).max(axis=1) if self.background.size else np.full_like(
                to_sound, -1.0)
        )  # fmt: skip
        return to_sound.astype(np.float32), to_background.astype(np.float32)

    def accepts(self, embeddings: Matrix) -> npt.NDArray[np.bool_]:
        sound, background = self.similarity(embeddings)
        return (sound >= self.threshold) & (sound - background >= self.margin)

    def score(self, embeddings: Matrix) -> Matrix:
        """A label score in [0, 1] per window: 0.5 at the threshold, 1 at cosine 1."""
        sound, _ = self.similarity(embeddings)
        above = (sound - self.threshold) / max(1e-6, 1.0 - self.threshold)
        out: Matrix = np.clip(0.5 + 0.5 * above, 0.0, 1.0).astype(np.float32)
        return out


@dataclass(frozen=True)
class Quality:
    """What a person is told after enrolment."""

    examples: int
    windows: int
    leave_one_out: float | None
    """Share of the examples recognised (as this sound, above the threshold) by a model
    learned from the others; None with fewer than three examples."""
    background_max: float
    """The best cosine any background window reached against the prototypes."""
    nearest: str | None = None
    nearest_similarity: float | None = None
    warnings: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        out = [f"{self.examples} examples, {self.windows} windows of the sound"]
        if self.leave_one_out is not None:
            out.append(f"leave-one-out: {self.leave_one_out:.0%} of the examples recognised "
                       "by a model learned from the others")  # fmt: skip
        out.append(f"closest background window: cosine {self.background_max:.2f}")
        if self.nearest is not None and self.nearest_similarity is not None:
            out.append(f"nearest other sound: {self.nearest} "
                       f"(cosine {self.nearest_similarity:.2f})")  # fmt: skip
        out += [f"warning: {w}" for w in self.warnings]
        return out


@dataclass(frozen=True)
class Learned:
    model: SoundModel
    quality: Quality
    extra: dict[str, float] = field(default_factory=dict)


def _threshold(prototypes: Matrix, background: Matrix, examples: Sequence[Matrix]
               ) -> tuple[float, float]:  # fmt: skip
    """(threshold, the background's best score against the prototypes). ``examples`` are
    the centred, unit windows of each prototype's example."""
    best_bg = float((background @ prototypes.T).max()) if background.size else -1.0
    floor = _spread_floor(prototypes, examples)
    return float(np.clip(max(best_bg + _OVER_BACKGROUND, floor), _FLOOR, _CEILING)), best_bg


def _prototype(windows: Matrix, centre: Matrix) -> Matrix:
    out: Matrix = _unit((_unit(windows - centre)).mean(axis=0, keepdims=True))[0]
    return out


def _leave_one_out(model: SoundModel, examples: Sequence[Matrix], windows: list[Matrix],
                   background: Matrix) -> float:  # fmt: skip
    """Share of the examples that a model learned from the others recognises."""
    hits = 0
    for i, held in enumerate(examples):
        others = np.delete(model.prototypes, i, axis=0)
        t, _ = _threshold(others, background, windows[:i] + windows[i + 1 :])
        without = SoundModel(model.sound, model.centre, others, model.background, t, model.margin)
        hits += bool(without.accepts(held).any())
    return hits / len(examples)


def _nearest(sound: str, examples: Sequence[Matrix], known: Mapping[str, SoundModel]
             ) -> tuple[str | None, float | None]:  # fmt: skip
    """The learned sound the examples are most like, and how alike (mean best cosine)."""
    nearest, nearest_sim = None, None
    for name, other in known.items():
        if name == sound:
            continue
        mine = np.stack([_prototype(e, other.centre) for e in examples])
        sim = float((mine @ other.prototypes.T).max(axis=1).mean())
        if nearest_sim is None or sim > nearest_sim:
            nearest, nearest_sim = name, sim
    return nearest, nearest_sim


def _spread_floor(prototypes: Matrix, windows: Sequence[Matrix]) -> float:
    """How alike the examples are: the quantile of their windows' cosines to the other
    examples' prototypes (with one example, a fixed strict floor)."""
    if len(windows) < 2:
        return _ONE_EXAMPLE_FLOOR
    spread = [(z @ np.delete(prototypes, i, axis=0).T).max(axis=1) for i, z in enumerate(windows)]
    return max(_FLOOR, float(np.quantile(np.concatenate(spread), _SPREAD_QUANTILE)))


def _without_the_sound(examples: Sequence[Matrix], background: Matrix) -> Matrix:
    """The background less the windows that are the sound itself (it sounded before it was
    taught, and the node kept those windows as background): when some background window is
    so like the examples that the threshold would sit near its ceiling, those nearly as like
    the examples as the examples are like each other. (Always leaving such windows out costs
    false acceptances: on the bench, 2.19 % instead of 1.45 % at 5 shots, as it also drops
    ordinary sounds that are merely alike, speech for a laugh.)"""
    if background.shape[0] < 2:
        return background
    centre = background.mean(axis=0).astype(np.float32)
    prototypes = np.stack([_prototype(e, centre) for e in examples])
    similar = (_unit(background - centre) @ prototypes.T).max(axis=1)
    if float(similar.max()) + _OVER_BACKGROUND < _CEILING - _SOUND_IN_BACKGROUND:
        return background
    floor = _spread_floor(prototypes, [_unit(e - centre) for e in examples])
    keep = similar < floor - _SOUND_IN_BACKGROUND
    out: Matrix = background[keep] if keep.sum() >= 2 else background
    return out


def learn(
    sound: str,
    examples: Sequence[Matrix],
    background: Matrix,
    *,
    known: Mapping[str, SoundModel] | None = None,
    margin: float = DEFAULT_MARGIN,
) -> Learned:
    """Learn ``sound`` from its examples' windows (one (n_i, D) matrix per example, see
    :func:`sound_windows`) and the node's recent background windows (m, D).

    ``known`` are the sounds learned before (a re-trained sound of the same name is left out):
    the examples' nearest one is reported, and a warning given when it is too alike."""
    examples = [e for e in examples if e.shape[0]]
    if not examples:
        raise ValueError("no example holds a window of sound (all silent?)")
    if len(examples) > MAX_PROTOTYPES:
        raise ValueError(f"at most {MAX_PROTOTYPES} examples")
    dims = examples[0].shape[1]
    if any(e.shape[1] != dims for e in examples) or (background.size and background.shape[1]
                                                      != dims):  # fmt: skip
        raise ValueError("every embedding must have the same length")
    warnings: list[str] = []
    background = _without_the_sound(examples, background)
    if background.shape[0] >= 2:
        centre = background.mean(axis=0).astype(np.float32)
    else:
        centre = np.zeros(dims, np.float32)
        warnings.append("no background from this node: the sound is learned without "
                        "knowing what the room sounds like, so it may be heard in ordinary "
                        "noise")  # fmt: skip
    prototypes = np.stack([_prototype(e, centre) for e in examples])
    windows = [_unit(e - centre) for e in examples]
    bg = _unit(background - centre) if background.size else background.astype(np.float32)
    centroids = kmeans(bg, MAX_BACKGROUND_CENTROIDS)
    threshold, best_bg = _threshold(prototypes, bg, windows)

    loo = None
    if len(examples) >= MIN_EXAMPLES:
        whole = SoundModel(sound, centre, prototypes, centroids, threshold, margin)
        loo = _leave_one_out(whole, examples, windows, bg)
        if loo < 0.8:
            warnings.append(f"the examples are not alike: a model learned from the others "
                            f"recognises only {loo:.0%} of them; record more, closer")  # fmt: skip
    else:
        warnings.append(f"{len(examples)} example(s): give at least {MIN_EXAMPLES} (5 is "
                        "better) so the sound is recognised reliably")  # fmt: skip
    if best_bg + _OVER_BACKGROUND > _CEILING:
        warnings.append("the examples sound like this node's ordinary background: the sound "
                        "may be missed, or heard when it is not there")  # fmt: skip

    nearest, nearest_sim = _nearest(sound, examples, known or {})
    if nearest is not None and nearest_sim is not None and nearest_sim >= _TOO_ALIKE:
        warnings.append(f"too alike {nearest!r} (cosine {nearest_sim:.2f}): the two may be "
                        "confused")  # fmt: skip

    model = SoundModel(sound, centre, prototypes, centroids, threshold, margin)
    quality = Quality(len(examples), sum(e.shape[0] for e in examples), loo, round(best_bg, 3),
                      nearest, None if nearest_sim is None else round(nearest_sim, 3),
                      tuple(warnings))  # fmt: skip
    return Learned(model, quality)


def match(models: Sequence[SoundModel], embedding: Matrix) -> tuple[str, float] | None:
    """The learned sound one window is, with its score, or None: the accepted sound with the
    highest cosine."""
    best: tuple[str, float, float] | None = None
    for model in models:
        if model.centre.shape[0] != embedding.shape[-1]:
            continue
        sound, background = model.similarity(embedding)
        s, b = float(sound[0]), float(background[0])
        if s >= model.threshold and s - b >= model.margin and (best is None or s > best[2]):
            best = (model.sound, float(model.score(embedding)[0]), s)
    return None if best is None else (best[0], best[1])
