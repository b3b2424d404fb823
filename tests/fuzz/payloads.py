"""Hypothesis strategies for hostile MQTT payloads: whole JSON documents of every contract with
extreme values in any field, and bytes that are not JSON at all."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

__all__ = ["hostile_messages", "hostile_payloads", "valid_documents"]

_BIG_INTS = [2**63, 2**64, -(2**63), 2**53, 2**63 - 1, 10**30, 2**53 - 1, 2**32, 2**31, -1, 0, 1]
_FLOATS = [0.0, -0.0, 1e308, -1e308, 5e-324, 1.5, -1.5, 1.0000001]
_NON_FINITE = [float("nan"), float("inf"), float("-inf")]
_STRINGS = ["", "x" * 300, "x" * 70_000, "\U0001f525", "\x00", "../../etc/passwd", "a/b", "+",
            "#", "home", "kitchen", "smoke_alarm", "t3", "é" * 64]  # fmt: skip


def _times() -> st.SearchStrategy[str]:
    now = datetime.now(UTC)
    return st.sampled_from([
        "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-11-21T10:00:00", "not a time",
        (now + timedelta(hours=1)).isoformat(), (now + timedelta(days=3650)).isoformat(),
        (now - timedelta(days=3650)).isoformat(), now.isoformat(), "", "1970-01-01T00:00:00Z",
    ])  # fmt: skip


def _scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(_BIG_INTS), st.integers(), st.sampled_from(_FLOATS),
        st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(_NON_FINITE),
        st.sampled_from(_STRINGS), st.text(max_size=40), st.booleans(), st.none(), _times(),
    )  # fmt: skip


def _json_values() -> st.SearchStrategy[Any]:
    return st.recursive(
        _scalars(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                    max_size=4),
        max_leaves=12,
    )  # fmt: skip


def valid_documents(site: str = "home", node: str = "kitchen") -> dict[str, dict[str, Any]]:
    """One valid document per contract, timestamped now, to mutate."""
    now = datetime.now(UTC)
    at = now.isoformat()
    alert = {
        "schema": "soundalert.alert/1", "alert_id": "smoke_alarm-000001-abcdef", "site": site,
        "category": "smoke_alarm", "priority": "critical", "state": "raised", "location": node,
        "nodes": [{"node": node, "score": 0.9, "level_dbfs": -20.0}], "first_evidence_at": at,
        "raised_at": at, "published_at": at, "confidence": 0.9, "evidence": ["e1"],
        "title": "Smoke alarm", "delay_s": None, "repeat": 0, "ended_at": None, "by": None,
        "reason": None,
    }  # fmt: skip
    return {
        "events": {
            "schema": "soundalert.event/1", "event_id": f"fuzz-{time.monotonic_ns()}",
            "site": site, "node": node, "seq": 1, "window_start": (now - timedelta(seconds=1)
                                                                   ).isoformat(),
            "window_end": at, "source": {"kind": "pattern", "model": "m", "version": "1"},
            "labels": [{"label": "t3", "score": 0.9}], "level_dbfs": -20.0,
            "features": {"tone_hz": 3100},
        },
        "status": {
            "schema": "soundalert.status/1", "site": site, "node": node, "state": "online",
            "at": at, "heartbeat_s": 15, "software": "fuzz", "capabilities": ["yamnet"],
            "stats": {"outbox_depth": 0}, "pending_from_seq": 0, "next_seq": 2,
        },
        "feedback": {
            "schema": "soundalert.feedback/1", "alert_id": "smoke_alarm-000001-abcdef",
            "verdict": "acknowledged", "by": "fuzz", "at": at, "site": site,
        },
        "alerts": alert,
        "alert_state": {
            "schema": "soundalert.category_state/1", "site": site, "category": "smoke_alarm",
            "active": True, "active_alerts": ["smoke_alarm-000001-abcdef"], "latest": alert,
            "at": at,
        },
    }  # fmt: skip


@st.composite
def _mutated(draw: st.DrawFn, kind: str, site: str, node: str) -> bytes:
    """A valid document with one to three fields set to extreme values, deleted or nested."""
    doc = valid_documents(site, node)[kind]
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["number", "number", "set", "delete", "nest"]))
        keys = [*doc, "extra"]
        key = draw(st.sampled_from(keys))
        numeric = [k for k, v in doc.items() if isinstance(v, int | float) and v is not True]
        if action == "number" and numeric:  # an extreme number where a number belongs
            doc[draw(st.sampled_from(numeric))] = draw(st.sampled_from(_BIG_INTS + _FLOATS))
        elif action == "set":
            doc[key] = draw(_json_values())
        elif action == "delete":
            doc.pop(key, None)
        elif isinstance(doc.get(key), dict | list) and doc[key]:
            inner = doc[key]
            if isinstance(inner, list):
                inner[0] = draw(_json_values())
            else:
                inner[draw(st.sampled_from(list(inner)))] = draw(_json_values())
    return json.dumps(doc, allow_nan=True).encode()


@st.composite
def _raw_number_tokens(draw: st.DrawFn, kind: str) -> bytes:
    """Numbers Python's json would never write: 1e400, NaN, huge integers as text."""
    text = json.dumps(valid_documents()[kind])
    token = draw(st.sampled_from(["1e400", "-1e400", "NaN", "Infinity", "9" * 400, "-0",
                                  "18446744073709551616"]))  # fmt: skip
    return text.replace("0.9", token, 1).replace(": 1,", f": {token},", 1).encode()


def hostile_payloads(kind: str, site: str = "home", node: str = "kitchen"
                     ) -> st.SearchStrategy[bytes]:  # fmt: skip
    """Hostile payloads for a topic of ``kind`` (of ``site``/``node``, which most payloads
    match, so that they get past the topic check into the services)."""
    return st.one_of(
        _mutated(kind, site, node),
        _mutated(kind, site, node),
        _raw_number_tokens(kind),
        st.binary(max_size=200),
        st.just(b""),
        st.just(b"x" * 70_000),
        _json_values().map(lambda v: json.dumps(v, allow_nan=True).encode()),
    )


def hostile_messages(root: str) -> st.SearchStrategy[tuple[str, bytes]]:
    """(topic, payload) for every topic a soundalert service subscribes to."""
    sites = st.sampled_from(["home", "fuzzsite", "x" * 64])
    nodes = st.sampled_from(["kitchen", "hall", "alerts", "a-b_c"])

    def node_topic(kind: str) -> st.SearchStrategy[tuple[str, bytes]]:
        return st.tuples(sites, nodes).flatmap(
            lambda sn: st.tuples(
                st.just(f"{root}/{sn[0]}/{sn[1]}/{kind}"), hostile_payloads(kind, sn[0], sn[1])
            )
        )

    def site_topic(kind: str, level: str) -> st.SearchStrategy[tuple[str, bytes]]:
        return sites.flatmap(
            lambda site: st.tuples(st.just(f"{root}/{site}/{level}"), hostile_payloads(kind, site))
        )

    return st.one_of(
        node_topic("events"),
        node_topic("events"),
        node_topic("status"),
        site_topic("feedback", "feedback"),
        site_topic("alerts", "alerts"),
        site_topic("alert_state", "alerts/smoke_alarm/state"),
        st.tuples(st.just(f"{root}/_services/aggregator/status"), hostile_payloads("status")),
        st.tuples(st.just("homeassistant/status"), hostile_payloads("status")),
    )  # fmt: skip
