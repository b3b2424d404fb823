"""Scale-out bench: the hosted mode on a 3-node NATS cluster, PostgreSQL and 3 aggregators.

Real processes only, all on this machine: three ``nats-server`` processes in one cluster (each
with JetStream on disk and its MQTT listener), the ``EVENTS`` stream replicated on all three and
partitioned by site by the servers' subject mapping, a scratch database on the PostgreSQL at
127.0.0.1:5432, and three ``python -m services.aggregator.hosted`` processes that own two of the
six partitions each. Simulated homes (5 nodes, 2 windows/s each, as a real node) publish their
events as JetStream publishes with the event id as ``Nats-Msg-Id``, and keep an event until the
stream acknowledged it (a node's outbox). In each phase some homes (new ones every phase) hear
a T3 smoke alarm for 3 s: each must raise exactly one smoke alarm.

Phases (``--phase-s`` each): ``steady``; ``nats-killed``: the stream's leader server is
``kill -9``ed at the start; ``aggregator-killed``: an aggregator is ``kill -9``ed at the start
(its partitions must be taken over). Then the homes stop and the bench waits for the backlog.

Printed per phase: events sent (acknowledged by the stream), stored (in PostgreSQL), lost,
redelivered (recognised by event id and not applied twice), smoke alarms expected / raised /
duplicated (two alert ids for one alarm, or one alert id raised twice on the wire), and the
failover times; then each aggregator's throughput (events/s, and events per CPU-second) and the
resulting estimate for 2,000 homes. The model is in docs/hosted.md.

    python -m bench.scale_out [--homes 30] [--phase-s 20] [--alarms 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import psycopg
from nats.aio.client import Client as Nats
from nats.js import JetStreamContext

from schemas.messages import ClassificationEvent
from services.aggregator.hosted import EVENTS_STREAM, events_stream_config, partition_mapping
from tests.support.mosquitto import free_port
from tests.support.nats import NatsServer
from tests.support.postgres import scratch_database

PARTITIONS = 6
AGGREGATORS = 3
NODES = ("kitchen", "hall", "bedroom", "living", "bath")
HOP_S = 0.5  # 2 windows a second per node
USERS = {"service": "service-secret", "homes": "homes-secret"}
PHASES = ("steady", "nats-killed", "aggregator-killed")
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Run:
    """What one bench run started, and what it measured besides the phases."""

    servers: list[NatsServer]
    connections: list[Nats]
    js: JetStreamContext
    db_url: str
    work: Path
    aggregators: list[subprocess.Popen[bytes]] = field(default_factory=list)
    alerts: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    failover: dict[str, float | None] = field(default_factory=dict)
    killed_agg: int = 0


@dataclass
class Phase:
    name: str
    started: float = 0.0
    ended: float = 0.0
    sent: int = 0
    unsent: int = 0
    retried: int = 0
    max_ack_s: float = 0.0
    alarmed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _event(phase: int, site: str, node: str, seq: int, at: datetime, *, alarm: bool) -> bytes:
    labels = ([{"label": "t3", "score": 0.95}] if alarm
              else [{"label": "Speech", "score": 0.2}])  # fmt: skip
    return ClassificationEvent.model_validate({
        "event_id": f"{phase}-{site}-{node}-{seq}",
        "site": site, "node": node, "seq": seq,
        "window_start": at - timedelta(seconds=0.975), "window_end": at,
        "source": {"kind": "pattern" if alarm else "yamnet",
                   "model": "pattern" if alarm else "yamnet", "version": "1"},
        "labels": labels, "level_dbfs": -30.0,
    }).to_json()  # fmt: skip


class Homes:
    """The simulated homes: one NATS connection per server, homes spread over them."""

    def __init__(self, connections: list[Nats], homes: int) -> None:
        self.js: list[JetStreamContext] = [c.jetstream(timeout=2.0) for c in connections]
        self.sites = [f"home{i:04d}" for i in range(homes)]
        self.seq: Counter[tuple[str, str]] = Counter()

    async def _send(self, js_index: int, subject: str, payload: bytes, msg_id: str,
                    phase: Phase) -> None:  # fmt: skip
        started = time.monotonic()
        attempt = 0
        while time.monotonic() - started < 60:
            js = self.js[(js_index + attempt) % len(self.js)]  # a node fails over to a server
            try:
                await js.publish(subject, payload, headers={"Nats-Msg-Id": msg_id})
            except (nats.errors.Error, nats.js.errors.Error, TimeoutError):
                attempt += 1
                phase.retried += 1
                await asyncio.sleep(0.2)
                continue
            phase.sent += 1
            phase.max_ack_s = max(phase.max_ack_s, time.monotonic() - started)
            return
        phase.unsent += 1

    async def run(self, index: int, phase: Phase, until: float, alarm_sites: set[str]) -> None:
        """Every node sends a window every HOP_S until ``until``; alarm sites hear a T3 alarm
        from 30 % to 30 % + 3 s of the phase."""
        alarm_from = phase.started + 0.3 * (until - phase.started)
        pending: set[asyncio.Task[None]] = set()
        tick = time.monotonic()
        while time.time() < until:
            now = datetime.now(UTC)
            alarming = alarm_from <= time.time() < alarm_from + 3.0
            for h, site in enumerate(self.sites):
                for node in NODES:
                    seq = self.seq[(site, node)]
                    self.seq[(site, node)] += 1
                    alarm = alarming and node == "kitchen" and site in alarm_sites
                    payload = _event(index, site, node, seq, now, alarm=alarm)
                    task = asyncio.create_task(self._send(
                        h, f"soundalert.v1.{site}.{node}.events", payload,
                        f"{index}-{site}-{node}-{seq}", phase,
                    ))  # fmt: skip
                    pending.add(task)
                    task.add_done_callback(pending.discard)
            tick += HOP_S
            await asyncio.sleep(max(0.0, tick - time.monotonic()))
        if pending:
            await asyncio.wait(pending)


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stats(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _at(lines: list[dict[str, Any]], when: float) -> dict[str, Any] | None:
    before = [line for line in lines if line["at"] <= when]
    return before[-1] if before else None


def _pg_backends(url: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as db:
        rows = db.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                          "AND pid <> pg_backend_pid()").fetchall()  # fmt: skip
    return [int(r[0]) for r in rows]


def _stored(url: str) -> tuple[Counter[str], dict[str, list[str]], int]:
    """Events stored per phase prefix; smoke alarms raised (alert ids) per site; rows over all
    partitions' event logs (more than the distinct ids would mean an event applied twice)."""
    events: Counter[str] = Counter()
    raised: dict[str, list[str]] = defaultdict(list)
    with psycopg.connect(url, autocommit=True) as db:
        rows = 0
        seen: set[str] = set()
        for p in range(PARTITIONS):
            with contextlib.suppress(psycopg.errors.UndefinedTable):
                for (event_id,) in db.execute(f"SELECT event_id FROM p{p}.events"):  # noqa: S608
                    events[event_id.split("-", 1)[0]] += 1
                    seen.add(event_id)
                    rows += 1
                for alert_id, site in db.execute(
                    f"SELECT DISTINCT h.alert_id, a.site FROM p{p}.alert_history h "  # noqa: S608
                    f"JOIN p{p}.alerts a USING (alert_id) WHERE h.state = 'raised' "
                    "AND a.category = 'smoke_alarm'"
                ):
                    raised[site].append(alert_id)
    return events, raised, rows - len(seen)


