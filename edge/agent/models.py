"""Which classifiers an agent runs: ``--model yamnet|mn04|both``.

Each model publishes its windows under its own source kind (``yamnet``, ``mn04``): the policy
maps each kind's labels to categories, so the aggregator can use one model's evidence, or pool
both (``both``: windows that pass the gate are classified by each model, YAMNet every 0.48 s on
its 0.975 s, mn04 every 0.96 s on the 1.95 s ending there, and each verdict is its own event).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, get_args

from edge.agent.events import model_source
from edge.agent.labels import LabelMap
from edge.agent.pipeline import Classifier, Head
from edge.agent.windowing import WINDOW_SAMPLES
from schemas.messages import Source

__all__ = ["DEFAULT_CHOICE", "KINDS", "LoadedModel", "ModelChoice", "load_models"]

ModelChoice = Literal["yamnet", "mn04", "both"]
KINDS: Final[dict[ModelChoice, tuple[str, ...]]] = {
    "yamnet": ("yamnet",),
    "mn04": ("mn04",),
    "both": ("yamnet", "mn04"),
}
"""The source kinds of each choice's window events."""
DEFAULT_CHOICE: Final[ModelChoice] = "both"
"""What the agent runs unless told otherwise: the model with the higher recall at the
false-alert budget on the corpus's validation half (README, "Choosing the model")."""

assert set(KINDS) == set(get_args(ModelChoice))


@dataclass(frozen=True)
class LoadedModel:
    kind: str
    classifier: Classifier
    labels: LabelMap
    source: Source
    context: int = WINDOW_SAMPLES
    """Samples it hears, ending where an agent window ends."""
    every: int = 1
    """It classifies every n-th agent window."""

    def head(self) -> Head:
        return Head(self.kind, self.classifier, self.labels, self.context, self.every)


def load_models(
    choice: ModelChoice,
    *,
    threads: int = 1,
    yamnet_file: Path | None = None,
    yamnet_class_map: Path | None = None,
) -> list[LoadedModel]:
    """The choice's models, loaded (a :class:`~edge.agent.model.ModelError` says what failed)."""
    from edge.agent import mn04  # noqa: PLC0415 - the interpreter loads lazily
    from edge.agent.model import DEFAULT_CLASS_MAP, DEFAULT_MODEL, YamnetModel  # noqa: PLC0415

    out: list[LoadedModel] = []
    for kind in KINDS[choice]:
        if kind == "yamnet":
            yamnet = YamnetModel(yamnet_file or DEFAULT_MODEL, threads=threads)
            labels = LabelMap.from_csv(yamnet_class_map or DEFAULT_CLASS_MAP)
            out.append(LoadedModel(kind, yamnet, labels, model_source(kind, yamnet.version)))
        else:
            model = mn04.Mn04Model(threads=threads)
            labels = LabelMap.from_csv(mn04.DEFAULT_CLASS_MAP)
            out.append(LoadedModel(kind, model, labels, model_source(kind, model.version),
                                   model.context, model.every))  # fmt: skip
    return out
