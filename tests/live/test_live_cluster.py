"""The action scenarios against a real cluster. Skipped unless ``KUBECONFIG`` is set.

Needs a cluster where the kubeconfig's user may create a namespace and Deployments in it
(kind or minikube will do). It creates ``$REMEDIATOR_LIVE_NAMESPACE`` (default
``remediator-live``), runs restart and scale through the same code the server uses, and
deletes the namespace afterwards.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kubernetes_asyncio import client

from remediator.actions.base import Context, HealthState, LiveAction, Params, RenderedTarget
from remediator.actions.restart import Restart, RestartParams
from remediator.actions.scale import Scale, ScaleParams
from remediator.kube import Kube
from remediator.settings import KubeSettings

pytestmark = pytest.mark.skipif(
    not os.environ.get("KUBECONFIG"), reason="live suite: set KUBECONFIG to a test cluster"
)
NAMESPACE = os.environ.get("REMEDIATOR_LIVE_NAMESPACE", "remediator-live")


@pytest.fixture
async def kube() -> AsyncIterator[Kube]:
    settings = KubeSettings(source="kubeconfig", kubeconfig=Path(os.environ["KUBECONFIG"]))
    k = await Kube.connect(settings)
    await k.write(
        "create namespace",
        k.core.create_namespace,
        client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)),
    )
    labels = {"app": "web"}
    deployment = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="web", image="registry.k8s.io/pause:3.9")]
                ),
            ),
        ),
    )
    await k.write("create deployment", k.apps.create_namespaced_deployment, NAMESPACE, deployment)
    try:
        yield k
    finally:
        await k.write("delete namespace", k.core.delete_namespace, NAMESPACE)
        await k.close()


async def settle(kube: Kube, action: LiveAction, params: Params, ctx: Context) -> None:
    import asyncio

    target = RenderedTarget("Deployment", NAMESPACE, "web")
    for _ in range(120):
        health = await action.verify(kube, target, params, ctx)
        if health.state == HealthState.HEALTHY:
            return
        assert health.state != HealthState.FAILED, health.message
        await asyncio.sleep(1)
    raise AssertionError(f"not healthy after 120 s: {health.message}")


async def test_restart_applies_once_and_completes(kube: Kube) -> None:
    ctx = Context("live-restart", "live", datetime.now(UTC))
    target = RenderedTarget("Deployment", NAMESPACE, "web")
    assert not await Restart().applied(kube, target, RestartParams(), ctx)
    await Restart().apply(kube, target, RestartParams(), ctx)
    assert await Restart().applied(kube, target, RestartParams(), ctx)
    await settle(kube, Restart(), RestartParams(), ctx)


async def test_scale_by_a_delta_within_bounds(kube: Kube) -> None:
    ctx = Context("live-scale", "live", datetime.now(UTC))
    params = ScaleParams(delta=1, min=1, max=2)
    target = RenderedTarget("Deployment", NAMESPACE, "web")
    await Scale().apply(kube, target, params, ctx)
    assert await Scale().applied(kube, target, params, ctx)
    await settle(kube, Scale(), params, ctx)
