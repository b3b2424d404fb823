"""The serial bridge's async shell: serial port in, durable outbox, MQTT out.

Two tasks run side by side. The *serial loop* opens the board's port (a fixed path, or the
RP2040 found by USB vendor id), feeds every byte to the pure parser
(:class:`edge.dsp.protocol.FrameParser`) and core (:class:`edge.serial_bridge.core.BridgeCore`)
and commits the events to the outbox. When the port goes away (unplugged: end of file or an
error on read) or no valid frame arrives for ``silence_s``, the node's retained status turns
``offline`` at once (the process is alive, so its last will would not fire) and the loop
reopens the port with capped backoff; the first valid frame afterwards turns it ``online``.
The *MQTT loop* is the agent's :class:`edge.agent.publisher.NodePublisher`: outbox drain with
end-to-end delivery (or PUBACK, ``--delivery broker``), retained status with a last will,
heartbeats. It starts once the node id is known
(``--node``, the board's USB serial number, or its HELLO).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Final

import serial

from edge.agent.publisher import FatalConnectError, NodePublisher, event_priority
from edge.dsp.protocol import Frame, FrameParser, Rejection
from edge.outbox import Outbox, OutboxMessage
from edge.serial_bridge.core import BridgeCore, node_id_for_board
from edge.serial_bridge.metrics import BridgeMetrics
from edge.serial_bridge.port import PortGone, SerialLink, find_boards, usb_serial_for
from edge.serial_bridge.settings import BridgeSettings
from schemas.common import utc_now
from schemas.messages import ClassificationEvent, NodeState, NodeStatus
from schemas.topics import Topics
from soundalert import __version__
from soundalert.lifecycle import cancel_until_done, handle_signals, metrics_server
from soundalert.mqtt import Backoff, BrokerUrl

__all__ = ["SerialBridge"]

log = logging.getLogger(__name__)

_LOG_EACH_REASON: Final = 10
"""Rejections logged at WARNING per reason; later ones at DEBUG (a noisy line floods logs)."""


class SerialBridge:
    """Runs one board's bridge until :meth:`stop` (or SIGTERM/SIGINT)."""

    def __init__(self, settings: BridgeSettings, *, metrics: BridgeMetrics | None = None) -> None:
        settings.check_port()
        self.settings = settings
        self.broker = BrokerUrl.parse(settings.broker.get_secret_value())
        self.topics = Topics(settings.topic_root)
        self.metrics = metrics or BridgeMetrics()
        self.core = BridgeCore(settings.site, settings.node, self.metrics,
                               levels=settings.levels, max_skew_s=settings.max_skew_s)  # fmt: skip
        self.outbox: Outbox | None = None
        self.publisher: NodePublisher | None = None
        self.failure: str | None = None
        self.board_up = False
        self.board_problem = "not connected yet"
        self.port_path: str | None = None
        self._usb_serial: str | None = None
        self._logged: Counter[str] = Counter()
        self._stop = asyncio.Event()
        self._node_known = asyncio.Event()
        self._events_topic = ""
        self._started = time.monotonic()
        self.metrics.board_connected.set(0)
        if settings.node is not None:
            self._open_outbox(settings.node)

    def stop(self) -> None:
        self._stop.set()

    # -- lifecycle ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Run until stopped. Sets :attr:`failure` (and returns) on a fatal problem."""
        handle_signals(self.stop)
        with metrics_server(self.settings.metrics_port, self.settings.metrics_host,
                            self.metrics.registry):  # fmt: skip
            try:
                async with asyncio.TaskGroup() as group:
                    reader = group.create_task(self._serial())
                    mqtt = group.create_task(self._mqtt())
                    await self._stop.wait()
                    await cancel_until_done([reader, mqtt])
            finally:
                if self.outbox is not None:
                    left = self.outbox.depth
                    self.outbox.close()
                    published = self.publisher.published if self.publisher else 0
                    log.info("serial bridge stopped: %d events published, %d left in the outbox",
                             published, left)  # fmt: skip

    def _open_outbox(self, node: str) -> None:
        s = self.settings
        self.outbox = s.open_outbox(s.outbox_path_for(node))
        self.core.node = node
        self.core.next_seq = max(self.core.next_seq, self.outbox.meta("next_seq"))
        if self.outbox.depth:
            log.info("outbox %s holds %d events from before; they go first",
                     self.outbox.path, self.outbox.depth)  # fmt: skip
        self.publisher = NodePublisher(
            self.broker, s.client_id_for(node), self.outbox, topics=self.topics, site=s.site,
            node=node, status=self._status, stats=self._stats, metrics=self.metrics,
            timing=s.timing(), delivery=s.delivery,
        )  # fmt: skip
        self.publisher.set_state("online" if self.board_up else "offline")
        self._events_topic = self.topics.events(s.site, node)
        self._node_known.set()

    # -- serial -> outbox --------------------------------------------------------------------
    def _resolve_port(self) -> str | None:
        if self.settings.port is not None:
            return self.settings.port
        boards = find_boards()
        if not boards:
            return None
        chosen = next((b for b in boards if b.serial_number == self._usb_serial), boards[0])
        if len(boards) > 1 and self._usb_serial is None:
            log.warning("%d RP2040 boards found (%s); using %s - run one bridge per board with "
                        "--port", len(boards), ", ".join(b.device for b in boards),
                        chosen.device)  # fmt: skip
        self._usb_serial = chosen.serial_number
        return chosen.device

    async def _serial(self) -> None:
        backoff = Backoff(initial=0.1, maximum=self.settings.reopen_max_s)
        last_problem = ""
        while True:
            path = self._resolve_port()
            link = None
            problem = "no RP2040 board (USB vendor id 0x2E8A) found"
            if path is not None:
                try:
                    link = SerialLink(path, self.settings.baudrate)
                except (serial.SerialException, OSError, ValueError) as exc:
                    problem = f"cannot open {path}: {exc}"
            if link is None:
                if problem != last_problem:
                    log.warning("%s; retrying", problem)
                    last_problem = problem
                self.board_problem = problem
                await asyncio.sleep(backoff.next_delay())
                continue
            last_problem = ""
            backoff.reset()
            self.port_path = path
            self.metrics.port_opens.inc()
            log.info("opened %s", path)
            self._learn_node_from_usb(link.path)
            parser = FrameParser()
            try:
                await self._pump(link, parser)
            except PortGone as gone:
                self._board_down(f"port lost: {gone}")
            finally:
                link.close()
                self._handle(parser.finish(), time.time())

    def _learn_node_from_usb(self, path: str) -> None:
        if self.core.node is not None:
            return
        usb = usb_serial_for(path)
        if usb:
            node = node_id_for_board(f"rp2040-{usb}")
            log.info("board USB serial number %s: publishing as node %s", usb, node)
            self._open_outbox(node)

    async def _pump(self, link: SerialLink, parser: FrameParser) -> None:
        while True:
            try:
                async with asyncio.timeout(self.settings.silence_s):
                    data = await link.read()
            except TimeoutError:
                self._board_down(f"no frame from the board for {self.settings.silence_s:g} s")
                continue
            self._handle(parser.feed(data), time.time())

    def _handle(self, items: list[Frame | Rejection], arrived: float) -> None:
        events: list[ClassificationEvent] = []
        valid = False
        for item in items:
            try:
                if isinstance(item, Rejection):
                    self._log_rejection(item)
                else:
                    valid = True
                events += self.core.feed(item, arrived)
            except Exception:  # one bad frame must never stop the bridge
                self.metrics.dropped_frames.labels("internal_error").inc()
                log.exception("failed to handle %r from %s", item, self.port_path)
            if self.core.node is not None and self.outbox is None:
                self._open_outbox(self.core.node)
        if valid:
            self._board_online()
        if events:
            self._queue(events)

    def _log_rejection(self, rejection: Rejection) -> None:
        self._logged[rejection.reason] += 1
        level = logging.WARNING if self._logged[rejection.reason] <= _LOG_EACH_REASON else (
            logging.DEBUG)  # fmt: skip
        log.log(level, "rejected serial input on %s (%s): %r", self.port_path, rejection.reason,
                rejection.raw)  # fmt: skip

    def _queue(self, events: list[ClassificationEvent]) -> None:
        if self.outbox is None or self.publisher is None:
            return  # the core drops (and counts) events until the node is known
        messages = [OutboxMessage(e.event_id, self._events_topic, e.to_json(),
                                  priority=event_priority(e), seq=e.seq)
                    for e in events]  # fmt: skip
        self.publisher.queue(messages, meta={"next_seq": self.core.next_seq})

    def _board_online(self) -> None:
        if self.board_up:
            return
        self.board_up = True
        self.board_problem = ""
        self.metrics.board_connected.set(1)
        log.info("board on %s is sending frames: node online", self.port_path)
        if self.publisher is not None:
            self.publisher.set_state("online")

    def _board_down(self, problem: str) -> None:
        self.board_problem = problem
        if not self.board_up:
            return
        self.board_up = False
        self.metrics.board_connected.set(0)
        log.warning("board lost (%s): node offline", problem)
        if self.publisher is not None:
            self.publisher.set_state("offline")

    # -- MQTT --------------------------------------------------------------------------------
    def _status(self, state: NodeState, stats: dict[str, float | int | str] | None
                ) -> NodeStatus:  # fmt: skip
        node = self.core.node
        assert node is not None  # the publisher exists only once the node is known
        return NodeStatus(
            site=self.settings.site,
            node=node,
            state=state,
            at=utc_now(),
            heartbeat_s=self.settings.heartbeat_s,
            software=f"soundalert-serial-bridge {__version__}",
            capabilities=["patterns", "rp2040"],
            stats=stats or {},
        )

    def _stats(self) -> dict[str, float | int | str]:
        stats = self.core.stats()
        if self.publisher is not None:
            stats.update(self.publisher.figures())
        stats.update(
            uptime_s=round(time.monotonic() - self._started, 1),
            port=self.port_path or "",
        )
        if self.board_problem:
            stats["board_problem"] = self.board_problem[:200]
        return stats

    async def _mqtt(self) -> None:
        if not self._node_known.is_set():
            log.info("waiting for the board's HELLO (or --node) to learn the node id")
        await self._node_known.wait()
        assert self.publisher is not None
        try:
            await self.publisher.run()
        except FatalConnectError as exc:
            self.failure = str(exc)
            self.stop()
