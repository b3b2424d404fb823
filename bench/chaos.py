"""Chaos bench: does a smoke alarm survive broker crashes, aggregator crashes and a partition?

Real processes only: a Mosquitto configured as the compose stack's (persistence, autosave every
60 s, so a crash loses what came since the last save, sessions included), ``soundalert
aggregator``, and ``soundalert agent`` streaming a recording in real time (room noise with a
T3 smoke alarm). Each scenario starts afresh:

* ``broker``: the broker is ``kill -9``ed three times, down 12, 25 and 18 s;
* ``aggregator``: the aggregator is ``kill -9``ed three times, down as long, then restarted on
  its state;
* ``partition``: the agent reaches the broker through a TCP proxy this bench controls (the
  kernel here has no netem); for 60 s it relays nothing, in either direction, on old or new
  connections (a black hole, as a pulled cable: no resets).

When the recording ends and the agent has drained its outbox, the bench reads the ground truth:
the agent's event count (its seq) and the aggregator's event log (every event id it stored),
and the alerts it raised (its alert history). It prints per scenario: events sent, stored,
lost, redelivered (deduplicated by event id), smoke alarms raised, and when trouble alerts
(node_offline, storage_trouble) were raised and resolved. Target: 0 lost, smoke raised exactly
once in every scenario. ``--baseline`` adds the broker scenario with the old delivery (nodes
delete an event at the broker's PUBACK) for comparison.

    python -m bench.chaos [--scenario broker aggregator partition] [--baseline]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final

from edge.agent.demo import demo_signal, write_wav
from tests.support.mosquitto import Mosquitto, free_port

RECORDING_S: Final = 160.0
ALARM_AT_S: Final = 40.0
ALARM_S: Final = 60.0
OUTAGES: Final = ((15.0, 12.0), (55.0, 25.0), (110.0, 18.0))
"""(seconds after the agent starts, seconds down) for the broker and aggregator scenarios."""
PARTITION: Final = (50.0, 60.0)
ACL: Final = "user service\ntopic readwrite #\n\npattern write soundalert/v1/+/%u/#\n" \
             "pattern read soundalert/v1/+/%u/ack\n"  # fmt: skip


@dataclass
class Outcome:
    scenario: str
    sent: int = 0
    stored: int = 0
    lost: int = 0
    redelivered: int = 0
    smoke_raised: int = 0
    other_alerts: dict[str, int] = field(default_factory=dict)
    trouble: list[str] = field(default_factory=list)
    note: str = ""


# -- processes ---------------------------------------------------------------------------------
class Proc:
    """A soundalert command in its own process group (kill -9 takes its children too)."""

    def __init__(self, name: str, args: list[str], log: Path) -> None:
        self.name, self.args, self.log = name, args, log
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "soundalert", *self.args, stdout=out, stderr=out,
                start_new_session=True,
            )  # fmt: skip

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            os.killpg(self.process.pid, signal.SIGKILL)

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 20)
            except TimeoutError:
                self.kill()
                await self.process.wait()


class BlackHoleProxy:
    """A TCP relay that can stop relaying anything (a partition without resets)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.partitioned = asyncio.Event()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await src.read(65536):
                    if self.partitioned.is_set():
                        continue  # dropped on the floor
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(OSError):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


# -- one scenario ------------------------------------------------------------------------------
async def run_scenario(name: str, workdir: Path, recording: Path, *, delivery: str) -> Outcome:
    await asyncio.to_thread(workdir.mkdir, parents=True)
    broker = Mosquitto(workdir / "mosquitto", users={"service": "s", "kitchen": "k"}, acl=ACL,
                       autosave_interval=60)  # fmt: skip
    broker.start()
    proxy = BlackHoleProxy(broker.port)
    await proxy.start()
    node_port = proxy.port if name == "partition" else broker.port
    metrics_port = free_port()
    aggregator = Proc("aggregator", [
        "aggregator", "--broker", broker.url("service"), "--state", str(workdir / "aggregator"),
        "--metrics-port", str(metrics_port), "--log-level", "warning",
    ], workdir / "aggregator.log")  # fmt: skip
    agent_args = [
        "agent", "--broker", f"mqtt://kitchen:k@127.0.0.1:{node_port}", "--site", "home",
        "--node", "kitchen", "--input", str(recording), "--speed", "1", "--heartbeat", "5",
        "--state", str(workdir / "agent"), "--log-level", "warning",
    ]  # fmt: skip
    if delivery != "end-to-end":
        agent_args += ["--delivery", delivery]
    agent = Proc("agent", agent_args, workdir / "agent.log")
    redelivered = [0.0]
    outcome = Outcome(name if delivery == "end-to-end" else f"{name} (baseline: {delivery})")
    await aggregator.start()
    await asyncio.sleep(3.0)
    await agent.start()
    started = time.monotonic()

    async def at(offset: float, action: Callable[[], Awaitable[None] | None]) -> None:
        await asyncio.sleep(max(0.0, started + offset - time.monotonic()))
        result = action()
        if result is not None:
            await result

    async def scrape_duplicates() -> None:
        lifetime_max = 0.0
        pid = None
        while True:
            await asyncio.sleep(1.0)
            proc = aggregator.process
            if proc is None or proc.pid != pid:
                redelivered[0] += lifetime_max
                lifetime_max, pid = 0.0, proc.pid if proc else None
            with contextlib.suppress(OSError):
                value = _metric(metrics_port, "soundalert_events_duplicate_total")
                lifetime_max = max(lifetime_max, value)
            redelivered_now = redelivered[0] + lifetime_max
            outcome.redelivered = int(redelivered_now)

    async def restart_broker() -> None:
        await asyncio.to_thread(broker.start)

    faults: list[Awaitable[None]] = []
    if name == "broker":
        for offset, down in OUTAGES:
            faults += [at(offset, broker.kill), at(offset + down, restart_broker)]
    elif name == "aggregator":
        for offset, down in OUTAGES:
            faults += [at(offset, aggregator.kill), at(offset + down, aggregator.start)]
    else:
        faults += [at(PARTITION[0], proxy.partitioned.set),
                   at(PARTITION[0] + PARTITION[1], proxy.partitioned.clear)]  # fmt: skip
    scraper = asyncio.create_task(scrape_duplicates())
    await asyncio.gather(*faults)
    assert agent.process is not None
    try:
        await asyncio.wait_for(agent.process.wait(), RECORDING_S + 240)
    except TimeoutError:
        outcome.note = "the agent did not drain its outbox in time"
        await agent.stop()
    await asyncio.sleep(5.0)
    scraper.cancel()
    await aggregator.stop()
    await proxy.close()
    broker.stop()
    _read_truth(outcome, workdir, started_wall=time.time() - (time.monotonic() - started))
    return outcome


