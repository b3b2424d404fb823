"""/metrics rendered in a forked child: served over HTTP, refreshed, and kept when a child fails."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from soundalert.exposition import ForkedExposition


def _get(port: int) -> tuple[str, str]:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.headers["Content-Type"], response.read().decode()


async def test_a_scrape_gets_the_last_rendering_and_a_refresh_shows_new_values() -> None:
    registry = CollectorRegistry()
    counter = Counter("bench_things_total", "Things.", ["site"], registry=registry)
    counter.labels("home").inc()
    exposition = ForkedExposition(registry, every_s=60.0)
    with exposition.serve(0, "127.0.0.1") as port:
        counter.labels("home").inc(2)
        content_type, before = await asyncio.to_thread(_get, port)
        body = await exposition.render()
        assert body is not None
        exposition.body = body
        _, after = await asyncio.to_thread(_get, port)
    assert content_type.startswith("text/plain")
    assert 'bench_things_total{site="home"} 1.0' in before  # rendered at start, not per request
    assert 'bench_things_total{site="home"} 3.0' in after  # the child saw the parent's registry


class _Broken(Collector):
    def collect(self) -> Iterator[Metric]:
        raise RuntimeError("a collector that fails")


async def test_a_child_that_fails_keeps_the_previous_rendering() -> None:
    registry = CollectorRegistry()
    Counter("bench_things_total", "Things.", registry=registry).inc()
    exposition = ForkedExposition(registry, every_s=60.0)
    first = exposition.body
    registry.register(_Broken())
    assert await exposition.render() is None
    assert exposition.body == first


async def test_run_refreshes_while_scraped() -> None:
    registry = CollectorRegistry()
    counter = Counter("bench_things_total", "Things.", registry=registry)
    exposition = ForkedExposition(registry, every_s=0.05)
    task = asyncio.create_task(exposition.run())
    try:
        counter.inc(5)
        exposition.scraped = True  # as a GET does
        async with asyncio.timeout(10):
            while b"bench_things_total 5.0" not in exposition.body:  # noqa: ASYNC110 - a value
                await asyncio.sleep(0.02)
        counter.inc(1)
        await asyncio.sleep(0.3)  # six periods, and nobody scraped: no rendering
        assert b"bench_things_total 5.0" in exposition.body
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
