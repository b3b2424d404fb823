"""Broker credentials for nodes and services: Mosquitto password-file entries and ACL blocks.

``soundalert node add --site S --node N`` gives one listening node a login that may publish
only under ``<root>/<site>/<node>/`` and read only its own delivery acknowledgements
(``<root>/<site>/<node>/ack``); ``soundalert node init`` creates the service logins the compose
stack uses and writes their passwords to an ``.env`` file, and the broker's TLS: a private CA
and a certificate for the broker (:mod:`soundalert.tls`).

Password entries use Mosquitto 2's own format, ``$7$<iterations>$<salt>$<hash>`` (PBKDF2 with
HMAC-SHA512, 12-byte salt, 64-byte hash, base64), generated here so that no ``mosquitto_passwd``
is needed (and no password appears on a command line). Mosquitto reloads both files on SIGHUP.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from schemas.common import ID_PATTERN, RESERVED_NODE_IDS
from schemas.topics import DEFAULT_ROOT
from soundalert.tls import BrokerTls, default_broker_names

__all__ = [
    "SERVICE_ACLS",
    "AclFile",
    "PasswordFile",
    "hash_password",
    "node_acl",
    "node_username",
    "register",
    "verify_password",
]

PBKDF2_ITERATIONS = 101  # what mosquitto_passwd 2.0 writes; Mosquitto reads the count per entry
_SALT_BYTES = 12
_ID = re.compile(ID_PATTERN)
_USER = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


def hash_password(
    password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS
) -> str:
    """A Mosquitto 2 password-file hash (``$7$``: PBKDF2-HMAC-SHA512)."""
    salt = salt if salt is not None else secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """Check ``password`` against a ``$7$`` (or ``$6$``: salted SHA-512) Mosquitto hash."""
    parts = encoded.split("$")
    if len(parts) == 5 and parts[1] == "7":
        salt, expected = base64.b64decode(parts[3]), base64.b64decode(parts[4])
        digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]))
        return hmac.compare_digest(digest, expected)
    if len(parts) == 4 and parts[1] == "6":
        salt, expected = base64.b64decode(parts[2]), base64.b64decode(parts[3])
        return hmac.compare_digest(hashlib.sha512(password.encode() + salt).digest(), expected)
    return False


def node_username(site: str, node: str) -> str:
    """The broker login of a node: ``<site>.<node>`` ('.' is never part of an id)."""
    return f"{site}.{node}"


def node_acl(root: str, site: str, node: str) -> list[str]:
    """A node may publish under its own topics (events, features, status and its last will),
    read only the aggregator's acknowledgements of its own events (end-to-end delivery) and
    the display's requests to learn what it heard, and read and publish its site's learned
    sounds (sound packs)."""
    return [
        f"user {node_username(site, node)}",
        f"topic write {root}/{site}/{node}/#",
        f"topic read {root}/{site}/{node}/ack",
        f"topic read {root}/{site}/{node}/learn",
        f"topic readwrite {root}/{site}/sounds/+",
    ]


def _service_acls(root: str) -> dict[str, list[str]]:
    status = f"{root}/+/+/status"
    return {
        "aggregator": [
            f"topic read {root}/+/+/events",
            f"topic read {status}",
            f"topic read {root}/+/feedback",
            f"topic read {root}/+/sounds/+",
            f"topic write {root}/+/alerts",
            f"topic write {root}/+/alerts/+/state",
            f"topic write {root}/+/+/ack",
            f"topic readwrite {root}/_services/aggregator/status",
        ],
        "notifier": [
            f"topic read {root}/+/alerts",
            f"topic read {status}",
            "# Home Assistant: entity states, nodes known by their delivery acks, the button",
            f"topic read {root}/+/alerts/+/state",
            f"topic read {root}/+/+/ack",
            f"topic write {root}/+/feedback",
            f"topic readwrite {root}/_services/notifier/status",
            "topic readwrite homeassistant/#",
            "# MQTT actions (lights, strobes, bed shakers): add the topics your config uses.",
            "topic write zigbee2mqtt/#",
        ],
        "web": [
            f"topic read {root}/+/alerts",
            f"topic read {root}/+/alerts/+/state",
            f"topic read {status}",
            f"topic readwrite {root}/+/feedback",
            f"topic write {root}/+/+/learn",
            f"topic readwrite {root}/+/sounds/+",
            f"topic readwrite {root}/_services/web/status",
        ],
        "healthcheck": ["topic read $SYS/broker/uptime"],
    }


SERVICE_ACLS = _service_acls(DEFAULT_ROOT)
"""What each service login may read and write, under the default topic root."""


@dataclass
class PasswordFile:
    """A Mosquitto password file: ``user:hash`` lines, order and unknown lines kept."""

    path: Path

    def _lines(self) -> list[str]:
        return self.path.read_text(encoding="utf-8").splitlines() if self.path.exists() else []

    def users(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for line in self._lines():
            user, sep, encoded = line.partition(":")
            if sep and not line.startswith("#"):
                out[user] = encoded
        return out

    def set(self, user: str, password: str) -> None:
        if not _USER.fullmatch(user):
            raise ValueError(f"user name {user!r} must match {_USER.pattern}")
        entry = f"{user}:{hash_password(password)}"
        lines = [line for line in self._lines() if line.partition(":")[0] != user]
        _write_private(self.path, "\n".join([*lines, entry]) + "\n")

    def remove(self, user: str) -> bool:
        lines = self._lines()
        kept = [line for line in lines if line.partition(":")[0] != user]
        if len(kept) != len(lines):
            _write_private(self.path, "".join(f"{line}\n" for line in kept))
        return len(kept) != len(lines)


@dataclass
class AclFile:
    """A Mosquitto ACL file whose per-login blocks are managed between marker comments."""

    path: Path

    @staticmethod
    def _markers(name: str) -> tuple[str, str]:
        return f"# >>> soundalert {name}", f"# <<< soundalert {name}"

    def _text(self) -> str:
        return self.path.read_text(encoding="utf-8") if self.path.exists() else ""

    def blocks(self) -> list[str]:
        """The managed blocks' names, such as ``service aggregator`` or ``node home/hall``."""
        return re.findall(r"^# >>> soundalert (.+?)\s*$", self._text(), flags=re.MULTILINE)

    def set_block(self, name: str, lines: list[str]) -> None:
        begin, end = self._markers(name)
        text = self._strip(self._text(), name).rstrip("\n")
        block = "\n".join([begin, *lines, end])
        _write_private(self.path, (f"{text}\n\n" if text else "") + block + "\n")

    def remove_block(self, name: str) -> bool:
        text = self._text()
        stripped = self._strip(text, name)
        if stripped != text:
            _write_private(self.path, stripped)
        return stripped != text

    def _strip(self, text: str, name: str) -> str:
        begin, end = (re.escape(m) for m in self._markers(name))
        return re.sub(rf"\n*^{begin}$.*?^{end}$\n?", "\n", text, flags=re.MULTILINE | re.DOTALL)


