"""The notifier's async shell: MQTT in, channel workers out, the clock, metrics, signals.

The shell owns all I/O; :class:`~services.notifier.core.NotifierCore` owns every decision.
Delivery guarantees:

* alert state changes arrive at QoS 1 on a persistent session and are acknowledged only after
  their deliveries, the ``seen`` marker and the alert's track are committed to SQLite;
* a delivery leaves the outbox once its channel settled it (delivered, failed after its
  retries, expired or superseded); a crash in between re-sends at most that one notification;
* escalation timers live in SQLite, so a restart keeps a pending escalation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterable

import aiohttp
import aiomqtt

from schemas.common import utc_now
from schemas.decode import Reason, Rejected, decode
from schemas.messages import Alert, CategoryState, DeliveryAck, NodeState, NodeStatus
from schemas.topics import ParsedTopic, Topics
from services.aggregator.policy import Policy, load_policy
from services.homeassistant.discovery import PRESS, Discovery
from services.homeassistant.state import HaState
from services.notifier.channels import (
    AppriseSender,
    ChannelWorker,
    MqttSender,
    Sender,
    WebhookSender,
)
from services.notifier.config import AppriseChannel, MqttChannel, NotifierSettings
from services.notifier.core import Decision, Delivery, NotifierCore, recipient_key
from services.notifier.metrics import NotifierMetrics
from services.notifier.store import Store
from soundalert import __version__
from soundalert.lifecycle import (
    announced,
    cancel_until_done,
    handle_signals,
    metrics_server,
    open_state,
    save_state,
    service_link,
    service_status,
)
from soundalert.mqtt import BrokerUrl, ack

__all__ = ["NotifierService"]

log = logging.getLogger(__name__)

_TRUNCATE = 200
_PRUNE_EVERY_S = 3600.0
_DRAIN_S = 3.0
NODE_OFFLINE = "node_offline"
STORAGE_TROUBLE = "storage_trouble"
_HA_SETTLE_S = 1.0


class NotifierService:
    """Runs the notifier until :meth:`stop` (or SIGTERM/SIGINT)."""

    def __init__(self, settings: NotifierSettings, *, policy: Policy | None = None,
                 metrics: NotifierMetrics | None = None, handle_signals: bool = True,
                 ) -> None:  # fmt: skip
        self.settings = settings
        self.broker = BrokerUrl.parse(settings.broker)
        self.topics = Topics(settings.topic_root)
        self.metrics = metrics or NotifierMetrics()
        self.policy = policy or load_policy(settings.policy_file)
        self.core = NotifierCore(settings)
        ha = settings.homeassistant
        self.discovery = Discovery(self.topics, ha.prefix, ha.instance, __version__)
        self._client: aiomqtt.Client | None = None
        self._http: aiohttp.ClientSession | None = None
        self._stop = asyncio.Event()
        self._announced: set[tuple[str, str]] = set()
        """(site, "") and (site, node) whose discovery configs are published."""
        self._ha_wanted: set[tuple[str, str]] = set()
        """The same, to announce: configs go out once the entity's state is published."""
        self.ha = HaState()
        self._ha_published: dict[tuple[str, str], bytes] = {}
        self._ha_from = float("inf")
        """Monotonic time from which entity states are published: a moment after subscribing,
        so retained category states and statuses are in before the first OFF goes out."""
        self.workers: dict[str, ChannelWorker] = {}
        self._recipients: dict[str, int] = {}
        """Apprise channels of several URLs: how many (each URL is its own delivery)."""
        for site, cfg in settings.sites.items():
            for name, channel in cfg.channels.items():
                senders: dict[str, Sender] = {}
                if isinstance(channel, AppriseChannel):
                    many = len(channel.urls) > 1
                    if many:
                        self._recipients[recipient_key(site, name)] = len(channel.urls)
                    for number in range(1, len(channel.urls) + 1):
                        key = recipient_key(site, name, number if many else 0)
                        senders[key] = AppriseSender(f"{site}/{name}", channel, cfg.zone(),
                                                     number=number,
                                                     display_url=settings.display_url)  # fmt: skip
                elif isinstance(channel, MqttChannel):
                    senders[recipient_key(site, name)] = MqttSender(channel, lambda: self._client)
                else:
                    senders[recipient_key(site, name)] = WebhookSender(channel, self._session)
                for key, sender in senders.items():
                    self.workers[key] = ChannelWorker(key, sender, channel.retry, self.metrics,
                                                      self._settled)  # fmt: skip
        self.store, _ = open_state(Store, settings.database, self.metrics)
        self._handle_signals = handle_signals

    def stop(self) -> None:
        self._stop.set()

    def snooze(self, site: str, category: str, until: float) -> None:
        """Hold back ``category`` at ``site`` until the epoch second ``until``. Critical
        categories cannot be snoozed (and critical alerts ignore snoozes regardless)."""
        cat = self.policy.categories.get(category)
        if cat is not None and cat.priority == "critical":
            raise ValueError(f"{category} is critical and cannot be snoozed")
        self.store.set_snooze(site, category, until)

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            raise RuntimeError("the notifier is not running")
        return self._http

    def _settled(self, outbox_id: int) -> None:
        self.store.done(outbox_id)

    # -- lifecycle ---------------------------------------------------------------------------
    async def run(self) -> None:
        if self._handle_signals:
            handle_signals(self.stop)
        with metrics_server(self.settings.metrics_port, self.settings.metrics_host,
                            self.metrics.registry):  # fmt: skip
            self._http = aiohttp.ClientSession()
            try:
                for queued in self.store.queued():  # undelivered before a restart
                    if queued.delivery.channel_key in self._recipients:
                        # Queued for a whole channel of several URLs: one per URL now.
                        for one in self._per_recipient([queued.delivery]):
                            self.workers[one.channel_key].put(
                                self.store.enqueue(one, queued.queued_at), one, queued.queued_at
                            )
                        self.store.done(queued.id)
                        continue
                    worker = self.workers.get(queued.delivery.channel_key)
                    if worker is None:
                        log.warning("dropping a queued notification for %s: no such channel now",
                                    queued.delivery.channel_key)  # fmt: skip
                        self.store.done(queued.id)
                    else:
                        worker.put(queued.id, queued.delivery, queued.queued_at)
                async with asyncio.TaskGroup() as group:
                    inbound = [group.create_task(self._mqtt()), group.create_task(self._ticker())]
                    workers = [group.create_task(w.run()) for w in self.workers.values()]
                    await self._stop.wait()
                    await cancel_until_done(inbound)
                    # Let attempts in flight finish, so a clean stop does not send them twice.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(_DRAIN_S):
                            await asyncio.gather(*(w.idle() for w in self.workers.values()))
                    await cancel_until_done(workers)
            finally:
                await self._http.close()
                self._http = None
                save_state(self.store.commit, self.metrics)
                self.store.close()
                log.info("notifier stopped")

    def _status(self, state: NodeState) -> bytes:
        capabilities = ["apprise", "mqtt-actions", "webhook", "escalation", "homeassistant"]
        return service_status("notifier", state, heartbeat_s=self.settings.status_heartbeat_s,
                              capabilities=capabilities)  # fmt: skip

    async def _mqtt(self) -> None:
        await service_link(self.broker, self.settings.client_id,
                           self.topics.service_status("notifier"), self._status,
                           self._mqtt_session, on_lost=self._disconnected)  # fmt: skip

    def _disconnected(self) -> None:
        self._client = None
        self.metrics.mqtt_connected.set(0)

    async def _mqtt_session(self, client: aiomqtt.Client) -> None:
        status_topic = self.topics.service_status("notifier")
        ha = self.settings.homeassistant
        try:
            filters = [(self.topics.all_alerts, 1), (self.topics.all_status, 1)]
            if ha.enabled:
                root = self.topics.root
                filters += [
                    (f"{ha.prefix}/status", 1),
                    (f"{root}/+/alerts/+/state", 1),
                    (f"{root}/+/+/ack", 1),
                    (self.discovery.command_topic("+"), 1),
                ]
            self._ha_published.clear()
            self._ha_from = time.monotonic() + _HA_SETTLE_S
            await client.subscribe(filters)
            async with announced(client, status_topic, self._status,
                                 self.settings.status_heartbeat_s):  # fmt: skip
                self._client = client
                self.metrics.mqtt_connected.set(1)
                self._announced.clear()
                self._want_sites(ha.sites + list(self.settings.sites))
                async for message in client.messages:
                    await self._handle(client, message)
                    ack(client, message)
        finally:
            self._disconnected()

    # -- inbound -----------------------------------------------------------------------------
    async def _handle(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        topic = str(message.topic)
        raw = message.payload
        payload = bytes(raw) if isinstance(raw, bytes | bytearray) else str(raw or "").encode()
        try:
            ha = self.settings.homeassistant
            if ha.enabled and topic == f"{ha.prefix}/status":
                if payload.strip() == b"online":  # Home Assistant restarted: announce again
                    self._announced.clear()
                    self._ha_published.clear()
                    await self._publish_ha()
                return
            if ha.enabled and (pressed := self._pressed(topic)) is not None:
                await self._acknowledge(client, pressed, payload)
                return
            parsed = self._parse(topic)
            if parsed.kind == "alerts":
                alert = decode(Alert, payload, parsed)
                self._on_alert(alert)
                self._want_sites([alert.site])
            elif parsed.kind == "status" and parsed.node is not None and ha.enabled:
                status = decode(NodeStatus, payload, parsed)
                self.ha.node_status(status, time.time(), retained=message.retain)
                self._want_sites([parsed.site], node=parsed.node)
            elif parsed.kind == "ack" and parsed.node is not None and ha.enabled:
                # A node the aggregator stores events of, status or not: it gets an entity.
                self.ha.node_ack(decode(DeliveryAck, payload, parsed))
                self._want_sites([parsed.site], node=parsed.node)
            elif parsed.kind == "alert_state" and ha.enabled:
                self.ha.category_state(_category_state(payload, parsed))
                self._want_sites([parsed.site])
            else:
                return
            await self._publish_ha()
        except Rejected as rejected:
            self.metrics.rejected.labels(rejected.reason.value).inc()
            log.warning("rejected message on %s (%s): %s; payload %r", topic,
                        rejected.reason.value, rejected.detail, payload[:_TRUNCATE])  # fmt: skip
        except aiomqtt.MqttError:
            raise
        except Exception:  # never let one message stop the loop
            self.metrics.rejected.labels("internal_error").inc()
            log.exception("failed to process message on %s; payload %r", topic,
                          payload[:_TRUNCATE])  # fmt: skip

    def _parse(self, topic: str) -> ParsedTopic:
        parsed = self.topics.parse(topic)
        if parsed is None:
            raise Rejected(Reason.UNKNOWN_TOPIC, f"not a soundalert topic: {topic!r}")
        return parsed

    def _on_alert(self, alert: Alert) -> None:
        now = time.time()
        if self.store.seen(alert.alert_id, alert.state, alert.repeat):
            self.metrics.duplicates.inc()
            log.debug("duplicate %s %s repeat %d ignored", alert.alert_id, alert.state,
                      alert.repeat)  # fmt: skip
            return
        snoozes = {cat: until for (site, cat), until in self._snoozes(now).items()
                   if site == alert.site}  # fmt: skip
        decision = self.core.on_alert(alert, self.store.track(alert.alert_id), snoozes, now)
        if alert.site not in self.settings.sites:
            log.info("alert %s for site %s, which has no channels configured", alert.alert_id,
                     alert.site)  # fmt: skip
        self.store.mark_seen(alert.alert_id, alert.state, alert.repeat, now)
        self._commit([decision], now)

    def _snoozes(self, now: float) -> dict[tuple[str, str], float]:
        return {**self.core.static_snoozes(now), **self.store.snoozes(now)}

    def _commit(self, decisions: Iterable[Decision], now: float) -> None:
        """Persist decisions, then hand their deliveries to the channel workers."""
        queued = []
        for decision in decisions:
            self.store.save_track(decision.track)
            for held in decision.held:
                self.metrics.notifications.labels(held.channel_key, held.reason).inc()
            if decision.kind == "escalation":
                self.metrics.escalations.labels(decision.track.category).inc()
            queued += [(self.store.enqueue(delivery, now), delivery)
                       for delivery in self._per_recipient(decision.deliveries)
                       if delivery.channel_key in self.workers]  # fmt: skip
        # Sent even when the disk cannot keep the outbox: a smoke alarm must go out.
        save_state(self.store.commit, self.metrics)
        for outbox_id, delivery in queued:
            self.workers[delivery.channel_key].put(outbox_id, delivery, now)

    def _per_recipient(self, deliveries: list[Delivery]) -> list[Delivery]:
        """One delivery per URL of a channel of several (own retries, own state)."""
        out: list[Delivery] = []
        for delivery in deliveries:
            count = self._recipients.get(delivery.channel_key, 0)
            out += [delivery.to(n) for n in range(1, count + 1)] if count else [delivery]
        return out

    # -- Home Assistant ----------------------------------------------------------------------
    def _want_sites(self, sites: Iterable[str], *, node: str | None = None) -> None:
        """Give these sites (and ``node`` of them) entities in Home Assistant."""
        if not self.settings.homeassistant.enabled:
            return
        for site in sites:
            self._ha_wanted.add((site, ""))
            if node is not None:
                self._ha_wanted.add((site, node))

    def _ha_categories(self) -> dict[str, str]:
        """The categories with an entity: the policy's, and soundalert's own trouble."""
        out = {name: cat.title for name, cat in self.policy.categories.items() if cat.enabled}
        out[NODE_OFFLINE] = "Sensor stopped listening"
        out[STORAGE_TROUBLE] = "soundalert cannot save its state"
        return out

    def _pressed(self, topic: str) -> str | None:
        """The site whose acknowledge button published on ``topic``, if it is one."""
        head, _, site = topic.rpartition("/")  # <prefix>/<instance>/<site>/acknowledge
        if site != "acknowledge":
            return None
        prefix, _, name = head.rpartition("/")
        if prefix != self.discovery.command_topic("x").rsplit("/", 2)[0]:
            return None
        return name if (name, "") in self._announced else None

    async def _acknowledge(self, client: aiomqtt.Client, site: str, payload: bytes) -> None:
        """The acknowledge button in Home Assistant: every alert of the site that needs
        attention is acknowledged, by "Home Assistant" (the aggregator then says so)."""
        if payload.strip() != PRESS.encode():
            raise Rejected(Reason.SCHEMA_VIOLATION, f"the acknowledge button sent {payload[:40]!r}")
        feedbacks = self.ha.acknowledge(site, utc_now())
        for feedback in feedbacks:
            await client.publish(self.topics.feedback(site), feedback.to_json(), qos=1)
        log.info("Home Assistant acknowledged %d alert(s) at %s: %s", len(feedbacks), site,
                 ", ".join(f.alert_id for f in feedbacks) or "none needed it")  # fmt: skip

    async def _publish_ha(self) -> None:
        """Publish each entity's state that changed (retained), then the discovery configs
        not yet published: an entity is discovered with its state already there, so it is
        never ``unknown``. Nothing goes out in the first moment after subscribing, while the
        retained category states and statuses come in."""
        client = self._client
        if client is None or time.monotonic() < self._ha_from:
            return
        now = time.time()
        wanted: dict[tuple[str, str], dict[str, object]] = {}
        for site, node in self._ha_wanted:
            if node:
                wanted[(site, f"node_{node}")] = self.ha.node_payload(site, node, now)
            else:
                for category in self._ha_categories():
                    wanted[(site, f"alert_{category}")] = self.ha.category_payload(site, category)
        for (site, object_id), state in wanted.items():
            data = _json(state)
            if self._ha_published.get((site, object_id)) != data:
                await client.publish(self.discovery.state_topic(site, object_id), data, qos=1,
                                     retain=True)  # fmt: skip
                self._ha_published[(site, object_id)] = data
        for site, node in sorted(self._ha_wanted - self._announced):
            configs = [self.discovery.node(site, node)] if node else [
                *(self.discovery.category(site, category, title)
                  for category, title in self._ha_categories().items()),
                self.discovery.button(site),
            ]  # fmt: skip
            for topic, config in configs:
                await client.publish(topic, _json(config), qos=1, retain=True)
            self._announced.add((site, node))
            log.info("announced %s to Home Assistant", f"node {site}/{node}" if node
                     else f"site {site}: {len(configs) - 1} categories and its button")  # fmt: skip

    # -- time --------------------------------------------------------------------------------
    async def _ticker(self) -> None:
        last_prune = time.monotonic()
        while True:
            await asyncio.sleep(self.settings.tick_s)
            now = time.time()
            try:
                self._commit(self.core.due(self.store.escalating(), self._snoozes(now), now), now)
                if self.settings.homeassistant.enabled:
                    with contextlib.suppress(aiomqtt.MqttError):  # published again next tick
                        await self._publish_ha()
                if time.monotonic() - last_prune > _PRUNE_EVERY_S:
                    last_prune = time.monotonic()
                    self.store.prune(now)
            except Exception:  # a bug in one duty must not stop escalation for good
                log.exception("escalation tick failed")


def _category_state(payload: bytes, parsed: ParsedTopic) -> CategoryState:
    state = decode(CategoryState, payload, parsed)
    if (state.site, state.category) != (parsed.site, parsed.category):
        raise Rejected(Reason.TOPIC_MISMATCH, f"payload {state.site}/{state.category}")
    return state


def _json(config: dict[str, object]) -> bytes:
    return json.dumps(config, separators=(",", ":")).encode()
