"""Who may see which site: bearer tokens, the page cookie, and short-lived stream tickets.

* The API takes ``Authorization: Bearer <token>``.
* The page (``GET /``) also takes ``?token=<token>`` once; it then sets an HttpOnly,
  ``SameSite=Strict`` cookie holding the token so that the installed app opens without it.
* ``EventSource`` cannot set headers, so the page first ``POST``s ``/api/stream/ticket`` with
  its bearer token and opens ``/api/stream?ticket=<ticket>``. A ticket is HMAC-signed with a
  per-process key, names the sites it grants and expires after ``stream_ticket_s`` seconds;
  it is only good for opening a stream (a leaked URL in a log is useless a minute later).

Pure: no I/O, the clock is passed in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

__all__ = ["ALL_SITES", "Auth", "Grant", "bearer_token"]

ALL_SITES = "*"


@dataclass(frozen=True, slots=True)
class Grant:
    """The sites a credential may see; ``sites is None`` means every site."""

    sites: frozenset[str] | None

    def allows(self, site: str) -> bool:
        return self.sites is None or site in self.sites

    def scope(self) -> list[str] | None:
        return None if self.sites is None else sorted(self.sites)


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else ``None``."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Auth:
    def __init__(
        self,
        token: str | None,
        site_tokens: dict[str, str],
        *,
        ticket_ttl_s: float = 60.0,
        key: bytes | None = None,
    ) -> None:
        if token is None and not site_tokens:
            raise ValueError("at least one token is needed")
        self._tokens: list[tuple[bytes, Grant]] = []
        if token is not None:
            self._tokens.append((token.encode(), Grant(None)))
        for site, site_token in sorted(site_tokens.items()):
            self._tokens.append((site_token.encode(), Grant(frozenset({site}))))
        self._ttl = ticket_ttl_s
        self._key = key or secrets.token_bytes(32)

    def check_token(self, presented: str | None) -> Grant | None:
        """The grant of a token, or ``None``. Compares in constant time against every token."""
        if not presented:
            return None
        given = presented.encode()
        found: Grant | None = None
        for token, grant in self._tokens:
            if hmac.compare_digest(token, given) and found is None:
                found = grant
        return found

    def issue_ticket(self, grant: Grant, now: float) -> tuple[str, float]:
        """A stream ticket for ``grant`` and the time it expires."""
        expires = now + self._ttl
        scope = grant.scope()
        body = json.dumps(
            {"sites": ALL_SITES if scope is None else scope, "exp": round(expires, 3)},
            separators=(",", ":"),
        ).encode()
        return f"{_b64(body)}.{_b64(self._sign(body))}", expires

    def check_ticket(self, ticket: str | None, now: float) -> Grant | None:
        if not ticket or ticket.count(".") != 1:
            return None
        body_text, sig_text = ticket.split(".")
        try:
            body, sig = _unb64(body_text), _unb64(sig_text)
        except ValueError:
            return None
        if not hmac.compare_digest(sig, self._sign(body)):
            return None
        try:
            doc = json.loads(body)
            expires = float(doc["exp"])
            sites = doc["sites"]
        except (ValueError, KeyError, TypeError):
            return None
        if now > expires:
            return None
        if sites == ALL_SITES:
            return Grant(None)
        if isinstance(sites, list) and all(isinstance(s, str) for s in sites):
            return Grant(frozenset(sites))
        return None

    def _sign(self, body: bytes) -> bytes:
        return hmac.new(self._key, b"stream-ticket\x00" + body, hashlib.sha256).digest()
