"""``soundalert serial-bridge`` and ``soundalert simulate-board``."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer

from soundalert.options import (
    BrokerOpt,
    ConfigOpt,
    DeliveryOpt,
    HeartbeatOpt,
    LogLevelOpt,
    MetricsOpt,
    OutboxOpt,
    StateOpt,
    TopicRootOpt,
    fail,
    setup_logging,
)
from soundalert.settings import ConfigError, load_settings

__all__ = ["register", "serial_bridge_command", "simulate_board_command"]


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
    broker: BrokerOpt = None,
    levels: Annotated[
        bool | None,
        typer.Option("--levels/--no-levels", help="Publish LEVEL frames as events (level, bands)."),
    ] = None,
    heartbeat: HeartbeatOpt = None,
    silence: Annotated[
        float | None,
        typer.Option("--silence", help="Seconds without a valid frame before the node is offline."),
    ] = None,
    outbox: OutboxOpt = None,
    delivery: DeliveryOpt = None,
    state: StateOpt = None,
    topic_root: TopicRootOpt = None,
    metrics_port: MetricsOpt = None,
    config: ConfigOpt = None,
    log_level: LogLevelOpt = "info",
) -> None:
    """Read an RP2040 board's serial frames and publish them as this node's events."""
    from edge.serial_bridge.service import SerialBridge  # noqa: PLC0415 - fast --help
    from edge.serial_bridge.settings import BridgeSettings  # noqa: PLC0415

    setup_logging(log_level)
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
            delivery=delivery,
            state_dir=state,
            topic_root=topic_root,
            metrics_port=metrics_port,
        )
        bridge = SerialBridge(settings)
    except (ConfigError, ValueError) as exc:
        raise fail(str(exc)) from None
    asyncio.run(bridge.run())
    if bridge.failure is not None:
        raise fail(bridge.failure)


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
    log_level: LogLevelOpt = "info",
) -> None:
    """Run the firmware core (host build) on a recording; write its frames to a serial port."""
    from edge.serial_bridge.simulate import (  # noqa: PLC0415 - fast --help
        DEFAULT_CORE,
        SimulatorError,
        simulate_board,
    )

    setup_logging(log_level)
    try:
        count = simulate_board(port, input_file, speed=speed, core=core or DEFAULT_CORE,
                               board_id=board_id, wait_s=wait, hold_s=hold)  # fmt: skip
    except (SimulatorError, OSError) as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    logging.getLogger(__name__).info("wrote %d frames to %s", count, port)


def register(app: typer.Typer) -> None:
    """Add ``serial-bridge`` and ``simulate-board`` to the ``soundalert`` command."""
    app.command("serial-bridge")(serial_bridge_command)
    app.command("simulate-board")(simulate_board_command)
