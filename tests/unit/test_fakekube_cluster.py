"""The fake API server as a small cluster (what the live suite needs when it runs on it):
namespaces, discovery, pods that run and exit, Jobs, the garbage collector, Argo's
ReplicaSets and cert-manager's first issuance, through the real kubernetes_asyncio client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

from tests.fakes.kube import FakeKube, objects
from tests.fakes.kube.resources import DEFAULT_RESOURCES

NS = "live"
ARGO = ("argoproj.io", "v1alpha1")
CERTS = ("cert-manager.io", "v1")
REVISION = "rollout.argoproj.io/revision"


@pytest.fixture
async def cluster() -> AsyncIterator[FakeKube]:
    """A fake with the controllers that also change seeded objects (``dependents``)."""
    fake = FakeKube(dependents=True)
    async with fake.running():
        yield fake


@pytest.fixture
async def cluster_client(cluster: FakeKube) -> AsyncIterator[ApiClient]:
    async with cluster.api_client() as api:
        yield api


def pod_body(name: str, command: list[str] | None = None, policy: str = "Never") -> dict:
    container: dict = {"name": "main", "image": "busybox:1.36"}
    if command:
        container["command"] = command
    return {
        "metadata": {"name": name, "labels": {"app": "junk"}},
        "spec": {"restartPolicy": policy, "containers": [container]},
    }


def job_body(name: str, code: int, backoff_limit: int = 0) -> dict:
    return {
        "metadata": {"name": name, "labels": {"app": "junk"}},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {
                "metadata": {"labels": {"app": "junk"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "main",
                            "image": "busybox",
                            "command": ["sh", "-c", f"exit {code}"],
                        }
                    ],
                },
            },
        },
    }


def phase_of(fake: FakeKube, name: str, wanted: str) -> dict | None:
    pod = fake.get("v1", "Pod", NS, name)
    return pod if pod and pod["status"]["phase"] == wanted else None


def condition(obj: dict | None, type_: str) -> dict | None:
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == type_ and c["status"] == "True"), None)


# -- namespaces ----------------------------------------------------------------------------------


async def test_namespace_create_terminate_and_sweep(fake_kube, fake_kube_client):
    core = client.CoreV1Api(fake_kube_client)
    created = await core.create_namespace({"metadata": {"name": NS}})
    assert created.status.phase == "Active"
    assert created.metadata.namespace is None
    assert created.metadata.labels == {"kubernetes.io/metadata.name": NS}
    assert fake_kube.requests[-1].path == "/api/v1/namespaces"
    assert [n.metadata.name for n in (await core.list_namespace()).items] == [NS]
    fake_kube.add(objects.deployment("web", NS))
    fake_kube.add(objects.pod("web-1", NS))
    fake_kube.add(objects.pod("web-1", "other"))
    with pytest.raises(ApiException) as err:
        await core.create_namespace({"metadata": {"name": NS}})
    assert err.value.status == 409

    fake_kube.controllers_enabled = False
    answer = await core.delete_namespace(NS, _preload_content=False)
    deleted = json.loads(await answer.read())  # the Namespace (the client expects a Status)
    assert deleted["status"] == {"phase": "Terminating"}
    assert (await core.read_namespace(NS)).metadata.deletion_timestamp is not None
    with pytest.raises(ApiException) as err:
        await core.create_namespaced_pod(NS, pod_body("late"))
    assert err.value.status == 403
    assert json.loads(err.value.body)["message"] == (
        'pods "late" is forbidden: unable to create new content in namespace live because '
        "it is being terminated"
    )

    fake_kube.controllers_enabled = True
    await fake_kube.wait_for(lambda: fake_kube.get("v1", "Namespace", "", NS) is None)
    assert fake_kube.get("apps/v1", "Deployment", NS, "web") is None
    assert fake_kube.list("v1", "Pod", NS) == []
    assert fake_kube.get("v1", "Pod", "other", "web-1") is not None


# -- discovery -----------------------------------------------------------------------------------


async def test_discovery_lists_the_served_kinds(fake_kube, fake_kube_client):
    co = client.CustomObjectsApi(fake_kube_client)
    argo = await co.get_api_resources(*ARGO)
    assert argo.group_version == "argoproj.io/v1alpha1"
    rollouts, scale, status = argo.resources
    assert (rollouts.name, rollouts.kind, rollouts.namespaced) == ("rollouts", "Rollout", True)
    assert (scale.name, scale.group, scale.kind) == ("rollouts/scale", "autoscaling", "Scale")
    assert status.name == "rollouts/status"
    core = await client.CoreV1Api(fake_kube_client).get_api_resources()
    by_name = {r.name: r for r in core.resources}
    assert by_name["namespaces"].namespaced is False
    assert (by_name["pods/eviction"].group, by_name["pods/eviction"].kind) == ("policy", "Eviction")
    groups = await client.ApisApi(fake_kube_client).get_api_versions()
    assert {"apps", "argoproj.io", "cert-manager.io"} <= {g.name for g in groups.groups}
    with pytest.raises(ApiException) as err:
        await co.get_api_resources("argoproj.io", "v1")
    assert err.value.status == 404


async def test_a_fake_without_the_crds_does_not_serve_their_groups():
    fake = FakeKube(resources=tuple(r for r in DEFAULT_RESOURCES if r.group != "argoproj.io"))
    async with fake.running(), fake.api_client() as api:
        with pytest.raises(ApiException) as err:
            await client.CustomObjectsApi(api).get_api_resources(*ARGO)
        assert json.loads(err.value.body)["reason"] == "NotFound"
        certs = await client.CustomObjectsApi(api).get_api_resources(*CERTS)
        assert [r.name for r in certs.resources] == [
            "certificates",
            "certificates/status",
            "issuers",
            "issuers/status",
        ]


# -- kubelet -------------------------------------------------------------------------------------


async def test_pods_run_and_their_exit_programs_end_them(fake_kube, fake_kube_client):
    core = client.CoreV1Api(fake_kube_client)
    # All four start on the same tick, so "passes" cannot end before "restarts" runs.
    fake_kube.controllers_enabled = False
    await core.create_namespaced_pod(NS, pod_body("fails", ["sh", "-c", "exit 3"]))
    await core.create_namespaced_pod(NS, pod_body("passes", ["/bin/sh", "-c", "exit 0"]))
    await core.create_namespaced_pod(NS, pod_body("serves"))
    await core.create_namespaced_pod(NS, pod_body("restarts", ["sh", "-c", "exit 1"], "Always"))
    fake_kube.add(objects.pod("seeded", NS, phase="Pending"))
    fake_kube.controllers_enabled = True

    failed = await fake_kube.wait_for(lambda: phase_of(fake_kube, "fails", "Failed"))
    (main,) = failed["status"]["containerStatuses"]
    assert main["state"]["terminated"]["exitCode"] == 3
    assert main["state"]["terminated"]["reason"] == "Error"
    assert failed["status"]["startTime"]
    assert failed["spec"]["nodeName"] == "fake-node-1"
    assert condition(failed, "Ready") is None
    passed = await fake_kube.wait_for(lambda: phase_of(fake_kube, "passes", "Succeeded"))
    assert passed["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    for name in ("serves", "restarts"):
        running = phase_of(fake_kube, name, "Running")
        assert condition(running, "Ready") is not None
    assert phase_of(fake_kube, "seeded", "Pending") is not None


# -- Jobs and the garbage collector --------------------------------------------------------------


def finished(fake: FakeKube, name: str, type_: str) -> dict | None:
    """The Job once its ``type_`` (Complete, Failed) condition is True."""
    job = fake.get("batch/v1", "Job", NS, name)
    return job if condition(job, type_) else None


async def test_a_job_runs_a_pod_to_completion(fake_kube, fake_kube_client):
    batch = client.BatchV1Api(fake_kube_client)
    await batch.create_namespaced_job(NS, job_body("ok", 0))
    await batch.create_namespaced_job(NS, job_body("bad", 1))
    fake_kube.add(objects.job("seeded", NS, finished=False))

    ok = await fake_kube.wait_for(lambda: finished(fake_kube, "ok", "Complete"))
    assert condition(ok, "SuccessCriteriaMet") is not None
    assert ok["status"]["succeeded"] == 1
    assert "active" not in ok["status"]
    assert ok["status"]["completionTime"] >= ok["status"]["startTime"]
    bad = await fake_kube.wait_for(lambda: finished(fake_kube, "bad", "Failed"))
    assert condition(bad, "Failed")["reason"] == "BackoffLimitExceeded"
    assert bad["status"]["failed"] == 1

    pods = {p["metadata"]["name"]: p for p in fake_kube.list("v1", "Pod", NS)}
    assert len(pods) == 2
    (ok_pod,) = [p for p in pods.values() if p["metadata"]["labels"]["job-name"] == "ok"]
    assert ok_pod["metadata"]["name"].startswith("ok-")
    assert (
        ok_pod["metadata"]["labels"]["batch.kubernetes.io/controller-uid"] == ok["metadata"]["uid"]
    )
    assert ok_pod["metadata"]["labels"]["app"] == "junk"
    assert ok_pod["metadata"]["ownerReferences"][0]["uid"] == ok["metadata"]["uid"]
    assert ok_pod["status"]["phase"] == "Succeeded"
    assert (
        fake_kube.get("batch/v1", "Job", NS, "seeded")["status"]
        == objects.job("seeded", NS, finished=False)["status"]
    )


async def test_garbage_collector_follows_the_propagation_policy(cluster, cluster_client):
    batch = client.BatchV1Api(cluster_client)
    for name in ("background", "orphan"):
        await batch.create_namespaced_job(NS, job_body(name, 0))
    for name in ("background", "orphan"):
        await cluster.wait_for(lambda n=name: finished(cluster, n, "Complete"))
    owners = {
        p["metadata"]["labels"]["job-name"]: p["metadata"]["name"]
        for p in cluster.list("v1", "Pod", NS)
    }

    await batch.delete_namespaced_job("background", NS, propagation_policy="Background")
    await batch.delete_namespaced_job("orphan", NS)  # batch/v1 default: Orphan
    await cluster.wait_for(lambda: cluster.get("v1", "Pod", NS, owners["background"]) is None)
    orphan = await cluster.wait_for(
        lambda: (
            (p := cluster.get("v1", "Pod", NS, owners["orphan"]))
            and "ownerReferences" not in p["metadata"]
            and p
        )
    )
    assert orphan["status"]["phase"] == "Succeeded"


async def test_without_dependents_nothing_is_collected(fake_kube, fake_kube_client):
    job = fake_kube.add(objects.job("migrate", NS))
    fake_kube.add(objects.pod("migrate-x", NS, "Succeeded", owner=job))
    await client.BatchV1Api(fake_kube_client).delete_namespaced_job(
        "migrate", NS, propagation_policy="Background"
    )
    assert fake_kube.reconcile() == 0
    assert fake_kube.get("v1", "Pod", NS, "migrate-x") is not None


# -- Argo Rollouts and cert-manager --------------------------------------------------------------


def revisions(fake: FakeKube) -> dict[str, str]:
    return {
        rs["metadata"]["name"]: rs["metadata"]["annotations"][REVISION]
        for rs in fake.list("apps/v1", "ReplicaSet", NS)
    }


async def test_rollout_gets_a_replicaset_per_template_revision(cluster, cluster_client):
    co = client.CustomObjectsApi(cluster_client)
    rollout = objects.rollout("web", NS, image="app:1")
    del rollout["status"]
    created = await co.create_namespaced_custom_object(*ARGO, NS, "rollouts", rollout)
    first = await cluster.wait_for(lambda: revisions(cluster))
    ((v1_name, v1),) = first.items()
    assert v1 == "1"
    rs = cluster.get("apps/v1", "ReplicaSet", NS, v1_name)
    assert rs["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    assert rs["spec"]["template"]["metadata"]["labels"][
        "rollouts-pod-template-hash"
    ] == v1_name.removeprefix("web-")

    async def set_image(image: str) -> None:
        path = "/spec/template/spec/containers/0/image"
        ops = [{"op": "replace", "path": path, "value": image}]
        await co.patch_namespaced_custom_object(*ARGO, NS, "rollouts", "web", ops)

    await set_image("app:2")
    second = await cluster.wait_for(lambda: len(revisions(cluster)) == 2 and revisions(cluster))
    assert sorted(second.values()) == ["1", "2"]
    await set_image("app:1")
    third = await cluster.wait_for(
        lambda: revisions(cluster)[v1_name] == "3" and revisions(cluster)
    )
    assert len(third) == 2
    ro = await cluster.wait_for(
        lambda: (
            (r := cluster.get("argoproj.io/v1alpha1", "Rollout", NS, "web"))
            and r["metadata"]["annotations"][REVISION] == "3"
            and r
        )
    )
    assert ro["status"]["phase"] == "Healthy"


async def test_new_issuer_and_certificate_become_ready(fake_kube, fake_kube_client):
    co = client.CustomObjectsApi(fake_kube_client)
    issuer = {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Issuer",
        "metadata": {"name": "self"},
        "spec": {"selfSigned": {}},
    }
    cert = objects.certificate("tls", NS)
    del cert["status"]
    fake_kube.controllers_enabled = False  # stepped by hand below
    await co.create_namespaced_custom_object(*CERTS, NS, "issuers", issuer)
    await co.create_namespaced_custom_object(*CERTS, NS, "certificates", cert)
    fake_kube.reconcile()
    issuing = fake_kube.get("cert-manager.io/v1", "Certificate", NS, "tls")
    assert condition(issuing, "Issuing")["reason"] == "DoesNotExist"
    assert (
        condition(fake_kube.get("cert-manager.io/v1", "Issuer", NS, "self"), "Ready")["reason"]
        == "IsReady"
    )
    fake_kube.reconcile()
    ready = fake_kube.get("cert-manager.io/v1", "Certificate", NS, "tls")
    assert condition(ready, "Ready") is not None
    assert condition(ready, "Issuing") is None
    assert ready["status"]["revision"] == 1