async def _leader(js: JetStreamContext) -> str | None:
    with contextlib.suppress(Exception):
        info = await js.stream_info(EVENTS_STREAM)
        return info.cluster.leader if info.cluster else None
    return None


async def bench(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="scale-out-"))
    cluster = [free_port() for _ in range(3)]
    servers = [
        NatsServer(work / f"n{i}", users=USERS, name=f"n{i}", cluster_port=cluster[i],
                   routes=[p for j, p in enumerate(cluster) if j != i],
                   mappings=partition_mapping(PARTITIONS))
        for i in range(3)
    ]  # fmt: skip
    for server in servers:
        server.start(wait=False)
    for server in servers:
        server.wait_listening(timeout_s=60)
    urls = [f"nats://127.0.0.1:{s.port}" for s in servers]
    connections: list[Nats] = []
    run: Run | None = None
    with scratch_database("soundalert_scale") as db_url:
        try:
            for i in range(3):  # each home connection prefers its own server
                connection = await nats.connect(
                    servers=urls[i:] + urls[:i],
                    user="homes",
                    password=USERS["homes"],
                    dont_randomize=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.2,
                )
                connections.append(connection)
            run = Run(servers, connections, connections[0].jetstream(timeout=5), db_url, work)
            await _start(run)
            await _run_phases(args, run)
        finally:
            for proc in run.aggregators if run else []:
                if proc.poll() is None:
                    proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
            for connection in connections:
                with contextlib.suppress(Exception):
                    await connection.close()
            for server in servers:
                server.kill()
    print(f"(logs and stats under {work})")


