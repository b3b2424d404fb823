"""Settings shared by the services: a YAML config file, ``SOUNDALERT_*`` environment
variables and command-line flags, validated into pydantic models with clear messages.

Precedence, highest first: command-line flags, environment, config file, defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.topics import DEFAULT_ROOT
from soundalert.mqtt import BROKER_URL_HELP, BrokerUrl

__all__ = ["ENV_PREFIX", "BrokerServiceSettings", "ConfigError", "ServiceSettings", "load_settings"]

ENV_PREFIX = "SOUNDALERT_"

S = TypeVar("S", bound="ServiceSettings")


class ConfigError(ValueError):
    """A configuration problem, worded for the person who has to fix it."""


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)


class BrokerServiceSettings(ServiceSettings):
    """What the aggregator, notifier and web display all take: their broker and topics, a
    state directory, and where /metrics is served."""

    broker: str = Field(
        default="mqtt://127.0.0.1:1883",
        description=BROKER_URL_HELP,
    )
    topic_root: str = Field(default=DEFAULT_ROOT, description="Root of every soundalert topic.")
    state_dir: Path = Field(default=Path("state"), description="Directory for the SQLite state.")
    metrics_port: int | None = Field(
        default=None, ge=0, le=65535, description="Serve Prometheus /metrics on this port."
    )
    metrics_host: str = Field(default="127.0.0.1", description="Address for /metrics.")

    @field_validator("broker")
    @classmethod
    def _broker_parses(cls, value: str) -> str:
        BrokerUrl.parse(value)
        return value


def _describe(exc: ValidationError, source: str) -> str:
    lines = [f"invalid configuration ({source}):"]
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        env = f"{ENV_PREFIX}{where.upper()}" if err["loc"] else ""
        hint = f" [config key '{where}' or env {env}]" if env else ""
        lines.append(f"  - {where}: {err['msg']}{hint}")
    return "\n".join(lines)


def load_settings(cls: type[S], config_file: Path | None, **flags: Any) -> S:
    """Build ``cls`` from a config file, the environment and explicit flags (``None`` flags
    are ignored so that the environment and the file still apply)."""
    file_values: dict[str, Any] = {}
    if config_file is not None:
        try:
            loaded = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {config_file} must hold a mapping of settings")
        file_values = loaded
    explicit = {k: v for k, v in flags.items() if v is not None}
    try:
        from_env = cls()  # environment and defaults
    except ValidationError as exc:
        raise ConfigError(_describe(exc, "environment")) from None
    env_set = {name for name in cls.model_fields if name in from_env.model_fields_set}
    merged = {**file_values, **{k: getattr(from_env, k) for k in env_set}, **explicit}
    try:
        return cls.model_validate(merged)
    except ValidationError as exc:
        source = f"config file {config_file}" if config_file else "flags"
        raise ConfigError(_describe(exc, source)) from None
