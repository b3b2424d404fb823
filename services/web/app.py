"""The HTTP side of the display: the page, its API and the live stream (starlette).

Authentication is described in :mod:`services.web.auth`. Every refused request is counted in
``soundalert_web_requests_rejected_total{reason}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from schemas.common import utc_now
from schemas.messages import Feedback, Verdict
from schemas.soundpack import LearnRequest
from services.web.agent import (
    BUILD_HINT,
    CLASS_MAP_FILE,
    MODEL_FILE,
    AgentConfig,
    agent_page_html,
    missing_vendor_files,
    served_model,
)
from services.web.auth import Auth, Grant, bearer_token
from services.web.core import WebCore, alert_record, node_record
from services.web.hub import Hub
from services.web.learn import learn_handler, sounds_handlers
from services.web.metrics import WebMetrics

__all__ = ["COOKIE", "PAGES_DIR", "STATIC_DIR", "BrokerUnavailableError", "WebContext", "build_app"]

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
PAGES_DIR = Path(__file__).with_name("pages")
COOKIE = "soundalert_token"
MAX_BODY_BYTES = 4096
SNAPSHOT_ALERTS = 200
_COOKIE_AGE_S = 400 * 24 * 3600
_NO_STORE = {"Cache-Control": "no-store"}


class BrokerUnavailableError(RuntimeError):
    """Feedback could not be handed to the broker."""


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    verdict: Verdict = Field(description="acknowledged, confirmed or false_alarm.")
    by: str = Field(
        default="display",
        min_length=1,
        max_length=64,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="Who is answering (shown in the history).",
    )


@dataclass
class WebContext:
    core: WebCore
    hub: Hub
    auth: Auth
    metrics: WebMetrics
    categories: dict[str, dict[str, Any]]
    publish_feedback: Callable[[Feedback], Awaitable[None]]
    connected: Callable[[], bool] = lambda: False
    keepalive_s: float = 15.0
    clock: Callable[[], float] = time.time
    secure_cookie: bool = False
    agent: AgentConfig | None = None
    publish_learn: Callable[[LearnRequest], Awaitable[None]] | None = None
    """Sends "this was my ..." to a node (see services/web/learn.py)."""
    remove_sound: Callable[[str, str], Awaitable[None]] | None = None
    """Clears a learned sound's retained pack (site, sound)."""


def _error(status: int, reason: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        {"error": reason, "message": message}, status_code=status, headers={**_NO_STORE, **headers}
    )


def _parse_since(text: str | None) -> float | None:
    """ISO 8601 with a zone (``2026-11-21T19:57:20Z``) or Unix seconds."""
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        pass
    value = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "+"))
    if value.tzinfo is None:
        raise ValueError("since needs a time zone, e.g. 2026-11-21T19:57:20Z")
    return value.astimezone(UTC).timestamp()


