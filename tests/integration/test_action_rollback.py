"""``rollback`` against the fake API server: the Argo Rollouts plugin's requests plus the stamp."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from remediator.actions.base import ActionRefused, Context, HealthState, LiveAction, RenderedTarget
from remediator.actions.rollback import Rollback, RollbackParams, derives, label_selector
from tests.fakes.kube import JSON_PATCH, MERGE_PATCH, objects

NOW = datetime(2025, 5, 1, 10, 0, 7, tzinfo=UTC)
CTX = Context("exec-1", "bad-deploy", NOW)
DRY = Context("exec-1", "bad-deploy", NOW, server_dry_run=True)
TARGET = RenderedTarget("Rollout", "prod", "web")
ROLLOUT_PATH = "/apis/argoproj.io/v1alpha1/namespaces/prod/rollouts/web"
RS_PATH = "/apis/apps/v1/namespaces/prod/replicasets"
STAMP = {"remediator.io/execution-id": "exec-1", "remediator.io/runbook": "bad-deploy"}
STAMP_OPS = [
    {"op": "add", "path": "/metadata/annotations/remediator.io~1execution-id", "value": "exec-1"},
    {"op": "add", "path": "/metadata/annotations/remediator.io~1runbook", "value": "bad-deploy"},
]
UNDO = RollbackParams()
ABORT = RollbackParams(mode="abort")


def image(revision: int) -> str:
    return f"registry.example.com/app:{revision}.0.0"


def template_of(revision: int) -> dict[str, object]:
    """The Rollout's pod template at ``revision`` (what undo must write back)."""
    return objects.pod_template({"app": "web"}, image(revision), "web")


def seed(fake, *, current: int = 3, revisions=(1, 2, 3), annotations: bool = True, **kw):
    """A Rollout at ``current`` with one owned ReplicaSet per revision, and a decoy."""
    ro = objects.rollout("web", "prod", image=image(current), revision=current, **kw)
    if not annotations:
        del ro["metadata"]["annotations"]
    fake.add(ro)
    for rev in revisions:
        replicas = 3 if rev == current else 0
        fake.add(
            objects.replicaset(
                f"web-r{rev}", "prod", owner=ro, revision=rev, image=image(rev), replicas=replicas
            )
        )
    # Same labels, higher revision, but controlled by another Rollout: must be ignored.
    other = objects.rollout("other", "prod", labels={"app": "web"})
    fake.add(objects.replicaset("other-r9", "prod", owner=other, revision=9, image=image(9)))
    return ro


def stored(fake):
    return fake.get("argoproj.io/v1alpha1", "Rollout", "prod", "web")


# --- undo ---------------------------------------------------------------------------


async def test_undo_defaults_to_the_second_highest_owned_revision(fake_kube, kube):
    seed(fake_kube)
    outcome = await Rollback().apply(kube, TARGET, UNDO, CTX)

    [listing] = [r for r in fake_kube.requests if r.path == RS_PATH]
    assert (listing.method, listing.query) == ("GET", {"labelSelector": "app=web"})
    [patch] = fake_kube.mutations()
    assert (patch.method, patch.path, patch.content_type) == ("PATCH", ROLLOUT_PATH, JSON_PATCH)
    assert patch.query == {}
    assert patch.body == [
        {"op": "replace", "path": "/spec/template", "value": template_of(2)},
        *STAMP_OPS,
    ]
    ro = stored(fake_kube)
    assert ro["spec"]["template"] == template_of(2)
    assert "rollouts-pod-template-hash" not in ro["spec"]["template"]["metadata"]["labels"]
    assert ro["metadata"]["annotations"] == {"rollout.argoproj.io/revision": "3", **STAMP}
    assert outcome == (
        "rolled back Rollout prod/web to revision 2 (ReplicaSet web-r2): replaced "
        f"spec.template of Rollout prod/web; images now web={image(2)}"
    )


