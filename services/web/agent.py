"""The phone agent page (``/agent``): where its files are, and what it is told at start.

The page runs YAMNet on the phone with LiteRT.js (WebAssembly), and the RP2040 core's T3/T4/520 Hz
pattern detectors compiled to WebAssembly (``firmware/rp2040/wasm``), and publishes
``ClassificationEvent`` and ``NodeStatus`` JSON over MQTT-over-WebSocket (mqtt.js). Its JS and
WASM runtime come from npm (``services/web/frontend``: ``npm ci`` then ``node build.mjs``), which
copies them into ``services/web/frontend/dist``, served at ``/static/vendor``. The model and class
map are the Python agent's own files (``edge/agent/assets``), served at ``/agent/model/``.

Pure: no I/O beyond reading the model once for its digest.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from edge.agent.pipeline import PipelineConfig
from soundalert import __version__

__all__ = [
    "BUILD_HINT",
    "CLASS_MAP_FILE",
    "MODEL_DIR",
    "MODEL_FILE",
    "REQUIRED_VENDOR_FILES",
    "VENDOR_DIR",
    "AgentConfig",
    "agent_page_html",
    "check_ws_url",
    "missing_vendor_files",
    "model_version",
    "served_model",
]

VENDOR_DIR: Final = Path(__file__).with_name("frontend") / "dist"
MODEL_DIR: Final = Path(__file__).resolve().parents[2] / "edge" / "agent" / "assets"
MODEL_FILE: Final = "yamnet.tflite"
CLASS_MAP_FILE: Final = "yamnet_class_map.csv"
REQUIRED_VENDOR_FILES: Final = (
    "manifest.json",
    "litertjs/core.js",
    "litertjs/wasm-utils.js",
    "litertjs/wasm/litert_wasm_internal.js",
    "litertjs/wasm/litert_wasm_internal.wasm",
    "litertjs/wasm/litert_wasm_compat_internal.js",
    "litertjs/wasm/litert_wasm_compat_internal.wasm",
    "mqtt/mqtt.esm.js",
    "patterns/sa_patterns.wasm",
)
BUILD_HINT: Final = (
    "the phone agent's front-end files are not built: run 'make -C firmware/rp2040 wasm && "
    "npm ci --prefix services/web/frontend && node services/web/frontend/build.mjs'"
)


def missing_vendor_files(vendor_dir: Path = VENDOR_DIR) -> list[str]:
    """The runtime files ``/agent`` needs that are absent from ``vendor_dir``."""
    return [name for name in REQUIRED_VENDOR_FILES if not (vendor_dir / name).is_file()]


@cache
def served_model(path: Path) -> bytes:
    """The YAMNet file the phone runs: the Python agent's, with its 1024-d embedding as one
    more output (for learned sounds); its version stays the file's."""
    from edge.agent.model import EMBEDDING_TENSOR, with_output  # noqa: PLC0415

    return with_output(path.read_bytes(), EMBEDDING_TENSOR)


def model_version(path: Path) -> str:
    """The Python agent's model version string: the first 12 hex digits of its SHA-256."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


@dataclass(frozen=True)
class AgentConfig:
    """What ``GET /api/agent/config`` tells a phone agent (with a valid token)."""

    broker_ws: str | None
    """MQTT-over-WebSocket URL; ``{host}`` is replaced by the host the page was opened with."""
    topic_root: str
    heartbeat_s: float
    keepalive_s: int
    username: str | None = None
    password: str | None = None
    delivery: str = "end-to-end"
    """end-to-end: keep each event until the aggregator's ack covers it; broker: until PUBACK."""
    ack_timeout_s: float = 30.0
    ack_timeout_max_s: float = 600.0
    model_dir: Path = MODEL_DIR
    vendor_dir: Path = VENDOR_DIR

    def broker_url(self, page_host: str | None) -> str | None:
        """The broker URL for a page opened at ``page_host`` (a host name, no port)."""
        if self.broker_ws is None:
            return None
        host = page_host or "127.0.0.1"
        if ":" in host:  # an IPv6 address
            host = f"[{host.strip('[]')}]"
        return self.broker_ws.replace("{host}", host)

    def document(self, page_host: str | None, sites: list[str] | None) -> dict[str, Any]:
        pipeline = PipelineConfig()
        return {
            "broker_url": self.broker_url(page_host),
            "username": self.username,
            "password": self.password,
            "topic_root": self.topic_root,
            "sites": sites,
            "heartbeat_s": self.heartbeat_s,
            "keepalive_s": self.keepalive_s,
            "delivery": {
                "mode": self.delivery,
                "ack_timeout_s": self.ack_timeout_s,
                "ack_timeout_max_s": max(self.ack_timeout_max_s, self.ack_timeout_s),
            },
            "software": f"soundalert-phone-agent {__version__}",
            "model": {
                "url": f"/agent/model/{MODEL_FILE}",
                "class_map_url": f"/agent/model/{CLASS_MAP_FILE}",
                "source": {
                    "kind": "yamnet",
                    "model": "yamnet",
                    "version": model_version(self.model_dir / MODEL_FILE),
                },
            },
            "runtime": {
                "litert": "/static/vendor/litertjs/core.js",
                "wasm_dir": "/static/vendor/litertjs/wasm/",
                "mqtt": "/static/vendor/mqtt/mqtt.esm.js",
                "patterns": "/static/vendor/patterns/sa_patterns.wasm",
            },
            "pipeline": {
                "hop_s": pipeline.hop_s,
                "gate_dbfs": pipeline.gate_dbfs,
                "top_k": pipeline.top_k,
                "min_label_score": pipeline.min_label_score,
            },
        }


def check_ws_url(value: str) -> str:
    """A ws:// or wss:// URL (``{host}`` allowed as the host)."""
    parts = urlsplit(value.replace("{host}", "host-placeholder"))
    if parts.scheme not in {"ws", "wss"} or not parts.hostname:
        raise ValueError(f"{value!r} is not a ws:// or wss:// URL (e.g. ws://{{host}}:9001/)")
    return value


_APP_SCRIPT: Final = '<script type="module" src="/static/app.js"></script>'
_MAIN: Final = '<main id="main">'


def agent_page_html(index_html: str, panel_html: str) -> str:
    """The display page with the agent panel first in ``main`` and agent.js as its script
    (which imports the display's app.js itself). Raises ``ValueError`` if the display page no
    longer has the places the panel goes."""
    for marker in (_APP_SCRIPT, _MAIN, "<title>soundalert</title>", "<body>"):
        if index_html.count(marker) != 1:
            raise ValueError(f"the display page has no single {marker!r} for the agent panel")
    head = (
        # LiteRT.js imports this bare module name: map it to the served copy (before any module).
        '<script type="importmap">{"imports": {"@litertjs/wasm-utils": '
        '"/static/vendor/litertjs/wasm-utils.js"}}</script>\n'
        '  <link rel="stylesheet" href="/static/agent/agent.css">\n'
        '  <script type="module" src="/static/agent/agent.js"></script>'
    )
    return (
        index_html.replace(_APP_SCRIPT, head)
        .replace("<title>soundalert</title>", "<title>soundalert: listen with this phone</title>")
        .replace("<body>", '<body class="agent-page">')
        .replace(_MAIN, f"{_MAIN}\n{panel_html.rstrip()}")
    )