def build_app(ctx: WebContext) -> Starlette:  # noqa: PLR0915 - the routes read best together
    core, hub, auth, metrics = ctx.core, ctx.hub, ctx.auth, ctx.metrics

    def refuse(reason: str, status: int, message: str, **headers: str) -> JSONResponse:
        metrics.requests_rejected.labels(reason).inc()
        return _error(status, reason, message, **headers)

    def unauthorized() -> JSONResponse:
        return refuse("unauthorized", 401,
                      "a valid site token is needed: send 'Authorization: Bearer <token>'",
                      **{"WWW-Authenticate": "Bearer"})  # fmt: skip

    def api_grant(request: Request) -> Grant | None:
        return auth.check_token(bearer_token(request.headers.get("authorization")))

    def sites_param(request: Request, grant: Grant) -> tuple[list[str] | None, Response | None]:
        site = request.query_params.get("site") or None
        if site is None:
            return grant.scope(), None
        if not grant.allows(site):
            return None, refuse("forbidden_site", 403, f"this token does not grant site {site!r}")
        return [site], None

    # -- the pages ---------------------------------------------------------------------------
    async def index(request: Request) -> Response:
        return page(request, "index.html", "/")

    async def agent_page(request: Request) -> Response:
        if ctx.agent is not None and (missing := missing_vendor_files(ctx.agent.vendor_dir)):
            log.error("/agent unavailable: %s (missing %s)", BUILD_HINT, ", ".join(missing))
            return HTMLResponse(
                "<!doctype html><meta charset=utf-8><title>soundalert: phone agent unavailable"
                f"</title><p>This server cannot offer the phone agent yet: {BUILD_HINT}.",
                status_code=503, headers=_NO_STORE,
            )  # fmt: skip
        return page(request, None, "/agent")

    def page(request: Request, name: str | None, action: str) -> Response:
        """The display (``name``) or, for ``None``, the agent page, behind the token."""
        query_token = request.query_params.get("token")
        grant = (
            auth.check_token(query_token)
            or api_grant(request)
            or auth.check_token(request.cookies.get(COOKIE))
        )
        if grant is None:
            metrics.requests_rejected.labels("unauthorized").inc()
            login = (PAGES_DIR / "login.html").read_text(encoding="utf-8")
            wrong = "true" if (query_token or request.cookies.get(COOKIE)) else "false"
            login = login.replace('data-wrong="false"', f'data-wrong="{wrong}"')
            login = login.replace('action="/"', f'action="{action}"')
            return HTMLResponse(login, status_code=401, headers={**_NO_STORE,
                                "WWW-Authenticate": "Bearer"})  # fmt: skip
        response: Response
        if name is None:
            html = agent_page_html(
                (PAGES_DIR / "index.html").read_text(encoding="utf-8"),
                (PAGES_DIR / "agent-panel.html").read_text(encoding="utf-8"),
            )
            response = HTMLResponse(html, headers=_NO_STORE)
        else:
            response = FileResponse(PAGES_DIR / name, headers=_NO_STORE)
        if query_token:
            response.set_cookie(COOKIE, query_token, max_age=_COOKIE_AGE_S, httponly=True,
                                samesite="strict", secure=ctx.secure_cookie)  # fmt: skip
        return response

    async def manifest(_request: Request) -> Response:
        return FileResponse(STATIC_DIR / "manifest.webmanifest",
                            media_type="application/manifest+json")  # fmt: skip

    async def health(_request: Request) -> Response:
        return JSONResponse({"ok": True, "mqtt_connected": ctx.connected()}, headers=_NO_STORE)

    # -- API ---------------------------------------------------------------------------------
    async def get_categories(request: Request) -> Response:
        if api_grant(request) is None:
            return unauthorized()
        return JSONResponse({"categories": ctx.categories}, headers=_NO_STORE)

    async def get_alerts(request: Request) -> Response:
        grant = api_grant(request)
        if grant is None:
            return unauthorized()
        sites, problem = sites_param(request, grant)
        if problem is not None:
            return problem
        params = request.query_params
        try:
            since = _parse_since(params.get("since"))
            limit = min(max(int(params.get("limit", "200")), 1), 1000)
        except ValueError as exc:
            return refuse("bad_query", 400, f"bad query: {exc}")
        entries = core.store.alerts(
            sites=sites, since=since, category=params.get("category") or None,
            location=params.get("location") or None,
            active_only=params.get("active") in {"1", "true"}, limit=limit,
        )  # fmt: skip
        return JSONResponse({"alerts": [alert_record(e) for e in entries]}, headers=_NO_STORE)

    async def get_nodes(request: Request) -> Response:
        grant = api_grant(request)
        if grant is None:
            return unauthorized()
        sites, problem = sites_param(request, grant)
        if problem is not None:
            return problem
        return JSONResponse(_nodes(sites), headers=_NO_STORE)

    def _nodes(sites: list[str] | None) -> dict[str, Any]:
        now = ctx.clock()
        nodes, services = [], []
        for entry in core.store.nodes():
            record = node_record(entry, now)
            if record["service"]:
                services.append(record)
            elif sites is None or entry.status.site in sites:
                nodes.append(record)
        return {"nodes": nodes, "services": services, "mqtt_connected": ctx.connected()}

    async def post_feedback(request: Request) -> Response:
        grant = api_grant(request)
        if grant is None:
            return unauthorized()
        alert_id = request.path_params["alert_id"]
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return refuse("payload_too_large", 413, f"the body is over {MAX_BODY_BYTES} bytes")
        try:
            doc = json.loads(body or b"null")
        except ValueError as exc:
            return refuse("malformed_json", 400, f"the body is not JSON: {exc}")
        if not isinstance(doc, dict):
            return refuse("schema_violation", 422, "send a JSON object: "
                          '{"verdict": "acknowledged" | "false_alarm" | "confirmed", '
                          '"by": "name"}')  # fmt: skip
        try:
            wanted = FeedbackRequest.model_validate(doc)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            return refuse("schema_violation", 422, f"{where}: {first['msg']}")
        entry = core.store.alert(alert_id)
        if entry is None or not grant.allows(entry.alert.site):
            # An alert of another site is answered like an unknown one: no leak of ids.
            return refuse("unknown_alert", 404, f"no alert {alert_id!r}")
        feedback = Feedback(alert_id=alert_id, verdict=wanted.verdict, by=wanted.by,
                            at=utc_now(), site=entry.alert.site)  # fmt: skip
        try:
            await ctx.publish_feedback(feedback)
        except BrokerUnavailableError as exc:
            return refuse("broker_unavailable", 503, f"feedback not sent: {exc}")
        metrics.feedback_sent.labels(feedback.verdict).inc()
        hub.publish(core.record_feedback(feedback))
        core.store.commit()
        log.info("feedback %s on %s by %r", feedback.verdict, alert_id, feedback.by)
        return JSONResponse({"feedback": feedback.model_dump(mode="json", by_alias=True)},
                            status_code=202, headers=_NO_STORE)  # fmt: skip

    async def agent_config(request: Request) -> Response:
        grant = api_grant(request)
        if grant is None:
            return unauthorized()
        if ctx.agent is None:
            return refuse("not_configured", 404, "this server offers no phone agent")
        doc = ctx.agent.document(request.url.hostname, grant.scope())
        return JSONResponse(doc, headers=_NO_STORE)

    async def agent_model(request: Request) -> Response:
        name = request.path_params["name"]
        if ctx.agent is None or name not in {MODEL_FILE, CLASS_MAP_FILE}:
            return _error(404, "not_found", f"no model file {name!r}")
        if name == MODEL_FILE:  # with its embedding as an output (learned sounds)
            body = await asyncio.to_thread(served_model, ctx.agent.model_dir / name)
            return Response(body, media_type="application/octet-stream")
        return FileResponse(ctx.agent.model_dir / name, media_type="text/csv")

    async def stream_ticket(request: Request) -> Response:
        grant = api_grant(request)
        if grant is None:
            return unauthorized()
        ticket, expires = auth.issue_ticket(grant, ctx.clock())
        return JSONResponse({"ticket": ticket, "expires_at": expires}, headers=_NO_STORE)

    async def stream(request: Request) -> Response:
        grant = api_grant(request) or auth.check_ticket(
            request.query_params.get("ticket"), ctx.clock()
        )
        if grant is None:
            return refuse("unauthorized", 401, "open the stream with ?ticket= from POST "
                          "/api/stream/ticket, or send a bearer token",
                          **{"WWW-Authenticate": "Bearer"})  # fmt: skip
        sub = hub.subscribe(grant)  # before the snapshot, so nothing falls between the two
        scope = grant.scope()
        active = core.store.alerts(sites=scope, active_only=True)
        recent = core.store.alerts(sites=scope, limit=SNAPSHOT_ALERTS)
        seen = {e.alert.alert_id for e in recent}
        snapshot = {
            "alerts": [alert_record(e) for e in recent]
            + [alert_record(e) for e in active if e.alert.alert_id not in seen],
            **_nodes(scope),
        }

        async def events() -> AsyncIterator[str]:
            try:
                yield "retry: 2000\n"
                yield f"event: snapshot\ndata: {json.dumps(snapshot)}\n\n"
                while True:
                    try:
                        async with asyncio.timeout(ctx.keepalive_s):
                            update = await sub.queue.get()
                    except TimeoutError:
                        yield ": keepalive\n\n"
                        continue
                    if update is None:
                        return
                    yield f"event: {update.kind}\ndata: {json.dumps(update.record)}\n\n"
            finally:
                hub.unsubscribe(sub)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={**_NO_STORE, "X-Accel-Buffering": "no"})  # fmt: skip

    routes: list[BaseRoute] = [
        Route("/", index),
        Route("/index.html", index),
        Route("/agent", agent_page),
        Route("/agent/model/{name}", agent_model),
        Route("/manifest.webmanifest", manifest),
        Route("/healthz", health),
        Route("/api/categories", get_categories),
        Route("/api/alerts", get_alerts),
        Route("/api/alerts/{alert_id}/feedback", post_feedback, methods=["POST"]),
        Route(
            "/api/alerts/{alert_id}/learn",
            learn_handler(core, api_grant, refuse, ctx.publish_learn),
            methods=["POST"],
        ),
        Route("/api/nodes", get_nodes),
        *sounds_handlers(core, api_grant, refuse, ctx.remove_sound),
        Route("/api/stream/ticket", stream_ticket, methods=["POST"]),
        Route("/api/stream", stream),
        Route("/api/agent/config", agent_config),
    ]
    if ctx.agent is not None:
        vendor = StaticFiles(directory=ctx.agent.vendor_dir, check_dir=False)
        routes.append(Mount("/static/vendor", vendor, name="vendor"))
    routes += [
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    return Starlette(routes=routes)