async def _start(run: Run) -> None:
    """The stream, an alert listener, and the aggregators, until they own every partition."""
    urls = [f"nats://127.0.0.1:{s.port}" for s in run.servers]
    for _ in range(60):
        try:
            await run.js.add_stream(events_stream_config(3))
            break
        except (nats.errors.Error, nats.js.errors.Error):
            await asyncio.sleep(0.5)

    async def on_alert(msg: Any) -> None:
        run.alerts.append((time.time(), json.loads(msg.data)))

    await run.connections[1].subscribe("soundalert.v1.*.alerts", cb=on_alert)
    for i in range(AGGREGATORS):
        env = {
            **os.environ,
            "SOUNDALERT_HOSTED_NAME": f"agg{i}",
            "SOUNDALERT_HOSTED_NATS_SERVERS": json.dumps(urls[i:] + urls[:i]),
            "SOUNDALERT_HOSTED_NATS_USER": "service",
            "SOUNDALERT_HOSTED_NATS_PASSWORD": USERS["service"],
            "SOUNDALERT_HOSTED_DATABASE_URL": run.db_url,
            "SOUNDALERT_HOSTED_PARTITIONS": str(PARTITIONS),
            "SOUNDALERT_HOSTED_PREFERRED": json.dumps(
                [p for p in range(PARTITIONS) if p % AGGREGATORS == i]),
            "SOUNDALERT_HOSTED_STATS_FILE": str(run.work / f"agg{i}.jsonl"),
        }  # fmt: skip
        log = (run.work / f"agg{i}.log").open("ab")
        run.aggregators.append(subprocess.Popen(  # noqa: ASYNC220 - before anything is measured
            [sys.executable, "-m", "services.aggregator.hosted"], env=env, cwd=REPO,
            stdout=log, stderr=log,
        ))  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        owned = [len(line["partitions"]) for i in range(AGGREGATORS)
                 for line in _stats(run.work / f"agg{i}.jsonl")[-1:]]  # fmt: skip
        if owned == [PARTITIONS // AGGREGATORS] * AGGREGATORS:
            return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"aggregators did not each claim their partitions; see {run.work}")


def _cpu_marks(run: Run, when: str, backends: list[int]) -> None:
    run.cpu[f"agg_{when}"] = [_cpu_s(p.pid) for p in run.aggregators]
    run.cpu[f"nats_{when}"] = [_cpu_s(s.process.pid) for s in run.servers if s.process]
    run.cpu[f"pg_{when}"] = [_cpu_s(pid) for pid in backends]


