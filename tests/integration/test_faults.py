"""Every action under a hostile API server: 20% of requests answered 429/500/503 or
dropped (with the write applied first), every request 2 s late. Each action must either
succeed after retries or fail with a reason, and none may reach the cluster twice (only
abort's idempotent flag may be sent again, by design)."""

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
    fake.add(objects.rollout("canary", "prod", image="app:4", revision=4, phase="Progressing"))
    fake.add(objects.deployment("batch", "prod", replicas=3))
    fake.add(objects.hpa("batch", "prod", min=2, max=10, current=3))
    fake.add(objects.certificate("tls", "prod", revision=4))
    for i in range(3):
        fake.add(objects.pod(f"dead-{i}", "prod", phase="Failed", reason="Evicted", created=OLD))


CASES: dict[str, tuple[Any, RenderedTarget, Params]] = {
    "restart": (Restart(), RenderedTarget("Deployment", "prod", "web"), RestartParams()),
    "scale": (
        Scale(),
        RenderedTarget("Deployment", "prod", "api"),
        ScaleParams(delta=2, min=1, max=10),
    ),
    "scale_hpa": (
        Scale(),
        RenderedTarget("Deployment", "prod", "batch"),
        ScaleParams(delta=2, min=1, max=10, hpa="adjust"),
    ),
    "undo": (Rollback(), RenderedTarget("Rollout", "prod", "shop"), RollbackParams()),
    "abort": (
        Rollback(),
        RenderedTarget("Rollout", "prod", "canary"),
        RollbackParams(mode="abort"),
    ),
    "cert_renew": (CertRenew(), RenderedTarget("Certificate", "prod", "tls"), CertRenewParams()),
    "cleanup": (Cleanup(), RenderedTarget("Namespace", "prod", ""), CleanupParams()),
}
ROLLOUTS = "/apis/argoproj.io/v1alpha1/namespaces/prod/rollouts"
HPAS = "/apis/autoscaling/v2/namespaces/prod/horizontalpodautoscalers"


