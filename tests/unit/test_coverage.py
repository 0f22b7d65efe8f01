"""``remediator lint --rules``: alert rules and runbooks checked against each other."""

from __future__ import annotations

from pathlib import Path

import pytest

from remediator.actions.registry import builtin_actions
from remediator.authoring.coverage import (
    AlertRule,
    TemplateUse,
    check_coverage,
    load_rules,
    template_uses,
)
from remediator.cli import main
from remediator.models.runbook import Runbook, Step
from remediator.runbooks.loader import load_dir
from remediator.runbooks.matchers import parse_matcher

REPO = Path(__file__).resolve().parents[2]
SHIPPED_RULES = REPO / "rules"
SHIPPED_RUNBOOKS = REPO / "runbooks"

RULES = """\
groups:
  - name: demo
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: WebCrashLooping
        expr: max by (namespace, deployment) (crashloop) > 0
        labels:
          severity: warning
          remediation: "true"
        annotations:
          summary: crash-looping
      - alert: WebDown
        expr: up{job="web"} == 0
        labels:
          severity: critical
"""

TESTS = """\
rule_files:
  - ../demo.yaml
tests:
  - interval: 1m
    input_series: []
    alert_rule_test:
      - eval_time: 1m
        alertname: WebCrashLooping
        exp_alerts:
          - exp_labels: {severity: warning, remediation: "true", namespace: prod, deployment: web}
      - eval_time: 1m
        alertname: WebDown
        exp_alerts: []
"""

RUNBOOK = """\
name: web-restart
version: 1
owner: platform
match:
  - alertname="WebCrashLooping"
  - namespace!~"kube-.*"
target:
  kind: Deployment
  namespace: "{{ labels.namespace }}"
  name: "{{ labels.deployment }}"
steps:
  - action: restart
escalate:
  - action: notify
    params:
      message: "{{ annotations.summary }}: restarting {{ labels.deployment }} did not help"
"""


def _write(directory: Path, filename: str, text: str) -> Path:
    path = directory / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _line(text: str, needle: str) -> int:
    found = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(found) == 1, f"{needle!r} is on lines {found}"
    return found[0]


def _dirs(
    tmp_path: Path, rules: str = RULES, tests: str = TESTS, **runbooks: str
) -> tuple[Path, Path]:
    """A rules directory (demo.yaml, tests/demo.yaml) and a runbook directory."""
    rules_dir, runbook_dir = tmp_path / "rules", tmp_path / "runbooks"
    _write(rules_dir, "demo.yaml", rules)
    _write(rules_dir, "tests/demo.yaml", tests)
    for name, text in (runbooks or {"web": RUNBOOK}).items():
        _write(runbook_dir, f"{name}.yaml", text)
    return rules_dir, runbook_dir


def _problems(rules_dir: Path, runbook_dir: Path) -> list[str]:
    return list(check_coverage(rules_dir, load_dir(runbook_dir, builtin_actions())).problems)


# --- the shipped directories -----------------------------------------------------------------


def test_shipped_rules_and_runbooks_cover_each_other() -> None:
    runbooks = load_dir(SHIPPED_RUNBOOKS, builtin_actions())

    report = check_coverage(SHIPPED_RULES, runbooks)

    assert report.problems == ()
    assert sorted(r.name for r in report.remediation_rules) == [
        "CertManagerCertificateExpiringSoon",
        "CertManagerCertificateNotReady",
        "KubeContainerOOMKilled",
        "KubeFailedPodsPilingUp",
        "KubeHpaSaturated",
        "KubePodCrashLooping",
        "RolloutCanaryErrorRateHigh",
    ]
    assert report.runbooks == len(runbooks.runbooks) == 6


def test_shipped_lint_with_rules_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", "--rules", str(SHIPPED_RULES), str(SHIPPED_RUNBOOKS)]) == 0

    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f"6 runbook(s) OK in {SHIPPED_RUNBOOKS}",
        f"7 remediation rule(s) in {SHIPPED_RULES} and 6 runbook(s) cover each other",
    ]
    assert err == ""


