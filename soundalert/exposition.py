"""/metrics rendered in a forked child and served from the last rendering.

prometheus_client renders a scrape in a thread of the service, in Python, under the GIL: at
10,000 nodes that is ~0.5 s of CPU a scrape, and while it runs the event loop waits for the GIL
at every socket read and SQLite commit (bench.aggregator_throughput --scrape-world). Here the
event loop forks between two callbacks, so the child holds a consistent copy of the registry; the
child renders it on the other core and writes it to a pipe, and the HTTP thread only sends the
latest bytes. A scrape then costs the service a fork (page tables, a few ms) per refresh, not a
rendering per request. Linux only (the services' platform); a child that fails or hangs is
logged and the previous rendering kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ["ForkedExposition"]

log = logging.getLogger(__name__)


def _read_all(fd: int) -> bytes:
    with os.fdopen(fd, "rb") as pipe:
        return pipe.read()


class ForkedExposition:
    """Renders ``registry`` in a forked child every ``every_s`` while someone scrapes
    (:meth:`run`, on the event loop); :meth:`serve` answers /metrics with the latest rendering,
    so a scrape sees values at most one scrape interval plus ``every_s`` old."""

    def __init__(
        self, registry: CollectorRegistry, every_s: float, timeout_s: float = 30.0
    ) -> None:
        self.registry = registry
        self.every_s = every_s
        self.timeout_s = timeout_s
        self.body = generate_latest(registry)  # before any event: nothing to hold up yet
        self.scraped = False  # since the last rendering: nobody reading, no rendering

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            if not self.scraped:
                continue
            self.scraped = False
            body = await self.render()
            if body is not None:
                self.body = body

    async def render(self) -> bytes | None:
        """One rendering in a forked child; None if it failed or took over ``timeout_s``."""
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: render this moment's registry, hand it over, leave at once
            code = 1
            try:
                os.close(read_fd)
                with os.fdopen(write_fd, "wb") as pipe:
                    pipe.write(generate_latest(self.registry))
                code = 0
            finally:
                os._exit(code)
        os.close(write_fd)
        reading = asyncio.ensure_future(asyncio.to_thread(_read_all, read_fd))
        done, _ = await asyncio.wait([reading], timeout=self.timeout_s)
        if not done:
            os.kill(pid, signal.SIGKILL)
        body = await reading
        _, status = await asyncio.to_thread(os.waitpid, pid, 0)
        if status != 0:
            log.warning("rendering /metrics failed (wait status %d); serving the previous one",
                        status)  # fmt: skip
            return None
        return body

    @contextlib.contextmanager
    def serve(self, port: int, host: str) -> Iterator[int]:
        """Serve http://host:port/metrics for the duration; yields the port."""
        exposition = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exposition.body
                exposition.scraped = True
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE_LATEST)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - its name
                pass

        server = ThreadingHTTPServer((host, port), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
        thread.start()
        log.info("metrics on http://%s:%d/metrics (rendered every %g s)", host,
                 server.server_port, self.every_s)  # fmt: skip
        try:
            yield server.server_port
        finally:
            server.shutdown()
            server.server_close()
            thread.join()
