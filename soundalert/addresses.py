"""Stable local addresses for ``soundalert up``: the ports and the display token it used last
time, kept in its state directory, so a bookmarked display or a configured phone keeps working
across restarts.

A port counts as taken only when another program listens on it: sockets of the previous run
lingering in TIME_WAIT (or a client still holding a connection to it) do not stop the new run
from listening there, as every server here binds with ``SO_REUSEADDR``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import secrets
import socket
from dataclasses import asdict, dataclass, fields
from pathlib import Path

__all__ = ["ADDRESSES_FILE", "Addresses", "pick_port", "port_is_free"]

log = logging.getLogger(__name__)

ADDRESSES_FILE = "up.json"
_TRIES = 20


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` now (with ``SO_REUSEADDR``, as ours do)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(1)
        except OSError as exc:
            if exc.errno in {errno.EADDRINUSE, errno.EACCES}:
                return False
            raise
    return True


def pick_port(
    host: str, wanted: int, what: str, hint: str = "", avoid: frozenset[int] = frozenset()
) -> tuple[int, str | None]:
    """``(wanted, None)`` when it is free, else the next free port above it (not one of
    ``avoid``, chosen for another server of this run) and a note that says so plainly
    (``what`` names the server, ``hint`` is added to the note)."""
    if wanted not in avoid and port_is_free(host, wanted):
        return wanted, None
    for candidate in range(wanted + 1, wanted + 1 + _TRIES):
        if candidate not in avoid and port_is_free(host, candidate):
            return candidate, (
                f"port {wanted} on {host} is already in use{hint}; {what} uses port "
                f"{candidate} instead"
            )
    raise OSError(f"ports {wanted}-{wanted + _TRIES} on {host} are all in use ({what})")


@dataclass
class Addresses:
    """What ``soundalert up`` listens on and the display token, as kept in the state dir."""

    mqtt_port: int | None = None
    ws_port: int | None = None
    web_port: int | None = None
    metrics_port: int | None = None
    token: str | None = None

    @classmethod
    def load(cls, state_dir: Path) -> Addresses:
        path = state_dir / ADDRESSES_FILE
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            log.warning("cannot read %s (%s); choosing addresses afresh", path, exc)
            return cls()
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known} if isinstance(raw, dict) else {}
        ports = {k: v for k, v in values.items() if k.endswith("_port")}
        if any(not isinstance(v, int) or not 0 < v < 65536 for v in ports.values()):
            log.warning("%s holds an invalid port (%s); choosing ports afresh", path, ports)
            values = {"token": values.get("token")}
        if not isinstance(values.get("token"), str | None):
            values["token"] = None
        return cls(**values)

    def save(self, state_dir: Path) -> None:
        """Write the file readable by its owner only: it holds the display token."""
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / ADDRESSES_FILE
        tmp = path.with_name(f".{path.name}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(asdict(self), out, indent=2)
            out.write("\n")
        tmp.replace(path)

    def choose(self, name: str, flag: int | None, default: int) -> int:
        """The port to try for ``name``: the flag when given (and remembered), else the one
        kept from before, else ``default``."""
        if flag is not None:
            setattr(self, name, flag)
            return flag
        kept: int | None = getattr(self, name)
        return default if kept is None else kept

    def used(self, name: str, port: int) -> None:
        """Remember ``port`` for ``name`` if nothing was kept yet (a port taken this once by
        another program stays the one to try first next time)."""
        if getattr(self, name) is None:
            setattr(self, name, port)

    def display_token(self, flag: str | None) -> str:
        """The token given (not kept: it comes from the flag or environment every time),
        else the one kept, else a new one that is kept from now on."""
        if flag is not None:
            return flag
        if self.token is None:
            self.token = secrets.token_urlsafe(18)
        return self.token