def test_shipped_rules_know_the_labels_their_runbooks_need() -> None:
    rules = {r.name: r for r in load_rules(SHIPPED_RULES)[0]}

    crashloop = rules["KubePodCrashLooping"]
    assert crashloop.fixed == {
        "alertname": "KubePodCrashLooping",
        "severity": "warning",
        "remediation": "true",
    }
    assert crashloop.always == {"namespace", "pod", "container", "deployment"}
    assert crashloop.sometimes == frozenset()
    assert "memory_limit" in rules["KubeContainerOOMKilled"].annotations
    assert not rules["RemediatorDown"].remediation


# --- the three checks ----------------------------------------------------------------------


def test_a_matching_pair_has_no_problems(tmp_path: Path) -> None:
    assert _problems(*_dirs(tmp_path)) == []


def test_a_remediation_rule_no_runbook_matches(tmp_path: Path) -> None:
    runbook = RUNBOOK.replace('alertname="WebCrashLooping"', 'alertname="WebCrashLoop"')
    rules_dir, runbook_dir = _dirs(tmp_path, web=runbook)

    assert _problems(rules_dir, runbook_dir) == [
        f"{rules_dir / 'demo.yaml'}:{_line(RULES, 'WebCrashLooping')}: WebCrashLooping: "
        "not matched by any runbook",
        f"{runbook_dir / 'web.yaml'}:1: runbook web-restart: "
        f"not reached by any remediation rule in {rules_dir}",
    ]


def test_a_runbook_only_a_rule_for_people_reaches(tmp_path: Path) -> None:
    other = RUNBOOK.replace("name: web-restart", "name: web-down").replace(
        'alertname="WebCrashLooping"', 'alertname="WebDown"'
    )
    rules_dir, runbook_dir = _dirs(tmp_path, web=RUNBOOK, down=other)

    assert _problems(rules_dir, runbook_dir) == [
        f"{runbook_dir / 'down.yaml'}:1: runbook web-down: "
        f"not reached by any remediation rule in {rules_dir}",
    ]


def test_a_rule_without_the_remediation_label_needs_no_runbook(tmp_path: Path) -> None:
    rules_dir, runbook_dir = _dirs(tmp_path)  # WebDown: no runbook, no remediation label

    assert _problems(rules_dir, runbook_dir) == []
    by_name = {r.name: r for r in load_rules(rules_dir)[0]}
    assert by_name["WebCrashLooping"].remediation
    assert not by_name["WebDown"].remediation


def test_a_template_label_the_rule_does_not_set(tmp_path: Path) -> None:
    tests = TESTS.replace(", deployment: web}", ", pod: web-1}")
    rules_dir, runbook_dir = _dirs(tmp_path, tests=tests)
    rule = f"WebCrashLooping ({rules_dir / 'demo.yaml'}:{_line(RULES, 'WebCrashLooping')})"

    assert _problems(rules_dir, runbook_dir) == [
        f"{runbook_dir / 'web.yaml'}:{_line(RUNBOOK, '  name:')}: runbook web-restart: "
        f"uses labels.deployment, not set by rule {rule}",
        f"{runbook_dir / 'web.yaml'}:{_line(RUNBOOK, 'message:')}: runbook web-restart: "
        f"uses labels.deployment, not set by rule {rule}",
    ]


def test_a_template_annotation_the_rule_does_not_set(tmp_path: Path) -> None:
    rules_dir, runbook_dir = _dirs(
        tmp_path, web=RUNBOOK.replace("annotations.summary", "annotations.description")
    )
    rule = f"WebCrashLooping ({rules_dir / 'demo.yaml'}:{_line(RULES, 'WebCrashLooping')})"

    assert _problems(rules_dir, runbook_dir) == [
        f"{runbook_dir / 'web.yaml'}:{_line(RUNBOOK, 'message:')}: runbook web-restart: "
        f"uses annotations.description, not an annotation of rule {rule}",
    ]


