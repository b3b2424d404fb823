"""Convert EfficientAT's ``mn04_as`` checkpoint into the agent's TFLite model, and write the golden
file its tests compare against. Torch is needed here only, never at run time.

The model is the MobileNetV3 of EfficientAT (Schmid, Koutini and Widmer, "Efficient Large-Scale
Audio Tagging via Transformer-to-CNN Knowledge Distillation", MIT licence) at width 0.4, trained
on AudioSet (mAP 0.432, 527 classes). What is converted is the network from the log-mel patch to
the 527 sigmoid scores, for what the agent gives it: 1.95 s, resampled to 32 kHz, is 195 frames
of 128 mel bands (a fixed shape: XNNPACK cannot resize this graph). The front end
(pre-emphasis, STFT, Kaldi mel bands, log, normalisation) runs in numpy in
:mod:`edge.agent.mn04`.

The golden file holds, for a few recordings (synthetic ones the test regenerates, and clips of
``../shared/data/dev-audio`` named by path and sha256), the checkpoint's scores in torch on the
reference front end's log-mel patch (EfficientAT's ``models/preprocess.py``, torch and
torchaudio) of the window resampled to 32 kHz, and that patch for the synthetic ones, so that
``tests/agent/test_mn04.py`` checks the numpy front end and the converted model against the
reference without torch.

Set-up, in a virtual environment outside the repository (torchaudio's compiled extension does
not match torch 2.13; only its pure-Python Kaldi mel banks are used, so it is removed):

    python3 -m venv /tmp/convert && /tmp/convert/bin/pip install torch==2.13.0 \\
        litert-torch==0.10.0 soxr pyyaml pydantic
    /tmp/convert/bin/pip install --no-deps torchaudio==2.11.1
    rm /tmp/convert/lib/python3.11/site-packages/torchaudio/lib/*.so

Inputs: ``resources/mn04_as_mAP_432.pt`` (4,066,513 bytes, sha256 899a8c62...) from the MIT
repository nikih94/swch-audio-classification (a copy of EfficientAT's v0.0.1 release), and the
model code of a checkout of fschmid56/EfficientAT (``models/``, ``helpers/``: read, never
copied here). Then, from the repository's root:

    /tmp/convert/bin/python -m tools.convert_mn04 --checkpoint mn04_as_mAP_432.pt \\
        --efficientat /path/to/EfficientAT
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import sys
import types
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from torch import nn

from edge.agent import mn04

REPO: Final = Path(__file__).resolve().parents[1]
DEV_AUDIO: Final = REPO.parent / "shared" / "data" / "dev-audio"
CHECKPOINT_SHA256: Final = "899a8c6217063f6941793102a2780b3dd788ab11fce468d9cf5f0577c453321c"
DEV_CLIPS: Final = (
    ("glass_break", 0.0),
    ("knocking", 2.0),
    ("alarm", 4.0),
    ("cough", 1.0),
    ("laugh", 3.0),
)
"""A clip of each of these dev-audio categories, and where in it the window starts (s)."""


def _conv_norm_activation() -> type[nn.Sequential]:
    """torchvision's ConvNormActivation, which EfficientAT's blocks build on (torchvision from
    PyPI does not import beside this torch): the same layers, so the checkpoint's keys fit."""

    class ConvNormActivation(nn.Sequential):
        def __init__(  # noqa: PLR0917 - torchvision's signature
            self, in_channels: int, out_channels: int, kernel_size: int = 3,
                     stride: int = 1, padding: int | None = None, groups: int = 1,
                     norm_layer: Any = nn.BatchNorm2d, activation_layer: Any = nn.ReLU,
                     dilation: int = 1, inplace: bool | None = True, bias: bool | None = None,
                     ) -> None:  # fmt: skip
            if padding is None:
                padding = (kernel_size - 1) // 2 * dilation
            if bias is None:
                bias = norm_layer is None
            layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                                                 padding, dilation=dilation, groups=groups,
                                                 bias=bias)]  # fmt: skip
            if norm_layer is not None:
                layers.append(norm_layer(out_channels))
            if activation_layer is not None:
                params = {} if inplace is None else {"inplace": inplace}
                layers.append(activation_layer(**params))
            super().__init__(*layers)
            self.out_channels = out_channels

    return ConvNormActivation


