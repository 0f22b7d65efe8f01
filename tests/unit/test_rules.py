"""The shipped Prometheus rules (rules/): promtool accepts them, their unit tests pass, and
the alerts those tests expect are the ones the shipped runbooks plan for.

promtool comes from Debian's `prometheus` package (scripts/test.sh installs it); without
it these tests fail rather than skip, since CI must never pass without checking the rules.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from remediator.actions.notify import NotifyParams
from remediator.actions.registry import builtin_actions
from remediator.authoring.coverage import REMEDIATION_LABEL, load_rules
from remediator.authoring.facts import sample_instance
from remediator.observability.metrics import Metrics
from remediator.pipeline.plan import plan
from remediator.runbooks.loader import load_dir

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "rules"
RULE_FILES = sorted(RULES.glob("*.yaml"))
TEST_FILES = sorted((RULES / "tests").glob("*.yaml"))
ACTIONS = builtin_actions()


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is not installed (apt-get install prometheus; see scripts/test.sh)")
    return found


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def _load(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text("utf-8"))


def _alerting_rules() -> list[tuple[Path, dict[str, Any]]]:
    return [
        (path, rule)
        for path in RULE_FILES
        for group in _load(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def test_there_is_a_rule_file_and_a_test_file_per_area() -> None:
    assert [p.name for p in RULE_FILES] == [
        "certificates.yaml",
        "nodes.yaml",
        "remediator.yaml",
        "rollouts.yaml",
        "workloads.yaml",
    ]
    assert [p.name for p in TEST_FILES] == [p.name for p in RULE_FILES]
    for test in TEST_FILES:
        assert _load(test)["rule_files"] == [f"../{test.name}"]


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules(promtool: str, path: Path) -> None:
    result = _run(promtool, "check", "rules", str(path))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests(promtool: str, path: Path) -> None:
    result = _run(promtool, "test", "rules", str(path))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_fail_on_a_wrong_expectation(promtool: str, tmp_path: Path) -> None:
    shutil.copy(RULES / "workloads.yaml", tmp_path / "workloads.yaml")
    (tmp_path / "tests").mkdir()
    text = (RULES / "tests" / "workloads.yaml").read_text("utf-8")
    assert "memory_limit: 512MiB" in text
    (tmp_path / "tests" / "workloads.yaml").write_text(
        text.replace("memory_limit: 512MiB", "memory_limit: 1GiB"), "utf-8"
    )

    result = _run(promtool, "test", "rules", str(tmp_path / "tests" / "workloads.yaml"))

    assert result.returncode != 0
    assert 'memory_limit="512MiB"' in result.stdout + result.stderr


def test_every_alert_has_severity_runbook_url_summary_and_description() -> None:
    for path, rule in _alerting_rules():
        where = f"{path.name}: {rule['alert']}"
        assert rule["labels"]["severity"] in ("warning", "critical"), where
        assert rule["annotations"]["runbook_url"].startswith("https://"), where
        assert rule["annotations"]["summary"], where
        assert rule["annotations"]["description"], where


def test_every_alert_is_unit_tested_with_the_labels_it_fires_with() -> None:
    rules, problems = load_rules(RULES)

    assert problems == []
    assert len(rules) == len(_alerting_rules())
    assert [r.name for r in rules if not r.tested] == []


def test_only_alerts_for_remediator_carry_the_remediation_label() -> None:
    marked = {
        (path.name, rule["alert"]): rule["labels"].get(REMEDIATION_LABEL)
        for path, rule in _alerting_rules()
    }

    assert {k for k, v in marked.items() if v is not None} == {
        ("certificates.yaml", "CertManagerCertificateExpiringSoon"),
        ("certificates.yaml", "CertManagerCertificateNotReady"),
        ("nodes.yaml", "KubeFailedPodsPilingUp"),
        ("rollouts.yaml", "RolloutCanaryErrorRateHigh"),
        ("workloads.yaml", "KubeContainerOOMKilled"),
        ("workloads.yaml", "KubeHpaSaturated"),
        ("workloads.yaml", "KubePodCrashLooping"),
    }
    assert {v for v in marked.values() if v is not None} == {"true"}


def test_self_alerts_use_metrics_remediator_exports() -> None:
    exported: set[str] = set()
    for family in Metrics().registry.collect():
        exported.add(family.name)
        if family.type == "counter":
            exported.add(f"{family.name}_total")
        if family.type == "histogram":
            exported |= {f"{family.name}{s}" for s in ("_bucket", "_sum", "_count")}
    used = {
        name
        for path, rule in _alerting_rules()
        if path.name == "remediator.yaml"
        for name in re.findall(r"\bremediator_[a-z_]+\b", rule["expr"])
    }

    assert used == {
        "remediator_approvals_expired_total",
        "remediator_circuit_open",
        "remediator_job_failures_total",
        "remediator_runbook_reload_failures_total",
        "remediator_webhook_requests_total",
    }
    assert used <= exported


def _expected_remediation_alerts() -> list[tuple[dict[str, str], dict[str, str]]]:
    """(labels with alertname, annotations) of every remediation alert promtool expects."""
    found = []
    for path in TEST_FILES:
        for test in _load(path)["tests"]:
            for case in test.get("alert_rule_test", []):
                for alert in case.get("exp_alerts") or []:
                    labels = {k: str(v) for k, v in alert["exp_labels"].items()}
                    if labels.get(REMEDIATION_LABEL) == "true":
                        labels["alertname"] = case["alertname"]
                        found.append((labels, dict(alert.get("exp_annotations", {}))))
    return found


def test_the_alerts_promtool_expects_are_planned_by_one_shipped_runbook_each() -> None:
    runbooks = load_dir(REPO / "runbooks", ACTIONS)
    planned: dict[tuple[str, str, str], bool] = {}
    messages: list[str] = []

    for labels, notes in _expected_remediation_alerts():
        matched = runbooks.match(labels)
        assert len(matched) == 1, labels
        result = plan(matched[0], sample_instance(labels, notes), ACTIONS)
        key = (matched[0].spec.name, labels["alertname"], result.target.namespace)
        planned[key] = result.approval_required
        messages += [s.params.message for s in result.steps if isinstance(s.params, NotifyParams)]

    assert planned == {
        ("crashloop-restart", "KubePodCrashLooping", "prod"): False,
        ("oom-notify", "KubeContainerOOMKilled", "shop"): False,
        ("oom-notify", "KubeContainerOOMKilled", "batch"): False,
        ("hpa-saturated-scale", "KubeHpaSaturated", "prod"): True,  # always approved
        ("canary-rollback", "RolloutCanaryErrorRateHigh", "prod"): True,  # prod.* only
        ("canary-rollback", "RolloutCanaryErrorRateHigh", "staging"): False,
        ("cert-renew", "CertManagerCertificateExpiringSoon", "prod"): False,
        ("cert-renew", "CertManagerCertificateNotReady", "prod"): False,
        ("cleanup-failed-pods", "KubeFailedPodsPilingUp", "batch"): False,
        ("cleanup-failed-pods", "KubeFailedPodsPilingUp", "etl"): False,
    }
    assert any("container cart" in m.lower() and "512MiB" in m for m in messages), messages
    assert any("sidecar" in m and "memory limit: none" in m for m in messages), messages
    assert any("spark" in m and "memory limit: 4GiB" in m for m in messages), messages
