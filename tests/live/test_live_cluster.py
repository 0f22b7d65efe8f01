"""The action scenarios against a real cluster. Skipped unless ``KUBECONFIG`` is set.

Needs a cluster where the kubeconfig's user may create and delete namespaces and, in them,
Deployments, pods, Jobs and ConfigMaps (kind or minikube will do), and that can pull
``registry.k8s.io/pause:3.9`` and ``busybox:1.36``. Each test creates its own namespace,
``$REMEDIATOR_LIVE_NAMESPACE-<random>`` (default prefix ``remediator-live``), runs one
action through the same code the server uses, and deletes the namespace afterwards.

- restart, scale: a Deployment.
- cleanup: short-lived pods (busybox ``sh -c 'exit N'``, ``restartPolicy: Never``) and a
  Job are run to Failed/Succeeded/Complete first; cleanup then runs with an age of 0 and
  a ``max``. Evicted pods cannot be made on demand and are not covered. The cluster's
  clock and this machine's should agree to within a second.
- rollback (Argo Rollouts) and cert_renew (cert-manager): skipped, saying so, unless API
  discovery shows ``argoproj.io/v1alpha1 rollouts`` or ``cert-manager.io/v1
  certificates`` (the CRDs, and their controllers running).

Where no cluster exists, the fake API server stands in, with its simulated kubelet, Job,
namespace, Argo, cert-manager and garbage-collector controllers (``--without-crds`` to see
the two skips)::

    python -m tests.fakes.kube --kubeconfig /tmp/kc &
    KUBECONFIG=/tmp/kc python -m pytest tests/live
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes_asyncio import client

from remediator.actions.base import Context, HealthState, LiveAction, Params, RenderedTarget
from remediator.actions.cert_renew import CertRenew, CertRenewParams
from remediator.actions.cleanup import Cleanup, CleanupParams
from remediator.actions.restart import Restart, RestartParams
from remediator.actions.rollback import Rollback, RollbackParams
from remediator.actions.scale import Scale, ScaleParams
from remediator.kube import JSON, Kube
from remediator.kube.errors import NotFound
from remediator.settings import KubeSettings

pytestmark = [
    pytest.mark.skipif(
        not os.environ.get("KUBECONFIG"), reason="live suite: set KUBECONFIG to a test cluster"
    ),
    pytest.mark.timeout(600),  # image pulls on a fresh cluster
]
PREFIX = os.environ.get("REMEDIATOR_LIVE_NAMESPACE", "remediator-live")
PAUSE = "registry.k8s.io/pause:3.9"
BUSYBOX = "busybox:1.36"
WAIT = 240.0  # seconds for anything the cluster has to do
T = TypeVar("T")


@pytest.fixture
async def kube() -> AsyncIterator[Kube]:
    settings = KubeSettings(source="kubeconfig", kubeconfig=Path(os.environ["KUBECONFIG"]))
    k = await Kube.connect(settings)
    try:
        yield k
    finally:
        await k.close()


@pytest.fixture
async def namespace(kube: Kube) -> AsyncIterator[str]:
    """A fresh namespace per test: a deleted one lingers while it terminates."""
    name = f"{PREFIX}-{secrets.token_hex(3)}"
    body = client.V1Namespace(metadata=client.V1ObjectMeta(name=name))
    await kube.write("create namespace", kube.core.create_namespace, body)
    try:
        yield name
    finally:
        await kube.write("delete namespace", kube.core.delete_namespace, name)


@pytest.fixture
async def deployment(kube: Kube, namespace: str) -> RenderedTarget:
    labels = {"app": "web"}
    body = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(name="web", image=PAUSE)]),
            ),
        ),
    )
    await kube.write("create deployment", kube.apps.create_namespaced_deployment, namespace, body)
    return RenderedTarget("Deployment", namespace, "web")


def context(name: str) -> Context:
    return Context(f"live-{name}-{secrets.token_hex(3)}", "live", datetime.now(UTC))


async def eventually(what: str, probe: Callable[[], Awaitable[T | None]]) -> T:
    """Poll ``probe`` until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while not (value := await probe()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {WAIT:.0f} s: {what}")
        await asyncio.sleep(0.25)
    return value


async def settle(
    kube: Kube, action: LiveAction, target: RenderedTarget, params: Params, ctx: Context
) -> str:
    """Wait for ``verify`` to say healthy; fail at once if it says failed."""

    async def healthy() -> str | None:
        health = await action.verify(kube, target, params, ctx)
        assert health.state != HealthState.FAILED, health.message
        return health.message if health.state == HealthState.HEALTHY else None

    return await eventually(f"{target} healthy", healthy)


async def require(kube: Kube, group: str, version: str, plural: str) -> None:
    """Skip unless the cluster serves ``plural`` in ``group/version`` (its CRD is there)."""
    try:
        listing = await kube.read(
            f"GET /apis/{group}/{version}", kube.custom.get_api_resources, group, version
        )
    except NotFound:
        listing = {}
    if plural not in {r.get("name") for r in listing.get("resources") or []}:
        pytest.skip(f"{group}/{version} {plural} is not served here (CRD not installed)")


# --- restart and scale ----------------------------------------------------------------


async def test_restart_applies_once_and_completes(kube: Kube, deployment: RenderedTarget) -> None:
    ctx = context("restart")
    assert not await Restart().applied(kube, deployment, RestartParams(), ctx)
    await Restart().apply(kube, deployment, RestartParams(), ctx)
    assert await Restart().applied(kube, deployment, RestartParams(), ctx)
    await settle(kube, Restart(), deployment, RestartParams(), ctx)


async def test_scale_by_a_delta_within_bounds(kube: Kube, deployment: RenderedTarget) -> None:
    ctx = context("scale")
    params = ScaleParams(delta=1, min=1, max=2)
    await Scale().apply(kube, deployment, params, ctx)
    assert await Scale().applied(kube, deployment, params, ctx)
    await settle(kube, Scale(), deployment, params, ctx)
    scale = await kube.read(
        "GET scale", kube.apps.read_namespaced_deployment_scale, "web", deployment.namespace
    )
    assert scale["spec"]["replicas"] == 2


# --- cleanup --------------------------------------------------------------------------

JUNK = {"app": "junk"}


def exits(code: int) -> list[str]:
    return ["sh", "-c", f"exit {code}"]


async def run_pod(
    kube: Kube, ns: str, name: str, labels: dict[str, str], command: list[str] | None
) -> None:
    """Create a pod and wait for it to finish (with ``command``) or to run (without)."""
    container: JSON = {"name": "main", "image": BUSYBOX if command else PAUSE}
    if command:
        container["command"] = command
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"restartPolicy": "Never", "containers": [container]},
    }
    await kube.write(f"create pod {name}", kube.core.create_namespaced_pod, ns, body)
    wanted = {"Succeeded", "Failed"} if command else {"Running"}

    async def phase() -> str | None:
        pod = await kube.read(f"GET pod {name}", kube.core.read_namespaced_pod, name, ns)
        value = (pod.get("status") or {}).get("phase")
        return value if value in wanted else None

    await eventually(f"pod {ns}/{name} in {wanted}", phase)


