"""Tokens, per-site grants and stream tickets (pure)."""

from __future__ import annotations

import pytest

from services.web.auth import Auth, Grant, bearer_token

ALL = "all-sites-token-0123456789"
HOME = "home-site-token-0123456789"


def make() -> Auth:
    return Auth(ALL, {"home": HOME}, ticket_ttl_s=60, key=b"k" * 32)


def test_bearer_header_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer   abc  ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None


def test_tokens_grant_their_sites_only() -> None:
    auth = make()
    assert auth.check_token(ALL) == Grant(None)
    home = auth.check_token(HOME)
    assert home is not None
    assert home.allows("home")
    assert not home.allows("cabin")
    assert auth.check_token("wrong") is None
    assert auth.check_token("") is None
    assert auth.check_token(HOME + "x") is None


def test_a_ticket_carries_its_grant_until_it_expires() -> None:
    auth = make()
    ticket, expires = auth.issue_ticket(Grant(frozenset({"home"})), now=1000.0)
    assert expires == 1060.0
    assert auth.check_ticket(ticket, now=1059.0) == Grant(frozenset({"home"}))
    assert auth.check_ticket(ticket, now=1061.0) is None
    everything, _ = auth.issue_ticket(Grant(None), now=1000.0)
    assert auth.check_ticket(everything, now=1000.0) == Grant(None)


@pytest.mark.parametrize("mangle", ["flip-body", "flip-sig", "other-key", "garbage", "empty"])
def test_forged_tickets_are_refused(mangle: str) -> None:
    auth = make()
    ticket, _ = auth.issue_ticket(Grant(frozenset({"home"})), now=1000.0)
    body, sig = ticket.split(".")
    forged = {
        "flip-body": ("A" if body[0] != "A" else "B") + body[1:] + "." + sig,
        "flip-sig": body + "." + ("A" if sig[0] != "A" else "B") + sig[1:],
        "other-key": Auth(ALL, {}, key=b"x" * 32).issue_ticket(Grant(None), 1000.0)[0],
        "garbage": "not.a-ticket!",
        "empty": "",
    }[mangle]
    assert auth.check_ticket(forged, now=1000.0) is None


def test_no_token_at_all_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="token"):
        Auth(None, {})
