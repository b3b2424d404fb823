"""``soundalert health``: the check a container runs (exit 0 healthy, 1 not).

A service is healthy when its ``/metrics`` answers and says ``soundalert_mqtt_connected 1``,
or when its ``/healthz`` answers 200 with ``"ok": true`` (and ``"mqtt_connected": true`` where
the service reports it). Only the standard library and prometheus_client's text parser: the
check runs every few seconds and must start fast.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Annotated

import typer
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["check_healthz", "check_metrics", "health", "register"]

CONNECTED = "soundalert_mqtt_connected"


def _get(url: str, timeout_s: float) -> str:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{url!r} is not an http(s) URL")
    with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - checked above
        body: bytes = response.read()
        return body.decode("utf-8", "replace")


def check_metrics(url: str, timeout_s: float = 3.0) -> str | None:
    """``None`` when healthy, else what is wrong."""
    try:
        text = _get(url, timeout_s)
    except (OSError, ValueError) as exc:
        return f"{url}: {exc}"
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == CONNECTED:
                return None if sample.value == 1 else f"{url}: not connected to the broker"
    return f"{url}: no {CONNECTED} metric"


def check_healthz(url: str, timeout_s: float = 3.0) -> str | None:
    """``None`` when healthy, else what is wrong."""
    try:
        body = json.loads(_get(url, timeout_s))
    except urllib.error.HTTPError as exc:
        return f"{url}: HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return f"{url}: {exc}"
    if not isinstance(body, dict) or body.get("ok") is not True:
        return f"{url}: not ok: {body!r}"
    if body.get("mqtt_connected") is False:
        return f"{url}: not connected to the broker"
    return None


def health(
    metrics_url: Annotated[
        list[str] | None,
        typer.Option("--metrics-url", help="A /metrics URL that must report MQTT connected."),
    ] = None,
    url: Annotated[
        list[str] | None,
        typer.Option("--url", help="A /healthz URL that must answer ok (and MQTT connected)."),
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per request.")] = 3.0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only problems.")] = False,
) -> None:
    """Check a running service (a container healthcheck): exit 0 when healthy, 1 when not."""
    checks = [(check_metrics, u) for u in metrics_url or []]
    checks += [(check_healthz, u) for u in url or []]
    if not checks:
        raise typer.BadParameter("give --metrics-url and/or --url")
    problems = [p for check, u in checks if (p := check(u, timeout)) is not None]
    for problem in problems:
        typer.secho(f"unhealthy: {problem}", fg=typer.colors.RED, err=True)
    if problems:
        raise typer.Exit(1)
    if not quiet:
        typer.echo("healthy")


def register(app: typer.Typer) -> None:
    app.command("health")(health)
