"""``scale`` against the fake API server, through the real kubernetes_asyncio client.

Every test asserts what the server received (verb, path, query, content type, body), and
what it then holds.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from remediator.actions.base import (
    EXECUTION_ANNOTATION,
    RUNBOOK_ANNOTATION,
    ActionRefused,
    Context,
    HealthState,
    LiveAction,
    RenderedTarget,
)
from remediator.actions.scale import SCALE_FROM, SCALE_TO, SCALE_VIA, Scale, ScaleParams
from remediator.kube import Kube
from remediator.kube.errors import KubeError
from tests.fakes.kube import FakeKube, objects
from tests.fakes.kube.recording import Request

MERGE = "application/merge-patch+json"
NOW = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
CTX = Context(execution_id="exec-1", runbook="scale-up", now=NOW)
DRY = Context(execution_id="exec-1", runbook="scale-up", now=NOW, server_dry_run=True)
WEB = RenderedTarget("Deployment", "prod", "web")
DEPLOY = "/apis/apps/v1/namespaces/prod/deployments/web"
HPAS = "/apis/autoscaling/v2/namespaces/prod/horizontalpodautoscalers"
ROLLOUT = "/apis/argoproj.io/v1alpha1/namespaces/prod/rollouts/web"

action = Scale()


def params(**kw: Any) -> ScaleParams:
    return ScaleParams(**{"min": 1, "max": 10, **kw})


def stamp(to: int, before: int, via: str = "scale", execution: str = "exec-1") -> dict[str, str]:
    return {
        EXECUTION_ANNOTATION: execution,
        RUNBOOK_ANNOTATION: "scale-up",
        SCALE_FROM: str(before),
        SCALE_TO: str(to),
        SCALE_VIA: via,
    }


def seen(fake: FakeKube) -> list[tuple[str, str, dict[str, str], str | None, Any]]:
    """Every request as (verb, path, query, content type of a mutation, body)."""
    return [_row(r) for r in fake.requests]


def _row(r: Request) -> tuple[str, str, dict[str, str], str | None, Any]:
    content_type = r.content_type if r.is_mutation else None
    return (r.method, r.path, r.query, content_type, r.body)


def reads(path: str) -> list[tuple[str, str, dict[str, str], None, None]]:
    """The three reads every apply starts with."""
    return [
        ("GET", path, {}, None, None),
        ("GET", f"{path}/scale", {}, None, None),
        ("GET", HPAS, {}, None, None),
    ]


def deployment(fake: FakeKube, name: str = "web") -> dict[str, Any]:
    obj = fake.get("apps/v1", "Deployment", "prod", name)
    assert obj is not None
    return obj


@pytest.fixture
def fake(fake_kube: FakeKube) -> FakeKube:
    return fake_kube


def test_scale_is_a_live_action_with_minimal_rbac() -> None:
    assert isinstance(action, LiveAction)
    verbs = {
        (g, r): set(rule.verbs)
        for rule in action.rbac
        for g in rule.api_groups
        for r in rule.resources
    }
    assert verbs[("apps", "deployments/scale")] == {"get", "patch"}
    assert verbs[("argoproj.io", "rollouts/scale")] == {"get", "patch"}
    assert verbs[("autoscaling", "horizontalpodautoscalers")] == {"get", "list", "patch"}
    assert all("delete" not in v and "update" not in v for v in verbs.values())


async def test_absolute_scale_stamps_then_merge_patches_scale(fake: FakeKube, kube: Kube) -> None:
    fake.add(objects.deployment("web", "prod", replicas=3))
    # Neither HPA targets prod/web: another Deployment, and a StatefulSet of the same name.
    fake.add(objects.hpa("api", "prod", target_name="api"))
    fake.add(objects.hpa("web-sts", "prod", target_kind="StatefulSet", target_name="web"))

    outcome = await action.apply(kube, WEB, params(replicas=5), CTX)

    assert outcome == "scaled Deployment prod/web from 3 to 5"
    assert seen(fake) == [
        *reads(DEPLOY),
        ("PATCH", DEPLOY, {}, MERGE, {"metadata": {"annotations": stamp(5, 3)}}),
        ("PATCH", f"{DEPLOY}/scale", {}, MERGE, {"spec": {"replicas": 5}}),
    ]
    obj = deployment(fake)
    assert obj["spec"]["replicas"] == 5
    assert stamp(5, 3).items() <= obj["metadata"]["annotations"].items()


@pytest.mark.parametrize(
    ("current", "amount", "expected", "clamped"),
    [
        (3, {"replicas": 20}, 10, " (clamped to max 10)"),
        (3, {"replicas": 0}, 1, " (clamped to min 1)"),
        (3, {"delta": 2}, 5, ""),
        (3, {"delta": -5}, 1, " (clamped to min 1)"),
        (9, {"delta": 4}, 10, " (clamped to max 10)"),
        (3, {"factor": 1.5}, 5, ""),  # 4.5 rounds up
        # 50 * 0.14 is exactly 7; in floats it is 7.000000000000001, which rounds up to 8.
        (50, {"factor": 0.14, "max": 100}, 7, ""),
        (4, {"factor": 0.5}, 2, ""),
        (3, {"factor": 4}, 10, " (clamped to max 10)"),
    ],
)
async def test_amounts_round_up_and_clamp(
    fake: FakeKube,
    kube: Kube,
    current: int,
    amount: dict[str, Any],
    expected: int,
    clamped: str,
) -> None:
    fake.add(objects.deployment("web", "prod", replicas=current))

    outcome = await action.apply(kube, WEB, params(**amount), CTX)

    assert outcome == f"scaled Deployment prod/web from {current} to {expected}{clamped}"
    assert [(r.path, r.content_type, r.body) for r in fake.mutations()] == [
        (DEPLOY, MERGE, {"metadata": {"annotations": stamp(expected, current)}}),
        (f"{DEPLOY}/scale", MERGE, {"spec": {"replicas": expected}}),
    ]
    assert deployment(fake)["spec"]["replicas"] == expected


@pytest.mark.parametrize(
    ("current", "amount"),
    [(3, {"replicas": 3}), (10, {"delta": 2}), (1, {"delta": -1}), (3, {"factor": 1.0})],
)
async def test_already_at_n_refuses_and_sends_nothing(
    fake: FakeKube, kube: Kube, current: int, amount: dict[str, Any]
) -> None:
    fake.add(objects.deployment("web", "prod", replicas=current))

    with pytest.raises(ActionRefused, match=f"already at {current} replicas"):
        await action.apply(kube, WEB, params(**amount), CTX)

    assert fake.mutations() == []
    assert [r.method for r in fake.requests] == ["GET", "GET", "GET"]


async def test_hpa_refuse_names_the_hpa_and_sends_nothing(fake: FakeKube, kube: Kube) -> None:
    fake.add(objects.deployment("web", "prod", replicas=3))
    fake.add(objects.hpa("web-hpa", "prod", target_name="web"))

    with pytest.raises(ActionRefused, match=r"HorizontalPodAutoscaler prod/web-hpa targets"):
        await action.apply(kube, WEB, params(delta=2), CTX)

    assert fake.mutations() == []
    assert deployment(fake)["spec"]["replicas"] == 3


async def test_an_hpa_of_a_same_named_kind_in_another_group_is_not_this_ones(
    fake: FakeKube, kube: Kube
) -> None:
    fake.add(objects.deployment("web", "prod", replicas=3))
    fake.add(
        objects.hpa("other-hpa", "prod", target_name="web", target_api_version="example.com/v1")
    )

    await action.apply(kube, WEB, params(delta=2), CTX)

    assert deployment(fake)["spec"]["replicas"] == 5
    hpas = fake.get("autoscaling/v2", "HorizontalPodAutoscaler", "prod", "other-hpa")
    assert (hpas["spec"]["minReplicas"], hpas["spec"]["maxReplicas"]) == (2, 10)


async def test_hpa_adjust_raises_min_and_max_instead_of_scaling(fake: FakeKube, kube: Kube) -> None:
    fake.add(objects.deployment("web", "prod", replicas=3))
    fake.add(objects.hpa("web", "prod", min=2, max=4))

    p = params(replicas=5, hpa="adjust")
    outcome = await action.apply(kube, WEB, p, CTX)

    assert outcome == "set HPA prod/web minReplicas 2→5, maxReplicas 4→5 (HPA owns replicas)"
    hpa_stamp = {EXECUTION_ANNOTATION: "exec-1", RUNBOOK_ANNOTATION: "scale-up", SCALE_TO: "5"}
    assert seen(fake) == [
        *reads(DEPLOY),
        ("PATCH", DEPLOY, {}, MERGE, {"metadata": {"annotations": stamp(5, 3, "hpa/web")}}),
        (
            "PATCH",
            f"{HPAS}/web",
            {},
            MERGE,
            {
                "metadata": {"annotations": hpa_stamp},
                "spec": {"minReplicas": 5, "maxReplicas": 5},
            },
        ),
    ]
    hpa = fake.get("autoscaling/v2", "HorizontalPodAutoscaler", "prod", "web")
    assert hpa is not None
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (5, 5)
    assert deployment(fake)["spec"]["replicas"] == 3  # the HPA, not us, moves replicas
    assert await action.applied(kube, WEB, p, CTX)


async def test_hpa_adjust_within_max_only_raises_min(fake: FakeKube, kube: Kube) -> None:
    fake.add(objects.deployment("web", "prod", replicas=2))
    fake.add(objects.hpa("web", "prod", min=2, max=10))

    outcome = await action.apply(kube, WEB, params(delta=3, hpa="adjust"), CTX)

    assert outcome == "set HPA prod/web minReplicas 2→5 (HPA owns replicas)"
    (patch,) = fake.mutations("PATCH", "horizontalpodautoscalers")
    assert patch.body["spec"] == {"minReplicas": 5}


async def test_hpa_adjust_scaling_down_lowers_max(fake: FakeKube, kube: Kube) -> None:
    fake.add(objects.deployment("web", "prod", replicas=6))
    fake.add(objects.hpa("web", "prod", min=4, max=10))

    outcome = await action.apply(kube, WEB, params(replicas=3, hpa="adjust"), CTX)

    assert outcome == "set HPA prod/web maxReplicas 10→3, minReplicas 4→3 (HPA owns replicas)"
    (patch,) = fake.mutations("PATCH", "horizontalpodautoscalers")
    assert patch.body["spec"] == {"minReplicas": 3, "maxReplicas": 3}
    assert fake.mutations("PATCH", "/scale") == []


async def test_hpa_adjust_will_not_scale_to_zero(fake: FakeKube, kube: Kube) -> None:
    fake.add(objects.deployment("web", "prod", replicas=3))
    fake.add(objects.hpa("web", "prod"))

    with pytest.raises(ActionRefused, match="minReplicas must stay at least 1"):
        await action.apply(kube, WEB, ScaleParams(replicas=0, min=0, max=5, hpa="adjust"), CTX)
    assert fake.mutations() == []


async def test_hpa_adjust_refuses_when_several_hpas_target_it(fake: FakeKube, kube: Kube) -> None:
    fake.add(objects.deployment("web", "prod", replicas=3))
    fake.add(objects.hpa("web-cpu", "prod", target_name="web"))
    fake.add(objects.hpa("web-mem", "prod", target_name="web"))

    with pytest.raises(ActionRefused, match=r"several HPAs \(web-cpu, web-mem\) target"):
        await action.apply(kube, WEB, params(replicas=5, hpa="adjust"), CTX)
    assert fake.mutations() == []


async def test_crash_before_the_hpa_patch_replays_recorded_count(
    fake: FakeKube, kube: Kube
) -> None:
    fake.add(objects.deployment("web", "prod", replicas=3))
    fake.add(objects.hpa("web", "prod", min=2, max=10))
    p = params(delta=2, hpa="adjust")
    fake.fail_next(1, status=500, method="PATCH", path_contains="horizontalpodautoscalers")

    with pytest.raises(KubeError):
        await action.apply(kube, WEB, p, CTX)
    assert not await action.applied(kube, WEB, p, CTX)
    fake.update("apps/v1", "Deployment", "prod", "web", {"spec": {"replicas": 4}})  # HPA moved
    fake.clear()

    outcome = await action.apply(kube, WEB, p, CTX)

    assert outcome == (
        "set HPA prod/web minReplicas 2→5 (HPA owns replicas)"
        " (re-applied from the recorded decision)"
    )
    assert [(r.path, r.body["spec"]) for r in fake.mutations()] == [
        (f"{HPAS}/web", {"minReplicas": 5})
    ]
    assert await action.applied(kube, WEB, p, CTX)
    fake.clear()
    again = await action.apply(kube, WEB, p, CTX)
    assert "already adjusted by this execution" in again
    assert fake.mutations() == []


async def test_server_dry_run_sends_dry_run_and_changes_nothing(fake: FakeKube, kube: Kube) -> None:
    fake.add(objects.deployment("web", "prod", replicas=3))
    before = deployment(fake)

    outcome = await action.apply(kube, WEB, params(delta=2), DRY)

    assert outcome == "scaled Deployment prod/web from 3 to 5"
    assert seen(fake)[3:] == [
        ("PATCH", DEPLOY, {"dryRun": "All"}, MERGE, {"metadata": {"annotations": stamp(5, 3)}}),
        ("PATCH", f"{DEPLOY}/scale", {"dryRun": "All"}, MERGE, {"spec": {"replicas": 5}}),
    ]
    assert deployment(fake) == before
    assert not await action.applied(kube, WEB, params(delta=2), CTX)


async def test_server_dry_run_of_hpa_adjust_changes_nothing(fake: FakeKube, kube: Kube) -> None:
    fake.add(objects.deployment("web", "prod", replicas=3))
    fake.add(objects.hpa("web", "prod", min=2, max=10))
    hpa_before = fake.get("autoscaling/v2", "HorizontalPodAutoscaler", "prod", "web")

    await action.apply(kube, WEB, params(replicas=5, hpa="adjust"), DRY)

    assert [r.query for r in fake.mutations()] == [{"dryRun": "All"}, {"dryRun": "All"}]
    assert fake.get("autoscaling/v2", "HorizontalPodAutoscaler", "prod", "web") == hpa_before
    assert (
        "annotations" not in deployment(fake)["metadata"]
        or EXECUTION_ANNOTATION not in (deployment(fake)["metadata"]["annotations"])
    )


async def test_applied_before_and_after(fake: FakeKube, kube: Kube) -> None:
    fake.add(objects.deployment("web", "prod", replicas=3))
    p = params(delta=2)

    assert not await action.applied(kube, WEB, p, CTX)
    await action.apply(kube, WEB, p, CTX)
    assert await action.applied(kube, WEB, p, CTX)
    other = Context(execution_id="exec-2", runbook="scale-up", now=NOW)
    assert not await action.applied(kube, WEB, p, other)
    fake.update("apps/v1", "Deployment", "prod", "web", {"spec": {"replicas": 7}})
    assert not await action.applied(kube, WEB, p, CTX)  # someone scaled it since


async def test_crash_between_stamp_and_scale_replays_recorded_count(
    fake: FakeKube, kube: Kube
) -> None:
    fake.add(objects.deployment("web", "prod", replicas=3))
    p = params(delta=2)
    fake.fail_next(1, status=500, method="PATCH", path_contains="/scale")

    with pytest.raises(KubeError):
        await action.apply(kube, WEB, p, CTX)
    assert deployment(fake)["spec"]["replicas"] == 3
    assert deployment(fake)["metadata"]["annotations"][SCALE_TO] == "5"
    assert not await action.applied(kube, WEB, p, CTX)

    # Meanwhile something else scaled up: a recomputed +2 would now give 6.
    fake.update("apps/v1", "Deployment", "prod", "web", {"spec": {"replicas": 4}})
    fake.clear()
    outcome = await action.apply(kube, WEB, p, CTX)

    assert (
        outcome == "scaled Deployment prod/web from 3 to 5 (re-applied from the recorded decision)"
    )
    assert seen(fake) == [
        *reads(DEPLOY),
        ("PATCH", f"{DEPLOY}/scale", {}, MERGE, {"spec": {"replicas": 5}}),
    ]
    assert deployment(fake)["spec"]["replicas"] == 5
    assert await action.applied(kube, WEB, p, CTX)


async def test_lost_answer_of_the_scale_patch_is_never_applied_twice(
    fake: FakeKube, kube: Kube
) -> None:
    fake.add(objects.deployment("web", "prod", replicas=3))
    p = params(delta=2)
    fake.drop_next(1, method="PATCH", path_contains="/scale", apply_then_drop=True)

    with pytest.raises(KubeError):
        await action.apply(kube, WEB, p, CTX)
    assert deployment(fake)["spec"]["replicas"] == 5
    assert await action.applied(kube, WEB, p, CTX)

    fake.clear()
    outcome = await action.apply(kube, WEB, p, CTX)  # a careless caller re-applies anyway

    assert "already applied by this execution" in outcome
    assert fake.mutations() == []
    assert deployment(fake)["spec"]["replicas"] == 5


async def test_statefulset_uses_its_scale_subresource(fake: FakeKube, kube: Kube) -> None:
    fake.add(objects.statefulset("db", "prod", replicas=2))
    target = RenderedTarget("StatefulSet", "prod", "db")
    path = "/apis/apps/v1/namespaces/prod/statefulsets/db"

    outcome = await action.apply(kube, target, params(factor=2), CTX)

    assert outcome == "scaled StatefulSet prod/db from 2 to 4"
    assert seen(fake) == [
        *reads(path),
        ("PATCH", path, {}, MERGE, {"metadata": {"annotations": stamp(4, 2)}}),
        ("PATCH", f"{path}/scale", {}, MERGE, {"spec": {"replicas": 4}}),
    ]


async def test_rollout_goes_through_custom_objects_with_merge_patches(
    fake: FakeKube, kube: Kube
) -> None:
    fake.add(objects.rollout("web", "prod", replicas=3))
    target = RenderedTarget("Rollout", "prod", "web")

    outcome = await action.apply(kube, target, params(delta=-1), CTX)

    assert outcome == "scaled Rollout prod/web from 3 to 2"
    assert seen(fake) == [
        *reads(ROLLOUT),
        ("PATCH", ROLLOUT, {}, MERGE, {"metadata": {"annotations": stamp(2, 3)}}),
        ("PATCH", f"{ROLLOUT}/scale", {}, MERGE, {"spec": {"replicas": 2}}),
    ]
    rollout = fake.get("argoproj.io/v1alpha1", "Rollout", "prod", "web")
    assert rollout is not None
    assert rollout["spec"]["replicas"] == 2
    assert await action.applied(kube, target, params(delta=-1), CTX)


async def test_verify_deployment_follows_the_rollout(fake: FakeKube, kube: Kube) -> None:
    fake.controllers_enabled = False
    fake.add(objects.deployment("web", "prod", replicas=3))
    await action.apply(kube, WEB, params(replicas=5), CTX)

    first = await action.verify(kube, WEB, params(replicas=5), CTX)
    assert first.state == HealthState.PROGRESSING
    assert "controller" in first.message  # observedGeneration is behind
    fake.reconcile()
    second = await action.verify(kube, WEB, params(replicas=5), CTX)
    assert (second.state, second.message) == (HealthState.PROGRESSING, "0 of 5 replicas updated")
    fake.reconcile()
    third = await action.verify(kube, WEB, params(replicas=5), CTX)
    assert third.state == HealthState.HEALTHY


async def test_verify_fails_when_something_else_rescaled(fake: FakeKube, kube: Kube) -> None:
    fake.add(objects.deployment("web", "prod", replicas=3))
    await action.apply(kube, WEB, params(replicas=5), CTX)
    fake.update("apps/v1", "Deployment", "prod", "web", {"spec": {"replicas": 2}})

    health = await action.verify(kube, WEB, params(replicas=5), CTX)

    assert health.state == HealthState.FAILED
    assert "spec.replicas is 2, not 5" in health.message


async def test_verify_after_hpa_adjust_waits_for_the_hpa(fake: FakeKube, kube: Kube) -> None:
    fake.controllers_enabled = False
    fake.add(objects.deployment("web", "prod", replicas=3))
    fake.add(objects.hpa("web", "prod", min=2, max=10))
    p = params(replicas=5, hpa="adjust")
    await action.apply(kube, WEB, p, CTX)

    waiting = await action.verify(kube, WEB, p, CTX)
    assert waiting.state == HealthState.PROGRESSING
    assert "waiting for the HPA: 3 of at least 5" in waiting.message

    # The HPA controller (not simulated by the fake) raises replicas to its new floor.
    fake.update("apps/v1", "Deployment", "prod", "web", {"spec": {"replicas": 6}})
    assert (await action.verify(kube, WEB, p, CTX)).state == HealthState.PROGRESSING
    fake.reconcile()
    fake.reconcile()
    healthy = await action.verify(kube, WEB, p, CTX)
    assert (healthy.state, healthy.message) == (
        HealthState.HEALTHY,
        "6 replicas ready (at least 5)",
    )


async def test_verify_after_hpa_adjust_down_waits_for_fewer(fake: FakeKube, kube: Kube) -> None:
    fake.controllers_enabled = False
    fake.add(objects.deployment("web", "prod", replicas=6))
    fake.add(objects.hpa("web", "prod", min=2, max=10))
    p = params(replicas=3, hpa="adjust")
    await action.apply(kube, WEB, p, CTX)

    waiting = await action.verify(kube, WEB, p, CTX)
    assert (waiting.state, waiting.message) == (
        HealthState.PROGRESSING,
        "waiting for the HPA: 6 replicas, want at most 3",
    )
    fake.update("apps/v1", "Deployment", "prod", "web", {"spec": {"replicas": 3}})
    fake.reconcile()
    fake.reconcile()
    healthy = await action.verify(kube, WEB, p, CTX)
    assert (healthy.state, healthy.message) == (HealthState.HEALTHY, "3 replicas (at most 3)")


async def test_verify_rollout_needs_healthy_phase_and_available(fake: FakeKube, kube: Kube) -> None:
    fake.controllers_enabled = False
    fake.add(objects.rollout("web", "prod", replicas=3))
    target = RenderedTarget("Rollout", "prod", "web")
    await action.apply(kube, target, params(replicas=5), CTX)

    assert (await action.verify(kube, target, params(replicas=5), CTX)).state == (
        HealthState.PROGRESSING
    )
    # Observed, Healthy, but only 3 of 5 available yet.
    fake.update(
        "argoproj.io/v1alpha1", "Rollout", "prod", "web", {"status": {"observedGeneration": "2"}}
    )
    pending = await action.verify(kube, target, params(replicas=5), CTX)
    assert pending.state == HealthState.PROGRESSING
    assert "3 available" in pending.message
    rollout = "argoproj.io/v1alpha1", "Rollout", "prod", "web"
    fake.update(*rollout, {"status": {"phase": "Progressing", "availableReplicas": 5}})
    progressing = await action.verify(kube, target, params(replicas=5), CTX)
    assert progressing.state == HealthState.PROGRESSING
    assert "phase Progressing" in progressing.message
    fake.update(*rollout, {"status": {"phase": "Healthy", "replicas": 5}})
    assert (await action.verify(kube, target, params(replicas=5), CTX)).state == (
        HealthState.HEALTHY
    )
    fake.update(*rollout, {"status": {"phase": "Degraded", "message": "ProgressDeadlineExceeded"}})
    degraded = await action.verify(kube, target, params(replicas=5), CTX)
    assert degraded.state == HealthState.FAILED
    assert "ProgressDeadlineExceeded" in degraded.message


async def test_verify_rollout_with_the_fake_controller(fake: FakeKube, kube: Kube) -> None:
    fake.add(objects.rollout("web", "prod", replicas=3))
    target = RenderedTarget("Rollout", "prod", "web")
    await action.apply(kube, target, params(replicas=5), CTX)

    async def healthy() -> bool:
        health = await action.verify(kube, target, params(replicas=5), CTX)
        return health.state == HealthState.HEALTHY

    for _ in range(100):
        if await healthy():
            break
        await asyncio.sleep(0.02)
    else:
        pytest.fail("the Rollout never became healthy")


async def test_without_a_cluster_the_action_refuses() -> None:
    with pytest.raises(ActionRefused, match="no cluster connection"):
        await action.apply(None, WEB, params(replicas=5), CTX)


@pytest.mark.parametrize(
    ("replicas", "amount"),
    [(60, {"factor": 1.5}), (60, {"delta": 2}), (1, {"delta": -1, "min": 2})],
)
async def test_bounds_never_turn_a_scale_up_into_a_scale_down(fake_kube, kube, replicas, amount):
    fake_kube.add(objects.deployment("web", "prod", replicas=replicas))
    with pytest.raises(ActionRefused, match="would move it the other way"):
        await action.apply(kube, WEB, params(**{"max": 50, **amount}), CTX)
    assert fake_kube.mutations() == []
