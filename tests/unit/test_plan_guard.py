"""Plan and guard as pure functions: same alert and policy in, same decision out."""

from __future__ import annotations

from pathlib import Path

import pytest

from remediator.actions.registry import builtin_actions
from remediator.authoring.facts import sample_instance
from remediator.errors import PlanError
from remediator.pipeline import guard
from remediator.pipeline.plan import plan
from remediator.runbooks.loader import load_file
from remediator.runbooks.templating import compile_text, render_text
from remediator.settings import GuardSettings, KindPolicy, NamespacePolicy

ACTIONS = builtin_actions()
ANY_KIND = KindPolicy(allow=["*"])
RUNBOOK = """\
name: web
version: 1
owner: t
match: ['alertname="A"']
target: {kind: Deployment, namespace: "{{ labels.namespace }}", name: "{{ labels.app }}"}
steps:
  - action: scale
    params: {delta: "{{ labels.step | default(2) }}", min: 1, max: 5}
approval: {required: true, when: ['namespace="prod"']}
"""


@pytest.fixture
def runbook(tmp_path: Path):
    path = tmp_path / "web.yaml"
    path.write_text(RUNBOOK)
    return load_file(path, ACTIONS)


def labels(**extra: str) -> dict[str, str]:
    return {"alertname": "A", "namespace": "prod", "app": "web", **extra}


def test_plan_renders_target_params_and_description(runbook):
    planned = plan(runbook, sample_instance(labels(step="3")), ACTIONS)
    assert (planned.target.kind, planned.target.namespace, planned.target.name) == (
        "Deployment",
        "prod",
        "web",
    )
    [step] = planned.steps
    assert step.params.model_dump()["delta"] == 3
    assert step.description.startswith("scale Deployment prod/web by +3 replicas")
    assert planned.approval_required


def test_approval_when_matchers_limit_where_approval_is_needed(runbook):
    assert not plan(runbook, sample_instance(labels(namespace="stage")), ACTIONS).approval_required


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"step": "many"}, "invalid_params"),
        ({"app": "web;rm -rf"}, "invalid_name"),
        ({"namespace": "../kube-system"}, "invalid_name"),
    ],
)
def test_plan_refusals_carry_a_reason(runbook, extra, reason):
    with pytest.raises(PlanError) as info:
        plan(runbook, sample_instance(labels(**extra)), ACTIONS)
    assert info.value.reason == reason


def test_undefined_variable_is_an_error_not_an_empty_string():
    with pytest.raises(PlanError) as info:
        render_text(compile_text("{{ labels.missing }}"), {"labels": {}}, "target.name")
    assert info.value.reason == "template_error"
    assert "target.name" in str(info.value)


def test_sandbox_refuses_attribute_escapes():
    with pytest.raises(PlanError, match="unsafe"):
        render_text(compile_text("{{ labels.__class__.__mro__ }}"), {"labels": {}}, "x")


def test_label_values_are_never_rendered_twice():
    template = compile_text("{{ labels.v }}")
    assert render_text(template, {"labels": {"v": "{{ 7*7 }}"}}, "x") == "{{ 7*7 }}"


@pytest.mark.parametrize(
    ("policy", "allowed", "reason"),
    [
        (GuardSettings(namespaces=NamespacePolicy(allow=[])), False, "namespace_not_allowed"),
        (GuardSettings(namespaces=NamespacePolicy(allow=["pr*"])), False, "kind_not_allowed"),
        (GuardSettings(namespaces=NamespacePolicy(allow=["pr*"]), kinds=ANY_KIND), True, None),
        (
            GuardSettings(
                namespaces=NamespacePolicy(allow=["*"]), kinds=KindPolicy(allow=["Stat*"])
            ),
            False,
            "kind_not_allowed",
        ),
        (
            GuardSettings(namespaces=NamespacePolicy(allow=["*"], deny=["prod"])),
            False,
            "namespace_denied",
        ),
        (
            GuardSettings(
                dry_run=False, namespaces=NamespacePolicy(allow=["prod"]), kinds=ANY_KIND
            ),
            False,
            "awaiting_approval",
        ),
    ],
)
def test_guard_decisions(runbook, policy, allowed, reason):
    planned = plan(runbook, sample_instance(labels()), ACTIONS)
    decision = guard.check_static(planned, planned.steps[0], policy)
    assert (decision.allowed, decision.reason) == (allowed, reason)


NOTIFY_ONLY = """\
name: tell
version: 1
owner: t
match: ['alertname="A"']
target: {kind: Deployment, namespace: "{{ labels.namespace }}", name: "{{ labels.app }}"}
steps:
  - action: notify
    params: {message: hi}
"""


def test_guard_does_not_restrict_actions_that_change_nothing(tmp_path):
    path = tmp_path / "n.yaml"
    path.write_text(NOTIFY_ONLY)
    planned = plan(load_file(path, ACTIONS), sample_instance(labels()), ACTIONS)
    decision = guard.check_static(planned, planned.steps[0], GuardSettings(dry_run=False))
    assert (decision.allowed, decision.dry_run) == (True, False)
