"""``soundalert agent``: listen on this device and publish classification events."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
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

__all__ = ["agent_command", "parse_start_time", "register"]

log = logging.getLogger(__name__)


def parse_start_time(text: str) -> datetime:
    """An ISO 8601 timestamp with a timezone (``Z`` accepted)."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"--start-time {text!r} is not an ISO 8601 timestamp") from None
    if value.tzinfo is None:
        raise ValueError(f"--start-time {text!r} needs a timezone, e.g. 2024-01-01T08:00:00Z")
    return value


def agent_command(  # noqa: PLR0917 - typer passes options as parameters
    broker: BrokerOpt = None,
    site: Annotated[str | None, typer.Option("--site", help="Site id (the home).")] = None,
    node: Annotated[str | None, typer.Option("--node", help="This node's id.")] = None,
    input_file: Annotated[
        Path | None,
        typer.Option(
            "--input",
            help="Replay a WAV file (any rate/channels) instead of a mic.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    stdin: Annotated[
        bool, typer.Option("--stdin", help="Read raw s16le 16 kHz mono PCM from stdin.")
    ] = False,
    device: Annotated[
        str | None, typer.Option("--device", help="Input device name or index (live capture).")
    ] = None,
    speed: Annotated[
        float, typer.Option("--speed", help="--input pace: 1 real time, 0 as fast as possible.")
    ] = 1.0,
    start_time: Annotated[
        str | None,
        typer.Option(
            "--start-time",
            help="--input: event time of the file's first sample "
            "(ISO 8601), for a deterministic replay.",
        ),
    ] = None,
    hop: Annotated[float | None, typer.Option("--hop", help="Window hop in seconds.")] = None,
    gate_dbfs: Annotated[
        float | None, typer.Option("--gate-dbfs", help="Skip inference below this level.")
    ] = None,
    top_k: Annotated[int | None, typer.Option("--top-k", help="Labels per window.")] = None,
    report_floor: Annotated[
        float | None,
        typer.Option("--report-floor", help="Publish only windows whose best label reaches this."),
    ] = None,
    features: Annotated[
        bool | None, typer.Option("--features/--no-features", help="Add band/frequency features.")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="Classifier: yamnet, mn04 or both (default: see README)."),
    ] = None,
    model_file: Annotated[
        Path | None,
        typer.Option(
            "--model-file",
            help="TFLite YAMNet model (default: shipped).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    heartbeat: HeartbeatOpt = None,
    outbox: OutboxOpt = None,
    delivery: DeliveryOpt = None,
    state: StateOpt = None,
    topic_root: TopicRootOpt = None,
    metrics_port: MetricsOpt = None,
    config: ConfigOpt = None,
    log_level: LogLevelOpt = "info",
) -> None:
    """Listen (microphone, WAV file or stdin), classify on this device, publish events."""
    from edge.agent.model import ModelError  # noqa: PLC0415 - keep `soundalert --help` fast
    from edge.agent.service import AgentService  # noqa: PLC0415
    from edge.agent.settings import AgentSettings  # noqa: PLC0415
    from edge.agent.sources import (  # noqa: PLC0415
        AudioSource,
        MicrophoneSource,
        SourceError,
        StdinSource,
        WavFileSource,
    )

    setup_logging(log_level)
    if input_file is not None and stdin:
        raise fail("choose one source: --input FILE or --stdin (or neither, for the microphone)")
    if start_time is not None and input_file is None:
        raise fail("--start-time applies to --input replays only")
    try:
        settings = load_settings(
            AgentSettings,
            config,
            broker=broker,
            site=site,
            node=node,
            hop_s=hop,
            gate_dbfs=gate_dbfs,
            top_k=top_k,
            report_floor=report_floor,
            features=features,
            model=model,
            model_file=model_file,
            heartbeat_s=heartbeat,
            outbox_file=outbox,
            delivery=delivery,
            state_dir=state,
            topic_root=topic_root,
            metrics_port=metrics_port,
        )
        start = parse_start_time(start_time) if start_time is not None else None
        source: AudioSource
        if input_file is not None:
            source = WavFileSource(input_file, speed=speed, start_time=start)
        elif stdin:
            source = StdinSource()
        else:
            source = MicrophoneSource(int(device) if device and device.isdigit() else device)
        service = AgentService(settings, source)
    except (ConfigError, ValueError, SourceError, ModelError) as exc:
        raise fail(str(exc)) from None
    asyncio.run(service.run())
    if service.failure is not None:
        raise fail(service.failure)


def register(app: typer.Typer) -> None:
    """Add ``agent`` to the ``soundalert`` command."""
    app.command("agent")(agent_command)