async def test_undo_to_a_given_revision(fake_kube, kube):
    seed(fake_kube)
    outcome = await Rollback().apply(kube, TARGET, RollbackParams(to_revision=1), CTX)
    [patch] = fake_kube.mutations()
    assert patch.body[0] == {"op": "replace", "path": "/spec/template", "value": template_of(1)}
    assert stored(fake_kube)["spec"]["template"]["spec"]["containers"][0]["image"] == image(1)
    assert "to revision 1 (ReplicaSet web-r1)" in outcome


async def test_undo_adds_the_whole_annotation_map_when_there_is_none(fake_kube, kube):
    seed(fake_kube, annotations=False)
    await Rollback().apply(kube, TARGET, UNDO, CTX)
    [patch] = fake_kube.mutations()
    assert patch.body[1:] == [{"op": "add", "path": "/metadata/annotations", "value": STAMP}]
    assert stored(fake_kube)["metadata"]["annotations"] == STAMP


async def test_undo_refuses_an_unknown_revision_and_sends_nothing(fake_kube, kube):
    seed(fake_kube)
    with pytest.raises(ActionRefused, match=r"revision 7 .* not found .*present: 1, 2, 3\)"):
        await Rollback().apply(kube, TARGET, RollbackParams(to_revision=7), CTX)
    assert fake_kube.mutations() == []


async def test_undo_refuses_when_already_at_that_revision(fake_kube, kube):
    seed(fake_kube)
    with pytest.raises(ActionRefused, match="already at revision 3"):
        await Rollback().apply(kube, TARGET, RollbackParams(to_revision=3), CTX)
    assert fake_kube.mutations() == []
    assert stored(fake_kube)["spec"]["template"] == template_of(3)


async def test_undo_refuses_when_the_previous_revision_is_the_current_template(fake_kube, kube):
    seed(fake_kube, current=2)  # e.g. undone before: revision 3 exists but 2 is live
    with pytest.raises(ActionRefused, match="already at revision 2"):
        await Rollback().apply(kube, TARGET, UNDO, CTX)
    assert fake_kube.mutations() == []


async def test_undo_refuses_without_an_earlier_revision(fake_kube, kube):
    seed(fake_kube, current=1, revisions=(1,))
    with pytest.raises(ActionRefused, match=r"no earlier revision .*only revision 1 exists"):
        await Rollback().apply(kube, TARGET, UNDO, CTX)
    assert fake_kube.mutations() == []


def referenced(kind: str) -> dict[str, object]:
    """The object a workloadRef Rollout names, on revision 3's template (replicas 0, as
    Argo's migration guide leaves a referenced Deployment)."""
    if kind == "Deployment":
        return objects.deployment("web", "prod", replicas=0, image=image(3))
    if kind == "ReplicaSet":
        return objects.replicaset("web", "prod", owner=None, template=template_of(3))
    if kind == "StatefulSet":
        return objects.statefulset("web", "prod", replicas=0, image=image(3))
    return objects.podtemplate("web", "prod", template=template_of(3))


def seed_workload_ref(fake, kind: str) -> dict[str, object]:
    """A Rollout settled on ``referenced(kind)`` with owned ReplicaSets for revisions 1-3."""
    workload = referenced(kind)
    fake.add(workload)
    ro = objects.rollout("web", "prod", workload=workload, revision=3)
    fake.add(ro)
    for rev in (1, 2, 3):
        fake.add(
            objects.replicaset(
                f"web-r{rev}", "prod", owner=ro, revision=rev, template=template_of(rev)
            )
        )
    return workload


ADD_STAMP_MAP = [{"op": "add", "path": "/metadata/annotations", "value": STAMP}]
APPS_PATH = "/apis/apps/v1/namespaces/prod"
# kind: (apiVersion, the path undo patches, where the kind keeps its pod template, and the
# ops that stamp it: the Deployment has annotations already, the others get the whole map)
WORKLOAD_REFS = {
    "Deployment": ("apps/v1", f"{APPS_PATH}/deployments/web", "/spec/template", STAMP_OPS),
    "ReplicaSet": ("apps/v1", f"{APPS_PATH}/replicasets/web", "/spec/template", ADD_STAMP_MAP),
    "PodTemplate": ("v1", "/api/v1/namespaces/prod/podtemplates/web", "/template", ADD_STAMP_MAP),
}