def _metric(port: int, name: str) -> float:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=2) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def _read_truth(outcome: Outcome, workdir: Path, *, started_wall: float) -> None:
    with contextlib.closing(
        sqlite3.connect(workdir / "agent" / "agent-kitchen.outbox.sqlite3")
    ) as db:
        row = db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()
        outcome.sent = int(row[0]) if row else 0
    with contextlib.closing(sqlite3.connect(workdir / "aggregator" / "aggregator.sqlite3")) as db:
        stored = {seq for (seq,) in db.execute(
            "SELECT seq FROM events WHERE site='home' AND node='kitchen'")}  # fmt: skip
        outcome.stored = len(stored)
        outcome.lost = len(set(range(outcome.sent)) - stored)
        for category, state, payload in db.execute(
            "SELECT a.category, h.state, h.payload FROM alert_history h "
            "JOIN alerts a USING (alert_id) ORDER BY h.id"
        ):
            if state != "raised" and category not in {"node_offline", "storage_trouble"}:
                continue
            if category == "smoke_alarm":
                outcome.smoke_raised += 1
            elif category in {"node_offline", "storage_trouble"}:
                at = _published_at(payload) - started_wall
                outcome.trouble.append(f"{category} {state} at {at:.0f} s")
            else:
                outcome.other_alerts[category] = outcome.other_alerts.get(category, 0) + 1


def _published_at(payload: str) -> float:
    return datetime.fromisoformat(json.loads(payload)["published_at"]).timestamp()


# -- main --------------------------------------------------------------------------------------
def _table(outcomes: list[Outcome]) -> str:
    head = ("| scenario | events sent | stored | lost | redelivered (deduped) | smoke raised | "
            "other alerts | trouble alerts |")  # fmt: skip
    rows = [head, "|" + "---|" * 8]
    for o in outcomes:
        others = ", ".join(f"{k} {v}" for k, v in sorted(o.other_alerts.items())) or "-"
        trouble = "; ".join(o.trouble) or "-"
        rows.append(f"| {o.scenario} | {o.sent} | {o.stored} | {o.lost} | {o.redelivered} | "
                    f"{o.smoke_raised} | {others} | {trouble} |")  # fmt: skip
        if o.note:
            rows.append(f"|   note: {o.note} |")
    return "\n".join(rows)


async def _main(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="soundalert-chaos-"))
    signal_ = demo_signal(RECORDING_S, alarm_at_s=ALARM_AT_S, alarm_s=ALARM_S)
    recording = write_wav(workdir / "recording.wav", signal_)
    print(f"chaos: {RECORDING_S:.0f} s recording, T3 alarm {ALARM_AT_S:.0f}-"
          f"{ALARM_AT_S + ALARM_S:.0f} s; outages {OUTAGES}; partition {PARTITION}; "
          f"work dir {workdir}", flush=True)  # fmt: skip
    runs = [(name, "end-to-end") for name in args.scenario]
    checked = len(runs)
    if args.baseline:
        runs.append(("broker", "broker"))
    outcomes = []
    for name, delivery in runs:
        print(f"running {name} ({delivery}) ...", flush=True)
        outcome = await run_scenario(name, workdir / f"{name}-{delivery}", recording,
                                     delivery=delivery)  # fmt: skip
        print(_table([outcome]).splitlines()[-1], flush=True)
        outcomes.append(outcome)
    print()
    print(_table(outcomes))
    failed = [o.scenario for o in outcomes[:checked] if o.lost or o.smoke_raised != 1 or o.note]
    if failed:
        print(f"MISSED the target (0 lost, smoke raised once) in: {', '.join(failed)}")
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", nargs="+", default=["broker", "aggregator", "partition"],
                        choices=["broker", "aggregator", "partition"])  # fmt: skip
    parser.add_argument(
        "--baseline", action="store_true", help="also the broker scenario, deleting at PUBACK"
    )
    sys.exit(asyncio.run(_main(parser.parse_args())))


if __name__ == "__main__":
    main()
