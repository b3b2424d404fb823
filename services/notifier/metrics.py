"""The notifier's Prometheus metrics, on a registry passed in (tests stay isolated).

``channel`` labels are ``<site>/<channel name>`` from the config: bounded by the config.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from soundalert.lifecycle import ServiceMetrics

__all__ = ["OUTCOMES", "NotifierMetrics"]

OUTCOMES = ("delivered", "failed", "expired", "superseded", "snoozed", "quiet_hours")
"""Final outcome of one notification for one channel."""

NOTIFICATION_BUCKETS = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0,
)  # fmt: skip


class NotifierMetrics(ServiceMetrics):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__("notifier", registry)
        r = self.registry
        self.latency = Histogram(
            "soundalert_notification_seconds",
            "Time from a notification being queued for a channel until the channel accepted "
            "it, retries included (delivered notifications only).",
            ["channel"],
            buckets=NOTIFICATION_BUCKETS,
            registry=r,
        )
        self.notifications = Counter(
            "soundalert_notifications_total",
            "Notifications by channel and final outcome: " + ", ".join(OUTCOMES) + ".",
            ["channel", "outcome"],
            registry=r,
        )
        self.failures = Counter(
            "soundalert_notification_failures_total",
            "Failed delivery attempts (each retry counts), by channel.",
            ["channel"],
            registry=r,
        )
        self.pending = Gauge(
            "soundalert_notifications_pending",
            "Notifications queued for a channel and not yet settled.",
            ["channel"],
            registry=r,
        )
        self.escalations = Counter(
            "soundalert_escalations_total",
            "Escalations of unacknowledged alerts to secondary contacts, by category.",
            ["category"],
            registry=r,
        )
        self.duplicates = Counter(
            "soundalert_alert_states_duplicate_total",
            "Alert state changes received again (same alert_id, state and repeat) and ignored.",
            registry=r,
        )
