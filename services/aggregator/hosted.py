"""The hosted aggregator: partitions of a NATS JetStream stream, state in PostgreSQL.

Events are partitioned by site by the NATS servers themselves (a subject mapping with the
``partition`` function, :func:`partition_mapping`): an event published on
``soundalert.v1.<site>.<node>.events`` (MQTT ``soundalert/v1/<site>/<node>/events``) is stored
in the ``EVENTS`` stream as ``sa.events.<partition>.<site>.<node>``. Every aggregator process
runs the same pure :class:`~services.aggregator.core.Aggregator` as a home, once per partition
it owns, each on a :class:`~services.aggregator.store_pg.PostgresStore` in the partition's own
schema.

Ownership and takeover:

* a partition is owned by whoever holds its PostgreSQL advisory lock, taken on the connection
  that commits the partition's state: a process that dies (or loses that connection) loses the
  lock with it, and can never commit to a partition it no longer owns;
* every aggregator tries, each ``claim_every_s``, to lock its own preferred partitions, and
  every ``takeover_after_s`` each of the others (a dead owner's partitions are claimed within
  about that long; a preferred owner that comes back gets them when they are free again);
* the owner commits each batch's effects together with the stream sequence of its last event
  (in the partition's schema), and only then acknowledges the batch. A new owner creates a
  consumer of its own starting right after that sequence, so what the dead one had fetched but
  not committed is delivered again at once, in order, and nothing committed is applied twice;
  an event that comes twice anyway (a node sent it twice) is recognised by its event_id (the
  ``events`` table) and counted as a duplicate. The alert state the dead owner committed is
  the state the new owner starts from. Consumers are replicated like the stream (one
  replica lives on only one server: when that server died, its partition stalled unseen).

Alerts are published, from each partition's outbox, as plain NATS messages on
``soundalert.v1.<site>.alerts`` (MQTT subscribers of ``soundalert/v1/<site>/alerts`` receive
them). Not done yet in the hosted mode: retained per-category state, delivery acks to nodes,
status and feedback subjects (a home's service does all of these over MQTT).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import psycopg
from nats.aio.client import Client as Nats
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.decode import Reason, Rejected, decode
from schemas.messages import Alert, ClassificationEvent
from schemas.topics import Topics
from services.aggregator.core import Aggregator
from services.aggregator.metrics import AggregatorMetrics
from services.aggregator.policy import Policy, load_policy
from services.aggregator.store import StorageError
from services.aggregator.store_pg import PartitionTaken, PostgresStore

__all__ = [
    "EVENTS_STREAM",
    "HostedAggregator",
    "HostedSettings",
    "events_stream_config",
    "partition_lock",
    "partition_mapping",
]

log = logging.getLogger(__name__)

EVENTS_STREAM = "EVENTS"
_BATCH = 256
_SEQ_KEY = "stream_seq"  # meta: the last stream sequence whose effects are committed
_FETCH_FAILURES = 5  # fetches failing in a row before the consumer is made again


def partition_mapping(partitions: int) -> dict[str, str]:
    """The NATS subject mapping that partitions events by site (token 1 after the prefix)."""
    return {
        "soundalert.v1.*.*.events": (
            f"sa.events.{{{{partition({partitions},1)}}}}.{{{{wildcard(1)}}}}.{{{{wildcard(2)}}}}"
        )
    }


def partition_lock(prefix: str, number: int) -> int:
    """The PostgreSQL advisory lock key of a partition (a signed 64-bit number)."""
    digest = hashlib.sha256(f"soundalert-partition:{prefix}:{number}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def events_stream_config(replicas: int) -> StreamConfig:
    """Every partition's events, on disk, on ``replicas`` servers (3: one server's death loses
    nothing); publishers may dedupe by ``Nats-Msg-Id`` (the event id) for two minutes."""
    return StreamConfig(
        name=EVENTS_STREAM,
        subjects=["sa.events.>"],
        storage=StorageType.FILE,
        num_replicas=replicas,
        duplicate_window=120.0,
        max_age=7 * 86400.0,
    )


class HostedSettings(BaseSettings):
    """One hosted aggregator process (``SOUNDALERT_HOSTED_*`` environment variables)."""

    model_config = SettingsConfigDict(env_prefix="SOUNDALERT_HOSTED_", extra="forbid",
                                      frozen=True)  # fmt: skip

    name: str = Field(description="This aggregator's name (logs and consumer bookkeeping).")
    nats_servers: list[str] = Field(description="nats://host:port of every cluster server.")
    nats_user: str | None = Field(default=None, description="NATS user.")
    nats_password: SecretStr | None = Field(default=None, description="NATS password.")
    database_url: str = Field(description="postgresql://... holding every partition's schema.")
    partitions: int = Field(default=6, ge=1, le=1024, description="Partitions of the stream.")
    schema_prefix: str = Field(
        default="p",
        pattern=r"^[a-z_][a-z0-9_]{0,40}$",
        description="Partition n keeps its state in the PostgreSQL schema <prefix><n>.",
    )
    preferred: list[int] = Field(
        default_factory=list, description="Partitions this one claims at once when free."
    )
    takeover_after_s: float = Field(
        default=2.0, ge=0, description="Claim a free partition that is not ours after this."
    )
    startup_grace_s: float = Field(
        default=10.0,
        ge=0,
        description="Claim no partition but this one's preferred ones this long after it "
        "starts (aggregators started together each get their own first).",
    )
    claim_every_s: float = Field(default=0.5, gt=0, description="How often to look for free "
                                 "partitions.")  # fmt: skip
    tick_s: float = Field(default=1.0, gt=0, description="Supervision and reminders.")
    policy_file: Path | None = Field(default=None, description="Alert policy YAML.")
    stats_file: Path | None = Field(
        default=None, description="Append one JSON line a second: what this process did."
    )


@dataclass
class _Partition:
    number: int
    store: PostgresStore
    core: Aggregator
    subscription: JetStreamContext.PullSubscription
    claimed_at: float
    js: JetStreamContext
    publishing: asyncio.Lock = field(default_factory=asyncio.Lock)
    first_event_at: float | None = None
    processed: int = 0


@dataclass
class _Counters:
    processed: int = 0
    duplicates: int = 0
    rejected: int = 0
    alerts: int = 0
    claims: list[dict[str, float]] = field(default_factory=list)


class HostedAggregator:
    """Owns some partitions of the events stream; runs until :meth:`stop` or SIGTERM."""

    def __init__(self, settings: HostedSettings, *, policy: Policy | None = None) -> None:
        self.settings = settings
        self.policy = policy or load_policy(settings.policy_file)
        self.metrics = AggregatorMetrics()
        self.topics = Topics("soundalert/v1")
        self.partitions: dict[int, _Partition] = {}
        self.counters = _Counters()
        self._free_since: dict[int, float] = {}
        self._started = time.monotonic()
        self._stop = asyncio.Event()
        self._nc: Nats | None = None

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        password = self.settings.nats_password
        self._nc = await nats.connect(
            servers=self.settings.nats_servers,
            user=self.settings.nats_user,
            password=password.get_secret_value() if password else None,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.25,
            name=self.settings.name,
        )
        js = self._nc.jetstream(timeout=10)
        await _ensure_stream(js, replicas=min(3, len(self.settings.nats_servers)))
        try:
            async with asyncio.TaskGroup() as group:
                workers: dict[int, asyncio.Task[None]] = {}
                stats = group.create_task(self._stats())
                ticker = group.create_task(self._ticker())
                while not self._stop.is_set():
                    for number in await self._claim(js):
                        workers[number] = group.create_task(self._consume(number))
                    for number, task in list(workers.items()):
                        if task.done():  # lost its partition (connection or lock)
                            del workers[number]
                            self._release(number)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), self.settings.claim_every_s)
                for task in (*workers.values(), stats, ticker):
                    task.cancel()
        finally:
            for number in list(self.partitions):
                self._release(number)
            self._write_stats()
            try:
                await asyncio.wait_for(self._nc.drain(), 5.0)
            except (TimeoutError, nats.errors.Error):
                await self._nc.close()

    # -- ownership ---------------------------------------------------------------------------
    async def _claim(self, js: JetStreamContext) -> list[int]:
        """Lock free partitions: preferred ones at once, others once free for a while."""
        claimed = []
        now = time.monotonic()
        for number in range(self.settings.partitions):
            if number in self.partitions:
                continue
            if number not in self.settings.preferred:
                since = self._free_since.setdefault(number, now)
                if (now - since < self.settings.takeover_after_s
                        or now - self._started < self.settings.startup_grace_s):  # fmt: skip
                    continue
            try:
                store = await asyncio.to_thread(
                    PostgresStore, self.settings.database_url,
                    schema=f"{self.settings.schema_prefix}{number}",
                    lock=partition_lock(self.settings.schema_prefix, number),
                )  # fmt: skip
            except PartitionTaken:
                self._free_since.pop(number, None)  # owned: the clock restarts when it is not
                continue
            except psycopg.Error:
                log.exception("cannot open partition %d's state", number)
                continue
            try:
                subscription = await _resume_consumer(js, number, store, self.settings.name)
            except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
                log.warning("partition %d: cannot resume its consumer (%s); retrying", number, exc)
                store.close()  # and its lock: whoever gets there first takes it
                continue
            core = Aggregator(self.policy, store, self.metrics)
            self.partitions[number] = _Partition(number, store, core, subscription, time.time(),
                                                 js=js)  # fmt: skip
            self.counters.claims.append({"partition": number, "at": time.time()})
            log.info("%s owns partition %d", self.settings.name, number)
            claimed.append(number)
        return claimed

    def _release(self, number: int) -> None:
        part = self.partitions.pop(number, None)
        if part is not None:
            with contextlib.suppress(psycopg.Error):
                part.store.close()

    # -- events ------------------------------------------------------------------------------
    async def _consume(self, number: int) -> None:
        """Until the partition is lost; never raises (a sibling's failure must not stop the
        other partitions)."""
        try:
            await self._consume_until_lost(self.partitions[number])
        except Exception:
            log.exception("partition %d stopped; giving it up", number)

    async def _consume_until_lost(self, part: _Partition) -> None:
        failures = 0
        while True:
            try:
                messages = await part.subscription.fetch(_BATCH, timeout=0.5)
            except TimeoutError:  # nothing new (nats-py's own TimeoutError is one too)
                continue
            except nats.errors.Error as exc:  # reconnecting, or the consumer's server is gone
                failures += 1
                log.warning("partition %d: fetch failed (%s)", part.number, exc)
                await asyncio.sleep(0.2)
                if failures >= _FETCH_FAILURES:
                    with contextlib.suppress(TimeoutError, nats.errors.Error, nats.js.errors.Error):
                        part.subscription = await _resume_consumer(
                            part.js, part.number, part.store, self.settings.name)  # fmt: skip
                        failures = 0
                continue
            failures = 0
            now = time.time()
            alerts: list[Alert] = []
            for message in messages:
                alerts += self._handle(part, message.subject, message.data, now)
            if messages:
                part.store.set_meta(_SEQ_KEY, str(messages[-1].metadata.sequence.stream))
            if not self._commit(part):
                return  # not ours any more (the lock went with the connection)
            for message in messages:
                await message.ack()
            part.processed += len(messages)
            self.counters.processed += len(messages)
            if part.first_event_at is None and messages:
                part.first_event_at = time.time()
            await self._publish(part)

    def _handle(self, part: _Partition, subject: str, payload: bytes, now: float) -> list[Alert]:
        # sa.events.<partition>.<site>.<node>
        tokens = subject.split(".")
        topic = self.topics.events(tokens[3], tokens[4]) if len(tokens) == 5 else subject
        parsed = self.topics.parse(topic)
        if parsed is None or parsed.kind != "events":
            self.counters.rejected += 1
            log.warning("rejected %s (%s)", subject, Reason.UNKNOWN_TOPIC.value)
            return []
        before = self.metrics.duplicates._value.get()  # noqa: SLF001 - a local count
        try:
            with part.store.isolated():
                event = decode(ClassificationEvent, payload, parsed)
                alerts = part.core.handle_event(event, now)
                self._enqueue(part, alerts)
                part.core.flush()
        except Rejected as rejected:
            self.counters.rejected += 1
            log.warning("rejected %s (%s): %s", subject, rejected.reason.value, rejected.detail)
            return []
        except part.store.errors:
            raise  # the database, not the message: give the partition up
        except Exception as exc:
            self.counters.rejected += 1
            log.exception("failed to process %s (dead-lettered)", subject)
            with part.store.isolated():
                detail = f"{type(exc).__name__}: {exc}"
                part.store.dead_letter(subject, payload, reason=Reason.INTERNAL_ERROR.value,
                                       detail=detail, received=now)  # fmt: skip
            # The core may hold half of the message's effects: rebuild it from the store.
            previous = part.core
            part.core = Aggregator(self.policy, part.store, self.metrics)
            part.core.adopt(previous)
            return []
        self.counters.duplicates += int(self.metrics.duplicates._value.get() - before)  # noqa: SLF001
        return alerts

    def _enqueue(self, part: _Partition, alerts: list[Alert]) -> None:
        for alert in alerts:
            part.store.enqueue(f"soundalert.v1.{alert.site}.alerts", alert.to_json(),
                               retain=False)  # fmt: skip
            self.counters.alerts += alert.state == "raised"

    def _commit(self, part: _Partition) -> bool:
        try:
            part.store.commit()
        except (StorageError, PartitionTaken) as exc:
            log.error("partition %d: cannot commit (%s); giving it up", part.number, exc)  # noqa: TRY400
            return False
        return True

    async def _publish(self, part: _Partition) -> None:
        """Send the committed outbox, once: the consumer and the ticker both call this, and
        only one at a time reads and sends the pending rows."""
        async with part.publishing:
            pending = part.store.pending_publications()
            if not pending or self._nc is None:
                return
            try:
                for publication in pending:
                    await self._nc.publish(publication.topic, publication.payload)
                await self._nc.flush(timeout=5)
            except (TimeoutError, nats.errors.Error) as exc:  # sent again next time
                log.warning("partition %d: alerts not sent yet (%s)", part.number, exc)
                return
            part.store.published([p.id for p in pending if p.id is not None])
            self._commit(part)

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.settings.tick_s)
            now = time.time()
            for part in list(self.partitions.values()):
                try:
                    with part.store.isolated():
                        self._enqueue(part, part.core.tick(now))
                        part.core.flush()
                    if self._commit(part):
                        await self._publish(part)
                except Exception:  # its consumer notices a lost partition and gives it up
                    log.exception("partition %d: supervision tick failed", part.number)

    # -- what it did -------------------------------------------------------------------------
    async def _stats(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self._write_stats()

    def _write_stats(self) -> None:
        if self.settings.stats_file is None:
            return
        cpu = os.times()
        line = {
            "name": self.settings.name,
            "at": time.time(),
            "cpu_s": cpu.user + cpu.system,
            "processed": self.counters.processed,
            "duplicates": self.counters.duplicates,
            "rejected": self.counters.rejected,
            "alerts_raised": self.counters.alerts,
            "partitions": {
                str(p.number): {"claimed_at": p.claimed_at, "first_event_at": p.first_event_at,
                                "processed": p.processed}
                for p in self.partitions.values()
            },
        }  # fmt: skip
        with self.settings.stats_file.open("a") as out:
            out.write(json.dumps(line) + "\n")


async def _ensure_stream(js: JetStreamContext, *, replicas: int) -> None:
    config = events_stream_config(replicas)
    for attempt in range(40):  # a new cluster elects its JetStream leader first
        try:
            with contextlib.suppress(NotFoundError):
                await js.stream_info(EVENTS_STREAM)
                return  # an operator's, or another aggregator's
            await js.add_stream(config)
        except nats.js.errors.BadRequestError:
            return  # exists (with this configuration or an operator's)
        except (nats.errors.Error, nats.js.errors.Error):
            if attempt == 39:
                raise
            await asyncio.sleep(0.5)
        else:
            return


async def _resume_consumer(
    js: JetStreamContext, number: int, store: PostgresStore, owner: str
) -> JetStreamContext.PullSubscription:
    """A consumer of the partition that starts right after the last stream sequence whose
    effects the store committed, removed by the servers a minute after its owner stops
    fetching (a dead owner's consumers clean themselves up)."""
    committed = store.meta(_SEQ_KEY)
    start: dict[str, Any] = (
        {"deliver_policy": DeliverPolicy.ALL} if committed is None
        else {"deliver_policy": DeliverPolicy.BY_START_SEQUENCE,
              "opt_start_seq": int(committed) + 1}
    )  # fmt: skip
    durable = f"agg-p{number}-{owner}-{uuid.uuid4().hex[:8]}"
    await js.add_consumer(
        EVENTS_STREAM,
        ConsumerConfig(durable_name=durable, filter_subject=f"sa.events.{number}.>",
                       ack_policy=AckPolicy.EXPLICIT, ack_wait=30.0, max_ack_pending=20_000,
                       inactive_threshold=60.0, **start),
    )  # fmt: skip
    return await js.pull_subscribe_bind(durable=durable, stream=EVENTS_STREAM)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(HostedAggregator(HostedSettings()).run())


if __name__ == "__main__":
    main()