@pytest.mark.parametrize("kind", list(WORKLOAD_REFS))
async def test_undo_through_a_workload_ref_patches_the_referenced_object(fake_kube, kube, kind):
    api_version, path, pointer, stamp_ops = WORKLOAD_REFS[kind]
    fake_kube.controllers_enabled = False
    seed_workload_ref(fake_kube, kind)
    rollout_before = copy.deepcopy(stored(fake_kube))
    assert not await Rollback().applied(kube, TARGET, UNDO, CTX)
    outcome = await Rollback().apply(kube, TARGET, UNDO, CTX)

    [patch] = fake_kube.mutations()
    assert (patch.method, patch.path, patch.query, patch.content_type) == (
        "PATCH",
        path,
        {},
        JSON_PATCH,
    )
    assert patch.body == [{"op": "replace", "path": pointer, "value": template_of(2)}, *stamp_ops]
    after = fake_kube.get(api_version, kind, "prod", "web")
    assert objects.workload_template(after) == template_of(2)
    assert after["metadata"]["annotations"]["remediator.io/execution-id"] == "exec-1"
    assert after["metadata"]["generation"] == 2
    assert stored(fake_kube) == rollout_before  # the Rollout itself is not touched
    field = pointer[1:].replace("/", ".")
    assert f"replaced {field} of {kind} prod/web (workloadRef)" in outcome
    assert await Rollback().applied(kube, TARGET, UNDO, CTX)
    assert not await Rollback().applied(kube, TARGET, UNDO, Context("exec-2", "x", NOW))

    # The Rollout still names the old generation until Argo's informer sees the patch.
    health = await Rollback().verify(kube, TARGET, UNDO, CTX)
    assert (health.state, health.message) == (
        HealthState.PROGRESSING,
        f"waiting for Argo Rollouts to see generation 2 of the workloadRef {kind} web "
        "(the Rollout records 1)",
    )
    fake_kube.reconcile()  # Argo: the workload-generation annotation, then the status
    ro = stored(fake_kube)
    assert ro["metadata"]["annotations"]["rollout.argoproj.io/workload-generation"] == "2"
    assert (ro["status"]["workloadObservedGeneration"], ro["status"]["phase"]) == ("2", "Healthy")
    health = await Rollback().verify(kube, TARGET, UNDO, CTX)
    assert health.state is HealthState.HEALTHY

    # Undo again to the same template: the referenced object already matches revision 2.
    with pytest.raises(ActionRefused, match=rf"workloadRef {kind} web\) is already at"):
        await Rollback().apply(kube, TARGET, RollbackParams(to_revision=2), CTX)
    assert len(fake_kube.mutations()) == 1


async def test_undo_refuses_an_unsupported_workload_ref_kind(fake_kube, kube):
    seed_workload_ref(fake_kube, "StatefulSet")
    with pytest.raises(
        ActionRefused, match=r"'StatefulSet'.*supports Deployment, ReplicaSet, PodTemplate"
    ):
        await Rollback().apply(kube, TARGET, UNDO, CTX)
    assert fake_kube.mutations() == []


async def test_undo_server_dry_run_changes_nothing(fake_kube, kube):
    before = copy.deepcopy(seed(fake_kube))
    outcome = await Rollback().apply(kube, TARGET, UNDO, DRY)
    [patch] = fake_kube.mutations()
    assert (patch.path, patch.query, patch.response_status) == (
        ROLLOUT_PATH,
        {"dryRun": "All"},
        200,
    )
    ro = stored(fake_kube)
    assert ro["spec"] == before["spec"]
    assert ro["metadata"]["annotations"] == before["metadata"]["annotations"]
    assert ro["metadata"]["generation"] == 1
    assert outcome.endswith("[server dry run: accepted, nothing persisted]")
    assert not await Rollback().applied(kube, TARGET, UNDO, CTX)


