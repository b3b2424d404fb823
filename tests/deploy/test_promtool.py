"""``promtool check`` and ``promtool test rules`` on the shipped Prometheus config and rules."""

from __future__ import annotations

import subprocess

from tests.deploy.support import REPO, require

PROMETHEUS_DIR = REPO / "deploy" / "prometheus"


def _promtool(*args: str) -> str:
    result = subprocess.run(
        [require("promtool"), *args],
        capture_output=True,
        text=True,
        cwd=PROMETHEUS_DIR,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_rules_pass_promtool_check() -> None:
    rules = sorted(str(p) for p in (PROMETHEUS_DIR / "rules").glob("*.yml"))
    assert len(rules) == 2
    out = _promtool("check", "rules", *rules)
    assert out.count("SUCCESS") == len(rules)


def test_config_passes_promtool_check() -> None:
    assert "SUCCESS" in _promtool("check", "config", "prometheus.yml")


def test_rule_unit_tests_pass() -> None:
    tests = sorted(str(p) for p in (PROMETHEUS_DIR / "tests").glob("*.yml"))
    assert len(tests) >= 2
    assert "SUCCESS" in _promtool("test", "rules", *tests)