def _write_private(path: Path, text: str, mode: int = 0o644) -> None:
    """Write atomically. The broker runs as uid 1883 in its container and must read the
    password file: it holds salted PBKDF2 hashes, readable by default (see docs/deploy.md to
    restrict it to that uid)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(path.stat().st_mode & 0o777 if path.exists() else mode)
    tmp.replace(path)


def _check_id(value: str, what: str) -> str:
    if not _ID.fullmatch(value):
        raise typer.BadParameter(f"{what} id {value!r} must match {ID_PATTERN}")
    return value


def _update_env(path: Path, values: dict[str, str]) -> list[str]:
    """Add ``KEY=value`` lines for keys not yet in the env file; returns the keys added."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    present = {line.partition("=")[0].strip() for line in lines if "=" in line}
    added = [key for key in values if key not in present]
    if added:
        lines += [f"{key}={values[key]}" for key in added]
        _write_private(path, "\n".join(lines) + "\n", mode=0o600)
    return added


# -- the command line ------------------------------------------------------------------------
node_app = typer.Typer(help="Broker logins for listening nodes and services.", no_args_is_help=True)

ConfigDir = Annotated[
    Path,
    typer.Option(
        "--config-dir",
        help="Mosquitto config directory holding 'passwd' and 'acl'.",
        file_okay=False,
    ),
]
RootOpt = Annotated[str, typer.Option("--topic-root", help="Root of the soundalert topics.")]
DEFAULT_CONFIG_DIR = Path("deploy/mosquitto")
RELOAD_HINT = "reload the broker: docker-compose kill -s SIGHUP mosquitto"


@node_app.command("add")
def add(
    site: Annotated[str, typer.Option("--site", help="Site id (the home).")],
    node: Annotated[str, typer.Option("--node", help="The node's id.")],
    password: Annotated[
        str | None, typer.Option("--password", help="Password (default: a random one, printed).")
    ] = None,
    config_dir: ConfigDir = DEFAULT_CONFIG_DIR,
    topic_root: RootOpt = DEFAULT_ROOT,
) -> None:
    """Create (or replace) a node's login: it may publish under <root>/<site>/<node>/ only, and
    read its delivery acknowledgements."""
    _check_id(site, "site")
    _check_id(node, "node")
    if node in RESERVED_NODE_IDS:
        raise typer.BadParameter(f"node id {node!r} is reserved")
    secret = password or secrets.token_urlsafe(18)
    user = node_username(site, node)
    PasswordFile(config_dir / "passwd").set(user, secret)
    AclFile(config_dir / "acl").set_block(f"node {site}/{node}", node_acl(topic_root, site, node))
    typer.echo(f"node {site}/{node}: login '{user}' may publish under {topic_root}/{site}/{node}/")
    if password is None:
        typer.echo(f"  password: {secret}")
    typer.echo(
        f"  agent:    soundalert agent --site {site} --node {node} "
        f"--broker 'mqtts://{user}:<password>@<broker host>:8883?ca=/path/to/ca.crt'"
    )
    typer.echo("            (ca.crt: the one 'soundalert node init' wrote)")
    typer.echo(f"  then {RELOAD_HINT}")


