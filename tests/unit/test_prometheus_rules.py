"""The alert rules shipped with the deployment parse, and fire (or not) as their tests say.

``promtool`` comes with Debian's ``prometheus`` package; without it these tests are skipped.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

RULES_DIR = Path(__file__).resolve().parents[2] / "docker" / "prometheus"
WANTED = {
    "RegsyncRegistrarSilent",
    "RegsyncConsumerLagGrowing",
    "RegsyncDlqShareSpiking",
    "RegsyncExtractFailingRepeatedly",
    "RegsyncMonthNotLoaded",
}


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    return found


def test_every_alert_the_issue_asks_for_is_there_and_tested():
    rules = yaml.safe_load((RULES_DIR / "rules.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert alerts >= WANTED
    tests = yaml.safe_load((RULES_DIR / "rules.test.yml").read_text())
    tested = {t["alertname"] for case in tests["tests"] for t in case["alert_rule_test"] if t["exp_alerts"]}
    assert tested >= WANTED


def test_promtool_checks_the_rules_and_the_config():
    promtool = _promtool()
    done = subprocess.run(
        [promtool, "check", "rules", "rules.yml"], cwd=RULES_DIR, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_promtool_rule_tests_pass():
    promtool = _promtool()
    done = subprocess.run(
        [promtool, "test", "rules", "rules.test.yml"],
        cwd=RULES_DIR,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
