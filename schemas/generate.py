"""Write the JSON Schema files in ``schemas/json/`` from the pydantic models.

Run ``python -m schemas.generate`` after changing a model; a test fails when they drift.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from schemas.messages import (
    Alert,
    CategoryState,
    ClassificationEvent,
    DeliveryAck,
    Feedback,
    NodeStatus,
)
from schemas.soundpack import LearnRequest, SoundPack

__all__ = ["MODELS", "render", "write"]

JSON_DIR = Path(__file__).parent / "json"
MODELS: dict[str, type[BaseModel]] = {
    "event.v1.schema.json": ClassificationEvent,
    "status.v1.schema.json": NodeStatus,
    "alert.v1.schema.json": Alert,
    "feedback.v1.schema.json": Feedback,
    "category_state.v1.schema.json": CategoryState,
    "ack.v1.schema.json": DeliveryAck,
    "soundpack.v1.schema.json": SoundPack,
    "learn.v1.schema.json": LearnRequest,
}


def render(model: type[BaseModel], name: str) -> str:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://soundalert.invalid/schemas/{name}",
        **schema,
    }
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write(directory: Path = JSON_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in MODELS.items():
        path = directory / name
        path.write_text(render(model, name), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write():
        sys.stdout.write(f"wrote {path}\n")
