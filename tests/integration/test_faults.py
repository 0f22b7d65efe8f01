"""Every action under a hostile API server: 20% of requests answered 429/500/503 or
dropped (with the write applied first), every request 2 s late. Each action must either
succeed after retries or fail with a reason, and none may reach the cluster twice."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from remediator.actions.base import Context, Params, RenderedTarget
from remediator.actions.cert_renew import CertRenew, CertRenewParams
from remediator.actions.cleanup import Cleanup, CleanupParams
from remediator.actions.restart import Restart, RestartParams
from remediator.actions.rollback import Rollback, RollbackParams
from remediator.actions.scale import Scale, ScaleParams
from remediator.kube import Kube, KubeError
from remediator.pipeline.execute import Runtime, apply_once
from remediator.settings import KubeSettings
from tests.fakes.kube import FakeKube, Faults, objects

NOW = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=2)


def seed(fake) -> None:
    fake.add(objects.deployment("web", "prod", replicas=3))
    fake.add(objects.deployment("api", "prod", replicas=3))
    ro = objects.rollout("shop", "prod", image="app:3", revision=3)
    fake.add(ro)
    for rev in (1, 2, 3):
        fake.add(
            objects.replicaset(f"shop-r{rev}", "prod", owner=ro, revision=rev, image=f"app:{rev}")
        )
    fake.add(objects.certificate("tls", "prod", revision=4))
    for i in range(3):
        fake.add(objects.pod(f"dead-{i}", "prod", phase="Failed", reason="Evicted", created=OLD))


CASES: list[tuple[Any, RenderedTarget, Params]] = [
    (Restart(), RenderedTarget("Deployment", "prod", "web"), RestartParams()),
    (Scale(), RenderedTarget("Deployment", "prod", "api"), ScaleParams(delta=2, min=1, max=10)),
    (Rollback(), RenderedTarget("Rollout", "prod", "shop"), RollbackParams()),
    (CertRenew(), RenderedTarget("Certificate", "prod", "tls"), CertRenewParams()),
    (Cleanup(), RenderedTarget("Namespace", "prod", ""), CleanupParams()),
]


def state(fake) -> dict[str, Any]:
    web = fake.get("apps/v1", "Deployment", "prod", "web")
    api = fake.get("apps/v1", "Deployment", "prod", "api")
    shop = fake.get("argoproj.io/v1alpha1", "Rollout", "prod", "shop")
    tls = fake.get("cert-manager.io/v1", "Certificate", "prod", "tls")
    return {
        "restarts": web["metadata"]["generation"] - 1,
        "replicas": api["spec"]["replicas"],
        "image": shop["spec"]["template"]["spec"]["containers"][0]["image"],
        "rollout_changes": shop["metadata"]["generation"] - 1,
        "issuing": [c for c in tls["status"].get("conditions", []) if c["type"] == "Issuing"],
        "revision": tls["status"].get("revision"),
    }


@pytest.mark.parametrize("seed_value", [1, 2])
async def test_hostile_api_server_never_gets_a_change_twice(tmp_path, seed_value):
    fake_kube = FakeKube(token="t", seed=seed_value)
    async with fake_kube.running():
        fake_kube.write_kubeconfig(tmp_path / "kubeconfig")
        results = await _run_all(fake_kube)
    after = state(fake_kube)
    ok = [r.startswith("ok") for r in results]
    # At most once each, and exactly once for every action that reported success.
    assert after["restarts"] == 1 if ok[0] else after["restarts"] <= 1
    assert after["replicas"] == 5 if ok[1] else after["replicas"] in (3, 5)
    assert after["rollout_changes"] == 1 if ok[2] else after["rollout_changes"] <= 1
    if ok[2]:
        assert after["image"] == "app:2"
    assert len(after["issuing"]) == 1 if ok[3] else len(after["issuing"]) <= 1
    assert after["revision"] == 4  # controllers are off: nothing was issued twice
    deleted = [d.name for d in fake_kube.deletions]
    assert len(deleted) == len(set(deleted))
    if ok[4]:
        assert sorted(deleted) == ["dead-0", "dead-1", "dead-2"]
    assert all(len(r) > len("failed: ") for r in results)  # every failure has its reason
    assert sum(ok) >= 3, results  # retries carry most actions through 20% faults
    assert any(r.fault for r in fake_kube.requests), "no fault was injected"


async def _run_all(fake_kube: FakeKube) -> list[str]:
    seed(fake_kube)
    fake_kube.controllers_enabled = False  # keep the certificate's Issuing visible
    fake_kube.faults = Faults(
        latency=2.0, error_rate=0.2, kinds=("429", "500", "503", "drop"), apply_then_drop=True
    )
    settings = KubeSettings(
        source="kubeconfig", kubeconfig=fake_kube.kubeconfig, request_timeout=5, deadline=40
    )
    kube = await Kube.connect(settings)
    rt = Runtime(kube=kube, clock=lambda: NOW, verify_interval=timedelta(seconds=1), deadline=40)
    try:

        async def run(i: int, case: tuple[Any, RenderedTarget, Params]) -> str:
            action, target, params = case
            ctx = Context(f"exec-{i}", "faults", NOW)
            try:
                return "ok: " + await apply_once(action, rt, target, params, ctx)
            except KubeError as exc:
                return f"failed: {exc}"

        results = await asyncio.gather(*(run(i, c) for i, c in enumerate(CASES)))
    finally:
        await kube.close()
    fake_kube.clear_faults()
    return list(results)
