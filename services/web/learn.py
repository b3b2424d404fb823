""" "This was my ...": the display asks the node that heard an alert to learn its sound.

``POST /api/alerts/{alert_id}/learn`` with ``{"title": "Doorbell"}`` (and optionally ``sound``,
``priority``, ``by``) publishes a :class:`~schemas.soundpack.LearnRequest` to the alert's node
(the one that heard it best) for the span of its evidence; the node learns from the embeddings
it kept of those windows and publishes the sound pack for its whole site. No audio is involved:
the display never had any, and the node keeps only embeddings.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from schemas.common import ID_PATTERN, utc_now
from schemas.messages import Priority
from schemas.soundpack import LearnRequest
from services.web.auth import Grant
from services.web.core import WebCore

__all__ = ["LearnBody", "learn_handler", "sounds_handlers"]

log = logging.getLogger(__name__)

_MAX_BODY: Final = 4096
_PAD = timedelta(seconds=1)
"""The windows around the evidence: the first one that heard the sound may start before it."""
_NO_STORE: Final = {"Cache-Control": "no-store"}


class LearnBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$",
                       description="What the sound was: 'Doorbell'.")  # fmt: skip
    sound: str | None = Field(default=None, pattern=ID_PATTERN, description="Its id.")
    priority: Priority = Field(default="normal", description="Its alerts' priority.")
    by: str = Field(default="display", min_length=1, max_length=64,
                    pattern=r"^[^\x00-\x1f\x7f]+$", description="Who asked.")  # fmt: skip


def _sound_id(title: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "_", title.strip().lower()).strip("_-")[:64] or "sound"


def learn_handler(
    core: WebCore,
    grant_of: Callable[[Request], Grant | None],
    refuse: Callable[[str, int, str], JSONResponse],
    publish: Callable[[LearnRequest], Awaitable[None]] | None,
) -> Callable[[Request], Awaitable[Response]]:
    """The route's handler; ``publish`` raises ``RuntimeError`` when the broker is away."""

    async def post_learn(request: Request) -> Response:
        grant = grant_of(request)
        if grant is None:
            return refuse("unauthorized", 401, "a valid site token is needed")
        body = await request.body()
        if len(body) > _MAX_BODY:
            return refuse("payload_too_large", 413, f"the body is over {_MAX_BODY} bytes")
        try:
            wanted = LearnBody.model_validate(json.loads(body or b"null"))
        except (ValueError, ValidationError) as exc:
            return refuse("schema_violation", 422, f'send {{"title": "Doorbell"}}: {exc}')
        alert_id = request.path_params["alert_id"]
        entry = core.store.alert(alert_id)
        if entry is None or not grant.allows(entry.alert.site):
            return refuse("unknown_alert", 404, f"no alert {alert_id!r}")
        alert = entry.alert
        if alert.location is None or alert.first_evidence_at is None:
            return refuse("not_a_sound", 409, "this alert was not heard by one node (a sensor "
                          "or system alert): there is no sound to learn")  # fmt: skip
        learn = LearnRequest(
            request_id=f"learn-{uuid.uuid4().hex[:16]}", site=alert.site, node=alert.location,
            sound=wanted.sound or _sound_id(wanted.title), title=wanted.title,
            heard_from=alert.first_evidence_at - _PAD,
            heard_to=(alert.ended_at or alert.raised_at) + _PAD,
            priority=wanted.priority, by=wanted.by, at=utc_now(),
        )  # fmt: skip
        if publish is None:
            return refuse("broker_unavailable", 503, "this display publishes nothing")
        try:
            await publish(learn)
        except RuntimeError as exc:
            return refuse("broker_unavailable", 503, f"not sent: {exc}")
        log.info("asked %s/%s to learn %r from alert %s (%s)", learn.site, learn.node,
                 learn.title, alert_id, learn.by)  # fmt: skip
        return JSONResponse({"learn": learn.model_dump(mode="json", by_alias=True)},
                            status_code=202, headers=_NO_STORE)  # fmt: skip

    return post_learn


def sounds_handlers(
    core: WebCore,
    grant_of: Callable[[Request], Grant | None],
    refuse: Callable[[str, int, str], JSONResponse],
    remove: Callable[[str, str], Awaitable[None]] | None,
) -> list[Route]:
    """``GET /api/sounds``: the learned sounds of the token's sites; ``DELETE
    /api/sounds/{site}/{sound}``: forget one on every node of its site."""

    async def list_sounds(request: Request) -> Response:
        grant = grant_of(request)
        if grant is None:
            return refuse("unauthorized", 401, "a valid site token is needed")
        sounds = [v for (site, _), v in sorted(core.sounds.items()) if grant.allows(site)]
        return JSONResponse({"sounds": sounds}, headers=_NO_STORE)

    async def remove_sound(request: Request) -> Response:
        grant = grant_of(request)
        if grant is None:
            return refuse("unauthorized", 401, "a valid site token is needed")
        site, sound = request.path_params["site"], request.path_params["sound"]
        if not grant.allows(site) or (site, sound) not in core.sounds:
            return refuse("unknown_sound", 404, f"site {site!r} has no learned sound {sound!r}")
        if remove is None:
            return refuse("broker_unavailable", 503, "this display publishes nothing")
        try:
            await remove(site, sound)
        except RuntimeError as exc:
            return refuse("broker_unavailable", 503, f"not removed: {exc}")
        core.sounds.pop((site, sound), None)
        log.info("removed the learned sound %s of site %s", sound, site)
        return JSONResponse({"removed": {"site": site, "sound": sound}}, status_code=202,
                            headers=_NO_STORE)  # fmt: skip

    return [
        Route("/api/sounds", list_sounds),
        Route("/api/sounds/{site}/{sound}", remove_sound, methods=["DELETE"]),
    ]