def state(fake) -> dict[str, Any]:
    web = fake.get("apps/v1", "Deployment", "prod", "web")
    api = fake.get("apps/v1", "Deployment", "prod", "api")
    shop = fake.get("argoproj.io/v1alpha1", "Rollout", "prod", "shop")
    canary = fake.get("argoproj.io/v1alpha1", "Rollout", "prod", "canary")
    batch = fake.get("apps/v1", "Deployment", "prod", "batch")
    hpa = fake.get("autoscaling/v2", "HorizontalPodAutoscaler", "prod", "batch")
    tls = fake.get("cert-manager.io/v1", "Certificate", "prod", "tls")
    return {
        "restarts": web["metadata"]["generation"] - 1,
        "replicas": api["spec"]["replicas"],
        "image": shop["spec"]["template"]["spec"]["containers"][0]["image"],
        "rollout_changes": shop["metadata"]["generation"] - 1,
        "aborted": canary["status"].get("abort") is True,
        "abort_stamp": canary["metadata"]["annotations"].get("remediator.io/execution-id"),
        "canary_changes": canary["metadata"]["generation"] - 1,
        "hpa_min": hpa["spec"]["minReplicas"],
        "batch_replicas": batch["spec"]["replicas"],
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
    ok = {name: r.startswith("ok") for name, r in results.items()}
    # At most once each, and exactly once for every action that reported success.
    assert after["restarts"] == 1 if ok["restart"] else after["restarts"] <= 1
    assert after["replicas"] == 5 if ok["scale"] else after["replicas"] in (3, 5)
    assert after["rollout_changes"] == 1 if ok["undo"] else after["rollout_changes"] <= 1
    if ok["undo"]:
        assert after["image"] == "app:2"
    # abort: the flag may be sent again (idempotent, see rollback.py); the stamp, written
    # after it, lands once, and the spec never changes.
    stamps = applied_writes(fake_kube, f"{ROLLOUTS}/canary")
    assert stamps == 1 if ok["abort"] else stamps <= 1
    assert after["canary_changes"] == 0
    if ok["abort"]:
        assert (after["aborted"], after["abort_stamp"]) == (True, "exec-abort")
    # hpa: adjust moves the HPA's bounds (3 -> 5: minReplicas 2 -> 5) in one write, never /scale.
    hpa_writes = applied_writes(fake_kube, f"{HPAS}/batch")
    assert hpa_writes == 1 if ok["scale_hpa"] else hpa_writes <= 1
    assert after["hpa_min"] == 5 if ok["scale_hpa"] else after["hpa_min"] in (2, 5)
    assert after["batch_replicas"] == 3
    assert len(after["issuing"]) == 1 if ok["cert_renew"] else len(after["issuing"]) <= 1
    assert after["revision"] == 4  # controllers are off: nothing was issued twice
    deleted = [d.name for d in fake_kube.deletions]
    assert len(deleted) == len(set(deleted))
    if ok["cleanup"]:
        assert sorted(deleted) == ["dead-0", "dead-1", "dead-2"]
    assert all(len(r) > len("failed: ") for r in results.values())  # each failure has a reason
    assert sum(ok.values()) >= len(CASES) - 2, results  # retries carry most through 20% faults
    assert any(r.fault for r in fake_kube.requests), "no fault was injected"


def applied_writes(fake, path: str) -> int:
    """Writes to ``path`` that reached the store: answered 2xx, or applied and then dropped."""
    return sum(
        1
        for r in fake.requests
        if r.is_mutation
        and r.path == path
        and (r.response_status in (200, 201) or (r.fault or "").startswith("apply_then"))
    )


async def _run_all(fake_kube: FakeKube) -> dict[str, str]:
    seed(fake_kube)
    fake_kube.controllers_enabled = False  # keep the certificate's Issuing visible
    fake_kube.faults = Faults(
        latency=2.0, error_rate=0.2, kinds=("429", "500", "503", "drop"), apply_then_drop=True
    )
    # Whatever the seed hits, lose the answer of a write that landed in the two paths that
    # must look before sending again: abort's flag (its first PATCH) and the HPA's bounds.
    fake_kube.drop_next(1, "PATCH", f"{ROLLOUTS}/canary", apply_then_drop=True)
    fake_kube.drop_next(1, "PATCH", f"{HPAS}/batch", apply_then_drop=True)
    settings = KubeSettings(
        source="kubeconfig", kubeconfig=fake_kube.kubeconfig, request_timeout=5, deadline=40
    )
    kube = await Kube.connect(settings)
    rt = Runtime(kube=kube, clock=lambda: NOW, verify_interval=timedelta(seconds=1), deadline=40)
    try:

        async def run(name: str, case: tuple[Any, RenderedTarget, Params]) -> str:
            action, target, params = case
            ctx = Context(f"exec-{name}", "faults", NOW)
            try:
                return "ok: " + await apply_once(action, rt, target, params, ctx)
            except KubeError as exc:
                return f"failed: {exc}"

        results = await asyncio.gather(*(run(name, c) for name, c in CASES.items()))
    finally:
        await kube.close()
    fake_kube.clear_faults()
    return dict(zip(CASES, results, strict=True))


@pytest.mark.parametrize("landed", [True, False], ids=["landed", "lost"])
async def test_a_write_whose_answer_is_lost_at_the_deadline_is_looked_up(tmp_path, landed):
    """The answer of a write is lost just as the deadline ends the retries: one last look
    says whether it landed, so the ledger never records as failed a change the cluster
    has (it would escalate, and count against the breaker), nor as done one it has not."""
    fake = FakeKube(token="t")
    async with fake.running():
        fake.write_kubeconfig(tmp_path / "kubeconfig")
        fake.add(objects.deployment("web", "prod"))
        path = "/apis/apps/v1/namespaces/prod/deployments/web"
        fake.set_latency(1.5, path_contains=path, method="PATCH")  # longer than the deadline
        fake.drop_next(1, "PATCH", path, apply_then_drop=landed)
        settings = KubeSettings(
            source="kubeconfig", kubeconfig=fake.kubeconfig, request_timeout=5, deadline=10
        )
        kube = await Kube.connect(settings)
        rt = Runtime(kube=kube, clock=lambda: NOW, verify_interval=timedelta(seconds=1), deadline=1)
        action, target, params = CASES["restart"]
        try:
            run = apply_once(action, rt, target, params, Context("exec-1", "f", NOW))
            if landed:
                assert "(applied; its answer was lost:" in await run
            else:
                with pytest.raises(KubeError, match="connection lost"):
                    await run
        finally:
            await kube.close()
    assert applied_writes(fake, path) == int(landed)
    generation = fake.get("apps/v1", "Deployment", "prod", "web")["metadata"]["generation"]
    assert generation == 1 + int(landed)
