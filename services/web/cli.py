"""``soundalert web``: serve the live alert display.

Registered from ``soundalert/cli.py`` with ``register(app)``; the heavy imports (starlette,
uvicorn) happen only when the command runs, so the CLI still starts fast.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from soundalert.options import (
    BrokerOpt,
    ConfigOpt,
    LogLevelOpt,
    MetricsOpt,
    StateOpt,
    fail,
    setup_logging,
)

__all__ = ["register", "web"]


def web(  # noqa: PLR0917 - typer commands take their options as parameters
    broker: BrokerOpt = None,
    port: Annotated[int | None, typer.Option("--port", help="HTTP port (default 8080).")] = None,
    host: Annotated[
        str | None, typer.Option("--host", help="Listen address (default 0.0.0.0).")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="Access token for the page and API (or SOUNDALERT_TOKEN, or 'token' in the "
            "config file). Without one, a random token is generated and printed.",
        ),
    ] = None,
    config: ConfigOpt = None,
    state: StateOpt = None,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="Alert policy YAML (titles, colours, icons).")
    ] = None,
    metrics_port: MetricsOpt = None,
    log_level: LogLevelOpt = "info",
) -> None:
    """Serve the live alert display for phones, tablets and wall displays."""
    from services.web.service import WebService  # noqa: PLC0415 - keep the CLI fast
    from services.web.settings import WebSettings  # noqa: PLC0415
    from soundalert.settings import ConfigError, load_settings  # noqa: PLC0415

    setup_logging(log_level)

    async def run() -> None:
        try:
            settings = load_settings(WebSettings, config, broker=broker, port=port, host=host,
                                     token=token, state_dir=state, policy_file=policy,
                                     metrics_port=metrics_port)  # fmt: skip
            service = WebService(settings)
        except (ConfigError, ValueError) as exc:
            raise fail(str(exc)) from None
        task = asyncio.create_task(service.run())
        started = asyncio.create_task(service.started.wait())
        await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
        if service.started.is_set():
            typer.secho(f"soundalert display on {service.url}", bold=True)
            if service.generated_token:
                typer.secho("no token configured; this run's address (keep it private):",
                            fg=typer.colors.YELLOW)  # fmt: skip
                typer.echo(f"  {service.url}?token={service.token}")
        started.cancel()
        try:
            await task
        except OSError as exc:
            raise fail(str(exc)) from None

    asyncio.run(run())


def register(app: typer.Typer) -> None:
    app.command(name="web")(web)
