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
from soundalert import __version__
from soundalert.addresses import Addresses, pick_port
from soundalert.broker import EmbeddedBroker, start_embedded_broker
from soundalert.mqtt import BrokerUrl
from soundalert.settings import load_settings

__all__ = ["DEFAULT_PORTS", "StackOptions", "run_stack"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StackOptions:
    broker: str | None
    config: Path | None
    notifier_config: Path | None
    state: Path | None
    policy: Path | None
    mqtt_port: int | None
    """``None``: the port kept in the state directory (or the default the first time)."""
    ws_port: int | None
    metrics_port: int | None
    web_port: int | None
    token: str | None
    demo: bool


DEFAULT_PORTS = {"mqtt_port": 1883, "ws_port": 9001, "web_port": 8080, "metrics_port": 9108}
_LOCAL = "127.0.0.1"


async def run_stack(
    options: StackOptions, say: Callable[[str], None], on_alert: Callable[[Alert], None]
) -> None:
    # Every setting is checked before anything starts or is printed: a typo in the config
    # file is an error, never a "running" banner followed by one.
    aggregator_settings = load_settings(
        AggregatorSettings, options.config, broker=options.broker, state_dir=options.state,
        policy_file=options.policy, client_id="soundalert-aggregator",
    )  # fmt: skip
    state_dir = aggregator_settings.state_dir
    kept = Addresses.load(state_dir)
    token = kept.display_token(options.token)
    notes: list[str] = []
    taken: set[int] = set()

    def port(name: str, what: str) -> int:
        wanted = kept.choose(name, getattr(options, name), DEFAULT_PORTS[name])
        chosen, note = pick_port(_LOCAL, wanted, what, avoid=frozenset(taken))
        kept.used(name, chosen)
        taken.add(chosen)
        if note:
            notes.append(note)
        return chosen

    embedded: EmbeddedBroker | None = None
    url = options.broker
    if url is None:
        wanted = kept.choose("mqtt_port", options.mqtt_port, DEFAULT_PORTS["mqtt_port"])
        ws_wanted = kept.choose("ws_port", options.ws_port, DEFAULT_PORTS["ws_port"])
        embedded = await start_embedded_broker(port=wanted, ws_port=ws_wanted)
        url = embedded.url
        kept.used("mqtt_port", embedded.port)
        taken.add(embedded.port)
        if embedded.ws_port is not None:
            kept.used("ws_port", embedded.ws_port)
            taken.add(embedded.ws_port)
        notes += [n for n in (embedded.note, embedded.ws_note) if n]
    try:
        metrics_port = port("metrics_port", "/metrics")
        web_port = port("web_port", "the alert display")
        try:
            kept.save(state_dir)
        except OSError as exc:  # a full disk must not stop alerts
            notes.append(f"cannot keep the ports and token in {state_dir} ({exc.strerror}); "
                         "the next run may choose others")  # fmt: skip
        aggregator = AggregatorService(
            aggregator_settings.model_copy(update={"broker": url, "metrics_port": metrics_port}),
            on_alert=on_alert, handle_signals=False,
        )  # fmt: skip
        # The phone agent page (/agent) reaches the embedded broker's websocket listener on
        # the host the page was opened with.
        ws = f"ws://{{host}}:{embedded.ws_port}/" if embedded and embedded.ws_port else None
        web = WebService(
            load_settings(WebSettings, None, broker=url, state_dir=state_dir, port=web_port,
                          token=token, policy_file=options.policy, client_id="soundalert-web",
                          agent_broker_ws=ws),
            handle_signals=False,
        )  # fmt: skip
        notifier_settings = load_settings(
            NotifierSettings, options.notifier_config, broker=url, state_dir=state_dir,
            policy_file=options.policy, client_id="soundalert-notifier",
        )  # fmt: skip
        if notifier_settings.display_url is None:  # messages link to this display
            notifier_settings = notifier_settings.model_copy(
                update={"display_url": f"http://{_LOCAL}:{web_port}/"}
            )
        notifier = NotifierService(notifier_settings, handle_signals=False)
        say(f"soundalert {__version__} is running")
        for note in notes:
            say(f"note: {note}")
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
            say("  demo node     : 'demo' replays a generated smoke alarm (alert in ~10 s)")
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
