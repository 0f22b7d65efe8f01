"""``remediator test``: run each runbook's ``tests:`` cases, golden style.

A case gives an alert and the plan it must produce (target and steps), that it must
not match, or the reason it must be refused. Only the parameters a case names are
compared, so defaults need not be repeated in every test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from remediator.actions.registry import Registry
from remediator.authoring.facts import sample_instance
from remediator.errors import PlanError
from remediator.models.runbook import Expectation, TestCase
from remediator.pipeline.plan import Plan, plan
from remediator.runbooks.loader import LoadedRunbook, RunbookSet
from remediator.runbooks.matchers import first_failing

_MISSING = object()  # a parameter the plan does not have at all, unlike one set to None


@dataclass
class CaseResult:
    runbook: LoadedRunbook
    case: str
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


def run_tests(runbooks: RunbookSet, actions: Registry) -> list[CaseResult]:
    return [
        _run_case(runbook, case, actions)
        for runbook in runbooks.runbooks
        for case in runbook.spec.tests
    ]


def _run_case(runbook: LoadedRunbook, case: TestCase, actions: Registry) -> CaseResult:
    result = CaseResult(runbook, case.name)
    expect = case.expect
    failing = first_failing(runbook.matchers, case.alert.labels)
    if failing is not None:
        if expect.match:
            result.problems.append(f"expected a match, but matcher {failing} failed")
        return result
    if not expect.match:
        result.problems.append("expected no match, but every matcher matched")
        return result
    try:
        planned = plan(runbook, sample_instance(case.alert.labels, case.alert.annotations), actions)
    except PlanError as exc:
        if expect.refused != exc.reason:
            result.problems.append(f"plan refused ({exc.reason}): {exc}")
        return result
    if expect.refused:
        result.problems.append(f"expected refusal {expect.refused!r}, but a plan was made")
        return result
    result.problems.extend(_compare(expect, planned))
    return result


def _compare(expect: Expectation, planned: Plan) -> list[str]:
    problems = []
    if expect.target is not None:
        for name in ("kind", "namespace", "name"):
            want, got = getattr(expect.target, name), getattr(planned.target, name)
            if want != got:
                problems.append(f"target.{name}: expected {want!r}, got {got!r}")
    if expect.steps is not None:
        got_actions = [s.action.name for s in planned.steps]
        want_actions = [s.action for s in expect.steps]
        if got_actions != want_actions:
            return [*problems, f"steps: expected {want_actions}, got {got_actions}"]
        for i, (want, got) in enumerate(zip(expect.steps, planned.steps, strict=True)):
            rendered: dict[str, Any] = got.params.model_dump(mode="json")
            for key, value in want.params.items():
                if rendered.get(key, _MISSING) != value:
                    problems.append(
                        f"steps[{i}].params.{key}: expected {value!r}, got {rendered.get(key)!r}"
                    )
            if want.description is not None and want.description != got.description:
                problems.append(
                    f"steps[{i}].description: expected {want.description!r}, "
                    f"got {got.description!r}"
                )
    return problems