def test_a_label_only_some_tested_alerts_carry(tmp_path: Path) -> None:
    tests = TESTS.replace(
        '          - exp_labels: {severity: warning, remediation: "true", namespace: prod, '
        "deployment: web}\n",
        '          - exp_labels: {severity: warning, remediation: "true", namespace: prod, '
        "deployment: web}\n"
        '          - exp_labels: {severity: warning, remediation: "true", namespace: prod}\n',
    )
    rules_dir, runbook_dir = _dirs(tmp_path, tests=tests)
    rule = f"WebCrashLooping ({rules_dir / 'demo.yaml'}:{_line(RULES, 'WebCrashLooping')})"

    problems = _problems(rules_dir, runbook_dir)

    assert problems == [
        f"{runbook_dir / 'web.yaml'}:{_line(RUNBOOK, '  name:')}: runbook web-restart: "
        f"uses labels.deployment, set only by some tested alerts of rule {rule}",
        f"{runbook_dir / 'web.yaml'}:{_line(RUNBOOK, 'message:')}: runbook web-restart: "
        f"uses labels.deployment, set only by some tested alerts of rule {rule}",
    ]


def test_an_approval_when_on_a_label_the_rule_does_not_set(tmp_path: Path) -> None:
    runbook = (
        RUNBOOK + 'approval:\n  required: true\n  when: [\'env=~"prod.*"\', namespace="prod"]\n'
    )
    rules_dir, runbook_dir = _dirs(tmp_path, web=runbook)
    rule = f"WebCrashLooping ({rules_dir / 'demo.yaml'}:{_line(RULES, 'WebCrashLooping')})"

    assert _problems(rules_dir, runbook_dir) == [
        f"{runbook_dir / 'web.yaml'}:{_line(runbook, 'when:')}: runbook web-restart: "
        f'approval.when env=~"prod.*" reads label env, not always set by rule {rule}',
    ]
    # Without approval.required the when matchers decide nothing.
    _write(runbook_dir, "web.yaml", runbook.replace("required: true", "required: false"))
    assert _problems(rules_dir, runbook_dir) == []


def test_a_remediation_rule_without_a_promtool_test(tmp_path: Path) -> None:
    rules_dir, runbook_dir = _dirs(tmp_path, tests=TESTS.replace("WebCrashLooping", "Other"))

    assert _problems(rules_dir, runbook_dir) == [
        f"{rules_dir / 'demo.yaml'}:{_line(RULES, 'WebCrashLooping')}: WebCrashLooping: "
        f"no promtool test in {rules_dir} shows the labels it fires with "
        "(add an alert_rule_test with exp_alerts for it)",
        # Nor are its runbook's template labels checked: nothing says which it sets.
    ]


def test_the_runbook_requires_what_the_rule_must_provide(tmp_path: Path) -> None:
    # =~".+" on a label the rule does not yield can never hold.
    runbook = RUNBOOK.replace('  - namespace!~"kube-.*"\n', '  - container=~".+"\n')
    rules_dir, runbook_dir = _dirs(tmp_path, web=runbook)

    problems = _problems(rules_dir, runbook_dir)

    assert [p.rsplit(": ", 1)[-1] for p in problems] == [
        "not matched by any runbook",
        f"not reached by any remediation rule in {rules_dir}",
    ]


def test_two_rules_of_one_name_are_told_apart_by_their_labels(tmp_path: Path) -> None:
    rules = RULES.replace(
        "      - alert: WebDown\n",
        "      - alert: WebCrashLooping\n"
        "        expr: max by (namespace) (crashloop) > 5\n"
        "        labels:\n"
        "          severity: critical\n"
        '          remediation: "true"\n'
        "        annotations:\n"
        "          summary: many crash-looping\n"
        "      - alert: WebDown\n",
    )
    tests = TESTS.replace(
        "      - eval_time: 1m\n        alertname: WebDown\n",
        '          - exp_labels: {severity: critical, remediation: "true", namespace: prod}\n'
        "      - eval_time: 1m\n        alertname: WebDown\n",
    )
    rules_dir, runbook_dir = _dirs(tmp_path, rules=rules, tests=tests)

    warning, critical = (r for r in load_rules(rules_dir)[0] if r.name == "WebCrashLooping")
    assert warning.always == {"namespace", "deployment"}
    assert critical.always == {"namespace"}
    rule = f"WebCrashLooping ({critical.where})"
    assert critical.line == _line(rules, "crashloop) > 5") - 1
    assert _problems(rules_dir, runbook_dir) == [
        f"{runbook_dir / 'web.yaml'}:{_line(RUNBOOK, '  name:')}: runbook web-restart: "
        f"uses labels.deployment, not set by rule {rule}",
        f"{runbook_dir / 'web.yaml'}:{_line(RUNBOOK, 'message:')}: runbook web-restart: "
        f"uses labels.deployment, not set by rule {rule}",
    ]