async def run_job(kube: Kube, ns: str, name: str, labels: dict[str, str]) -> None:
    body = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": BUSYBOX, "command": exits(0)}],
                },
            },
        },
    }
    await kube.write(f"create job {name}", kube.batch.create_namespaced_job, ns, body)

    async def complete() -> bool:
        job = await kube.read(f"GET job {name}", kube.batch.read_namespaced_job, name, ns)
        conditions = (job.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Complete" and c["status"] == "True" for c in conditions)

    await eventually(f"job {ns}/{name} complete", complete)


async def names(kube: Kube, ns: str) -> tuple[set[str], set[str], set[str]]:
    """(pods not owned by a Job, pods owned by one, Jobs)."""
    pods = await kube.read("LIST pods", kube.core.list_namespaced_pod, ns)
    jobs = await kube.read("LIST jobs", kube.batch.list_namespaced_job, ns)
    own, job_pods = set(), set()
    for pod in pods["items"]:
        meta = pod["metadata"]
        (job_pods if meta.get("ownerReferences") else own).add(meta["name"])
    return own, job_pods, {j["metadata"]["name"] for j in jobs["items"]}


async def test_cleanup_deletes_the_oldest_finished_pods_and_jobs_up_to_max(
    kube: Kube, namespace: str
) -> None:
    ns = namespace
    # Oldest first; timestamps have second precision, so each waits for a new second.
    await run_pod(kube, ns, "failed-a", JUNK, exits(1))
    await asyncio.sleep(1.1)
    await run_pod(kube, ns, "failed-b", JUNK, exits(1))
    await asyncio.sleep(1.1)
    await run_pod(kube, ns, "succeeded", JUNK, exits(0))
    await run_pod(kube, ns, "bystander", {"app": "other"}, exits(1))
    await run_pod(kube, ns, "running", JUNK, None)
    await run_job(kube, ns, "batch", JUNK)
    _, job_pods, _ = await names(kube, ns)
    assert len(job_pods) == 1
    target = RenderedTarget("Namespace", ns, "")

    # Failed pods and the finished Job are candidates; max takes the two oldest.
    first = CleanupParams(selector="app=junk", older_than=timedelta(0), max=2)
    ctx = context("cleanup")
    outcome = await Cleanup().apply(kube, target, first, ctx)
    assert outcome == ("deleted 2 pods (failed-a, failed-b) (1 more left for a later run (max 2))")
    assert await Cleanup().applied(kube, target, first, ctx)
    await settle(kube, Cleanup(), target, first, ctx)  # what max left over does not count

    async def first_gone() -> bool:
        own, pods_of_jobs, jobs = await names(kube, ns)
        assert (pods_of_jobs, jobs) == (job_pods, {"batch"})
        return own == {"succeeded", "bystander", "running"}

    await eventually("failed-a and failed-b deleted", first_gone)

    # Now with Succeeded pods: the Job goes, and its pod with it (not deleted on its own).
    second = CleanupParams(
        selector="app=junk", older_than=timedelta(0), include_succeeded=True, max=10
    )
    ctx = context("cleanup")
    outcome = await Cleanup().apply(kube, target, second, ctx)
    assert outcome == "deleted 1 pod (succeeded) and 1 job (batch)"
    await settle(kube, Cleanup(), target, second, ctx)  # the Job's pod collected too
    assert await names(kube, ns) == ({"bystander", "running"}, set(), set())


# --- rollback (Argo Rollouts) ---------------------------------------------------------

ARGO = ("argoproj.io", "v1alpha1")
CHANGE = "live.remediator.io/change"


async def owned_revisions(kube: Kube, ns: str, rollout: JSON) -> set[str]:
    listed = await kube.read(
        "LIST replicasets", kube.apps.list_namespaced_replica_set, ns, label_selector="app=roll"
    )
    uid = rollout["metadata"]["uid"]
    return {
        (rs["metadata"].get("annotations") or {}).get("rollout.argoproj.io/revision", "")
        for rs in listed["items"]
        if any(r.get("uid") == uid for r in rs["metadata"].get("ownerReferences") or [])
    }


async def test_rollback_undo_restores_the_previous_template(kube: Kube, namespace: str) -> None:
    await require(kube, *ARGO, "rollouts")
    ns, labels = namespace, {"app": "roll"}
    body = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "roll"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "strategy": {"canary": {}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "image": PAUSE}]},
            },
        },
    }
    created = await kube.write(
        "create rollout", kube.custom.create_namespaced_custom_object, *ARGO, ns, "rollouts", body
    )
    read = kube.custom.get_namespaced_custom_object

    async def revisions(wanted: str) -> bool:
        return wanted in await owned_revisions(kube, ns, created)

    await eventually("revision 1", lambda: revisions("1"))
    change = {"spec": {"template": {"metadata": {"annotations": {CHANGE: "2"}}}}}
    await kube.write(
        "change the template",
        kube.custom.patch_namespaced_custom_object,
        *ARGO,
        ns,
        "rollouts",
        "roll",
        change,
        _content_type="application/merge-patch+json",
    )
    await eventually("revision 2", lambda: revisions("2"))

    target, params, ctx = RenderedTarget("Rollout", ns, "roll"), RollbackParams(), context("undo")
    assert not await Rollback().applied(kube, target, params, ctx)
    outcome = await Rollback().apply(kube, target, params, ctx)
    assert "to revision 1" in outcome
    assert await Rollback().applied(kube, target, params, ctx)
    rollout = await kube.read("GET rollout", read, *ARGO, ns, "rollouts", "roll")
    template: dict[str, Any] = rollout["spec"]["template"]
    assert CHANGE not in (template["metadata"].get("annotations") or {})
    assert template["spec"]["containers"][0]["image"] == PAUSE
    stamp = rollout["metadata"]["annotations"]["remediator.io/execution-id"]
    assert stamp == ctx.execution_id
    await settle(kube, Rollback(), target, params, ctx)


