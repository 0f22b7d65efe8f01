"""``restart`` against the fake API server: exactly kubectl's request, plus the stamp."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from remediator.actions.base import ActionRefused, Context, HealthState, RenderedTarget
from remediator.actions.restart import Restart, RestartParams
from tests.fakes.kube import STRATEGIC_MERGE_PATCH, objects

NOW = datetime(2025, 5, 1, 10, 0, 7, 123456, tzinfo=UTC)
CTX = Context("exec-1", "crashloop", NOW)
PATHS = {
    "Deployment": "/apis/apps/v1/namespaces/prod/deployments/web",
    "StatefulSet": "/apis/apps/v1/namespaces/prod/statefulsets/web",
    "DaemonSet": "/apis/apps/v1/namespaces/prod/daemonsets/web",
}
BUILDERS = {
    "Deployment": objects.deployment,
    "StatefulSet": objects.statefulset,
    "DaemonSet": objects.daemonset,
}


@pytest.mark.parametrize("kind", sorted(PATHS))
async def test_sends_kubectls_patch_with_the_execution_stamp(fake_kube, kube, kind):
    fake_kube.add(BUILDERS[kind]("web", "prod"))
    target = RenderedTarget(kind, "prod", "web")
    outcome = await Restart().apply(kube, target, RestartParams(), CTX)
    [patch] = fake_kube.mutations()
    assert (patch.method, patch.path, patch.content_type) == (
        "PATCH",
        PATHS[kind],
        STRATEGIC_MERGE_PATCH,
    )
    assert patch.body == {
        "metadata": {
            "annotations": {
                "remediator.io/execution-id": "exec-1",
                "remediator.io/runbook": "crashloop",
            }
        },
        "spec": {
            "template": {
                "metadata": {
                    "annotations": {"kubectl.kubernetes.io/restartedAt": "2025-05-01T10:00:07Z"}
                }
            }
        },
    }
    assert "dryRun" not in patch.query
    assert outcome.startswith(f"restarted {kind} prod/web (kubectl.kubernetes.io/restartedAt=")
    assert await Restart().applied(kube, target, RestartParams(), CTX)
    assert not await Restart().applied(kube, target, RestartParams(), Context("other", "x", NOW))


async def test_refuses_a_paused_deployment_and_sends_nothing(fake_kube, kube):
    fake_kube.add(objects.deployment("web", "prod", paused=True))
    with pytest.raises(ActionRefused, match="paused"):
        await Restart().apply(
            kube, RenderedTarget("Deployment", "prod", "web"), RestartParams(), CTX
        )
    assert fake_kube.mutations() == []


async def test_server_dry_run_changes_nothing(fake_kube, kube):
    fake_kube.add(objects.deployment("web", "prod"))
    before = fake_kube.get("apps/v1", "Deployment", "prod", "web")
    ctx = Context("exec-1", "crashloop", NOW, server_dry_run=True)
    await Restart().apply(kube, RenderedTarget("Deployment", "prod", "web"), RestartParams(), ctx)
    [patch] = fake_kube.mutations()
    assert patch.query.get("dryRun") == "All"
    assert fake_kube.get("apps/v1", "Deployment", "prod", "web") == before


async def test_verify_follows_the_rollout_to_completion(fake_kube, kube):
    fake_kube.add(objects.deployment("web", "prod", replicas=2))
    fake_kube.controllers_enabled = False
    target = RenderedTarget("Deployment", "prod", "web")
    await Restart().apply(kube, target, RestartParams(), CTX)
    health = await Restart().verify(kube, target, RestartParams(), CTX)
    assert health.state == HealthState.PROGRESSING
    fake_kube.controllers_enabled = True
    await fake_kube.wait_for(
        lambda: (
            fake_kube.get("apps/v1", "Deployment", "prod", "web")["status"].get(
                "observedGeneration"
            )
            == 2
        )
    )
    for _ in range(50):
        health = await Restart().verify(kube, target, RestartParams(), CTX)
        if health.state == HealthState.HEALTHY:
            break
        fake_kube.reconcile()
    assert (health.state, health.message) == (
        HealthState.HEALTHY,
        "2 of 2 replicas updated and ready",
    )


async def test_missing_target_fails_fast_with_the_servers_reason(fake_kube, kube):
    from remediator.kube.errors import NotFound

    with pytest.raises(NotFound, match="not found"):
        await Restart().apply(
            kube, RenderedTarget("Deployment", "prod", "gone"), RestartParams(), CTX
        )
    assert len(fake_kube.requests) == 1  # no retries for a 404
