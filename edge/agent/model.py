"""The one module that touches the TFLite interpreter: ai-edge-litert, else tflite-runtime.

The YAMNet model and its class map ship inside this package (``edge/agent/assets/``, Apache-2.0,
see ``NOTICE`` there), so a fresh install classifies offline.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from edge.agent.windowing import WINDOW_SAMPLES

__all__ = [
    "DEFAULT_CLASS_MAP",
    "DEFAULT_MODEL",
    "EMBEDDING_DIMS",
    "EMBEDDING_TENSOR",
    "MODEL_DIR",
    "ModelError",
    "ModelOutput",
    "YamnetModel",
    "load_interpreter_class",
    "model_digest",
    "open_interpreter",
    "with_output",
]

MODEL_DIR: Final = Path(__file__).with_name("assets")
DEFAULT_MODEL: Final = MODEL_DIR / "yamnet.tflite"
DEFAULT_CLASS_MAP: Final = MODEL_DIR / "yamnet_class_map.csv"
EMBEDDING_TENSOR: Final = "yamnet_frames/global_average_pooling2d/Mean"
"""YAMNet's 1024-d embedding: the pooled features its classifier layer reads. Not an output of
the shipped model; :func:`with_output` makes it one (XNNPACK keeps no intermediate tensor)."""
EMBEDDING_DIMS: Final = 1024


class ModelError(RuntimeError):
    """The model cannot be loaded or run; the message says what to do."""


@dataclass(frozen=True, slots=True)
class ModelOutput:
    scores: npt.NDArray[np.float32]
    """One score in [0, 1] per class."""
    logmel: npt.NDArray[np.float32] | None
    """The log-mel patch the model computed (96 x 64 for YAMNet), if it outputs one."""
    embedding: npt.NDArray[np.float32] | None = None
    """YAMNet's 1024-d embedding of the window (what personal sounds learn from)."""


def load_interpreter_class() -> Any:
    for module in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter"):
        try:
            return import_module(module).Interpreter
        except ImportError:
            continue
    raise ModelError(
        "no TFLite runtime: install ai-edge-litert (pip install 'soundalert[inference]') "
        "or tflite-runtime"
    )


def model_digest(path: Path) -> str:
    """A model file's version: the first 12 hex digits of its sha256."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def with_output(model: bytes, tensor: str) -> bytes:
    """The TFLite flatbuffer ``model`` with the tensor named ``tensor`` added to its outputs
    (the model is otherwise unchanged: same weights, same ops)."""
    import flatbuffers  # noqa: PLC0415 - only when a model is opened
    from ai_edge_litert import schema_py_generated as schema  # noqa: PLC0415

    parsed = schema.ModelT.InitFromPackedBuf(model, 0)
    graph = parsed.subgraphs[0]
    names = [t.name.decode() if isinstance(t.name, bytes) else t.name for t in graph.tensors]
    if tensor not in names:
        raise ModelError(f"the model has no tensor {tensor!r}")
    index = names.index(tensor)
    if index not in list(graph.outputs):
        graph.outputs = [*graph.outputs, index]
    builder = flatbuffers.Builder(len(model) + 4096)
    builder.Finish(parsed.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def open_interpreter(path: Path, threads: int, *, extra_output: str | None = None) -> Any:
    """A TFLite interpreter on ``path`` with its tensors allocated, or a :class:`ModelError`;
    ``extra_output`` names an inner tensor to read as one more output."""
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    interpreter_class = load_interpreter_class()
    try:
        if extra_output is None:
            interp = interpreter_class(model_path=str(path), num_threads=threads)
        else:
            content = with_output(path.read_bytes(), extra_output)
            interp = interpreter_class(model_content=content, num_threads=threads)
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot load TFLite model {path}: {exc}") from exc
    return interp


class YamnetModel:
    """YAMNet: a float32 window of 15 600 samples in, class scores, log-mel and the 1024-d
    embedding out."""

    def __init__(self, path: Path = DEFAULT_MODEL, *, threads: int = 1) -> None:
        self._interp = open_interpreter(path, threads, extra_output=EMBEDDING_TENSOR)
        inputs = self._interp.get_input_details()
        outputs = self._interp.get_output_details()
        shape = tuple(int(v) for v in inputs[0]["shape"])
        if shape not in {(WINDOW_SAMPLES,), (1, WINDOW_SAMPLES)}:
            raise ModelError(f"{path}: input shape {shape}, expected [1, {WINDOW_SAMPLES}]")
        self._input = int(inputs[0]["index"])
        self._input_shape = shape
        self._scores = int(outputs[0]["index"])
        by_name = {o["name"]: int(o["index"]) for o in outputs}
        self._embedding = by_name.get(EMBEDDING_TENSOR)
        rest = [o for o in outputs[1:] if o["name"] != EMBEDDING_TENSOR]
        self._logmel = int(rest[0]["index"]) if rest else None
        self.version = model_digest(path)
        self.classes = int(np.prod(outputs[0]["shape"]))

    def __call__(self, window: npt.NDArray[np.float32]) -> ModelOutput:
        self._interp.set_tensor(self._input, window.reshape(self._input_shape))
        self._interp.invoke()
        scores = np.asarray(self._interp.get_tensor(self._scores), dtype=np.float32).reshape(-1)
        logmel = None
        if self._logmel is not None:
            logmel = np.asarray(self._interp.get_tensor(self._logmel), dtype=np.float32)
        embedding = None
        if self._embedding is not None:
            embedding = np.array(self._interp.get_tensor(self._embedding), np.float32).reshape(-1)
        return ModelOutput(scores, logmel, embedding)