def load_reference(efficientat: Path, checkpoint: Path) -> tuple[nn.Module, nn.Module]:
    """EfficientAT's mn04_as with the checkpoint's weights, and its front end (eval mode)."""
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    if digest != CHECKPOINT_SHA256:
        sys.exit(f"{checkpoint}: sha256 {digest}, expected {CHECKPOINT_SHA256}")
    misc = types.ModuleType("torchvision.ops.misc")
    misc.ConvNormActivation = _conv_norm_activation()  # type: ignore[attr-defined]
    for name in ("torchvision", "torchvision.ops"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["torchvision.ops.misc"] = misc
    sys.path.insert(0, str(efficientat))
    here = Path.cwd()
    os.chdir(efficientat)  # its helpers/utils.py reads metadata/ from the working directory
    try:
        from models.mn.model import get_model  # noqa: PLC0415 - from the checkout
        from models.preprocess import AugmentMelSTFT  # noqa: PLC0415
    finally:
        os.chdir(here)

    model = get_model(width_mult=0.4, pretrained_name=None, strides=(2, 2, 2, 2),
                      head_type="mlp", num_classes=527)  # fmt: skip
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.eval()
    front = AugmentMelSTFT(n_mels=128, sr=mn04.MODEL_RATE, win_length=800, hopsize=320)
    front.eval()
    return model, front


class Scores(nn.Module):
    """The network as the agent runs it: log-mel patch (1, 1, 128, T) in, 527 scores out."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, patch: torch.Tensor) -> torch.Tensor:
        logits, _ = self.model(patch)
        return torch.sigmoid(logits)


def convert(model: nn.Module, out: Path) -> None:
    import litert_torch  # noqa: PLC0415 - conversion only

    sample = torch.zeros(1, 1, mn04.MEL_BANDS, mn04.FRAMES)
    edge_model = litert_torch.convert(Scores(model).eval(), (sample,))
    edge_model.export(str(out))


def recordings() -> list[tuple[str, str, np.ndarray]]:
    """(name, where from, 16 kHz window) of every golden recording."""
    out = [(name, "synthetic", mn04.golden_synthetic(name)) for name in mn04.GOLDEN_SYNTHETIC]
    meta = DEV_AUDIO / "meta.csv"
    if not meta.is_file():
        sys.exit(f"{meta} not found: the golden file needs ../shared/data/dev-audio")
    with meta.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for category, at_s in DEV_CLIPS:
        path = min(r["path"] for r in rows if r["category"] == category)
        window = mn04.golden_dev_window(DEV_AUDIO / path, at_s)
        sha = hashlib.sha256((DEV_AUDIO / path).read_bytes()).hexdigest()
        out.append((category, f"{path} sha256={sha} at={at_s}", window))
    return out


def golden(model: nn.Module, front: nn.Module, out: Path) -> None:
    """Reference scores of every recording; the reference log-mel of the synthetic ones (the
    test regenerates every input: the file holds no audio)."""
    names, sources, patches, scores = [], [], [], []
    with torch.no_grad():
        for name, source, window in recordings():
            patch = front(torch.from_numpy(mn04.upsample(window))[None, :])
            result = Scores(model)(patch[None])
            names.append(name)
            sources.append(source)
            if source == "synthetic":
                patches.append(patch[0].numpy())
            scores.append(result[0].numpy())
            print(f"{name:<12} top: "
                  + ", ".join(f"{mn04_label(i)} {float(result[0, i]):.3f}"
                              for i in np.argsort(-result[0].numpy())[:3]))  # fmt: skip
    np.savez_compressed(out, names=np.array(names), sources=np.array(sources),
                        logmel=np.stack(patches), scores=np.stack(scores))  # fmt: skip


def mn04_label(index: int) -> str:
    with mn04.DEFAULT_CLASS_MAP.open(newline="", encoding="utf-8") as handle:
        return [row["display_name"] for row in csv.DictReader(handle)][index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument(
        "--efficientat",
        type=Path,
        required=True,
        help="a checkout of fschmid56/EfficientAT (its models/ and helpers/)",
    )
    parser.add_argument("--out", type=Path, default=mn04.DEFAULT_MODEL)
    parser.add_argument("--golden", type=Path, default=REPO / "tests" / "data" / "mn04_golden.npz")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, front = load_reference(args.efficientat.resolve(), args.checkpoint)
    convert(model, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    args.golden.parent.mkdir(parents=True, exist_ok=True)
    golden(model, front, args.golden)
    print(f"wrote {args.golden}")


if __name__ == "__main__":
    main()
