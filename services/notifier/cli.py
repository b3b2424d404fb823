"""``soundalert notifier``: deliver alerts to people (registered in ``soundalert/cli.py``)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from soundalert.options import BrokerOpt, LogLevelOpt, MetricsOpt, StateOpt, setup_logging

__all__ = ["notifier", "register"]


def notifier(
    broker: BrokerOpt = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Notifier YAML config: sites, channels, routes, quiet hours, escalation.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    state: StateOpt = None,
    metrics_port: MetricsOpt = None,
    log_level: LogLevelOpt = "info",
) -> None:
    """Send alerts to phones, lights, bed shakers and webhooks; escalate unacknowledged
    critical alerts; announce sensors to Home Assistant."""
    from services.notifier.config import NotifierSettings  # noqa: PLC0415 - fast CLI start
    from services.notifier.service import NotifierService  # noqa: PLC0415
    from soundalert.settings import ConfigError, load_settings  # noqa: PLC0415

    setup_logging(log_level)
    try:
        settings = load_settings(NotifierSettings, config, broker=broker, state_dir=state,
                                 metrics_port=metrics_port)  # fmt: skip
        service = NotifierService(settings)
    except (ConfigError, ValueError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    asyncio.run(service.run())


def register(app: typer.Typer) -> None:
    """Add ``notifier`` to the ``soundalert`` command."""
    app.command()(notifier)
