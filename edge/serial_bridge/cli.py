"""``soundalert serial-bridge`` and ``soundalert simulate-board``."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer

from soundalert.settings import ConfigError, load_settings

__all__ = ["register", "serial_bridge_command", "simulate_board_command"]


def _logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(2)


def serial_bridge_command(  # noqa: PLR0917 - typer passes options as parameters
    port: Annotated[
        str | None, typer.Option("--port", help="Serial device of the board, e.g. /dev/ttyACM0.")
    ] = None,
    auto: Annotated[
        bool | None,
        typer.Option("--auto", help="Find the RP2040 board by USB vendor id 0x2E8A."),
    ] = None,
    site: Annotated[str | None, typer.Option("--site", help="Site id (the home).")] = None,
    node: Annotated[
        str | None, typer.Option("--node", help="Node id (default: from the board id).")
    ] = None,
    broker: Annotated[
        str | None, typer.Option("--broker", help="Broker URL, e.g. mqtt://user:pass@host:1883.")
    ] = None,
    levels: Annotated[
        bool | None,
        typer.Option("--levels/--no-levels", help="Publish LEVEL frames as events (level, bands)."),
    ] = None,
    heartbeat: Annotated[
        float | None, typer.Option("--heartbeat", help="Seconds between status heartbeats.")
    ] = None,
    silence: Annotated[
        float | None,
        typer.Option("--silence", help="Seconds without a valid frame before the node is offline."),
    ] = None,
    outbox: Annotated[
        Path | None, typer.Option("--outbox", help="Outbox SQLite file.", dir_okay=False)
    ] = None,
    state: Annotated[Path | None, typer.Option("--state", help="Directory for state.")] = None,
    topic_root: Annotated[
        str | None, typer.Option("--topic-root", help="Root of the soundalert topics.")
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option("--metrics-port", help="Serve Prometheus /metrics here.")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="YAML config file (keys as the SOUNDALERT_* settings).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning, error.")] = (
        "info"
    ),
) -> None:
    """Read an RP2040 board's serial frames and publish them as this node's events."""
    from edge.serial_bridge.service import SerialBridge  # noqa: PLC0415 - fast --help
    from edge.serial_bridge.settings import BridgeSettings  # noqa: PLC0415

    _logging(log_level)
    try:
        settings = load_settings(
            BridgeSettings,
            config,
            port=port,
            auto=auto,
            site=site,
            node=node,
            broker=broker,
            levels=levels,
            heartbeat_s=heartbeat,
            silence_s=silence,
            outbox_file=outbox,
            state_dir=state,
            topic_root=topic_root,
            metrics_port=metrics_port,
        )
        bridge = SerialBridge(settings)
    except (ConfigError, ValueError) as exc:
        raise _fail(str(exc)) from None
    asyncio.run(bridge.run())
    if bridge.failure is not None:
        raise _fail(bridge.failure)


def simulate_board_command(  # noqa: PLR0917 - typer passes options as parameters
    port: Annotated[
        Path,
        typer.Option("--port", help="Serial device, or a path to create as a pty symlink."),
    ],
    input_file: Annotated[
        Path,
        typer.Option(
            "--input", help="16 kHz mono 16-bit WAV recording.", exists=True, dir_okay=False
        ),
    ],
    speed: Annotated[
        float, typer.Option("--speed", help="1 real time, 0 as fast as possible.")
    ] = 1.0,
    board_id: Annotated[str, typer.Option("--board-id", help="Board id in the HELLO.")] = "sim",
    core: Annotated[
        Path | None,
        typer.Option("--core", help="sa_core_wav binary (default: built from firmware/rp2040)."),
    ] = None,
    wait: Annotated[
        float | None,
        typer.Option("--wait", help="Give up if nobody opens the port within this many s."),
    ] = None,
    hold: Annotated[
        float, typer.Option("--hold", help="Keep the port open this long after the last frame.")
    ] = 0.0,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning, error.")] = (
        "info"
    ),
) -> None:
    """Run the firmware core (host build) on a recording; write its frames to a serial port."""
    from edge.serial_bridge.simulate import (  # noqa: PLC0415 - fast --help
        DEFAULT_CORE,
        SimulatorError,
        simulate_board,
    )

    _logging(log_level)
    try:
        count = simulate_board(port, input_file, speed=speed, core=core or DEFAULT_CORE,
                               board_id=board_id, wait_s=wait, hold_s=hold)  # fmt: skip
    except (SimulatorError, OSError) as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    logging.getLogger(__name__).info("wrote %d frames to %s", count, port)


def register(app: typer.Typer) -> None:
    """Add ``serial-bridge`` and ``simulate-board`` to the ``soundalert`` command."""
    app.command("serial-bridge")(serial_bridge_command)
    app.command("simulate-board")(simulate_board_command)
