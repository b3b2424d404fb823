"""The display's Prometheus metrics, on a registry passed in (tests stay isolated)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from soundalert.lifecycle import ServiceMetrics

__all__ = ["WebMetrics"]


class WebMetrics(ServiceMetrics):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(
            "web", registry, rejected_help="MQTT messages the display rejected, by reason."
        )
        r = self.registry
        self.requests_rejected = Counter(
            "soundalert_web_requests_rejected_total",
            "HTTP requests refused, by reason (unauthorized, malformed_json, ...).",
            ["reason"],
            registry=r,
        )
        self.feedback_sent = Counter(
            "soundalert_web_feedback_sent_total",
            "Feedback published to the broker from the display, by verdict.",
            ["verdict"],
            registry=r,
        )
        self.stream_clients = Gauge(
            "soundalert_web_stream_clients",
            "Pages connected to the live stream.",
            registry=r,
        )
        self.alert_to_stream = Histogram(
            "soundalert_web_alert_to_stream_seconds",
            "Wall-clock time from an alert's publication to its hand-over to the live stream.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )
