"""Serial bridge settings (config file keys, ``SOUNDALERT_<KEY>`` environment variables, flags)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from edge.agent.settings import NodeLinkSettings
from schemas.common import ID_PATTERN, RESERVED_NODE_IDS

__all__ = ["BridgeSettings"]


class BridgeSettings(NodeLinkSettings):
    port: str | None = Field(
        default=None, description="Serial device of the board, e.g. /dev/ttyACM0 (or --auto)."
    )
    auto: bool = Field(
        default=False, description="Find the board by USB vendor id 0x2E8A (Raspberry Pi)."
    )
    node: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        description="This node's id; default: from the board id (USB serial number or HELLO).",
    )
    client_id: str | None = Field(
        default=None, description="MQTT client id; default soundalert-serial-<site>-<node>."
    )
    outbox_file: Path | None = Field(
        default=None, description="Outbox SQLite file; default <state_dir>/serial-<node>.outbox."
    )
    baudrate: int = Field(
        default=115_200, gt=0, description="Line speed (ignored by USB CDC, used by UARTs)."
    )
    silence_s: float = Field(
        default=3.0,
        gt=0,
        le=60,
        description="No valid frame for this long (the board sends one a second): node offline.",
    )
    reopen_max_s: float = Field(
        default=2.0, gt=0, le=60, description="Longest wait between attempts to reopen the port."
    )
    max_skew_s: float = Field(
        default=2.0, gt=0, le=3600, description="Re-anchor the board clock beyond this drift."
    )
    levels: bool = Field(
        default=True, description="Publish the board's LEVEL frames as events (level, bands)."
    )

    @field_validator("node")
    @classmethod
    def _not_reserved(cls, value: str | None) -> str | None:
        if value in RESERVED_NODE_IDS:
            raise ValueError(f"node id {value!r} is reserved for site-level topics")
        return value

    def check_port(self) -> None:
        """Exactly one of ``port`` and ``auto`` (checked by the bridge, not while loading the
        environment alone, which may hold neither)."""
        if (self.port is None) == (not self.auto):
            raise ValueError("give exactly one of --port DEVICE or --auto")

    def client_id_for(self, node: str) -> str:
        return self.client_id or f"soundalert-serial-{self.site}-{node}"

    def outbox_path_for(self, node: str) -> Path:
        return self.outbox_file or self.state_dir / f"serial-{node}.outbox.sqlite3"
