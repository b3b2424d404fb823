"""Aggregator throughput and latency benchmark, side by side with a bare aiomqtt subscriber.

A real Mosquitto (password auth, ACL, persistence) and, in separate processes:

* publishers, each owning some nodes of one site with one MQTT connection per node
  (``soundalert.mqtt.make_client``: TCP_NODELAY), sending realistic ``ClassificationEvent``
  payloads at QoS 1: 2-5 labels per window, mostly background labels that match no category,
  now and then doorbells, knocks below threshold and smoke alarm evidence, so alerts are raised,
  updated and published through the outbox during the run; per node windows 0.48 s apart in
  event time, unique event ids;
* the consumer: either the real :class:`AggregatorService` (real SQLite file, real metrics,
  manual PUBACK after commit) or a bare aiomqtt subscriber that receives and discards. Each
  consumer runs in its own process and its own topic root, one after the other on the same
  broker.

Two phases per consumer:

* drain: ``N`` events published as fast as the publishers can while the consumer is away (its
  persistent session queues them in the broker, as after an outage); then the consumer connects
  and its sustained rate is events processed per second from its first to its last event. The
  publishers never compete with it for the two CPUs. With ``--live`` the consumer drains while
  they publish instead; their rate is printed beside it, and if the bare subscriber keeps up
  with them the publishers are the bottleneck (the summary says so).
* latency: events paced at ``--rate`` per second; latency is the publisher's send time (per
  event id) to the aggregator's ``on_processed`` callback (effects committed, PUBACK sent, its
  alerts handed to the broker connection), or to the bare subscriber's receipt. The
  aggregator's own ``soundalert_processing_seconds`` histogram is reported beside it.

Timings on a shared machine are noisy: the bench prints figures and ratios, it asserts nothing.
``--py-spy PREFIX`` records a profile of each consumer; ``--broker-nodelay`` turns Nagle's
algorithm off in Mosquitto (``set_tcp_nodelay``; off by default, as in a stock install).

``--scrape-world HOMES`` runs something else: does reading ``/metrics`` stall processing? One
aggregator whose state and registry already hold HOMES other homes (``--world-nodes`` nodes and an
open smoke alarm each, built by ``bench.core_scaling``), its real metrics HTTP server, and paced
phases of ``--seconds`` at ``--rate``: a warm-up, then ``--rounds`` of A (nobody scrapes) and B
(this process GETs ``/metrics`` every second, as Prometheus would), alternating the order. It
prints latency per phase, A and B pooled, the p99 ratio B/A, and the scrape's size and duration.

    .venv/bin/python -m bench.aggregator_throughput [--events 60000] [--rate 1000]
        [--seconds 10] [--publishers 2] [--rounds 1] [--live] [--quick]
    .venv/bin/python -m bench.aggregator_throughput --scrape-world 10000 --rate 500 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import multiprocessing as mp
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final, Literal

from schemas.messages import ClassificationEvent, NodeStatus
from schemas.topics import Topics
from soundalert.mqtt import BrokerUrl, make_client
from tests.support.mosquitto import MOSQUITTO, Mosquitto

__all__ = ["main"]

SITE: Final = "home"
NODES: Final = ("kitchen", "hall", "bedroom", "living", "office", "garage")
HOP_S: Final = 0.48
WINDOW_S: Final = 0.975
T0: Final = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)
SERVICE_USER: Final = "service"
WINDOW: Final = 2000  # unacknowledged publishes per publisher process (drain phase)
IDLE_S: Final = 15.0  # a consumer that sees nothing new for this long gives up
RATIO_TARGET: Final = 0.60
P99_TARGET_MS: Final = 5.0

Consumer = Literal["bare", "aggregator"]
CONSUMERS: Final[dict[Consumer, str]] = {"bare": "bare aiomqtt", "aggregator": "aggregator"}

# (label, score): what a home microphone hears most of the time. None of these alerts.
_BACKGROUND: Final = (
    ("Silence", 0.62),
    ("Inside, small room", 0.41),
    ("Speech", 0.35),
    ("Music", 0.22),
    ("Television", 0.18),
    ("Typing", 0.12),
    ("Dishes, pots, and pans", 0.09),
    ("Air conditioning", 0.15),
    ("Mechanical fan", 0.11),
    ("Walk, footsteps", 0.08),
    ("Knock", 0.1),  # mapped (knock), but below its threshold
    ("Dog", 0.2),  # mapped (dog), below threshold
)


# -- the events --------------------------------------------------------------------------------
def _labels(node_index: int, seq: int) -> list[dict[str, Any]]:
    """2-5 labels; a doorbell every ~60 s and smoke every ~8 min of event time, per node."""
    count = 2 + (seq * 7 + node_index) % 4
    start = (seq * 5 + node_index * 3) % len(_BACKGROUND)
    labels = [
        {"label": label, "score": score}
        for label, score in (_BACKGROUND * 2)[start : start + count]
    ]
    if seq % 1000 in range(600, 606):  # a smoke alarm sounding for ~3 s
        labels[0] = {"label": "Smoke detector, smoke alarm", "score": 0.71}
    elif seq % 125 in {40, 41}:  # someone rings the doorbell (a ding-dong spans two windows)
        labels[0] = {"label": "Doorbell", "score": 0.64}
    return labels


def build_events(
    tag: str, nodes: Sequence[str], count: int, first_seq: int = 0
) -> list[tuple[str, str, bytes]]:
    """``count`` events (node round-robin): (node, event_id, payload)."""
    out: list[tuple[str, str, bytes]] = []
    per_node = -(-count // len(nodes))
    for i in range(per_node):
        seq = first_seq + i
        start = T0 + timedelta(seconds=HOP_S * seq)
        for node in nodes:
            if len(out) == count:
                break
            event_id = f"{node}-{tag}-{seq:07d}"
            event = ClassificationEvent.model_validate(
                {
                    "event_id": event_id,
                    "site": SITE,
                    "node": node,
                    "seq": seq,
                    "window_start": start,
                    "window_end": start + timedelta(seconds=WINDOW_S),
                    "source": {"kind": "yamnet", "model": "yamnet", "version": "1"},
                    "labels": _labels(NODES.index(node), seq),
                    "level_dbfs": -38.0 + (seq % 17),
                }
            )
            out.append((node, event_id, event.to_json()))
    return out


# -- processes ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class PublisherJob:
    broker_port: int
    root: str
    tag: str
    nodes: tuple[str, ...]
    count: int
    rate: float | None  # events/s for this publisher; None: as fast as possible
    first_seq: int = 0


@dataclass
class PublisherResult:
    first_send: float
    last_send: float
    confirmed: float  # wall time the last PUBACK arrived
    count: int
    sent_at: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ConsumerJob:
    kind: Consumer
    broker_port: int
    root: str
    expected: int
    state_dir: str
    keep_times: bool
    backlog: bool  # events queue in the broker while the consumer is away, then it drains
    world: int = 0  # other homes (their nodes and an open smoke alarm each) already in the state
    world_nodes: int = 1  # nodes per home of the world
    metrics_port: int | None = None
    metrics_every_s: float | None = None  # AggregatorSettings.metrics_every_s


@dataclass
class ConsumerResult:
    count: int
    first: float
    last: float
    cpu_s: float  # process CPU from the first event to the last
    processed_at: dict[str, float] = field(default_factory=dict)
    histogram: dict[float, float] = field(default_factory=dict)  # le -> cumulative count
    alerts: dict[str, float] = field(default_factory=dict)  # state -> count


def _url(port: int, user: str) -> str:
    return f"mqtt://{user}:{user}-secret@127.0.0.1:{port}"


def _publisher(job: PublisherJob, conn: Connection) -> None:
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(_publish(job, conn))


async def _publish(job: PublisherJob, conn: Connection) -> None:
    topics = Topics(job.root)
    events = build_events(job.tag, job.nodes, job.count, job.first_seq)
    topic_of = {node: topics.events(SITE, node) for node in job.nodes}
    clients = {
        node: make_client(BrokerUrl.parse(_url(job.broker_port, node)), f"bench-{job.tag}-{node}")
        for node in job.nodes
    }
    for client in clients.values():
        client._client.max_inflight_messages_set(WINDOW)  # noqa: SLF001
    async with contextlib.AsyncExitStack() as stack:
        for node, client in clients.items():
            await stack.enter_async_context(client)
            online = NodeStatus(
                site=SITE,
                node=node,
                state="online",
                at=datetime.now(UTC),
                heartbeat_s=15.0,
                software="bench",
            )
            await client.publish(topics.status(SITE, node), online.to_json(), qos=1, retain=True)
        paho = {node: client._client for node, client in clients.items()}  # noqa: SLF001
        conn.send("ready")
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # "go"
        sent_at: dict[str, float] = {}
        infos: deque[Any] = deque()
        first = time.time()
        if job.rate is None:
            for node, _, payload in events:
                while len(infos) >= WINDOW:
                    while infos and infos[0].is_published():
                        infos.popleft()
                    await asyncio.sleep(0)
                infos.append(paho[node].publish(topic_of[node], payload, qos=1))
                if len(infos) % 64 == 0:
                    await asyncio.sleep(0)  # let the loop write and read PUBACKs
        else:
            interval = 1.0 / job.rate
            start = time.perf_counter()
            for k, (node, event_id, payload) in enumerate(events):
                delay = start + k * interval - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent_at[event_id] = time.time()
                infos.append(paho[node].publish(topic_of[node], payload, qos=1))
        last = time.time()
        while infos:
            while infos and infos[0].is_published():
                infos.popleft()
            await asyncio.sleep(0.0005 if infos else 0)
        confirmed = time.time()
    conn.send(PublisherResult(first, last, confirmed, len(events), sent_at))


def _consumer(job: ConsumerJob, conn: Connection) -> None:
    logging.basicConfig(level=logging.WARNING)
    run = _aggregator if job.kind == "aggregator" else _bare
    conn.send(asyncio.run(run(job, conn)))


class _Tally:
    """Counts processed events; records per-event wall times only when asked to."""

    def __init__(self, expected: int, keep: bool) -> None:
        self.expected = expected
        self.keep = keep
        self.count = 0
        self.first = self.last = 0.0
        self.cpu_first = self.cpu_last = 0.0
        self.times: list[tuple[Any, float]] = []
        self.done = asyncio.Event()

    def add(self, key: Any, wall: float) -> None:
        if self.count == 0:
            self.first, self.cpu_first = wall, time.process_time()
        self.count += 1
        self.last = wall
        if self.keep:
            self.times.append((key, wall))
        if self.count >= self.expected:
            self.cpu_last = time.process_time()
            self.done.set()

    async def wait(self) -> None:
        seen = -1
        while not self.done.is_set() and seen != self.count:
            seen = self.count
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.done.wait(), IDLE_S)
        if not self.done.is_set():
            self.cpu_last = time.process_time()

    def result(self, processed_at: dict[str, float]) -> ConsumerResult:
        return ConsumerResult(
            self.count, self.first, self.last, self.cpu_last - self.cpu_first, processed_at
        )


async def _aggregator(job: ConsumerJob, conn: Connection) -> ConsumerResult:
    from services.aggregator.service import AggregatorService  # noqa: PLC0415 - child only
    from services.aggregator.settings import AggregatorSettings  # noqa: PLC0415

    settings = AggregatorSettings(
        broker=_url(job.broker_port, SERVICE_USER),
        topic_root=job.root,
        state_dir=Path(job.state_dir),
        client_id=f"bench-aggregator-{uuid.uuid4().hex[:8]}",
        metrics_port=job.metrics_port,
        metrics_every_s=job.metrics_every_s,
    )
    tally = _Tally(job.expected, job.keep_times)
    metrics = None
    if job.world:  # the world's series stay in the registry, as in a service that saw them
        from bench.core_scaling import build_world  # noqa: PLC0415
        from services.aggregator.metrics import AggregatorMetrics  # noqa: PLC0415

        metrics = AggregatorMetrics()
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        build_world(job.world, job.world_nodes, settings.database, metrics).store.close()

    async def start() -> tuple[AggregatorService, asyncio.Task[None]]:
        service = AggregatorService(settings, metrics=metrics, on_processed=tally.add)
        task = asyncio.create_task(service.run())
        while service.metrics.registry.get_sample_value("soundalert_mqtt_connected") != 1:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        return service, task

    service, task = await start()
    if job.backlog:  # subscribed with a persistent session; go away while events queue up
        service.stop()
        await task
        conn.send("ready")
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # "go"
        service, task = await start()
    else:
        if job.world:  # supervision finds the world's nodes silent: let that burst pass first
            await asyncio.sleep(3 * settings.tick_s)
            while service.metrics.registry.get_sample_value("soundalert_publications_pending"):  # noqa: ASYNC110 - a gauge, no event to wait on
                await asyncio.sleep(0.2)
        conn.send("ready")
    await tally.wait()
    service.stop()
    await task
    result = tally.result(dict(tally.times))
    for metric in service.metrics.registry.collect():
        for sample in metric.samples:
            if sample.name == "soundalert_processing_seconds_bucket":
                result.histogram[float(sample.labels["le"])] = sample.value
            elif sample.name == "soundalert_alert_state_changes_total":
                state = sample.labels["state"]
                result.alerts[state] = result.alerts.get(state, 0.0) + sample.value
    return result


async def _bare(job: ConsumerJob, conn: Connection) -> ConsumerResult:
    tally = _Tally(job.expected, job.keep_times)
    broker = BrokerUrl.parse(_url(job.broker_port, SERVICE_USER))
    client_id = f"bench-bare-{uuid.uuid4().hex[:8]}"
    if job.backlog:  # subscribe with a persistent session, then go away while events queue up
        async with make_client(broker, client_id, persistent=True) as client:
            await client.subscribe(Topics(job.root).all_events, qos=1)
        conn.send("ready")
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # "go"
    async with make_client(broker, client_id, persistent=job.backlog) as client:
        await client.subscribe(Topics(job.root).all_events, qos=1)

        async def drain() -> None:
            async for message in client.messages:
                tally.add(message.payload, time.time())  # receive and discard

        pump = asyncio.create_task(drain())
        if not job.backlog:
            conn.send("ready")
        await tally.wait()
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump
    # Event ids are read after the run, so the subscriber does nothing but receive.
    marker = b'"event_id":"'
    processed_at: dict[str, float] = {}
    for payload, wall in tally.times:
        assert isinstance(payload, bytes)
        start = payload.index(marker) + len(marker)
        processed_at[payload[start : payload.index(b'"', start)].decode()] = wall
    return tally.result(processed_at)


# -- one phase ---------------------------------------------------------------------------------
@dataclass
class Phase:
    consumer: Consumer
    publish_rate: float  # what the publishers achieved, events/s
    result: ConsumerResult
    latencies_ms: list[float]

    @property
    def drain_rate(self) -> float:
        r = self.result
        return (r.count - 1) / (r.last - r.first) if r.count > 1 and r.last > r.first else 0.0

    @property
    def cpu_us_per_event(self) -> float:
        return 1e6 * self.result.cpu_s / max(1, self.result.count - 1)


def _split(nodes: Sequence[str], parts: int) -> list[tuple[str, ...]]:
    return [tuple(nodes[i::parts]) for i in range(parts)]


def run_phase(
    broker: Mosquitto,
    workdir: Path,
    consumer: Consumer,
    *,
    events: int,
    rate: float | None,
    publishers: int,
    backlog: bool = False,
    profile: str | None = None,
) -> Phase:
    ctx = mp.get_context("spawn")
    tag = uuid.uuid4().hex[:6]
    root = f"bench/{tag}/v1"
    groups = _split(NODES, publishers)
    job = ConsumerJob(
        consumer,
        broker.port,
        root,
        events,
        str(workdir / f"state-{tag}"),
        keep_times=rate is not None,
        backlog=backlog,
    )
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_consumer, args=(job, child), name=f"bench-{consumer}")
    proc.start()
    pubs: list[tuple[Any, Connection]] = []
    try:
        if parent.recv() != "ready":
            raise RuntimeError(f"{consumer} did not start")
        with _profiler(profile, proc.pid, f"{consumer}-{'paced' if rate else 'drain'}"):
            sent = _run_publishers(broker, root, tag, groups, events, rate=rate, pubs=pubs)
            if backlog:
                parent.send("go")
            result: ConsumerResult = parent.recv()
    finally:
        _join(pubs, proc)
    total, publish_rate, latencies = _latencies(sent, result.processed_at)
    if result.count < total:
        print(f"  warning: {consumer} processed {result.count} of {total} events", flush=True)
    return Phase(consumer, publish_rate, result, latencies)


def _join(pubs: list[tuple[Any, Connection]], consumer: Any) -> None:
    for p, _ in pubs:
        p.join(timeout=10)
        if p.is_alive():
            p.kill()
    consumer.join(timeout=20)
    if consumer.is_alive():
        consumer.kill()


def _run_publishers(
    broker: Mosquitto,
    root: str,
    tag: str,
    groups: list[tuple[str, ...]],
    events: int,
    *,
    rate: float | None,
    pubs: list[tuple[Any, Connection]],
    first_seq: int = 0,
) -> list[PublisherResult]:
    """Start one publisher process per group (appended to ``pubs``), and wait for their sends."""
    ctx = mp.get_context("spawn")
    started = len(pubs)
    for group in groups:
        share = events * len(group) // len(NODES)
        per_s = None if rate is None else rate * len(group) / len(NODES)
        pjob = PublisherJob(broker.port, root, tag, group, share, per_s, first_seq)
        p_parent, p_child = ctx.Pipe()
        pproc = ctx.Process(target=_publisher, args=(pjob, p_child), name="publisher")
        pproc.start()
        pubs.append((pproc, p_parent))
    for _, pconn in pubs[started:]:
        if pconn.recv() != "ready":
            raise RuntimeError("a publisher did not start")
    for _, pconn in pubs[started:]:
        pconn.send("go")
    return [pconn.recv() for _, pconn in pubs[started:]]


def _latencies(
    sent: list[PublisherResult], processed_at: dict[str, float]
) -> tuple[int, float, list[float]]:
    """Events sent, their publish rate, and publish -> processed latencies (ms)."""
    first = min(s.first_send for s in sent)
    last = max(s.last_send for s in sent)
    total = sum(s.count for s in sent)
    publish_rate = (total - 1) / (last - first) if last > first else 0.0
    sent_at = {k: v for s in sent for k, v in s.sent_at.items()}
    latencies = [
        1000.0 * (done - sent_at[event_id])
        for event_id, done in processed_at.items()
        if event_id in sent_at
    ]
    return total, publish_rate, latencies


@contextlib.contextmanager
def _profiler(prefix: str | None, pid: int | None, name: str) -> Iterator[None]:
    """``py-spy record`` the consumer process while it works (``--py-spy PREFIX``)."""
    if prefix is None or pid is None:
        yield
        return
    out = f"{prefix}-{name}.txt"
    spy = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("py-spy")),
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--rate",
            "500",
            "-o",
            out,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=30)
        print(f"  py-spy profile of {name}: {out}", flush=True)


# -- /metrics scraped while events flow -------------------------------------------------------
class _Scraper:
    """GETs /metrics every ``every_s`` from a thread of this (the bench's) process, as
    Prometheus would from its own; keeps each response's size and duration."""

    def __init__(self, port: int, every_s: float = 1.0) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.every_s = every_s
        self.scrapes: list[tuple[int, float]] = []  # (bytes, seconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scraper", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            with urllib.request.urlopen(self.url, timeout=10) as response:  # noqa: S310 - ours
                size = len(response.read())
            took = time.perf_counter() - started
            self.scrapes.append((size, took))
            self._stop.wait(max(0.0, self.every_s - took))

    def __enter__(self) -> _Scraper:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_scrape(
    broker: Mosquitto, workdir: Path, *, world: int, world_nodes: int, rounds: int, events: int,
    rate: float, publishers: int, metrics_every_s: float | None,
) -> tuple[float, float]:  # fmt: skip
    """One aggregator with ``world`` other homes in its state; paced phases alternate between
    A (nobody reads /metrics) and B (a GET of /metrics every second), after a warm-up A."""
    ctx = mp.get_context("spawn")
    tag = uuid.uuid4().hex[:6]
    root = f"bench/{tag}/v1"
    groups = _split(NODES, publishers)
    plan = ["warm-up"] + [
        p for r in range(rounds) for p in (("A", "B") if r % 2 == 0 else ("B", "A"))
    ]
    per_phase = sum(events * len(group) // len(NODES) for group in groups)
    port = _free_port()
    per_node = -(-events // len(NODES))
    job = ConsumerJob("aggregator", broker.port, root, per_phase * len(plan),
                      str(workdir / f"state-{tag}"), keep_times=True, backlog=False, world=world,
                      world_nodes=world_nodes, metrics_port=port,
                      metrics_every_s=metrics_every_s)  # fmt: skip
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_consumer, args=(job, child), name="bench-aggregator")
    started = time.perf_counter()
    proc.start()
    sent: list[list[PublisherResult]] = []
    scrapes: list[tuple[int, float]] = []
    pubs: list[tuple[Any, Connection]] = []
    try:
        if parent.recv() != "ready":
            raise RuntimeError("the aggregator did not start")
        print(f"  aggregator with {world} other homes ready after "
              f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
        for i, phase in enumerate(plan):
            scraping = _Scraper(port) if phase == "B" else contextlib.nullcontext()
            with scraping as scraper:
                sent.append(_run_publishers(broker, root, f"{tag}{i}", groups, events, rate=rate,
                                            pubs=pubs, first_seq=i * per_node))  # fmt: skip
            if isinstance(scraper, _Scraper):
                scrapes += scraper.scrapes
        result: ConsumerResult = parent.recv()
    finally:
        _join(pubs, proc)
    how = (
        "rendered on each request (prometheus_client's server)"
        if metrics_every_s is None
        else f"rendered every {metrics_every_s:g} s in a forked child"
    )
    print(f"\n/metrics {how}: latency at {rate:g} events/s, publish -> processed (ms), {world} "
          f"other homes ({world * world_nodes} nodes) in the aggregator's state; B: GET /metrics "
          "every second")  # fmt: skip
    print(f"  {'phase':<9}{'events':>8}{'p50':>9}{'p99':>9}{'max':>9}")
    pooled: dict[str, list[float]] = {"A": [], "B": []}
    for phase, group_sent in zip(plan, sent, strict=True):
        _, _, lat = _latencies(group_sent, result.processed_at)
        pooled.setdefault(phase, []).extend(lat)
        print(f"  {phase:<9}{len(lat):>8}{quantile(lat, 0.5):>9.3f}{quantile(lat, 0.99):>9.3f}"
              f"{max(lat, default=float('nan')):>9.3f}")  # fmt: skip
    a, b = pooled["A"], pooled["B"]
    sizes = [size for size, _ in scrapes]
    took = [1000 * t for _, t in scrapes]
    print(f"\nsummary (A and B pooled over {rounds} rounds each)")
    print(f"  A (no scrape): p50 {quantile(a, 0.5):.3f} ms, p99 {quantile(a, 0.99):.3f} ms, "
          f"max {max(a, default=float('nan')):.3f} ms")  # fmt: skip
    print(f"  B (scraped):   p50 {quantile(b, 0.5):.3f} ms, p99 {quantile(b, 0.99):.3f} ms, "
          f"max {max(b, default=float('nan')):.3f} ms")  # fmt: skip
    print(f"  p99 ratio B/A {quantile(b, 0.99) / quantile(a, 0.99):.2f}; "
          f"p50 ratio B/A {quantile(b, 0.5) / quantile(a, 0.5):.2f}")  # fmt: skip
    if scrapes:
        size = statistics.median(sizes)
        print(f"  /metrics: {len(scrapes)} scrapes, {size:,.0f} bytes (median; "
              f"{size / 2**20:.2f} MiB), GET {quantile(took, 0.5):.1f} ms median, "
              f"{max(took):.1f} ms max")  # fmt: skip
    return quantile(a, 0.99), quantile(b, 0.99)


# -- report ------------------------------------------------------------------------------------
def quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def histogram_quantile(buckets: dict[float, float], q: float) -> float:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] == 0:
        return float("nan")
    rank = q * buckets[bounds[-1]]
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            width = count - lower_count
            return lower_bound + (bound - lower_bound) * (
                (rank - lower_count) / width if width else 1.0
            )
        lower_bound, lower_count = bound, count
    return bounds[-1]


def _mosquitto_version() -> str:
    out = subprocess.run([MOSQUITTO, "-h"], capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0].removeprefix("mosquitto version ") if out else "?"


def start_broker(workdir: Path, *, nodelay: bool = False) -> Mosquitto:
    users = {SERVICE_USER: f"{SERVICE_USER}-secret", **{n: f"{n}-secret" for n in NODES}}
    acl = f"user {SERVICE_USER}\ntopic readwrite #\n\npattern write bench/+/v1/+/%u/#\n"
    broker = Mosquitto(workdir / "mosquitto", users=users, acl=acl)
    conf = broker.write_config()
    # A deployment's persistence settings, not the crash tests' save-every-second.
    text = conf.read_text().replace("autosave_interval 1\n", "autosave_interval 1800\n")
    conf.write_text(text + ("set_tcp_nodelay true\n" if nodelay else ""))
    broker.start()
    return broker


def _print_drain(phases: list[Phase], *, live: bool) -> None:
    how = (
        "while publishers publish flat out"
        if live
        else "of a backlog published flat out while the consumer was away"
    )
    print(f"\nsustained drain at QoS 1, {how} (first to last event)")
    print(
        f"  {'consumer':<14}{'events':>8}{'drained ev/s':>14}{'published ev/s':>16}"
        f"{'consumer CPU us/ev':>20}"
    )
    for phase in phases:
        print(
            f"  {CONSUMERS[phase.consumer]:<14}{phase.result.count:>8}"
            f"{phase.drain_rate:>14.0f}{phase.publish_rate:>16.0f}"
            f"{phase.cpu_us_per_event:>20.1f}"
        )


def _print_latency(phases: list[Phase], rate: float) -> None:
    print(f"\nlatency at {rate:g} events/s, publish -> processed (ms)")
    print(f"  {'consumer':<14}{'events':>8}{'p50':>9}{'p99':>9}{'max':>9}{'CPU us/ev':>11}")
    for phase in phases:
        lat = phase.latencies_ms
        print(
            f"  {CONSUMERS[phase.consumer]:<14}{len(lat):>8}{quantile(lat, 0.5):>9.3f}"
            f"{quantile(lat, 0.99):>9.3f}{max(lat, default=float('nan')):>9.3f}"
            f"{phase.cpu_us_per_event:>11.1f}"
        )


def _summary(drain: list[Phase], latency: list[Phase], rate: float) -> None:
    def median_of(
        phases: list[Phase], consumer: Consumer, value: Callable[[Phase], float]
    ) -> float:
        values = [value(p) for p in phases if p.consumer == consumer]
        return statistics.median(values) if values else float("nan")

    bare = median_of(drain, "bare", lambda p: p.drain_rate)
    agg = median_of(drain, "aggregator", lambda p: p.drain_rate)
    ratio = agg / bare if bare else float("nan")
    agg_lat = [x for p in latency if p.consumer == "aggregator" for x in p.latencies_ms]
    bare_lat = [x for p in latency if p.consumer == "bare" for x in p.latencies_ms]
    buckets: dict[float, float] = {}
    for p in latency:
        for le, count in p.result.histogram.items():
            buckets[le] = buckets.get(le, 0.0) + count
    alerts: dict[str, float] = {}
    for p in drain + latency:
        for state, count in p.result.alerts.items():
            alerts[state] = alerts.get(state, 0.0) + count
    hist_p50 = 1000 * histogram_quantile(buckets, 0.5)
    hist_p99 = 1000 * histogram_quantile(buckets, 0.99)
    p99 = quantile(agg_lat, 0.99)
    print("\nsummary (drain: median over rounds; latency: all rounds pooled)")
    if drain:
        verdict = "met" if ratio >= RATIO_TARGET else "NOT met"
        print(
            f"  drain: aggregator {agg:.0f} ev/s, bare {bare:.0f} ev/s, ratio {ratio:.2f} "
            f"(target >= {RATIO_TARGET:.2f}: {verdict})"
        )
        published = median_of(drain, "bare", lambda p: p.publish_rate)
        if bare >= 0.9 * published:
            print(
                f"  note: the bare subscriber drained at {bare / published:.0%} of the "
                "publishers' rate; the publishers may be the bottleneck"
            )
    if latency:
        verdict = "met" if p99 < P99_TARGET_MS else "NOT met"
        print(
            f"  latency at {rate:g}/s: aggregator p50 {quantile(agg_lat, 0.5):.3f} ms "
            f"p99 {p99:.3f} ms; bare p50 {quantile(bare_lat, 0.5):.3f} ms "
            f"p99 {quantile(bare_lat, 0.99):.3f} ms (target p99 < {P99_TARGET_MS:g} ms: {verdict})"
        )
        print(
            f"  soundalert_processing_seconds at {rate:g}/s: p50 {hist_p50:.3f} ms, "
            f"p99 {hist_p99:.3f} ms"
        )
    states = ", ".join(f"{s} {int(n)}" for s, n in sorted(alerts.items())) or "none"
    print(f"  alert state changes published by the aggregator: {states}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=60_000, help="events per drain phase")
    parser.add_argument("--rate", type=float, default=1000.0, help="paced events/s")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of a paced phase")
    parser.add_argument("--publishers", type=int, default=2, help="publisher processes")
    parser.add_argument("--rounds", type=int, default=1, help="repeat both phases, alternating")
    parser.add_argument("--only", choices=["drain", "latency"], help="run one phase kind")
    parser.add_argument(
        "--live",
        action="store_true",
        help="drain while the publishers publish (they then share the CPUs) "
        "instead of from a backlog queued while the consumer was away",
    )
    parser.add_argument(
        "--broker-nodelay",
        action="store_true",
        help="set_tcp_nodelay true in mosquitto.conf (default false)",
    )
    parser.add_argument("--py-spy", metavar="PREFIX", help="profile the consumers with py-spy")
    parser.add_argument(
        "--scrape-world",
        type=int,
        metavar="HOMES",
        help="instead: one aggregator with HOMES other homes (a node each) in its state, paced "
        "phases alternating without and with a GET of its /metrics every second (--rounds each)",
    )
    parser.add_argument(
        "--world-nodes", type=int, default=1, choices=range(1, 6), help="nodes per world home"
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.seconds, args.rate = 600, 1.0, 200.0
    publishers = max(1, min(args.publishers, len(NODES)))
    paced = max(len(NODES), round(args.rate * args.seconds))
    print(
        f"aggregator_throughput: {os.cpu_count()} CPUs, mosquitto {_mosquitto_version()} "
        f"(auth, ACL, persistence, max_inflight_messages 20, set_tcp_nodelay "
        f"{str(args.broker_nodelay).lower()}), {publishers} publisher "
        f"processes, {len(NODES)} nodes, QoS 1",
        flush=True,
    )
    if args.scrape_world is not None:
        with tempfile.TemporaryDirectory(prefix="bench-aggregator-") as tmp:
            broker = start_broker(Path(tmp), nodelay=args.broker_nodelay)
            try:
                p99 = {every: run_scrape(broker, Path(tmp), world=args.scrape_world,
                                         world_nodes=args.world_nodes, rounds=args.rounds,
                                         events=paced, rate=args.rate, publishers=publishers,
                                         metrics_every_s=every)
                       for every in (None, 1.0)}  # fmt: skip
            finally:
                broker.stop()
        print()
        for every, (a, b) in p99.items():
            how = "rendered on each request" if every is None else "forked rendering"
            print(f"p99 ratio B/A, {how}: {b / a:.2f} ({a:.1f} -> {b:.1f} ms)")
        plain, forked = p99[None][0], p99[1.0][1]
        print(f"p99 forked and scraped / per-request and not scraped: {forked / plain:.2f} "
              f"({plain:.1f} -> {forked:.1f} ms)")  # fmt: skip
        return 0
    drain: list[Phase] = []
    latency: list[Phase] = []
    with tempfile.TemporaryDirectory(prefix="bench-aggregator-") as tmp:
        broker = start_broker(Path(tmp), nodelay=args.broker_nodelay)
        try:
            for round_no in range(args.rounds):
                order: list[Consumer] = ["bare", "aggregator"]
                if round_no % 2:
                    order.reverse()
                for consumer in order:
                    if args.only != "latency":
                        drain.append(
                            run_phase(
                                broker,
                                Path(tmp),
                                consumer,
                                events=args.events,
                                rate=None,
                                publishers=publishers,
                                backlog=not args.live,
                                profile=args.py_spy,
                            )
                        )
                    if args.only != "drain":
                        latency.append(
                            run_phase(
                                broker,
                                Path(tmp),
                                consumer,
                                events=paced,
                                rate=args.rate,
                                publishers=publishers,
                                profile=args.py_spy,
                            )
                        )
        finally:
            broker.stop()
    if drain:
        _print_drain(drain, live=args.live)
    if latency:
        _print_latency(latency, args.rate)
    _summary(drain, latency, args.rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