async def test_applied_answers_from_the_execution_stamp(fake_kube, kube):
    seed(fake_kube)
    assert not await Rollback().applied(kube, TARGET, UNDO, CTX)
    await Rollback().apply(kube, TARGET, UNDO, CTX)
    assert await Rollback().applied(kube, TARGET, UNDO, CTX)
    assert not await Rollback().applied(kube, TARGET, UNDO, Context("exec-2", "x", NOW))


async def test_undo_verify_goes_from_progressing_to_healthy(fake_kube, kube):
    fake_kube.controllers_enabled = False
    seed(fake_kube)
    await Rollback().apply(kube, TARGET, UNDO, CTX)
    assert stored(fake_kube)["metadata"]["generation"] == 2
    health = await Rollback().verify(kube, TARGET, UNDO, CTX)
    assert health.state is HealthState.PROGRESSING
    assert "controller" in health.message
    assert fake_kube.reconcile() == 1  # the simulated Argo controller observes generation 2
    health = await Rollback().verify(kube, TARGET, UNDO, CTX)
    assert (health.state, stored(fake_kube)["status"]["observedGeneration"]) == (
        HealthState.HEALTHY,
        "2",
    )


async def test_undo_verify_reports_a_degraded_rollout_as_failed(fake_kube, kube):
    fake_kube.controllers_enabled = False
    seed(fake_kube)
    await Rollback().apply(kube, TARGET, UNDO, CTX)
    fake_kube.reconcile()
    fake_kube.update(
        "argoproj.io/v1alpha1",
        "Rollout",
        "prod",
        "web",
        {"status": {"phase": "Degraded", "message": "ProgressDeadlineExceeded: timed out"}},
    )
    health = await Rollback().verify(kube, TARGET, UNDO, CTX)
    assert health.state is HealthState.FAILED
    assert "ProgressDeadlineExceeded" in health.message


# --- abort --------------------------------------------------------------------------


async def test_abort_patches_status_then_stamps_the_main_resource(fake_kube, kube):
    fake_kube.controllers_enabled = False
    seed(fake_kube, phase="Progressing")
    assert not await Rollback().applied(kube, TARGET, ABORT, CTX)
    outcome = await Rollback().apply(kube, TARGET, ABORT, CTX)

    status_patch, stamp_patch = fake_kube.mutations()
    assert (status_patch.method, status_patch.path, status_patch.content_type) == (
        "PATCH",
        ROLLOUT_PATH + "/status",
        MERGE_PATCH,
    )
    assert status_patch.body == {"status": {"abort": True}}
    assert status_patch.query == {}
    assert (stamp_patch.method, stamp_patch.path, stamp_patch.content_type) == (
        "PATCH",
        ROLLOUT_PATH,
        MERGE_PATCH,
    )
    assert stamp_patch.body == {"metadata": {"annotations": STAMP}}
    ro = stored(fake_kube)
    assert ro["status"]["abort"] is True
    assert ro["metadata"]["annotations"]["remediator.io/execution-id"] == "exec-1"
    assert ro["metadata"]["generation"] == 1  # neither request touched the spec
    assert outcome.startswith(
        "aborted Rollout prod/web: set status.abort=true via the /status subresource; "
        "was phase Progressing"
    )
    assert await Rollback().applied(kube, TARGET, ABORT, CTX)

    health = await Rollback().verify(kube, TARGET, ABORT, CTX)
    assert health.state is HealthState.PROGRESSING
    fake_kube.reconcile()  # the simulated controller shows the abort: Degraded, RolloutAborted
    assert stored(fake_kube)["status"]["phase"] == "Degraded"
    health = await Rollback().verify(kube, TARGET, ABORT, CTX)
    assert health.state is HealthState.HEALTHY
    assert "3 of 3" in health.message


