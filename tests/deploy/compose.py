"""Run the services of ``docker-compose.yml`` natively: same command, environment and
healthcheck, with container hosts, ports and paths mapped onto this machine.

There is no Docker engine on CI machines. Each compose service's ``command`` (after its
``entrypoint``) runs as a local process; bind mounts become copies of their sources in a temp
directory, named volumes empty temp directories; every port the stack uses gets a free local
port; ``<service>:<port>`` and ``0.0.0.0`` become ``127.0.0.1:<free port>``.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.support import REPO
from tests.support.mosquitto import free_port

__all__ = ["IMAGE_PATHS", "NativeStack", "interpolate", "load_compose"]

COMPOSE_FILE = REPO / "docker-compose.yml"
# Files the Dockerfile puts into the image (not volumes): container path -> how to provide it.
IMAGE_PATHS = ("/opt/soundalert/demo",)
_VAR = re.compile(r"\$(?:\$|\{(?P<braced>[^}]+)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose variable substitution: ``$$``, ``$VAR``, ``${VAR}``, ``${VAR:-default}``,
    ``${VAR-default}``, ``${VAR:?error}``, ``${VAR?error}``."""

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        expr = match.group("braced") or match.group("plain")
        name, op, arg = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(:?[-?])?(.*)", expr, re.DOTALL).groups()  # type: ignore[union-attr]
        value = env.get(name)
        unset = value is None or (op is not None and op.startswith(":") and value == "")
        if op and op.endswith("-") and unset:
            return str(arg)
        if op and op.endswith("?") and unset:
            raise KeyError(f"{name}: {arg}")
        return value or ""

    return _VAR.sub(sub, text)


def _walk(value: Any, env: dict[str, str]) -> Any:
    if isinstance(value, str):
        return interpolate(value, env)
    if isinstance(value, list):
        return [_walk(v, env) for v in value]
    if isinstance(value, dict):
        return {k: _walk(v, env) for k, v in value.items()}
    return value


def load_compose(env: dict[str, str], path: Path = COMPOSE_FILE) -> dict[str, Any]:
    """The compose file with YAML anchors merged and variables substituted (as compose does:
    in values, after parsing)."""
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return {k: _walk(v, env) for k, v in data.items() if not k.startswith("x-")}


@dataclass
class NativeStack:
    """The mapping from the compose world onto this machine, for one test run."""

    compose: dict[str, Any]
    workdir: Path
    ports: dict[int, int] = field(default_factory=dict)
    mounts: dict[str, dict[str, Path]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        text = yaml.safe_dump(self.compose)
        for port in sorted({int(p) for p in re.findall(r"(?<![\d.])(\d{4,5})(?![\d.])", text)}):
            if 1024 <= port < 65536 and port != 10001:  # 10001: the image's uid
                self.ports[port] = free_port()
        for name, service in self.compose["services"].items():
            mounts = self.mounts.setdefault(name, {})
            for volume in service.get("volumes", []):
                source, target = volume.split(":")[:2]
                key = source.strip("./").replace("/", "_")
                local = self.workdir / ("binds" if source.startswith(".") else "volumes") / key
                if source.startswith(".") and not local.exists():
                    shutil.copytree(REPO / source, local)
                local.mkdir(parents=True, exist_ok=True)
                mounts[target] = local

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        services: dict[str, dict[str, Any]] = self.compose["services"]
        return services

    def port(self, container_port: int) -> int:
        return self.ports[container_port]

    def rewrite(self, text: str, service: str | None = None) -> str:
        """Hosts, ports and (``service``'s) container paths in a command argument, an
        environment value or a config file, as they are on this machine."""
        mounts = dict(self.mounts.get(service, {})) if service else {}
        mounts.update(
            {p: self.workdir / "image" / p.strip("/").replace("/", "_") for p in IMAGE_PATHS}
        )
        if mounts:
            targets = "|".join(re.escape(t) for t in sorted(mounts, key=len, reverse=True))
            text = re.sub(
                rf"(?<![\w/])({targets})(?=/|\b|$)", lambda m: str(mounts[m.group(1)]), text
            )
        hosts = "|".join([*self.services, "localhost", "127.0.0.1", "0.0.0.0"])  # noqa: S104
        text = re.sub(
            rf"(?<![\w.-])(?:{hosts})?:(\d{{4,5}})\b",
            lambda m: f"127.0.0.1:{self.ports.get(int(m.group(1)), m.group(1))}",
            text,
        )
        text = text.replace("0.0.0.0", "127.0.0.1")  # noqa: S104
        return re.sub(
            r"^(\d{4,5})$", lambda m: str(self.ports.get(int(m.group(1)), m.group(1))), text
        )

    def argv(self, name: str) -> list[str]:
        service = self.services[name]
        argv = [
            self.rewrite(a, name)
            for a in [*service.get("entrypoint", []), *service.get("command", [])]
        ]
        if not argv:
            raise LookupError(f"service {name} has no command: it runs its image's default")
        program = Path(argv[0]).name
        binary = shutil.which(program) or shutil.which(program, path="/usr/sbin")
        return [binary or program, *argv[1:]]

    def environment(self, name: str) -> dict[str, str]:
        env = self.services[name].get("environment", {})
        return {k: self.rewrite(str(v), name) for k, v in env.items()}

    def healthcheck(self, name: str) -> list[str]:
        test = [self.rewrite(a, name) for a in self.services[name]["healthcheck"]["test"]]
        if test[0] == "CMD-SHELL":
            return ["sh", "-c", test[1]]
        assert test[0] == "CMD", test
        return test[1:]