def test_templated_rule_labels_count_as_set(tmp_path: Path) -> None:
    rules = RULES.replace(
        "          severity: warning\n",
        "          severity: warning\n          deployment: '{{ $labels.owner }}'\n",
    )
    rules_dir, runbook_dir = _dirs(
        tmp_path, rules=rules, tests=TESTS.replace(", deployment: web}", "}")
    )

    assert _problems(rules_dir, runbook_dir) == []


# --- files ---------------------------------------------------------------------------------


def test_rule_files_are_found_by_glob_and_absolute_path(tmp_path: Path) -> None:
    rules_dir, runbook_dir = _dirs(tmp_path, tests=TESTS.replace("../demo.yaml", "../*.yaml"))
    assert _problems(rules_dir, runbook_dir) == []

    absolute = TESTS.replace("../demo.yaml", str(rules_dir / "demo.yaml"))
    _write(rules_dir, "tests/demo.yaml", absolute)
    assert _problems(rules_dir, runbook_dir) == []


def test_a_file_that_is_neither_rules_nor_tests(tmp_path: Path) -> None:
    rules_dir, runbook_dir = _dirs(tmp_path)
    stray = _write(rules_dir, "notes.yaml", "hello: world\n")

    assert _problems(rules_dir, runbook_dir) == [
        f"{stray}:1: neither a rule file (groups:) nor a promtool test file (rule_files:, tests:)"
    ]


def test_invalid_yaml_is_reported_with_its_line(tmp_path: Path) -> None:
    rules_dir, runbook_dir = _dirs(tmp_path)
    broken = _write(rules_dir, "broken.yaml", "groups:\n  - name: x\n    rules: [\n")

    problems = _problems(rules_dir, runbook_dir)

    assert len(problems) == 1
    assert problems[0].startswith(f"{broken}:4: not valid YAML: ")


def test_a_missing_rules_directory(tmp_path: Path) -> None:
    _, runbook_dir = _dirs(tmp_path)
    missing = tmp_path / "nope"

    assert _problems(missing, runbook_dir)[0] == f"{missing}: rules directory does not exist"


# --- the command ---------------------------------------------------------------------------


def test_lint_with_rules_exits_1_and_lists_the_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runbook = RUNBOOK.replace('alertname="WebCrashLooping"', 'alertname="WebCrashLoop"')
    rules_dir, runbook_dir = _dirs(tmp_path, web=runbook)

    assert main(["lint", "--rules", str(rules_dir), str(runbook_dir)]) == 1

    out, err = capsys.readouterr()
    assert out.splitlines()[-1] == f"1 runbook(s) OK in {runbook_dir}"
    assert err.splitlines() == [
        f"{rules_dir / 'demo.yaml'}:{_line(RULES, 'WebCrashLooping')}: WebCrashLooping: "
        "not matched by any runbook",
        f"{runbook_dir / 'web.yaml'}:1: runbook web-restart: "
        f"not reached by any remediation rule in {rules_dir}",
        f"2 coverage problem(s) between {rules_dir} and {runbook_dir}",
    ]


def test_lint_with_rules_stops_at_invalid_runbooks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules_dir, runbook_dir = _dirs(
        tmp_path, web=RUNBOOK.replace("action: restart", "action: reboot")
    )

    assert main(["lint", "--rules", str(rules_dir), str(runbook_dir)]) == 1

    _, err = capsys.readouterr()
    assert "unknown action 'reboot'" in err
    assert "coverage" not in err