@node_app.command("remove")
def remove(
    site: Annotated[str, typer.Option("--site", help="Site id.")],
    node: Annotated[str, typer.Option("--node", help="The node's id.")],
    config_dir: ConfigDir = DEFAULT_CONFIG_DIR,
) -> None:
    """Remove a node's login and ACL entries."""
    user = node_username(_check_id(site, "site"), _check_id(node, "node"))
    found = PasswordFile(config_dir / "passwd").remove(user)
    found = AclFile(config_dir / "acl").remove_block(f"node {site}/{node}") or found
    if not found:
        typer.secho(f"no login for node {site}/{node}", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(1)
    typer.echo(f"removed node {site}/{node}; {RELOAD_HINT}")


@node_app.command("list")
def list_logins(config_dir: ConfigDir = DEFAULT_CONFIG_DIR) -> None:
    """List the logins in the password file and the managed ACL blocks."""
    acl = set(AclFile(config_dir / "acl").blocks())
    for user in PasswordFile(config_dir / "passwd").users():
        site, _, node = user.partition(".")
        kind = f"node {site}/{node}" if node else f"service {user}"
        typer.echo(f"{user:<32} {kind}{'' if kind in acl else ' (no ACL block)'}")


@node_app.command("init")
def init(  # noqa: PLR0917 - typer takes options as parameters
    config_dir: ConfigDir = DEFAULT_CONFIG_DIR,
    env_file: Annotated[
        Path, typer.Option("--env-file", help="Compose .env file for the generated passwords.")
    ] = Path(".env"),
    demo_site: Annotated[
        str, typer.Option("--demo-site", help="Site of the demo node (compose profile 'demo').")
    ] = "home",
    topic_root: RootOpt = DEFAULT_ROOT,
    san: Annotated[
        list[str] | None,
        typer.Option("--san", help="Another host name or address clients use to reach the "
                     "broker, for its certificate (repeatable)."),
    ] = None,
    ca_dir: Annotated[
        Path | None,
        typer.Option("--ca-dir", file_okay=False,
                     help="Where the CA (ca.crt, ca.key) is kept; default <config-dir>/../ca. "
                     "Never mounted into a container."),
    ] = None,
    tls_dir: Annotated[
        Path | None,
        typer.Option("--tls-dir", file_okay=False,
                     help="Gets ca.crt for the clients (compose mounts it at "
                     "/etc/ssl/soundalert); default <config-dir>/../tls."),
    ] = None,
) -> None:  # fmt: skip
    """Create the service logins of the compose stack (aggregator, notifier, web, healthcheck,
    and the demo node) with random passwords, kept in the .env file, and the broker's TLS: a
    CA and a certificate for the broker (names: mosquitto, localhost, 127.0.0.1, this host's
    name and address, and every --san). Existing secrets, CA and certificate are kept; the
    certificate is re-issued when a name is missing or it expires within 30 days."""
    _check_id(demo_site, "site")
    tls = BrokerTls(
        ca_dir=ca_dir or config_dir.parent / "ca",
        broker_dir=config_dir / "tls",
        clients_dir=tls_dir or config_dir.parent / "tls",
    )
    values = {
        f"{name.upper()}_MQTT_PASSWORD": secrets.token_urlsafe(18)
        for name in _service_acls(topic_root)
    }
    values["DEMO_SITE"] = demo_site
    values["DEMO_MQTT_PASSWORD"] = secrets.token_urlsafe(18)
    values["WEB_TOKEN"] = secrets.token_urlsafe(24)
    values["GRAFANA_ADMIN_PASSWORD"] = secrets.token_urlsafe(12)
    added = _update_env(env_file, values)
    env = dict(
        line.split("=", 1)
        for line in env_file.read_text(encoding="utf-8").splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    )
    passwd, acl = PasswordFile(config_dir / "passwd"), AclFile(config_dir / "acl")
    for name, rules in _service_acls(topic_root).items():
        passwd.set(name, env[f"{name.upper()}_MQTT_PASSWORD"])
        acl.set_block(f"service {name}", [f"user {name}", *rules])
    site = env["DEMO_SITE"]
    passwd.set(node_username(site, "demo"), env["DEMO_MQTT_PASSWORD"])
    acl.set_block(f"node {site}/demo", node_acl(topic_root, site, "demo"))
    typer.echo(f"service logins written to {config_dir}/passwd and {config_dir}/acl")
    typer.echo(f"{len(added)} new secret(s) in {env_file} (keep it private)")
    try:
        for line in tls.ensure(default_broker_names(san or [])):
            typer.echo(line)
    except (OSError, ValueError, TypeError) as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"TLS: clients trust {tls.clients_dir / 'ca.crt'} (mqtts://...:8883?ca=<that file>)")
    if tls.broker_key.stat().st_mode & 0o004:
        typer.echo(
            f"  {tls.broker_key} is readable by every local user so that the broker (uid 1883 "
            f"in its container) can read it; to restrict it: sudo chown 1883 {tls.broker_key} "
            f"&& sudo chmod 600 {tls.broker_key}"
        )


def register(app: typer.Typer) -> None:
    app.add_typer(node_app, name="node")
