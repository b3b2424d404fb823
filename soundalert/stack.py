"""``soundalert up``: the whole local stack in one process.

An embedded MQTT broker (unless ``--broker``), the aggregator with its metrics, the live web
display and the notifier, and optionally a demo node replaying a generated smoke-alarm
recording. One signal handler stops them all; each keeps its own SQLite state under
``state_dir``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from schemas.messages import Alert
from services.aggregator.service import AggregatorService
from services.aggregator.settings import AggregatorSettings
from services.notifier.config import NotifierSettings
from services.notifier.service import NotifierService
from services.web.service import WebService
from services.web.settings import WebSettings
from soundalert.broker import EmbeddedBroker, port_is_free, start_embedded_broker
from soundalert.mqtt import BrokerUrl
from soundalert.settings import load_settings

__all__ = ["StackOptions", "free_port_near", "run_stack"]

log = logging.getLogger(__name__)


def free_port_near(wanted: int, host: str = "127.0.0.1") -> int:
    """``wanted`` if free, else any free port (0 means any)."""
    if wanted and port_is_free(host, wanted):
        return wanted
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class StackOptions:
    broker: str | None
    config: Path | None
    notifier_config: Path | None
    state: Path | None
    policy: Path | None
    mqtt_port: int
    ws_port: int
    metrics_port: int
    web_port: int
    token: str | None
    demo: bool


async def run_stack(
    options: StackOptions, say: Callable[[str], None], on_alert: Callable[[Alert], None]
) -> None:
    embedded: EmbeddedBroker | None = None
    url = options.broker
    if url is None:
        embedded = await start_embedded_broker(port=options.mqtt_port, ws_port=options.ws_port)
        url = embedded.url
        if embedded.note:
            say(f"note: {embedded.note}")
    try:
        aggregator = AggregatorService(
            load_settings(AggregatorSettings, options.config, broker=url, state_dir=options.state,
                          metrics_port=free_port_near(options.metrics_port),
                          policy_file=options.policy, client_id="soundalert-aggregator"),
            on_alert=on_alert, handle_signals=False,
        )  # fmt: skip
        state_dir = aggregator.settings.state_dir
        # The phone agent page (/agent) reaches the embedded broker's websocket listener on
        # the host the page was opened with.
        ws = f"ws://{{host}}:{embedded.ws_port}/" if embedded and embedded.ws_port else None
        web = WebService(
            load_settings(WebSettings, None, broker=url, state_dir=state_dir,
                          port=free_port_near(options.web_port), token=options.token,
                          policy_file=options.policy, client_id="soundalert-web",
                          agent_broker_ws=ws),
            handle_signals=False,
        )  # fmt: skip
        notifier = NotifierService(
            load_settings(NotifierSettings, options.notifier_config, broker=url,
                          state_dir=state_dir, policy_file=options.policy,
                          client_id="soundalert-notifier"),
            handle_signals=False,
        )  # fmt: skip
        await _run(aggregator, web, notifier, embedded, options=options, say=say)
    finally:
        if embedded is not None:
            await embedded.stop()


async def _run(
    aggregator: AggregatorService,
    web: WebService,
    notifier: NotifierService,
    embedded: EmbeddedBroker | None,
    *,
    options: StackOptions,
    say: Callable[[str], None],
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    settings = aggregator.settings
    demo: asyncio.subprocess.Process | None = None
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(s.run()) for s in (aggregator, web, notifier)]
        await web.started.wait()
        broker_url = embedded.url if embedded else settings.broker
        # Never the password; the TLS options are in the URL the services were given.
        say(f"  MQTT broker   : {BrokerUrl.parse(broker_url)}{' (embedded)' if embedded else ''}")
        if embedded and embedded.ws_port:
            say(f"  MQTT websocket: ws://{embedded.host}:{embedded.ws_port}/")
        say(f"  alert display : {web.url}?token={web.token}")
        if web.settings.agent_broker_ws:
            say(f"  phone agent   : {web.url}agent?token={web.token}")
        say(f"  metrics       : http://127.0.0.1:{settings.metrics_port}/metrics")
        say(f"  events topic  : {settings.topic_root}/<site>/<node>/events")
        say(f"  state         : {settings.state_dir}")
        if options.demo:
            demo = await _start_demo(broker_url, settings.state_dir, settings.topic_root)
            say("  demo node     : 'demo' replays a generated smoke alarm (alert in ~8 s)")
        say("Alerts appear below. Ctrl-C to stop.")
        await stop.wait()
        say("stopping...")
        if demo is not None and demo.returncode is None:
            demo.terminate()
            await demo.wait()
        for service in (aggregator, web, notifier):
            service.stop()
        await asyncio.wait(tasks, timeout=15)


async def _start_demo(broker: str, state_dir: Path, topic_root: str) -> asyncio.subprocess.Process:
    from edge.agent.demo import ensure_demo_recording  # noqa: PLC0415 - numpy, only for --demo

    recording = ensure_demo_recording(state_dir / "demo")
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "soundalert", "agent", "--input", str(recording), "--broker", broker,
        "--site", "home", "--node", "demo", "--state", str(state_dir / "demo"),
        "--topic-root", topic_root, "--log-level", "warning",
    )  # fmt: skip
