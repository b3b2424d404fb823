"""The ``soundalert`` command."""

from __future__ import annotations

import asyncio
import logging
import socket
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from schemas.messages import Alert
from soundalert import __version__
from soundalert.settings import ConfigError, load_settings

__all__ = ["app", "main"]

app = typer.Typer(
    help="soundalert: home sound awareness for deaf and hard-of-hearing people.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

log = logging.getLogger("soundalert")

LogLevel = Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="YAML config file (keys as the SOUNDALERT_* settings).",
                 exists=True, dir_okay=False),
]  # fmt: skip
BrokerOpt = Annotated[
    str | None, typer.Option("--broker", help="Broker URL, e.g. mqtt://user:pass@host:1883.")
]
StateOpt = Annotated[Path | None, typer.Option("--state", help="Directory for SQLite state.")]
MetricsOpt = Annotated[
    int | None, typer.Option("--metrics-port", help="Serve Prometheus /metrics on this port.")
]
PolicyOpt = Annotated[
    Path | None, typer.Option("--policy", help="Alert policy YAML (defaults are shipped).")
]


def _logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # amqtt logs every connection at INFO; keep the terminal for alerts.
    logging.getLogger("amqtt").setLevel(max(logging.WARNING, logging.getLogger().level))
    logging.getLogger("transitions").setLevel(logging.WARNING)


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(2)


def describe_alert(alert: Alert) -> str:
    """One terminal line for an alert state change."""
    when = alert.raised_at.astimezone().strftime("%H:%M:%S")
    title = alert.title or alert.category
    parts = [f"[{when}] {alert.state.upper():<12} {title} ({alert.priority})"]
    if alert.location:
        parts.append(f"at {alert.location}")
    parts.append(f"site {alert.site}")
    if alert.reason:
        parts.append(f"- {alert.reason}")
    elif alert.state in {"raised", "updated"}:
        parts.append(f"- confidence {alert.confidence:.2f}")
    if alert.delay_s:
        parts.append(f"- heard {alert.delay_s:.0f} s before this message")
    if alert.repeat:
        parts.append(f"- reminder {alert.repeat}, not yet acknowledged")
    return " ".join(parts)


def _print_alert(alert: Alert) -> None:
    colour = {"critical": typer.colors.RED, "high": typer.colors.YELLOW}.get(alert.priority)
    typer.secho(describe_alert(alert), fg=colour, bold=alert.priority == "critical")


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(f"soundalert {__version__}")


@app.command()
def aggregator(
    broker: BrokerOpt = None,
    config: ConfigOpt = None,
    state: StateOpt = None,
    metrics_port: MetricsOpt = None,
    policy: PolicyOpt = None,
    log_level: LogLevel = "info",
) -> None:
    """Fuse classification events from every node into alerts."""
    from services.aggregator.service import AggregatorService
    from services.aggregator.settings import AggregatorSettings

    _logging(log_level)
    try:
        settings = load_settings(AggregatorSettings, config, broker=broker, state_dir=state,
                                 metrics_port=metrics_port, policy_file=policy)  # fmt: skip
        service = AggregatorService(settings)
    except (ConfigError, ValueError) as exc:
        raise _fail(str(exc)) from None
    asyncio.run(service.run())


@app.command()
def up(
    broker: BrokerOpt = None,
    config: ConfigOpt = None,
    state: StateOpt = None,
    metrics_port: Annotated[
        int, typer.Option("--metrics-port", help="Prometheus /metrics port (0: any free).")
    ] = 9108,
    mqtt_port: Annotated[
        int, typer.Option("--mqtt-port", help="Port for the embedded broker.")
    ] = 1883,
    policy: PolicyOpt = None,
    log_level: LogLevel = "warning",
) -> None:
    """Run the local stack: an embedded broker (unless --broker), the aggregator and its
    metrics, printing alerts here as they happen."""
    from services.aggregator.service import AggregatorService
    from services.aggregator.settings import AggregatorSettings
    from soundalert.broker import port_is_free, start_embedded_broker

    _logging(log_level)
    if metrics_port and not port_is_free("127.0.0.1", metrics_port):
        typer.secho(f"note: metrics port {metrics_port} is in use; using a free port instead",
                    fg=typer.colors.YELLOW)  # fmt: skip
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            metrics_port = sock.getsockname()[1]

    async def run() -> None:
        embedded = None
        url = broker
        if url is None:
            try:
                embedded = await start_embedded_broker(port=mqtt_port)
            except OSError as exc:
                raise _fail(f"cannot start the embedded broker: {exc}") from None
            url = embedded.url
            if embedded.note:
                typer.secho(f"note: {embedded.note}", fg=typer.colors.YELLOW)
        try:
            settings = load_settings(AggregatorSettings, config, broker=url, state_dir=state,
                                     metrics_port=metrics_port, policy_file=policy)  # fmt: skip
            service = AggregatorService(settings, on_alert=_print_alert)
        except (ConfigError, ValueError) as exc:
            raise _fail(str(exc)) from None
        typer.secho(f"soundalert {__version__} is running", bold=True)
        typer.echo(f"  MQTT broker : {url}{' (embedded)' if embedded else ''}")
        typer.echo(f"  topics      : {settings.topic_root}/<site>/<node>/events -> "
                   f"{settings.topic_root}/<site>/alerts")  # fmt: skip
        typer.echo(f"  state       : {settings.database}")
        if settings.metrics_port:
            typer.echo(f"  metrics     : http://127.0.0.1:{settings.metrics_port}/metrics")
        typer.echo(f"  started     : {datetime.now().astimezone():%Y-%m-%d %H:%M:%S %Z}")
        typer.echo("Alerts appear below. Ctrl-C to stop.")
        try:
            await service.run()
        finally:
            if embedded is not None:
                await embedded.stop()

    asyncio.run(run())


# Commands that live with their component register here, one line each.
# --- command registrations (keep one line per component) ---
# --- end of command registrations ---


def main() -> None:
    app()
