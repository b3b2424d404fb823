"""The aggregator's Prometheus metrics, on a registry passed in (tests stay isolated)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from soundalert.lifecycle import ServiceMetrics

__all__ = ["LATENCY_BUCKETS", "NODE_REVIEWS_MIN", "VERDICTS", "AggregatorMetrics"]

VERDICTS = ("acknowledged", "confirmed", "false_alarm")
"""Every feedback verdict, for series that start at zero (see :meth:`expect_feedback`)."""
NODE_REVIEWS_MIN = 5
"""Reviews a day before a node's false-alarm ratio is exported (and can alert)."""

# Processing is sub-millisecond when healthy; the objective is 5 ms at p99.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
DETECTION_BUCKETS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0)


class AggregatorMetrics(ServiceMetrics):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__("aggregator", registry)
        self._categories: list[str] = []
        r = self.registry
        self.events_received = Counter(
            "soundalert_events_received_total",
            "Valid classification events received, by site.",
            ["site"],
            registry=r,
        )
        self.last_event = Gauge(
            "soundalert_node_last_event_timestamp_seconds",
            "When the aggregator last received an event from a node (Unix time).",
            ["site", "node"],
            registry=r,
        )
        self.duplicates = Counter(
            "soundalert_events_duplicate_total",
            "Events received again with an event_id already processed.",
            registry=r,
        )
        self.late = Counter(
            "soundalert_events_late_total",
            "Events behind their node's event-time watermark by more than the reorder bound.",
            registry=r,
        )
        self.alerts = Counter(
            "soundalert_alerts_total",
            "Alerts raised, by category and priority.",
            ["category", "priority"],
            registry=r,
        )
        self.state_changes = Counter(
            "soundalert_alert_state_changes_total",
            "Alert state changes published, by site, category and state.",
            ["site", "category", "state"],
            registry=r,
        )
        self.processing = Histogram(
            "soundalert_processing_seconds",
            "Wall-clock time from an MQTT message being handed to the aggregator until its "
            "effects (alerts) are committed and published.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.detection_latency = Histogram(
            "soundalert_detection_latency_seconds",
            "Event time from the first evidence of a sound to the end of the confirming window.",
            ["category"],
            buckets=DETECTION_BUCKETS,
            registry=r,
        )
        self.feedback = Counter(
            "soundalert_alert_feedback_total",
            "Feedback on alerts, by category and verdict.",
            ["category", "verdict"],
            registry=r,
        )
        self.node_false_alarms = Gauge(
            "soundalert_node_false_alarm_ratio",
            "False alarms among the reviewed alerts located at a node (the node that heard "
            "them best) over the last day; only for nodes with at least "
            f"{NODE_REVIEWS_MIN} reviews that day, so one series per noisy node, not per node.",
            ["site", "node"],
            registry=r,
        )
        self.node_up = Gauge(
            "soundalert_node_up",
            "1 while a node is online and heard from, 0 once it is offline or stopped.",
            ["site", "node"],
            registry=r,
        )
        self.active_alerts = Gauge(
            "soundalert_alerts_active",
            "Alerts currently active, by category.",
            ["category"],
            registry=r,
        )
        self.suppressed = Counter(
            "soundalert_hits_suppressed_total",
            "Qualifying windows ignored because their category was cooling down.",
            ["category"],
            registry=r,
        )
        self.outbox = Gauge(
            "soundalert_publications_pending",
            "Alert messages committed but not yet acknowledged by the broker.",
            registry=r,
        )
        self.clock_offset = Gauge(
            "soundalert_node_clock_offset_seconds",
            "A node's clock minus the aggregator's, from its last live status (or from an event "
            "rejected for clock skew).",
            ["site", "node"],
            registry=r,
        )
        self.clock_jumps = Counter(
            "soundalert_node_clock_jumps_total",
            "Times a node's newest event lay far behind its earlier ones (its clock was set "
            "back) and the aggregator followed it.",
            registry=r,
        )
        self.state_rows = Gauge(
            "soundalert_state_rows",
            "Rows in the aggregator's state, by table (retention keeps them bounded).",
            ["table"],
            registry=r,
        )
        self.pruned = Counter(
            "soundalert_state_pruned_rows_total",
            "Rows deleted by retention, by table.",
            ["table"],
            registry=r,
        )
        self.state_bytes = Gauge(
            "soundalert_state_bytes",
            "Bytes in use in the aggregator's SQLite database (freed pages are reused).",
            registry=r,
        )
        self.uncommitted = Gauge(
            "soundalert_state_uncommitted_writes",
            "Writes held in memory because their commit failed.",
            registry=r,
        )

    def expect_categories(self, priorities: dict[str, str]) -> None:
        """Create each policy category's series at zero (category -> priority).

        A counter series that first appears at 1 hides that increment from ``rate()``, and
        series born at different times extrapolate differently: alert rates, latency quantiles
        and false-alarm ratios of summed rates are only right when the series exist first.
        """
        self._categories = list(priorities)
        for category, priority in priorities.items():
            self.alerts.labels(category, priority)
            self.detection_latency.labels(category)
            for verdict in VERDICTS:
                self.feedback.labels(category, verdict)
