"""The fake Kubernetes API server, driven by the real kubernetes_asyncio client over HTTP."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta

import aiohttp
import pytest
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

from tests.fakes.kube import (
    JSON_PATCH,
    MERGE_PATCH,
    MUTATING_METHODS,
    STRATEGIC_MERGE_PATCH,
    FakeKube,
    Faults,
    Request,
    objects,
)
from tests.fakes.kube.patch import json_patch, merge_patch, strategic_merge_patch
from tests.fakes.kube.selectors import parse_label_selector

NS = "prod"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
ARGO = ("argoproj.io", "v1alpha1")
CERTS = ("cert-manager.io", "v1")


def status_body(exc: ApiException) -> dict:
    return json.loads(exc.body)


# -- client wiring -------------------------------------------------------------------------------


async def test_kubeconfig_loads_into_a_private_configuration(tmp_path):
    fake = FakeKube(token="s3cret", seed=1)
    fake.add(objects.deployment("web", NS))
    async with fake.running() as url:
        path = fake.write_kubeconfig(tmp_path / "kc", context="fake")
        cfg = client.Configuration()
        await config.load_kube_config(config_file=str(path), client_configuration=cfg)
        assert cfg.host == url
        assert url.startswith("http://127.0.0.1:")
        async with ApiClient(cfg) as api:
            dep = await client.AppsV1Api(api).read_namespaced_deployment("web", NS)
        assert dep.spec.replicas == 3
        assert fake.requests[-1].path == "/apis/apps/v1/namespaces/prod/deployments/web"


async def test_wrong_token_is_401(fake_kube):
    cfg = client.Configuration()
    cfg.host = fake_kube.url
    cfg.api_key = {"BearerToken": "Bearer nope"}
    async with ApiClient(cfg) as api:
        with pytest.raises(ApiException) as err:
            await client.CoreV1Api(api).list_namespaced_pod(NS)
    assert err.value.status == 401
    assert status_body(err.value)["reason"] == "Unauthorized"


# -- reads ---------------------------------------------------------------------------------------


async def test_get_and_list_with_label_and_field_selectors(fake_kube, fake_kube_client):
    fake_kube.add(objects.pod("web-1", NS, labels={"app": "web", "tier": "fe"}))
    fake_kube.add(objects.pod("web-2", NS, phase="Failed", reason="Evicted", labels={"app": "web"}))
    fake_kube.add(objects.pod("db-1", NS, labels={"app": "db", "tier": "be"}))
    fake_kube.add(objects.pod("web-9", "stage", labels={"app": "web"}))
    core = client.CoreV1Api(fake_kube_client)

    pod = await core.read_namespaced_pod("web-2", NS)
    assert (pod.status.phase, pod.status.reason) == ("Failed", "Evicted")

    names = lambda result: [p.metadata.name for p in result.items]  # noqa: E731
    assert names(await core.list_namespaced_pod(NS, label_selector="app=web")) == ["web-1", "web-2"]
    assert names(await core.list_namespaced_pod(NS, label_selector="app!=web")) == ["db-1"]
    assert names(await core.list_namespaced_pod(NS, label_selector="tier in (fe,be)")) == [
        "db-1",
        "web-1",
    ]
    assert names(await core.list_namespaced_pod(NS, label_selector="app=web,tier")) == ["web-1"]
    assert names(await core.list_namespaced_pod(NS, label_selector="app,!tier")) == ["web-2"]
    failed = await core.list_namespaced_pod(NS, field_selector="status.phase=Failed")
    assert names(failed) == ["web-2"]
    running = await core.list_namespaced_pod(NS, field_selector="status.phase!=Failed")
    assert names(running) == ["db-1", "web-1"]
    everywhere = await core.list_pod_for_all_namespaces(label_selector="app=web")
    assert names(everywhere) == ["web-1", "web-2", "web-9"]

    raw = await fake_kube_client.call_api(
        f"/api/v1/namespaces/{NS}/pods",
        "GET",
        auth_settings=["BearerToken"],
        response_types_map={200: "object"},
        _return_http_data_only=True,
    )
    assert raw["kind"] == "PodList"
    assert raw["apiVersion"] == "v1"
    assert raw["metadata"]["resourceVersion"] == fake_kube.resource_version


async def test_list_pages_with_limit_and_continue(fake_kube, fake_kube_client):
    for name in ("c", "a", "e", "b", "d"):
        fake_kube.add(objects.pod(name, NS, labels={"app": "web"}))
    fake_kube.add(objects.pod("a0", NS, labels={"app": "db"}))
    core = client.CoreV1Api(fake_kube_client)
    pages, token = [], None
    while True:
        page = await core.list_namespaced_pod(
            NS, label_selector="app=web", limit=2, _continue=token
        )
        pages.append([p.metadata.name for p in page.items])
        token = page.metadata._continue
        if not token:
            break
        assert page.metadata.remaining_item_count == 5 - sum(map(len, pages))
    assert pages == [["a", "b"], ["c", "d"], ["e"]]
    assert len((await core.list_namespaced_pod(NS, limit=0)).items) == 6  # 0: no limit
    with pytest.raises(ApiException) as err:
        await core.list_namespaced_pod(NS, _continue="not-a-token")
    assert (err.value.status, status_body(err.value)["reason"]) == (400, "BadRequest")


async def test_not_found_is_a_real_status_body(fake_kube_client):
    with pytest.raises(ApiException) as err:
        await client.AppsV1Api(fake_kube_client).read_namespaced_deployment("web", NS)
    assert err.value.status == 404
    assert status_body(err.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'deployments.apps "web" not found',
        "reason": "NotFound",
        "details": {"name": "web", "group": "apps", "kind": "deployments"},
        "code": 404,
    }


# -- writes, generation and the workload controller ----------------------------------------------


async def test_restart_patch_bumps_generation_and_controller_rolls_out(fake_kube, fake_kube_client):
    fake_kube.add(objects.deployment("web", NS, replicas=3))
    apps = client.AppsV1Api(fake_kube_client)
    body = {
        "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: "2025-05-01T10:00:00Z"}}}}
    }

    patched = await apps.patch_namespaced_deployment("web", NS, body)

    assert patched.metadata.generation == 2
    assert patched.spec.template.metadata.annotations == {RESTARTED_AT: "2025-05-01T10:00:00Z"}
    assert patched.spec.template.spec.containers[0].name == "web"  # merged, not replaced
    (req,) = fake_kube.mutations()
    assert (req.method, req.content_type, req.body) == ("PATCH", STRATEGIC_MERGE_PATCH, body)

    def rolled_out():
        status = fake_kube.get("apps/v1", "Deployment", NS, "web")["status"]
        return status["observedGeneration"] == 2 and status["updatedReplicas"] == 3 and status

    status = await fake_kube.wait_for(rolled_out)
    assert status["availableReplicas"] == status["readyReplicas"] == 3
    # status-only controller writes do not bump the generation
    assert fake_kube.get("apps/v1", "Deployment", NS, "web")["metadata"]["generation"] == 2


async def test_stuck_and_paused_deployments_never_finish(fake_kube, fake_kube_client):
    fake_kube.controllers_enabled = False
    fake_kube.add(objects.deployment("stuck", NS))
    fake_kube.add(objects.deployment("paused", NS, paused=True))
    fake_kube.set_stuck("Deployment", NS, "stuck")
    apps = client.AppsV1Api(fake_kube_client)
    for name in ("stuck", "paused"):
        await apps.patch_namespaced_deployment(name, NS, {"spec": {"replicas": 4}})
    for _ in range(5):
        fake_kube.reconcile()
    stuck = fake_kube.get("apps/v1", "Deployment", NS, "stuck")["status"]
    assert stuck["observedGeneration"] == 2
    assert stuck["updatedReplicas"] == 0
    paused = fake_kube.get("apps/v1", "Deployment", NS, "paused")["status"]
    assert paused["observedGeneration"] == 1

    fake_kube.set_stuck("Deployment", NS, "stuck", False)
    fake_kube.reconcile()
    assert fake_kube.get("apps/v1", "Deployment", NS, "stuck")["status"]["updatedReplicas"] == 4


async def test_statefulset_and_daemonset_controllers(fake_kube, fake_kube_client):
    fake_kube.controllers_enabled = False
    fake_kube.add(objects.statefulset("db", NS, replicas=2))
    fake_kube.add(objects.daemonset("agent", NS))
    apps = client.AppsV1Api(fake_kube_client)
    restart = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: "now"}}}}}
    await apps.patch_namespaced_stateful_set("db", NS, restart)
    await apps.patch_namespaced_daemon_set("agent", NS, restart)
    assert fake_kube.reconcile() == 2  # observe
    assert (
        fake_kube.get("apps/v1", "DaemonSet", NS, "agent")["status"]["updatedNumberScheduled"] == 0
    )
    assert fake_kube.reconcile() == 2  # finish
    assert fake_kube.reconcile() == 0
    sts = fake_kube.get("apps/v1", "StatefulSet", NS, "db")["status"]
    assert (sts["observedGeneration"], sts["updatedReplicas"], sts["readyReplicas"]) == (2, 2, 2)
    ds = fake_kube.get("apps/v1", "DaemonSet", NS, "agent")["status"]
    assert (ds["observedGeneration"], ds["updatedNumberScheduled"], ds["numberReady"]) == (2, 3, 3)


async def test_stale_put_is_409_conflict(fake_kube, fake_kube_client):
    fake_kube.add(objects.deployment("web", NS))
    apps = client.AppsV1Api(fake_kube_client)
    old = await apps.read_namespaced_deployment("web", NS)
    await apps.patch_namespaced_deployment("web", NS, {"metadata": {"labels": {"x": "1"}}})
    old.spec.replicas = 7
    with pytest.raises(ApiException) as err:
        await apps.replace_namespaced_deployment("web", NS, old)
    assert err.value.status == 409
    body = status_body(err.value)
    assert body["reason"] == "Conflict"
    assert body["message"] == (
        'Operation cannot be fulfilled on deployments.apps "web": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    assert fake_kube.get("apps/v1", "Deployment", NS, "web")["spec"]["replicas"] == 3

    fresh = await apps.read_namespaced_deployment("web", NS)
    fresh.spec.replicas = 7
    replaced = await apps.replace_namespaced_deployment("web", NS, fresh)
    assert replaced.spec.replicas == 7
    assert int(replaced.metadata.resource_version) > int(fresh.metadata.resource_version)


async def test_create_delete_and_validation(fake_kube, fake_kube_client):
    apps = client.AppsV1Api(fake_kube_client)
    body = objects.deployment("api", NS)
    del body["metadata"]["uid"]
    created = await apps.create_namespaced_deployment(NS, body)
    assert created.metadata.generation == 1
    assert created.metadata.uid
    assert created.status is None  # status is the controllers' to write
    with pytest.raises(ApiException) as err:
        await apps.create_namespaced_deployment(NS, body)
    assert (err.value.status, status_body(err.value)["reason"]) == (409, "AlreadyExists")

    bad = objects.deployment("Bad_Name", NS)
    with pytest.raises(ApiException) as err:
        await apps.create_namespaced_deployment(NS, bad)
    assert (err.value.status, status_body(err.value)["reason"]) == (422, "Invalid")

    await apps.delete_namespaced_deployment("api", NS, propagation_policy="Foreground")
    assert fake_kube.get("apps/v1", "Deployment", NS, "api") is None
    assert fake_kube.deletions[-1].propagation_policy == "Foreground"
    assert fake_kube.mutations("DELETE")[-1].query == {"propagationPolicy": "Foreground"}


# -- scale subresource and HPA -------------------------------------------------------------------


async def test_scale_subresource_get_patch_put(fake_kube, fake_kube_client):
    fake_kube.controllers_enabled = False  # its status writes would make the PUT below stale
    fake_kube.add(objects.deployment("web", NS, replicas=3, labels={"app": "web", "tier": "fe"}))
    apps = client.AppsV1Api(fake_kube_client)

    scale = await apps.read_namespaced_deployment_scale("web", NS)
    assert scale.kind == "Scale"
    assert scale.api_version == "autoscaling/v1"
    assert (scale.spec.replicas, scale.status.replicas) == (3, 3)
    assert scale.status.selector == "app=web,tier=fe"

    patched = await apps.patch_namespaced_deployment_scale(
        "web", NS, {"spec": {"replicas": 5}}, _content_type=MERGE_PATCH
    )
    assert patched.spec.replicas == 5
    dep = fake_kube.get("apps/v1", "Deployment", NS, "web")
    assert (dep["spec"]["replicas"], dep["metadata"]["generation"]) == (5, 2)
    req = fake_kube.mutations()[-1]
    assert (req.path, req.content_type) == (
        f"/apis/apps/v1/namespaces/{NS}/deployments/web/scale",
        MERGE_PATCH,
    )

    with pytest.raises(ApiException) as err:
        await apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": -1}})
    assert err.value.status == 422
    assert status_body(err.value)["message"] == (
        'Scale.autoscaling "web" is invalid: spec.replicas: Invalid value: -1: '
        "must be greater than or equal to 0"
    )

    current = await apps.read_namespaced_deployment_scale("web", NS)
    current.spec.replicas = 2
    replaced = await apps.replace_namespaced_deployment_scale("web", NS, current)
    assert replaced.spec.replicas == 2
    with pytest.raises(ApiException) as err:  # the same, now stale, resourceVersion
        await apps.replace_namespaced_deployment_scale("web", NS, current)
    assert err.value.status == 409


async def test_hpa_is_served_under_v1_and_v2(fake_kube, fake_kube_client):
    fake_kube.add(objects.hpa("web", NS, "Deployment", "web", min=2, max=6))
    v2 = await client.AutoscalingV2Api(fake_kube_client).read_namespaced_horizontal_pod_autoscaler(
        "web", NS
    )
    assert (v2.spec.min_replicas, v2.spec.scale_target_ref.name) == (2, "web")
    v1 = client.AutoscalingV1Api(fake_kube_client)
    await v1.patch_namespaced_horizontal_pod_autoscaler(
        "web", NS, {"spec": {"minReplicas": 4}}, _content_type=MERGE_PATCH
    )
    assert (
        fake_kube.get("autoscaling/v2", "HorizontalPodAutoscaler", NS, "web")["spec"]["minReplicas"]
        == 4
    )
    with pytest.raises(ApiException) as err:
        await v1.patch_namespaced_horizontal_pod_autoscaler("web", NS, {"spec": {"maxReplicas": 1}})
    assert err.value.status == 422


# -- Argo Rollouts through CustomObjectsApi ------------------------------------------------------


async def test_rollout_abort_via_status_merge_patch_and_undo_via_json_patch(
    fake_kube, fake_kube_client
):
    ro = fake_kube.add(objects.rollout("web", NS, image="app:2"))
    stable = objects.replicaset("web-1", NS, owner=ro, revision=1, image="app:1", replicas=3)
    fake_kube.add(stable)
    co = client.CustomObjectsApi(fake_kube_client)

    await co.patch_namespaced_custom_object_status(
        *ARGO, NS, "rollouts", "web", {"status": {"abort": True}}, _content_type=MERGE_PATCH
    )
    req = fake_kube.mutations()[-1]
    assert (req.path, req.content_type, req.body) == (
        f"/apis/argoproj.io/v1alpha1/namespaces/{NS}/rollouts/web/status",
        MERGE_PATCH,
        {"status": {"abort": True}},
    )
    status = await fake_kube.wait_for(
        lambda: (
            (s := fake_kube.get("argoproj.io/v1alpha1", "Rollout", NS, "web")["status"])["phase"]
            == "Degraded"
            and s
        )
    )
    assert status["abort"] is True
    assert status["message"].startswith("RolloutAborted")
    assert (
        fake_kube.get("argoproj.io/v1alpha1", "Rollout", NS, "web")["metadata"]["generation"] == 1
    )

    template = stable["spec"]["template"]
    del template["metadata"]["labels"]["rollouts-pod-template-hash"]
    ops = [{"op": "replace", "path": "/spec/template", "value": template}]
    undone = await co.patch_namespaced_custom_object(*ARGO, NS, "rollouts", "web", ops)
    assert undone["metadata"]["generation"] == 2
    assert undone["spec"]["template"]["spec"]["containers"][0]["image"] == "app:1"
    assert fake_kube.mutations()[-1].content_type == JSON_PATCH  # the CustomObjectsApi default

    status = await fake_kube.wait_for(
        lambda: (
            (s := fake_kube.get("argoproj.io/v1alpha1", "Rollout", NS, "web")["status"])["phase"]
            == "Healthy"
            and s
        )
    )
    assert status["observedGeneration"] == "2"
    assert "abort" not in status


async def test_rollout_crd_without_status_subresource_404s(fake_kube, fake_kube_client):
    fake_kube.add(objects.rollout("web", NS))
    fake_kube.set_subresource("argoproj.io/v1alpha1", "Rollout", "status", False)
    co = client.CustomObjectsApi(fake_kube_client)
    patch = {"status": {"abort": True}}
    with pytest.raises(ApiException) as err:
        await co.patch_namespaced_custom_object_status(
            *ARGO, NS, "rollouts", "web", patch, _content_type=MERGE_PATCH
        )
    assert err.value.status == 404
    assert status_body(err.value)["reason"] == "NotFound"
    await co.patch_namespaced_custom_object(
        *ARGO, NS, "rollouts", "web", patch, _content_type=MERGE_PATCH
    )
    assert fake_kube.get("argoproj.io/v1alpha1", "Rollout", NS, "web")["status"]["abort"] is True


async def test_json_patch_test_op_and_crd_strategic_merge_are_refused(fake_kube, fake_kube_client):
    fake_kube.add(objects.rollout("web", NS))
    co = client.CustomObjectsApi(fake_kube_client)
    ops = [
        {"op": "test", "path": "/spec/replicas", "value": 9},
        {"op": "replace", "path": "/spec/replicas", "value": 1},
    ]
    with pytest.raises(ApiException) as err:
        await co.patch_namespaced_custom_object(*ARGO, NS, "rollouts", "web", ops)
    assert err.value.status == 422
    with pytest.raises(ApiException) as err:
        await co.patch_namespaced_custom_object(
            *ARGO,
            NS,
            "rollouts",
            "web",
            {"spec": {"replicas": 1}},
            _content_type=STRATEGIC_MERGE_PATCH,
        )
    assert err.value.status == 415
    assert fake_kube.get("argoproj.io/v1alpha1", "Rollout", NS, "web")["spec"]["replicas"] == 3


async def test_workload_ref_rollout_follows_its_pod_template(fake_kube, fake_kube_client):
    template = objects.pod_template({"app": "web"}, "app:1", "web")
    fake_kube.add(objects.podtemplate("web", NS, template=template))
    fake_kube.add(
        objects.rollout("web", NS, workload=fake_kube.get("v1", "PodTemplate", NS, "web"))
    )
    fake_kube.controllers_enabled = False
    core = client.CoreV1Api(fake_kube_client)
    new = objects.pod_template({"app": "web"}, "app:2", "web")

    # A PodTemplate has no spec: a JSON patch of /spec/template fails as on a real server.
    with pytest.raises(ApiException) as err:
        await core.patch_namespaced_pod_template(
            "web", NS, [{"op": "replace", "path": "/spec/template", "value": new}]
        )
    assert err.value.status == 422
    patched = await core.patch_namespaced_pod_template(
        "web", NS, [{"op": "replace", "path": "/template", "value": new}]
    )
    assert patched.metadata.generation == 2
    assert fake_kube.mutations()[-1].path == f"/api/v1/namespaces/{NS}/podtemplates/web"

    before = fake_kube.get("argoproj.io/v1alpha1", "Rollout", NS, "web")
    assert before["metadata"]["annotations"]["rollout.argoproj.io/workload-generation"] == "1"
    assert fake_kube.reconcile() == 2  # Argo's informer writes the annotation, then the status
    after = fake_kube.get("argoproj.io/v1alpha1", "Rollout", NS, "web")
    assert after["metadata"]["annotations"]["rollout.argoproj.io/workload-generation"] == "2"
    assert after["metadata"]["generation"] == 1  # metadata only: the spec did not change
    assert after["status"]["workloadObservedGeneration"] == "2"
    assert after["status"]["currentPodHash"] == objects.pod_template_hash(new)
    assert after["status"]["currentPodHash"] != before["status"]["currentPodHash"]
    assert fake_kube.reconcile() == 0  # settled


# -- cert-manager --------------------------------------------------------------------------------


async def test_certificate_issuing_status_put_then_controller_reissues(fake_kube, fake_kube_client):
    fake_kube.add(objects.certificate("tls", NS, revision=3))
    co = client.CustomObjectsApi(fake_kube_client)
    cert = await co.get_namespaced_custom_object(*CERTS, NS, "certificates", "tls")
    cert["status"]["conditions"].append(
        {
            "type": "Issuing",
            "status": "True",
            "reason": "ManuallyTriggered",
            "message": "Certificate re-issuance manually triggered",
            "lastTransitionTime": "2025-05-01T10:00:00Z",
            "observedGeneration": 1,
        }
    )
    stale = json.loads(json.dumps(cert))
    await co.replace_namespaced_custom_object_status(*CERTS, NS, "certificates", "tls", cert)
    req = fake_kube.mutations()[-1]
    assert (req.method, req.path) == (
        "PUT",
        f"/apis/cert-manager.io/v1/namespaces/{NS}/certificates/tls/status",
    )

    status = await fake_kube.wait_for(
        lambda: (
            (s := fake_kube.get("cert-manager.io/v1", "Certificate", NS, "tls")["status"])[
                "revision"
            ]
            == 4
            and s
        )
    )
    assert [c["type"] for c in status["conditions"]] == ["Ready"]
    assert status["conditions"][0]["status"] == "True"
    assert status["conditions"][0]["lastTransitionTime"] != "2025-05-01T10:00:00Z"

    with pytest.raises(ApiException) as err:  # cmctl's UpdateStatus is optimistic
        await co.replace_namespaced_custom_object_status(*CERTS, NS, "certificates", "tls", stale)
    assert err.value.status == 409


# -- eviction ------------------------------------------------------------------------------------


async def test_eviction_succeeds_then_pdb_blocks_with_429(fake_kube, fake_kube_client):
    for i in (1, 2):
        fake_kube.add(objects.pod(f"web-{i}", NS, labels={"app": "web"}))
    fake_kube.add(
        objects.pdb("web-pdb", NS, {"app": "web"}, disruptions_allowed=1, current_healthy=2)
    )
    core = client.CoreV1Api(fake_kube_client)

    def eviction(name):
        return client.V1Eviction(
            metadata=client.V1ObjectMeta(name=name, namespace=NS),
            delete_options=client.V1DeleteOptions(grace_period_seconds=30),
        )

    result = await core.create_namespaced_pod_eviction("web-1", NS, eviction("web-1"))
    assert result.kind == "Status"  # the client deserializes the Status into a V1Eviction
    assert fake_kube.get("v1", "Pod", NS, "web-1") is None
    assert fake_kube.deletions[-1].via == "eviction"
    assert fake_kube.requests[-1].response_status == 201

    with pytest.raises(ApiException) as err:
        await core.create_namespaced_pod_eviction("web-2", NS, eviction("web-2"))
    assert err.value.status == 429
    assert status_body(err.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Cannot evict pod as it would violate the pod's disruption budget.",
        "reason": "TooManyRequests",
        "details": {
            "causes": [
                {
                    "reason": "DisruptionBudget",
                    "message": "The disruption budget web-pdb needs 1 healthy pods "
                    "and has 2 currently",
                }
            ]
        },
        "code": 429,
    }
    assert fake_kube.get("v1", "Pod", NS, "web-2") is not None


# -- dry run -------------------------------------------------------------------------------------


async def test_dry_run_all_stores_nothing(fake_kube, fake_kube_client):
    fake_kube.add(objects.deployment("web", NS))
    before = fake_kube.get("apps/v1", "Deployment", NS, "web")
    rv = fake_kube.resource_version
    apps = client.AppsV1Api(fake_kube_client)

    preview = await apps.patch_namespaced_deployment_scale(
        "web", NS, {"spec": {"replicas": 9}}, dry_run="All"
    )
    assert preview.spec.replicas == 9
    patched = await apps.patch_namespaced_deployment(
        "web", NS, {"spec": {"replicas": 8}}, dry_run="All"
    )
    assert (patched.spec.replicas, patched.metadata.generation) == (8, 2)
    await apps.create_namespaced_deployment(NS, objects.deployment("new", NS), dry_run="All")
    await apps.delete_namespaced_deployment("web", NS, dry_run="All")

    assert fake_kube.get("apps/v1", "Deployment", NS, "web") == before
    assert fake_kube.get("apps/v1", "Deployment", NS, "new") is None
    assert fake_kube.resource_version == rv
    assert fake_kube.deletions == []
    assert {r.query.get("dryRun") for r in fake_kube.mutations()} == {"All"}


# -- faults --------------------------------------------------------------------------------------


async def test_scripted_429_carries_retry_after_and_changes_nothing(fake_kube, fake_kube_client):
    fake_kube.add(objects.deployment("web", NS))
    fake_kube.fail_next(1, status=429, retry_after=3, method="PATCH")
    apps = client.AppsV1Api(fake_kube_client)
    await apps.read_namespaced_deployment("web", NS)  # GETs are not matched
    with pytest.raises(ApiException) as err:
        await apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 5}})
    assert err.value.status == 429
    assert err.value.headers["Retry-After"] == "3"
    assert status_body(err.value)["reason"] == "TooManyRequests"
    assert fake_kube.get("apps/v1", "Deployment", NS, "web")["spec"]["replicas"] == 3
    assert (fake_kube.requests[-1].response_status, fake_kube.requests[-1].fault) == (429, "429")

    await apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 5}})
    assert fake_kube.get("apps/v1", "Deployment", NS, "web")["spec"]["replicas"] == 5


@pytest.mark.parametrize("code", [500, 503])
async def test_scripted_server_errors(fake_kube, fake_kube_client, code):
    fake_kube.fail_next(1, status=code, path_contains="/pods")
    with pytest.raises(ApiException) as err:
        await client.CoreV1Api(fake_kube_client).list_namespaced_pod(NS)
    assert err.value.status == code
    assert (
        status_body(err.value)["reason"] == {500: "InternalError", 503: "ServiceUnavailable"}[code]
    )


async def test_dropped_connection_is_an_aiohttp_error_and_changes_nothing(
    fake_kube, fake_kube_client
):
    fake_kube.add(objects.deployment("web", NS))
    fake_kube.drop_next(1, method="PATCH")
    apps = client.AppsV1Api(fake_kube_client)
    with pytest.raises(aiohttp.ClientError):
        await apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 1}})
    assert fake_kube.get("apps/v1", "Deployment", NS, "web")["spec"]["replicas"] == 3
    assert (fake_kube.requests[-1].response_status, fake_kube.requests[-1].fault) == (None, "drop")
    assert (await apps.read_namespaced_deployment("web", NS)).spec.replicas == 3  # recovers


async def test_apply_then_drop_changes_state_but_the_client_sees_an_error(
    fake_kube, fake_kube_client
):
    fake_kube.add(objects.deployment("web", NS))
    fake_kube.drop_next(1, path_contains="/scale", apply_then_drop=True)
    apps = client.AppsV1Api(fake_kube_client)
    with pytest.raises(aiohttp.ClientError):
        await apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 6}})
    assert fake_kube.get("apps/v1", "Deployment", NS, "web")["spec"]["replicas"] == 6
    assert fake_kube.requests[-1].fault == "apply_then_drop"


async def test_aiohttp_resends_a_dropped_idempotent_request_once(fake_kube, fake_kube_client):
    """aiohttp retries GET/PUT/DELETE once on a dropped connection: one drop is invisible."""
    fake_kube.add(objects.deployment("web", NS))
    apps = client.AppsV1Api(fake_kube_client)
    fake_kube.drop_next(1, method="GET")
    await apps.read_namespaced_deployment("web", NS)
    assert [(r.response_status, r.fault) for r in fake_kube.requests] == [
        (None, "drop"),
        (200, None),
    ]
    fake_kube.drop_next(2, method="GET")
    with pytest.raises(aiohttp.ClientError):
        await apps.read_namespaced_deployment("web", NS)


async def test_apply_then_drop_on_a_put_surfaces_as_409_from_the_resend(
    fake_kube, fake_kube_client
):
    """The write lands, the answer is lost, aiohttp resends the same PUT with the now stale
    resourceVersion, and the client sees 409 Conflict for a write that succeeded."""
    fake_kube.add(objects.deployment("web", NS))
    apps = client.AppsV1Api(fake_kube_client)
    dep = await apps.read_namespaced_deployment("web", NS)
    dep.spec.replicas = 4
    fake_kube.drop_next(1, method="PUT", apply_then_drop=True)
    with pytest.raises(ApiException) as err:
        await apps.replace_namespaced_deployment("web", NS, dep)
    assert err.value.status == 409
    assert fake_kube.get("apps/v1", "Deployment", NS, "web")["spec"]["replicas"] == 4
    assert [r.fault for r in fake_kube.mutations()] == ["apply_then_drop", None]


async def test_random_faults_are_seeded_and_filtered_by_method(tmp_path):
    outcomes = []
    for _ in range(2):
        fake = FakeKube(seed=7)
        fake.add(objects.deployment("web", NS))
        fake.faults = Faults(error_rate=0.5, kinds=("500", "503"), only=MUTATING_METHODS)
        async with fake.running(), fake.api_client() as api:
            apps = client.AppsV1Api(api)
            seen = []
            for i in range(12):
                await apps.read_namespaced_deployment("web", NS)  # never faulted
                try:
                    await apps.patch_namespaced_deployment(
                        "web", NS, {"metadata": {"labels": {"i": str(i)}}}
                    )
                    seen.append(200)
                except ApiException as exc:
                    seen.append(exc.status)
            outcomes.append(seen)
    assert outcomes[0] == outcomes[1]
    assert {500, 503, 200} <= set(outcomes[0])


async def test_latency_is_added(fake_kube, fake_kube_client):
    fake_kube.faults.latency = 0.05
    loop = asyncio.get_running_loop()
    start = loop.time()
    await client.CoreV1Api(fake_kube_client).list_namespaced_pod(NS)
    assert loop.time() - start >= 0.05


# -- RBAC and recording --------------------------------------------------------------------------


async def test_denied_verb_is_403(fake_kube, fake_kube_client):
    fake_kube.add(objects.deployment("web", NS))
    fake_kube.deny("patch", "deployments", "scale")
    apps = client.AppsV1Api(fake_kube_client)
    await apps.patch_namespaced_deployment("web", NS, {"metadata": {"labels": {"a": "b"}}})
    with pytest.raises(ApiException) as err:
        await apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 1}})
    assert err.value.status == 403
    body = status_body(err.value)
    assert body["reason"] == "Forbidden"
    assert 'cannot patch resource "deployments/scale" in API group "apps"' in body["message"]


async def test_recording_captures_exactly_what_was_sent(fake_kube, fake_kube_client):
    fake_kube.add(objects.rollout("web", NS))
    co = client.CustomObjectsApi(fake_kube_client)
    await co.get_namespaced_custom_object(*ARGO, NS, "rollouts", "web")
    await co.patch_namespaced_custom_object(
        *ARGO,
        NS,
        "rollouts",
        "web",
        {"spec": {"restartAt": "2025-05-01T10:00:00Z"}},
        _content_type=MERGE_PATCH,
        field_manager="remediator",
    )
    get, patch = fake_kube.requests
    assert (get.method, get.path, get.body, get.response_status) == (
        "GET",
        f"/apis/argoproj.io/v1alpha1/namespaces/{NS}/rollouts/web",
        None,
        200,
    )
    assert patch == Request(
        method="PATCH",
        path=f"/apis/argoproj.io/v1alpha1/namespaces/{NS}/rollouts/web",
        query={"fieldManager": "remediator"},
        content_type=MERGE_PATCH,
        body={"spec": {"restartAt": "2025-05-01T10:00:00Z"}},
        response_status=200,
    )
    assert fake_kube.mutations() == [patch]
    fake_kube.clear()
    assert fake_kube.requests == []


# -- pod logs, events, per-path latency ----------------------------------------------------------


def crashlooping_pod(name="web-1", **kwargs):
    return objects.pod(
        name,
        NS,
        restarts=4,
        waiting_reason="CrashLoopBackOff",
        last_terminated_reason="OOMKilled",
        limits={"cpu": "500m", "memory": "256Mi"},
        **kwargs,
    )


async def test_pod_logs_tail_lines_and_previous(fake_kube, fake_kube_client):
    fake_kube.add(crashlooping_pod(containers=["app", "sidecar"]))
    fake_kube.set_logs(NS, "web-1", ["boot", "serving", "gc pause 900ms"])  # first container
    fake_kube.set_logs(NS, "web-1", ["starting", "allocating\n", "killed"], previous=True)
    fake_kube.set_logs(NS, "web-1", ["proxy up"], container="sidecar")
    core = client.CoreV1Api(fake_kube_client)

    text = await core.read_namespaced_pod_log("web-1", NS, container="app", tail_lines=2)
    assert text == "serving\ngc pause 900ms\n"
    everything = await core.read_namespaced_pod_log(
        "web-1", NS, container="app", since_seconds=3600, timestamps=False, limit_bytes=10_000
    )
    assert everything.splitlines() == ["boot", "serving", "gc pause 900ms"]
    previous = await core.read_namespaced_pod_log(
        "web-1", NS, container="app", previous=True, tail_lines=50
    )
    assert previous == "starting\nallocating\nkilled\n"
    assert await core.read_namespaced_pod_log("web-1", NS, container="sidecar") == "proxy up\n"
    limited = await core.read_namespaced_pod_log("web-1", NS, container="app", limit_bytes=7)
    assert limited == "boot\nse"
    assert await core.read_namespaced_pod_log("web-1", NS, container="app", tail_lines=0) == ""

    log = fake_kube.requests[2]
    assert (log.method, log.path, log.response_status) == (
        "GET",
        f"/api/v1/namespaces/{NS}/pods/web-1/log",
        200,
    )
    assert log.query == {"container": "app", "previous": "True", "tailLines": "50"}
    assert fake_kube.logs(NS, "web-1", previous=True) == ["starting", "allocating", "killed"]
    assert fake_kube.logs(NS, "web-1", container="sidecar", previous=True) is None


async def test_pod_logs_seeded_before_the_pod_default_to_its_first_container(
    fake_kube, fake_kube_client
):
    fake_kube.set_logs(NS, "web-2", ["hello"])
    fake_kube.add(objects.pod("web-2", NS, container="main"))
    core = client.CoreV1Api(fake_kube_client)
    assert await core.read_namespaced_pod_log("web-2", NS) == "hello\n"  # the only container
    assert await core.read_namespaced_pod_log("web-2", NS, container="main") == "hello\n"


async def test_pod_log_errors_mimic_the_real_api(fake_kube, fake_kube_client):
    fake_kube.add(crashlooping_pod(containers=["app", "sidecar"]))
    fake_kube.add(objects.pod("new-1", NS, phase="Pending"))
    fake_kube.add(objects.pod("ok-1", NS))
    core = client.CoreV1Api(fake_kube_client)

    async def error(*args, **kwargs):
        with pytest.raises(ApiException) as err:
            await core.read_namespaced_pod_log(*args, **kwargs)
        body = status_body(err.value)
        assert (body["kind"], body["status"], body["code"]) == (
            "Status",
            "Failure",
            err.value.status,
        )
        return body["code"], body["reason"], body["message"]

    assert await error("gone-1", NS) == (404, "NotFound", 'pods "gone-1" not found')
    assert await error("web-1", NS, container="nope") == (
        400,
        "BadRequest",
        "container nope is not valid for pod web-1",
    )
    assert await error("ok-1", NS, previous=True) == (
        400,
        "BadRequest",
        'previous terminated container "app" in pod "ok-1" not found',
    )
    assert await error("web-1", NS) == (
        400,
        "BadRequest",
        "a container name must be specified for pod web-1, choose one of: [app sidecar]",
    )
    assert await error("new-1", NS) == (
        400,
        "BadRequest",
        'container "app" in pod "new-1" is waiting to start: ContainerCreating',
    )
    code, reason, message = await error("ok-1", NS, tail_lines=-1)
    assert (code, reason) == (422, "Invalid")
    assert message.startswith('PodLogOptions "ok-1" is invalid: tailLines: Invalid value: -1')
    # a running container with nothing seeded has empty logs
    assert await core.read_namespaced_pod_log("ok-1", NS) == ""


async def test_pod_logs_obey_rbac_and_faults(fake_kube, fake_kube_client):
    fake_kube.add(objects.pod("web-1", NS))
    fake_kube.set_logs(NS, "web-1", ["line"])
    core = client.CoreV1Api(fake_kube_client)
    fake_kube.deny("get", "pods", "log")
    with pytest.raises(ApiException) as err:
        await core.read_namespaced_pod_log("web-1", NS)
    assert err.value.status == 403
    assert (
        'cannot get resource "pods/log" in API group "" in the namespace "prod"'
        in (status_body(err.value)["message"])
    )
    await core.read_namespaced_pod("web-1", NS)  # the pod itself stays readable
    fake_kube.allow_all()

    fake_kube.fail_next(status=500, path_contains="/log")
    with pytest.raises(ApiException) as err:
        await core.read_namespaced_pod_log("web-1", NS)
    assert err.value.status == 500
    assert fake_kube.requests[-1].fault == "500"
    assert await core.read_namespaced_pod_log("web-1", NS) == "line\n"


async def test_events_filtered_by_involved_object_and_type(fake_kube, fake_kube_client):
    at = objects.SEED_TIME
    web1 = objects.pod("web-1", NS)
    fake_kube.add_all(
        [
            objects.event(
                "web-1",
                NS,
                involved=web1,
                reason="BackOff",
                message="Back-off restarting failed container app",
                type="Warning",
                count=12,
                last_timestamp=at,
            ),
            objects.event(
                "web-1",
                NS,
                involved=web1,
                reason="Pulled",
                message='Container image "registry.example.com/app:1.0.0" already present',
                last_timestamp=at,
            ),
            objects.event(
                "web",
                NS,
                involved={"kind": "Deployment", "name": "web"},
                reason="ScalingReplicaSet",
                message="Scaled up replica set web-5d9c7b to 3",
                last_timestamp=at,
            ),
            objects.event(
                "web-1",
                "stage",
                involved={"kind": "Pod", "name": "web-1"},
                reason="OOMKilling",
                message="Memory cgroup out of memory",
                type="Warning",
                last_timestamp=at,
            ),
        ]
    )
    core = client.CoreV1Api(fake_kube_client)

    def reasons(result):
        return sorted(e.reason for e in result.items)

    by_name = await core.list_namespaced_event(NS, field_selector="involvedObject.name=web-1")
    assert reasons(by_name) == ["BackOff", "Pulled"]
    warnings = await core.list_namespaced_event(NS, field_selector="type=Warning")
    assert reasons(warnings) == ["BackOff"]
    both = await core.list_namespaced_event(
        NS, field_selector="involvedObject.kind=Deployment,type=Normal"
    )
    assert reasons(both) == ["ScalingReplicaSet"]
    everywhere = await core.list_event_for_all_namespaces(
        field_selector="involvedObject.namespace=stage,type=Warning"
    )
    assert reasons(everywhere) == ["OOMKilling"]
    by_source = await core.list_namespaced_event(NS, field_selector="source=kubelet")
    assert reasons(by_source) == ["BackOff", "Pulled"]

    backoff = next(e for e in by_name.items if e.reason == "BackOff")
    assert re.fullmatch(r"web-1\.[0-9a-f]{16}", backoff.metadata.name)
    assert backoff.involved_object.to_dict() == {
        "api_version": "v1",
        "field_path": None,
        "kind": "Pod",
        "name": "web-1",
        "namespace": NS,
        "resource_version": None,
        "uid": web1["metadata"]["uid"],
    }
    assert (backoff.type, backoff.count, backoff.source.component) == ("Warning", 12, "kubelet")
    assert backoff.last_timestamp == at
    assert backoff.first_timestamp == at - timedelta(minutes=11)
    (scaled,) = both.items
    assert (scaled.involved_object.api_version, scaled.involved_object.uid) == (
        "apps/v1",
        objects.deployment("web", NS)["metadata"]["uid"],
    )
    assert scaled.source.component == "deployment-controller"


async def test_set_latency_slows_only_matching_paths(fake_kube, fake_kube_client):
    fake_kube.add(objects.deployment("web", NS))
    fake_kube.add(objects.pod("web-1", NS))
    # "Not slowed" is a bound far below `slow` and far above any pause of a loaded machine.
    slow, fast = 10.0, 4.0
    fake_kube.set_latency(slow, path_contains="/log")
    fake_kube.set_latency(slow, path_contains="/log", method="DELETE")  # never matches a GET
    apps, core = client.AppsV1Api(fake_kube_client), client.CoreV1Api(fake_kube_client)
    loop = asyncio.get_running_loop()

    start = loop.time()
    await apps.read_namespaced_deployment("web", NS)
    await core.read_namespaced_pod("web-1", NS)
    assert loop.time() - start < fast
    fake_kube.set_latency(0.4, path_contains="/log")  # replaces the GET's rule
    start = loop.time()
    await core.read_namespaced_pod_log("web-1", NS)
    assert 0.4 <= loop.time() - start < fast

    fake_kube.set_latency(0, path_contains="/log")  # removed; the DELETE's rule stays
    start = loop.time()
    await core.read_namespaced_pod_log("web-1", NS)
    assert loop.time() - start < fast
    fake_kube.set_latency(slow, path_contains="/log")
    fake_kube.clear_faults()  # also drops per-path latencies
    start = loop.time()
    await core.read_namespaced_pod_log("web-1", NS)
    assert loop.time() - start < fast


async def test_pod_builder_expresses_an_oom_crash_loop(fake_kube, fake_kube_client):
    finished = objects.SEED_TIME + timedelta(minutes=30)
    fake_kube.add(crashlooping_pod(containers=["app", "sidecar"], last_finished_at=finished))
    fake_kube.add(
        objects.pod(
            "web-2",
            NS,
            restarts=1,
            ready=True,
            last_terminated_reason="Error",
            last_exit_code=2,
            container="main",
        )
    )
    core = client.CoreV1Api(fake_kube_client)

    pod = await core.read_namespaced_pod("web-1", NS)
    app, sidecar = pod.status.container_statuses
    assert (app.name, app.ready, app.restart_count) == ("app", False, 4)
    assert app.state.waiting.reason == "CrashLoopBackOff"
    terminated = app.last_state.terminated
    assert (terminated.reason, terminated.exit_code) == ("OOMKilled", 137)
    assert terminated.finished_at == finished
    assert terminated.container_id.startswith("containerd://")
    assert (sidecar.name, sidecar.ready, sidecar.restart_count) == ("sidecar", True, 0)
    assert sidecar.state.running is not None
    assert sidecar.last_state is None
    assert [c.status for c in pod.status.conditions if c.type == "Ready"] == ["False"]
    assert pod.status.phase == "Running"
    assert pod.status.qos_class == "Guaranteed"
    assert [c.name for c in pod.spec.containers] == ["app", "sidecar"]
    assert pod.spec.containers[0].resources.limits == {"cpu": "500m", "memory": "256Mi"}
    assert pod.spec.containers[0].resources.requests == {"cpu": "500m", "memory": "256Mi"}

    recovered = await core.read_namespaced_pod("web-2", NS)
    (main,) = recovered.status.container_statuses
    assert (main.name, main.ready, main.restart_count) == ("main", True, 1)
    assert main.state.running is not None
    assert (main.last_state.terminated.reason, main.last_state.terminated.exit_code) == (
        "Error",
        2,
    )
    assert [c.status for c in recovered.status.conditions if c.type == "Ready"] == ["True"]
    assert recovered.status.qos_class is None


# -- pure helpers --------------------------------------------------------------------------------


def test_patch_algorithms():
    target = {"a": {"b": 1, "c": [1, 2]}, "containers": [{"name": "x", "image": "1"}]}
    assert merge_patch(target, {"a": {"b": None, "c": [3]}}) == {
        "a": {"c": [3]},
        "containers": [{"name": "x", "image": "1"}],
    }
    assert strategic_merge_patch(target, {"containers": [{"name": "x", "image": "2"}]})[
        "containers"
    ] == [{"name": "x", "image": "2"}]
    assert strategic_merge_patch(target, {"containers": [{"name": "y", "image": "3"}]})[
        "containers"
    ] == [{"name": "x", "image": "1"}, {"name": "y", "image": "3"}]
    ops = [
        {"op": "add", "path": "/a/c/-", "value": 9},
        {"op": "remove", "path": "/a/b"},
        {"op": "copy", "from": "/a/c", "path": "/d"},
        {"op": "move", "from": "/d", "path": "/e~1f"},
        {"op": "test", "path": "/e~1f/2", "value": 9},
    ]
    assert json_patch(target, ops) == {
        "a": {"c": [1, 2, 9]},
        "containers": [{"name": "x", "image": "1"}],
        "e/f": [1, 2, 9],
    }
    assert target["a"] == {"b": 1, "c": [1, 2]}  # inputs untouched


def test_label_selector_parsing():
    match = parse_label_selector("a=b,c!=d,e in (x, y),f notin (z),g,!h")
    assert match({"a": "b", "e": "x", "g": ""})
    assert not match({"a": "b", "e": "x", "g": "", "h": "1"})
    assert not match({"a": "b", "e": "q", "g": ""})
    assert not match({"a": "b", "c": "d", "e": "x", "g": ""})
