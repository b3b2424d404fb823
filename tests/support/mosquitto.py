"""A real Mosquitto for tests: its own config, password file, ACL and persistence directory.

Tests can kill it (SIGKILL, as a crash) and start it again on the same port with the same
persistence, to exercise reconnects and queued QoS 1 delivery. With ``tls``, it also has two
TLS listeners with a CA the fixture generates (:class:`TlsFiles`, made by the same code as
``soundalert node init``): one that checks only the broker's certificate, one that also
requires a client certificate.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from soundalert.tls import Issued, issue_certificate, new_ca, write_issued

__all__ = ["MOSQUITTO", "Mosquitto", "TlsFiles", "end_process", "free_port"]

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def end_process(process: subprocess.Popen[bytes] | None, *, crash: bool) -> None:
    """SIGKILL (``crash``) or SIGTERM a server process, and wait for it."""
    if process is not None and process.poll() is None:
        os.kill(process.pid, signal.SIGKILL if crash else signal.SIGTERM)
        process.wait(timeout=15)


@dataclass(frozen=True)
class TlsFiles:
    """A CA, a broker certificate for 127.0.0.1/localhost and a client certificate, as PEM
    files in one directory."""

    directory: Path
    ca: Issued

    @classmethod
    def generate(cls, directory: Path, ca_name: str = "test CA") -> TlsFiles:
        ca = new_ca(ca_name)
        files = cls(directory, ca)
        write_issued(ca, files.ca_cert, directory / "ca.key", key_mode=0o600)
        broker = issue_certificate(ca, "mosquitto", names=["localhost", "127.0.0.1"])
        write_issued(broker, files.broker_cert, files.broker_key, key_mode=0o600)
        client = issue_certificate(ca, "test-client", server=False)
        write_issued(client, files.client_cert, files.client_key, key_mode=0o600)
        return files

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def broker_cert(self) -> Path:
        return self.directory / "broker.crt"

    @property
    def broker_key(self) -> Path:
        return self.directory / "broker.key"

    @property
    def client_cert(self) -> Path:
        return self.directory / "client.crt"

    @property
    def client_key(self) -> Path:
        return self.directory / "client.key"


@dataclass
class Mosquitto:
    """A Mosquitto process with password auth and an ACL, listening on 127.0.0.1 (plain MQTT
    on ``port``; with ``tls``, TLS on ``tls_port`` and TLS with client certificates on
    ``mtls_port``)."""

    workdir: Path
    users: dict[str, str]
    acl: str
    port: int = field(default_factory=free_port)
    tls: TlsFiles | None = None
    tls_port: int = field(default_factory=free_port)
    mtls_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    autosave_interval: int = 1
    """Seconds between persistence saves (the compose stack's broker uses 60: a crash loses
    what came since the last save, sessions included)."""

    def write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        passwd = self.workdir / "passwd"
        passwd.write_text("")
        for user, password in self.users.items():
            subprocess.run(
                [MOSQUITTO_PASSWD, "-b", str(passwd), user, password],
                check=True,
                capture_output=True,
            )
        (self.workdir / "acl").write_text(self.acl)
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            "\n".join(
                [
                    # Started as root, mosquitto would drop to user "mosquitto", who cannot
                    # read the test's private directory: keep the invoking user.
                    f"user {getpass.getuser()}",
                    "per_listener_settings false",
                    f"listener {self.port} 127.0.0.1",
                    "allow_anonymous false",
                    f"password_file {passwd}",
                    f"acl_file {self.workdir / 'acl'}",
                    "persistence true",
                    f"persistence_location {data}/",
                    f"autosave_interval {self.autosave_interval}",
                    "max_queued_messages 100000",
                    *self._tls_listeners(),
                    "log_dest stderr",
                    "log_type error",
                    "log_type warning",
                    "",
                ]
            )
        )
        return conf

    def _tls_listeners(self) -> list[str]:
        if self.tls is None:
            return []
        files = [f"cafile {self.tls.ca_cert}", f"certfile {self.tls.broker_cert}",
                 f"keyfile {self.tls.broker_key}"]  # fmt: skip
        return [
            f"listener {self.tls_port} 127.0.0.1",
            *files,
            f"listener {self.mtls_port} 127.0.0.1",
            *files,
            "require_certificate true",
        ]

    def start(self) -> None:
        conf = self.workdir / "mosquitto.conf"
        if not conf.exists():
            conf = self.write_config()
        log = (self.workdir / "mosquitto.log").open("ab")
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited with {self.process.returncode}: "
                    f"{(self.workdir / 'mosquitto.log').read_text()[-2000:]}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port} within 10 s")

    def kill(self) -> None:
        """SIGKILL: a crash, not a clean shutdown."""
        end_process(self.process, crash=True)
        self.process = None

    def stop(self) -> None:
        """SIGTERM: mosquitto writes its persistence file and exits."""
        end_process(self.process, crash=False)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def forget_everything(self) -> None:
        """A crash before the broker saved anything: SIGKILL, then start again with an empty
        persistence directory (no sessions, no queued messages, no retained messages)."""
        self.kill()
        data = self.workdir / "data"
        shutil.rmtree(data)
        data.mkdir()
        self.start()

    def url(self, user: str, *, tls: bool = False, client_cert: bool = False) -> str:
        """A broker URL for ``user``: plain; ``tls``: over TLS trusting the test CA;
        ``client_cert``: on the listener that requires a client certificate, with one."""
        login = f"{user}:{self.users[user]}@127.0.0.1"
        if not (tls or client_cert):
            return f"mqtt://{login}:{self.port}"
        assert self.tls is not None, "start this Mosquitto with tls=TlsFiles.generate(...)"
        ca = f"ca={quote(str(self.tls.ca_cert))}"
        if not client_cert:
            return f"mqtts://{login}:{self.tls_port}?{ca}"
        cert = f"cert={quote(str(self.tls.client_cert))}&key={quote(str(self.tls.client_key))}"
        return f"mqtts://{login}:{self.mtls_port}?{ca}&{cert}"
