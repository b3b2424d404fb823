"""Command-line options every soundalert command shares, and how commands log and fail."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from soundalert.mqtt import BROKER_URL_HELP

__all__ = [
    "BrokerOpt",
    "ConfigOpt",
    "DeliveryOpt",
    "HeartbeatOpt",
    "LogLevelOpt",
    "MetricsOpt",
    "OutboxOpt",
    "PolicyOpt",
    "StateOpt",
    "TopicRootOpt",
    "fail",
    "setup_logging",
]

BrokerOpt = Annotated[str | None, typer.Option("--broker", help=BROKER_URL_HELP)]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="YAML config file (keys as the SOUNDALERT_* settings).",
                 exists=True, dir_okay=False),
]  # fmt: skip
StateOpt = Annotated[Path | None, typer.Option("--state", help="Directory for SQLite state.")]
HeartbeatOpt = Annotated[
    float | None, typer.Option("--heartbeat", help="Seconds between status heartbeats.")
]
OutboxOpt = Annotated[
    Path | None, typer.Option("--outbox", help="Outbox SQLite file.", dir_okay=False)
]
DeliveryOpt = Annotated[
    str | None,
    typer.Option("--delivery", help="end-to-end (default): keep each event until the aggregator "
                 "acknowledges it; broker: delete it on the broker's PUBACK (aggregators that "
                 "publish no acks)."),
]  # fmt: skip
MetricsOpt = Annotated[
    int | None, typer.Option("--metrics-port", help="Serve Prometheus /metrics on this port.")
]
PolicyOpt = Annotated[
    Path | None, typer.Option("--policy", help="Alert policy YAML (defaults are shipped).")
]
TopicRootOpt = Annotated[
    str | None, typer.Option("--topic-root", help="Root of the soundalert topics.")
]
LogLevelOpt = Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")]


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # amqtt logs every connection at INFO; keep the terminal for alerts.
    logging.getLogger("amqtt").setLevel(max(logging.WARNING, logging.getLogger().level))
    logging.getLogger("transitions").setLevel(logging.WARNING)


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` in red on stderr; raise the returned Exit (status 2)."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(2)