def test_lint_without_rules_is_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runbook = RUNBOOK.replace('alertname="WebCrashLooping"', 'alertname="WebCrashLoop"')
    _, runbook_dir = _dirs(tmp_path, web=runbook)

    assert main(["lint", str(runbook_dir)]) == 0

    out, _ = capsys.readouterr()
    assert out.splitlines()[-1] == f"1 runbook(s) OK in {runbook_dir}"


# --- matching without a real alert ------------------------------------------------------------


RULE = AlertRule(
    name="A",
    path=Path("rules/a.yaml"),
    line=3,
    remediation=True,
    fixed={"alertname": "A", "severity": "warning"},
    always=frozenset({"namespace"}),
    sometimes=frozenset({"pod"}),
    annotations=frozenset({"summary"}),
    tested=True,
)


@pytest.mark.parametrize(
    ("matcher", "may"),
    [
        # Fixed values are evaluated exactly.
        ('alertname="A"', True),
        ('alertname="B"', False),
        ('severity=~"warning|critical"', True),
        ('severity!="warning"', False),
        # A yielded label has some non-empty value.
        ('namespace="prod"', True),
        ('namespace=~"prod.*"', True),
        ('namespace!~"kube-.*"', True),
        ('namespace!="prod"', True),
        ('namespace=~".+"', True),
        ('namespace=""', False),
        ('namespace=~""', False),
        ('namespace!~".*"', False),
        ('namespace!~".+"', False),
        # A label only some alerts carry: either.
        ('pod=""', True),
        ('pod="web-1"', True),
        ('pod!~".*"', False),
        ('pod!~"web-.*"', True),
        # A label the rule never sets is "".
        ('deployment=~".+"', False),
        ('deployment="web"', False),
        ('deployment=""', True),
        ('deployment!="web"', True),
        ('deployment!~".+"', True),
    ],
)
def test_may_satisfy(matcher: str, may: bool) -> None:
    assert RULE.may_satisfy(parse_matcher(matcher)) is may


# --- template uses -------------------------------------------------------------------------


def _runbook(**params: object) -> Runbook:
    return Runbook.model_validate(
        {
            "name": "x",
            "version": 1,
            "owner": "platform",
            "match": ['alertname="A"'],
            "target": {
                "kind": "Deployment",
                "namespace": "{{ labels.namespace }}",
                "name": "{{ labels['deployment'] }}",
            },
            "steps": [{"action": "notify", "params": params}],
        }
    )


def test_template_uses_attribute_and_subscript_access() -> None:
    uses = template_uses(_runbook(message="{{ labels.pod }} {{ annotations.summary }}"))

    assert uses == [
        TemplateUse("labels", "namespace", ("target", "namespace")),
        TemplateUse("labels", "deployment", ("target", "name")),
        TemplateUse("labels", "pod", ("steps", 0, "params", "message")),
        TemplateUse("annotations", "summary", ("steps", 0, "params", "message")),
    ]
    assert str(uses[0]) == "labels.namespace"


@pytest.mark.parametrize(
    "message",
    [
        "{{ labels.pod | default('?') }}",
        "{{ labels.pod | d('?') }}",
        "{% if labels.pod is defined %}yes{% endif %}",
        "{{ labels.get('pod', '?') }}",
        "{{ alert.fingerprint }} {{ labels }}",
        "{{ other.pod }}",
        "no template at all: labels.pod",
    ],
)
def test_optional_uses_are_not_required(message: str) -> None:
    uses = template_uses(_runbook(message=message))

    assert [u for u in uses if u.loc[0] == "steps"] == []


def test_uses_in_nested_params_and_escalation() -> None:
    runbook = _runbook(message="m").model_copy(
        update={"escalate": [Step(action="notify", params={"message": ["{{ labels.team }}"]})]}
    )

    assert template_uses(runbook)[-1] == TemplateUse(
        "labels", "team", ("escalate", 0, "params", "message", 0)
    )