async def _run_phases(args: argparse.Namespace, run: Run) -> None:
    homes = Homes(run.connections, args.homes)
    phases = [Phase(name) for name in PHASES]
    backends = _pg_backends(run.db_url)
    for index, phase in enumerate(phases):
        phase.started = time.time()
        phase.alarmed = homes.sites[index * args.alarms : (index + 1) * args.alarms]
        if phase.name == "steady":
            _cpu_marks(run, "start", backends)
        elif phase.name == "nats-killed":
            leader = await _leader(run.js)
            victim = next((s for s in run.servers if s.name == leader), run.servers[2])
            killed_at = time.time()
            victim.kill()
            phase.notes.append(f"killed NATS server {victim.name} (the stream's leader: "
                               f"{leader})")  # fmt: skip
            asyncio.create_task(_leader_back(run, victim.name, killed_at))  # noqa: RUF006
        elif phase.name == "aggregator-killed":
            owned = [len(line["partitions"]) for i in range(AGGREGATORS)
                     for line in _stats(run.work / f"agg{i}.jsonl")[-1:]]  # fmt: skip
            run.killed_agg = max(range(len(owned)), key=owned.__getitem__)  # the busiest one
            run.aggregators[run.killed_agg].send_signal(signal.SIGKILL)
            run.failover["aggregator_killed_at"] = time.time()
            phase.notes.append(f"killed aggregator agg{run.killed_agg}")
        await homes.run(index, phase, phase.started + args.phase_s, set(phase.alarmed))
        phase.ended = time.time()
        if phase.name == "steady":
            _cpu_marks(run, "end", backends)
    sent_total = sum(p.sent for p in phases)
    drain_started = time.time()
    while time.time() - drain_started < args.drain_s:
        events, _, _ = _stored(run.db_url)
        if sum(events.values()) >= sent_total:
            break
        await asyncio.sleep(1.0)
    drain_s = time.time() - drain_started
    await asyncio.sleep(2.0)  # alerts of the last batch reach the listener
    stats = {i: _stats(run.work / f"agg{i}.jsonl") for i in range(AGGREGATORS)}
    _phase_table(args, run, phases, stats)
    print(f"drain after the homes stopped: {drain_s:.1f} s")
    _failover(run, phases, stats)
    _throughput(run, phases[0], stats)


async def _leader_back(run: Run, victim: str, killed_at: float) -> None:
    while time.time() - killed_at < 60:
        leader = await _leader(run.js)
        if leader is not None and leader != victim:
            run.failover["stream_leader_s"] = time.time() - killed_at
            return
        await asyncio.sleep(0.1)
    run.failover["stream_leader_s"] = None


def _phase_table(args: argparse.Namespace, run: Run, phases: list[Phase],
                 stats: dict[int, list[dict[str, Any]]]) -> None:  # fmt: skip
    events, raised, applied_twice = _stored(run.db_url)
    wire: dict[str, Counter[str]] = defaultdict(Counter)  # site -> alert id -> raised messages
    for _, alert in run.alerts:
        if alert["category"] == "smoke_alarm" and alert["state"] == "raised":
            wire[alert["site"]][alert["alert_id"]] += 1
    rate = args.homes * len(NODES) / HOP_S
    print(f"homes: {args.homes} x {len(NODES)} nodes x {1 / HOP_S:.0f} windows/s = {rate:.0f} "
          f"events/s offered; {PARTITIONS} partitions, {AGGREGATORS} aggregators, 3 NATS "
          f"servers (R3 file storage), PostgreSQL; {args.phase_s:.0f} s per phase")  # fmt: skip
    print(f"{'phase':<18} {'sent':>7} {'stored':>7} {'lost':>5} {'unsent':>6} "
          f"{'redeliv':>7} {'retries':>7} {'max ack':>8}  {'alarms':>6} {'raised':>6} "
          f"{'dup ids':>7} {'dup msgs':>8} {'missed':>6}")  # fmt: skip
    for index, phase in enumerate(phases):
        stored = events.get(str(index), 0)
        last = index == len(phases) - 1  # the drain counts with the last phase
        redelivered = 0
        for lines in stats.values():
            start, end = _at(lines, phase.started), _at(lines, math.inf if last else phase.ended)
            redelivered += (end["duplicates"] if end else 0) - (start["duplicates"] if start else 0)
        dup_ids = sum(max(0, len(raised.get(site, [])) - 1) for site in phase.alarmed)
        dup_msgs = sum(n - 1 for site in phase.alarmed for n in wire[site].values() if n > 1)
        got = sum(1 for site in phase.alarmed if raised.get(site))
        print(f"{phase.name:<18} {phase.sent:>7} {stored:>7} {phase.sent - stored:>5} "
              f"{phase.unsent:>6} {redelivered:>7} {phase.retried:>7} {phase.max_ack_s:>7.2f}s  "
              f"{len(phase.alarmed):>6} {got:>6} {dup_ids:>7} {dup_msgs:>8} "
              f"{len(phase.alarmed) - got:>6}")  # fmt: skip
        for note in phase.notes:
            print(f"    {note}")
    alarmed = {site for p in phases for site in p.alarmed}
    other = sum(len(ids) for site, ids in raised.items() if site not in alarmed)
    print(f"smoke alarms at homes that heard none: {other}; event rows applied twice: "
          f"{applied_twice}")  # fmt: skip


