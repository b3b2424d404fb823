"""The agent's Prometheus metrics, on a registry passed in (tests stay isolated)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from edge.outbox import DROP_REASONS
from soundalert import __version__

__all__ = ["INFERENCE_BUCKETS", "AgentMetrics", "PublisherMetrics"]

INFERENCE_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5,
)  # fmt: skip


class PublisherMetrics:
    """Outbox and MQTT figures of one node process (the agent, the serial bridge)."""

    def __init__(self, registry: CollectorRegistry | None = None, *, component: str) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.queued = Counter(
            "soundalert_events_queued_total",
            "Events written to the outbox.",
            registry=r,
        )
        self.sent = Counter(
            "soundalert_events_sent_total",
            "Event publications the broker acknowledged (PUBACK), resends included.",
            registry=r,
        )
        self.resent = Counter(
            "soundalert_events_resent_total",
            "Events published again: after a reconnect, or when acks stopped advancing.",
            registry=r,
        )
        self.published = Counter(
            "soundalert_events_published_total",
            "Events delivered and deleted from the outbox: covered by the aggregator's ack "
            "(end-to-end delivery) or acknowledged by the broker (broker delivery).",
            registry=r,
        )
        self.dropped = Counter(
            "soundalert_events_dropped_total",
            "Events dropped from the outbox, by reason: outbox_full (the bound), disk_full "
            "(to make room on a full disk, or from the full in-memory queue), storage_error.",
            ["reason"],
            registry=r,
        )
        for reason in DROP_REASONS:
            self.dropped.labels(reason)
        self.outbox_depth = Gauge(
            "soundalert_outbox_messages",
            "Events in the outbox waiting for delivery (on disk and in memory).",
            registry=r,
        )
        self.outbox_memory = Gauge(
            "soundalert_outbox_memory_messages",
            "Events held in memory because the disk refused them (full or failing).",
            registry=r,
        )
        self.outbox_writable = Gauge(
            "soundalert_outbox_writable",
            "1 while the outbox can write to disk; 0 while the disk refuses.",
            registry=r,
        )
        self.acked_seq = Gauge(
            "soundalert_delivery_acked_seq",
            "Highest event seq the aggregator acknowledged end to end (-1: none yet).",
            registry=r,
        )
        self.acked_seq.set(-1)
        self.acks_ignored = Counter(
            "soundalert_delivery_acks_ignored_total",
            "Acks the node did not apply, by reason (earlier_life: at or above its next seq).",
            ["reason"],
            registry=r,
        )
        self.mqtt_connected = Gauge(
            "soundalert_mqtt_connected",
            "1 while connected to the MQTT broker.",
            registry=r,
        )
        self.build = Info("soundalert_build", "soundalert version.", registry=r)
        self.build.info({"version": __version__, "component": component})


class AgentMetrics(PublisherMetrics):
    """Metrics of one agent process (one node)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry, component="agent")
        r = self.registry
        self.inference = Histogram(
            "soundalert_inference_seconds",
            "Time to run the classifier on one window.",
            buckets=INFERENCE_BUCKETS,
            registry=r,
        )
        self.windows = Counter(
            "soundalert_windows_analysed_total",
            "Windows that went through the classifier.",
            registry=r,
        )
        self.windows_gated = Counter(
            "soundalert_windows_gated_total",
            "Windows below the level gate (no inference; level still reported).",
            registry=r,
        )
        self.pattern_detections = Counter(
            "soundalert_pattern_detections_total",
            "Temporal-pattern detections (T3, T4, 520 Hz), by kind.",
            ["kind"],
            registry=r,
        )
        self.audio_dropped = Counter(
            "soundalert_audio_blocks_dropped_total",
            "Audio blocks a live source dropped because the pipeline fell behind.",
            registry=r,
        )
        self.sound_packs = Gauge(
            "soundalert_sound_packs",
            "Learned sounds (sound packs of the site) this node recognises.",
            registry=r,
        )
        self.sound_packs_rejected = Counter(
            "soundalert_sound_packs_rejected_total",
            "Sound packs refused, by reason (corrupt_weights, wrong_embedding_model, ...).",
            ["reason"],
            registry=r,
        )
        self.learn_requests = Counter(
            "soundalert_learn_requests_total",
            "'This was my ...' requests, by result: learned, no_windows, or the reason the "
            "request was refused.",
            ["result"],
            registry=r,
        )
        self.personal_detections = Counter(
            "soundalert_personal_detections_total",
            "Windows recognised as a learned sound.",
            registry=r,
        )
        self.level = Gauge(
            "soundalert_input_level_dbfs",
            "RMS level of the latest window, dB relative to full scale.",
            registry=r,
        )
