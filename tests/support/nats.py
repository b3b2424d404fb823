"""A real NATS server (Debian's ``nats-server``) with JetStream and its MQTT listener.

The hosted mode's broker: nodes, the display, the notifier and Home Assistant keep speaking MQTT
3.1.1 to its MQTT listener, which needs JetStream (it keeps sessions, QoS 1 messages and retained
messages in streams) and a ``server_name``. Several of these with ``cluster_port`` and
``routes`` form a cluster (bench/scale_out.py); ``mappings`` adds subject mappings such as the
partitioning of events by site. Users log in with a password on both NATS and MQTT; unlike the
test Mosquitto there is no per-node ACL (NATS permissions are per user and subject, and the
MQTT listener needs its internal ``$MQTT.>`` subjects on top).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.mosquitto import Mosquitto, end_process, free_port

__all__ = ["NATS_SERVER", "Broker", "NatsServer"]

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


@dataclass
class NatsServer:
    """One nats-server process listening on 127.0.0.1: NATS on ``port``, MQTT on ``mqtt_port``."""

    workdir: Path
    users: dict[str, str]
    name: str = "n1"
    port: int = field(default_factory=free_port)
    mqtt_port: int = field(default_factory=free_port)
    cluster_port: int | None = None
    routes: list[int] = field(default_factory=list)
    """Cluster ports of the other servers of the cluster."""
    cluster_name: str = "soundalert"
    mappings: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        users = ", ".join(
            f"{{user: {json.dumps(u)}, password: {json.dumps(p)}}}" for u, p in self.users.items()
        )
        lines = [
            f"server_name: {json.dumps(self.name)}",
            f"listen: 127.0.0.1:{self.port}",
            f"jetstream {{ store_dir: {json.dumps(str(self.workdir / 'jetstream'))} }}",
            f"authorization {{ users: [{users}] }}",
            f"mqtt {{ listen: 127.0.0.1:{self.mqtt_port} }}",
        ]
        if self.cluster_port is not None:
            routes = ", ".join(f'"nats-route://127.0.0.1:{p}"' for p in self.routes)
            lines.append(
                f"cluster {{ name: {json.dumps(self.cluster_name)}, "
                f"listen: 127.0.0.1:{self.cluster_port}, routes: [{routes}] }}"
            )
        if self.mappings:
            body = ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in self.mappings.items())
            lines.append(f"mappings {{ {body} }}")
        conf = self.workdir / "nats.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self, *, wait: bool = True) -> None:
        conf = self.workdir / "nats.conf"
        if not conf.exists():
            conf = self.write_config()
        log = (self.workdir / "nats.log").open("ab")
        self.process = subprocess.Popen([NATS_SERVER, "-c", str(conf)], stdout=log, stderr=log)
        if wait:
            self.wait_listening()

    def wait_listening(self, timeout_s: float = 20.0) -> None:
        """Until both the NATS and the MQTT port accept connections (the MQTT listener opens
        once JetStream is up, which in a cluster needs a quorum of servers)."""
        deadline = time.monotonic() + timeout_s
        for port in (self.port, self.mqtt_port):
            while True:
                if self.process is None or self.process.poll() is not None:
                    raise RuntimeError(f"nats-server exited: {self.log_tail()}")
                with contextlib.suppress(OSError):
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nats-server not listening on {port}: {self.log_tail()}")
                time.sleep(0.05)

    def log_tail(self) -> str:
        path = self.workdir / "nats.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: a crash."""
        end_process(self.process, crash=True)
        self.process = None

    def stop(self) -> None:
        end_process(self.process, crash=False)
        self.process = None

    def url(self, user: str) -> str:
        """The MQTT URL for ``user`` (what soundalert's services are given)."""
        return f"mqtt://{user}:{self.users[user]}@127.0.0.1:{self.mqtt_port}"

    def nats_url(self, user: str) -> str:
        return f"nats://{user}:{self.users[user]}@127.0.0.1:{self.port}"


Broker = Mosquitto | NatsServer
"""Either broker of the ``broker`` fixture (both have ``url(user)``, ``kill``, ``start``)."""