def _failover(run: Run, phases: list[Phase], stats: dict[int, list[dict[str, Any]]]) -> None:
    leader_s = run.failover.get("stream_leader_s")
    print(
        "failover, NATS server killed: stream leader re-elected after "
        + (f"{leader_s:.2f} s" if leader_s is not None else "(not within 60 s)")
        + f"; longest publish until acknowledged {phases[1].max_ack_s:.2f} s"
    )
    killed_at = run.failover.get("aggregator_killed_at")
    if killed_at is None:
        return
    before = [x for x in stats[run.killed_agg] if x["at"] <= killed_at][-1:]
    orphans = {p for line in before for p in line["partitions"]}
    resumed: dict[str, float] = {}
    for i, lines in stats.items():
        for line in lines if i != run.killed_agg else []:
            for p, part in line["partitions"].items():
                first = part["first_event_at"]
                if p in orphans and part["claimed_at"] > killed_at and first is not None:
                    resumed[p] = min(resumed.get(p, first), first)
    if resumed and len(resumed) == len(orphans):
        each = ", ".join(f"p{p}: {t - killed_at:.2f} s" for p, t in sorted(resumed.items()))
        print(f"failover, aggregator killed: its partitions {sorted(orphans)} processing again "
              f"after {max(resumed.values()) - killed_at:.2f} s ({each})")  # fmt: skip
    else:
        print(f"failover, aggregator killed: partitions {sorted(orphans)} not all resumed "
              f"({sorted(resumed)})")  # fmt: skip


def _throughput(run: Run, steady: Phase, stats: dict[int, list[dict[str, Any]]]) -> None:
    seconds = steady.ended - steady.started
    processed = 0
    agg_cpu = 0.0
    for i in range(AGGREGATORS):
        start, end = _at(stats[i], steady.started), _at(stats[i], steady.ended)
        if start is None or end is None:
            continue
        count = end["processed"] - start["processed"]
        cpu = run.cpu["agg_end"][i] - run.cpu["agg_start"][i]
        processed += count
        agg_cpu += cpu
        print(f"agg{i} (steady): {count / seconds:7.1f} events/s, {cpu / seconds:5.1%} of a core, "
              f"{count / cpu if cpu else math.nan:7.0f} events per CPU-second")  # fmt: skip
    if not processed or not agg_cpu:
        return
    target = 2000 * len(NODES) / HOP_S
    per_event = {
        "aggregators": agg_cpu / processed,
        "NATS": (sum(run.cpu["nats_end"]) - sum(run.cpu["nats_start"])) / processed,
        "PostgreSQL": (sum(run.cpu["pg_end"]) - sum(run.cpu["pg_start"])) / processed,
    }
    print("CPU per event (steady): "
          + ", ".join(f"{k} {v * 1e6:.0f} us" for k, v in per_event.items()))  # fmt: skip
    cores = ", ".join(f"{k} {target * v:.1f}" for k, v in per_event.items())
    print(f"estimate for 2,000 homes ({target:,.0f} events/s): {1 / per_event['aggregators']:,.0f} "
          f"events/s per aggregator core; cores: {cores}; in all "
          f"{target * sum(per_event.values()):.1f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--homes", type=int, default=30)
    parser.add_argument("--phase-s", type=float, default=20.0)
    parser.add_argument("--alarms", type=int, default=3, help="homes that hear a T3 per phase")
    parser.add_argument("--drain-s", type=float, default=60.0)
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
