"""docker-compose.hosted.yml and the NATS configuration it mounts (docs/hosted.md)."""

from __future__ import annotations

import json
import re
import subprocess

import yaml

from services.aggregator.hosted import partition_mapping
from tests.deploy.support import REPO, child_env, require

HOSTED = REPO / "docker-compose.hosted.yml"
NATS_CONF = REPO / "deploy" / "nats" / "nats.conf"
SECRETS = {
    name: f"{name.lower()}-value"
    for name in sorted(set(re.findall(r"\$\{(\w+):\?", HOSTED.read_text())))
}


def _compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [require("docker-compose"), "--project-directory", str(REPO), "-f", str(HOSTED)]
    return subprocess.run([*command, *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip


def test_docker_compose_config_accepts_the_hosted_file_and_asks_for_its_secrets() -> None:
    result = _compose("config", env=child_env(**SECRETS))
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    assert set(services) == {"nats1", "nats2", "nats3", "postgres", "aggregator1",
                             "aggregator2", "aggregator3", "web", "notifier"}  # fmt: skip
    preferred = [json.loads(services[f"aggregator{i}"]["environment"]
                            ["SOUNDALERT_HOSTED_PREFERRED"]) for i in (1, 2, 3)]  # fmt: skip
    partitions = int(services["aggregator1"]["environment"]["SOUNDALERT_HOSTED_PARTITIONS"])
    assert sorted(p for each in preferred for p in each) == list(range(partitions))
    for name in ("web", "notifier"):  # MQTT to NATS's listener, with their own login
        assert services[name]["environment"]["SOUNDALERT_BROKER"].startswith(f"mqtt://{name}:")
    bare = _compose("config", env=child_env())
    assert bare.returncode != 0
    assert "set the hosted secrets" in bare.stderr


def test_the_nats_configuration_is_valid_and_partitions_as_the_aggregators_expect() -> None:
    env = child_env(SERVER_NAME="n1", **SECRETS)
    checked = subprocess.run([require("nats-server"), "-c", str(NATS_CONF), "-t"], env=env,
                             capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert checked.returncode == 0, checked.stderr + checked.stdout
    services = yaml.safe_load(HOSTED.read_text())["services"]
    partitions = int(services["aggregator1"]["environment"]["SOUNDALERT_HOSTED_PARTITIONS"])
    [(source, target)] = partition_mapping(partitions).items()
    assert f'"{source}": "{target}"' in NATS_CONF.read_text()