# --- cert_renew (cert-manager) --------------------------------------------------------

CERTS = ("cert-manager.io", "v1")


async def test_cert_renew_issues_a_new_revision(kube: Kube, namespace: str) -> None:
    await require(kube, *CERTS, "certificates")
    ns, create = namespace, kube.custom.create_namespaced_custom_object
    issuer = {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Issuer",
        "metadata": {"name": "self"},
        "spec": {"selfSigned": {}},
    }
    await kube.write("create issuer", create, *CERTS, ns, "issuers", issuer)
    certificate = {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": "live"},
        "spec": {
            "secretName": "live-tls",
            "commonName": "live.example.com",
            "dnsNames": ["live.example.com"],
            "issuerRef": {"name": "self", "kind": "Issuer", "group": "cert-manager.io"},
        },
    }
    await kube.write("create certificate", create, *CERTS, ns, "certificates", certificate)

    async def ready_revision() -> int | None:
        crt = await kube.read(
            "GET certificate",
            kube.custom.get_namespaced_custom_object,
            *CERTS,
            ns,
            "certificates",
            "live",
        )
        status = crt.get("status") or {}
        ready = any(
            c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or []
        )
        return int(status.get("revision") or 0) if ready else None

    before = await eventually("certificate ready", ready_revision)

    target, params, ctx = (
        RenderedTarget("Certificate", ns, "live"),
        CertRenewParams(),
        context("renew"),
    )
    assert not await CertRenew().applied(kube, target, params, ctx)
    await CertRenew().apply(kube, target, params, ctx)
    assert await CertRenew().applied(kube, target, params, ctx)
    await settle(kube, CertRenew(), target, params, ctx)
    assert await ready_revision() == before + 1