async def test_abort_falls_back_to_the_main_resource_on_404(fake_kube, kube):
    fake_kube.controllers_enabled = False
    seed(fake_kube, phase="Progressing")
    fake_kube.set_subresource("argoproj.io/v1alpha1", "Rollout", "status", False)
    outcome = await Rollback().apply(kube, TARGET, ABORT, CTX)

    first, second = fake_kube.mutations()
    assert (first.path, first.content_type, first.body, first.response_status) == (
        ROLLOUT_PATH + "/status",
        MERGE_PATCH,
        {"status": {"abort": True}},
        404,
    )
    assert (second.path, second.content_type, second.response_status) == (
        ROLLOUT_PATH,
        MERGE_PATCH,
        200,
    )
    assert second.body == {"status": {"abort": True}, "metadata": {"annotations": STAMP}}
    ro = stored(fake_kube)
    assert ro["status"]["abort"] is True
    assert ro["metadata"]["annotations"]["remediator.io/execution-id"] == "exec-1"
    assert "via the main resource" in outcome


async def test_abort_server_dry_run_changes_nothing(fake_kube, kube):
    fake_kube.controllers_enabled = False
    before = copy.deepcopy(seed(fake_kube, phase="Progressing"))
    await Rollback().apply(kube, TARGET, ABORT, DRY)
    queries = [(r.path, r.query, r.response_status) for r in fake_kube.mutations()]
    assert queries == [
        (ROLLOUT_PATH + "/status", {"dryRun": "All"}, 200),
        (ROLLOUT_PATH, {"dryRun": "All"}, 200),
    ]
    ro = stored(fake_kube)
    assert "abort" not in ro["status"]
    assert ro["metadata"]["annotations"] == before["metadata"]["annotations"]


async def test_abort_refuses_a_fully_promoted_rollout(fake_kube, kube):
    seed(fake_kube)  # Healthy, stableRS == currentPodHash
    with pytest.raises(ActionRefused, match="nothing to abort"):
        await Rollback().apply(kube, TARGET, ABORT, CTX)
    assert fake_kube.mutations() == []


async def test_abort_verify_fails_for_a_rollout_degraded_for_another_reason(fake_kube, kube):
    fake_kube.controllers_enabled = False
    seed(fake_kube, phase="Degraded")
    health = await Rollback().verify(kube, TARGET, ABORT, CTX)
    assert health.state is HealthState.FAILED


# --- contract and helpers -------------------------------------------------------------


def test_rollback_is_a_live_action_with_minimal_rbac():
    action = Rollback()
    assert isinstance(action, LiveAction)
    rules = {(r.api_groups, r.resources, r.verbs) for r in action.rbac}
    assert rules == {
        (("argoproj.io",), ("rollouts",), ("get", "patch")),
        (("argoproj.io",), ("rollouts/status",), ("patch",)),
        (("apps",), ("replicasets",), ("list",)),
        (("apps",), ("deployments", "replicasets"), ("get", "patch")),
        (("",), ("podtemplates",), ("get", "patch")),
    }
    assert action.describe(TARGET, UNDO) == (
        "roll back Rollout prod/web to the previous revision "
        "(replace spec.template with that ReplicaSet's)"
    )


def test_label_selector_is_formatted_like_apimachinery():
    selector = {
        "matchLabels": {"tier": "web", "app": "shop"},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "canary"]},
            {"key": "zone", "operator": "NotIn", "values": ["b", "a"]},
            {"key": "blue", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    }
    assert label_selector(selector) == (
        "app=shop,blue,env in (canary,prod),!legacy,tier=web,zone notin (a,b)"
    )
    assert label_selector({}) == ""


def test_templates_compare_as_semantic_deep_derivative():
    rs = {"metadata": {"labels": {"app": "web"}}, "spec": {"dnsPolicy": "ClusterFirst", "n": 1}}
    assert derives({"metadata": {"labels": {"app": "web"}}, "spec": {"n": 1}}, rs)
    assert derives({"metadata": {}, "spec": {"n": 1, "dnsPolicy": ""}}, rs)
    assert not derives({"spec": {"n": 2}}, rs)
    assert not derives({"spec": {"n": True}}, {"spec": {"n": 1}})
    assert not derives({"spec": {"extra": "x"}}, rs)
