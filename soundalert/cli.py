"""The ``soundalert`` command."""

from __future__ import annotations

import asyncio
import importlib
import logging
from pathlib import Path
from typing import Annotated

import typer

from schemas.messages import Alert
from soundalert import __version__
from soundalert.options import (
    BrokerOpt,
    ConfigOpt,
    LogLevelOpt,
    MetricsOpt,
    PolicyOpt,
    StateOpt,
    fail,
    setup_logging,
)
from soundalert.settings import ConfigError, load_settings

__all__ = ["app", "main"]

app = typer.Typer(
    help="soundalert: home sound awareness for deaf and hard-of-hearing people.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

log = logging.getLogger("soundalert")


def describe_alert(alert: Alert) -> str:
    """One terminal line for an alert state change, stamped with when it changed (a raised
    alert: when it was heard)."""
    when = (alert.raised_at if alert.state == "raised" else alert.published_at).astimezone()
    title = alert.title or alert.category
    parts = [f"[{when:%H:%M:%S}] {alert.state.upper():<12} {title} ({alert.priority})"]
    if alert.location and alert.location.lower() not in title.lower():
        parts.append(f"at {alert.location}")
    parts.append(f"site {alert.site}")
    if alert.state != "raised":
        parts.append(f"- raised {alert.raised_at.astimezone():%H:%M:%S}")
    if alert.by and alert.state in {"acknowledged", "false_alarm"}:
        parts.append(f"by {alert.by}")
    if alert.reason:
        parts.append(f"- {alert.reason}")
    if alert.delay_s and alert.state == "raised":
        parts.append(f"- heard {alert.delay_s:.0f} s before this message")
    if alert.repeat and alert.state == "updated" and alert.by is None:
        parts.append(f"- reminder {alert.repeat}, not yet acknowledged")
    return " ".join(parts)


def _print_alert(alert: Alert) -> None:
    colour = {"critical": typer.colors.RED, "high": typer.colors.YELLOW}.get(alert.priority)
    typer.secho(describe_alert(alert), fg=colour, bold=alert.priority == "critical")


_KEPT = "Default: the one used last time (kept in the state directory), first"


def _say(line: str) -> None:
    typer.secho(line, bold=line.endswith(" is running"))


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
    log_level: LogLevelOpt = "info",
) -> None:
    """Fuse classification events from every node into alerts."""
    from services.aggregator.service import AggregatorService
    from services.aggregator.settings import AggregatorSettings

    setup_logging(log_level)
    try:
        settings = load_settings(AggregatorSettings, config, broker=broker, state_dir=state,
                                 metrics_port=metrics_port, policy_file=policy)  # fmt: skip
        service = AggregatorService(settings)
    except (ConfigError, ValueError) as exc:
        raise fail(str(exc)) from None
    asyncio.run(service.run())


@app.command()
def up(
    broker: BrokerOpt = None,
    config: ConfigOpt = None,
    notifier_config: Annotated[
        Path | None,
        typer.Option(
            "--notifier-config",
            help="Notifier YAML: channels, quiet hours, escalation.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    state: StateOpt = None,
    policy: PolicyOpt = None,
    mqtt_port: Annotated[
        int | None, typer.Option("--mqtt-port", help=f"Embedded broker port. {_KEPT} 1883.")
    ] = None,
    ws_port: Annotated[
        int | None,
        typer.Option("--ws-port", help=f"Embedded broker websockets port. {_KEPT} 9001."),
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option("--metrics-port", help=f"/metrics port. {_KEPT} 9108.")
    ] = None,
    web_port: Annotated[
        int | None, typer.Option("--web-port", help=f"Alert display port. {_KEPT} 8080.")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="SOUNDALERT_TOKEN",
            help="Display token (default: the one kept in the state directory, made "
            "on the first run).",
        ),
    ] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Add a node that replays a generated smoke alarm.")
    ] = False,
    log_level: LogLevelOpt = "warning",
) -> None:
    """Run the local stack: an embedded broker (unless --broker), the aggregator and its
    metrics, the live alert display and the notifier, printing alerts here as they happen."""
    from soundalert.stack import StackOptions, run_stack

    setup_logging(log_level)
    options = StackOptions(
        broker=broker, config=config, notifier_config=notifier_config, state=state,
        policy=policy, mqtt_port=mqtt_port, ws_port=ws_port, metrics_port=metrics_port,
        web_port=web_port, token=token, demo=demo,
    )  # fmt: skip
    try:
        asyncio.run(run_stack(options, _say, _print_alert))
    except* (ConfigError, ValueError, OSError) as group:
        raise fail("; ".join(str(exc) for exc in group.exceptions)) from None


# Each component adds its own commands (they import this module, so they come last).
COMPONENTS = (
    "edge.agent.cli",
    "edge.personal.cli",
    "edge.serial_bridge.cli",
    "services.notifier.cli",
    "services.web.cli",
    "soundalert.health",
    "soundalert.nodes",
)
for _component in COMPONENTS:
    importlib.import_module(_component).register(app)


def main() -> None:
    app()
