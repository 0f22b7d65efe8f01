"""``cert_renew`` against the fake API server: cmctl renew's status PUT, stamped beforehand."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from remediator.actions.base import ActionRefused, Context, HealthState, LiveAction, RenderedTarget
from remediator.actions.cert_renew import CertRenew, CertRenewParams
from remediator.kube.errors import ServerError
from tests.fakes.kube import MERGE_PATCH, objects

NOW = datetime(2025, 5, 1, 10, 0, 7, 123456, tzinfo=UTC)
CTX = Context("exec-1", "cert-expiring", NOW)
DRY = Context("exec-1", "cert-expiring", NOW, server_dry_run=True)
TARGET = RenderedTarget("Certificate", "prod", "web")
PARAMS = CertRenewParams()
PATH = "/apis/cert-manager.io/v1/namespaces/prod/certificates/web"
STAMP = {
    "remediator.io/execution-id": "exec-1",
    "remediator.io/runbook": "cert-expiring",
    "remediator.io/renew-from-revision": "3",
}
ISSUING = {
    "type": "Issuing",
    "status": "True",
    "lastTransitionTime": "2025-05-01T10:00:07Z",
    "reason": "ManuallyTriggered",
    "message": "Certificate re-issuance manually triggered",
    "observedGeneration": 1,
}


def stored(fake):
    return fake.get("cert-manager.io/v1", "Certificate", "prod", "web")


def conditions(crt):
    return {c["type"]: c for c in crt["status"]["conditions"]}


async def test_stamps_then_puts_cmctls_status_update(fake_kube, kube):
    fake_kube.controllers_enabled = False
    seeded = fake_kube.add(objects.certificate("web", "prod", revision=3))
    rv = seeded["metadata"]["resourceVersion"]
    outcome = await CertRenew().apply(kube, TARGET, PARAMS, CTX)

    assert [(r.method, r.path, r.response_status) for r in fake_kube.requests] == [
        ("GET", PATH, 200),
        ("PATCH", PATH, 200),
        ("PUT", PATH + "/status", 200),
    ]
    stamp, put = fake_kube.mutations()
    assert stamp.content_type == MERGE_PATCH
    assert stamp.body == {"metadata": {"annotations": STAMP, "resourceVersion": rv}}
    assert stamp.query == put.query == {}
    assert put.content_type == "application/json"
    # The whole object as read (after the stamp), with only the Issuing condition added.
    assert put.body["metadata"]["resourceVersion"] == str(int(rv) + 1)
    assert put.body["spec"] == seeded["spec"]
    assert put.body["status"] == {
        **seeded["status"],
        "conditions": [*seeded["status"]["conditions"], ISSUING],
    }
    crt = stored(fake_kube)
    assert conditions(crt)["Issuing"] == ISSUING
    assert crt["metadata"]["annotations"] == STAMP
    assert crt["metadata"]["generation"] == 1
    assert outcome == (
        "triggered re-issuance of Certificate prod/web: set Issuing=True (reason "
        "ManuallyTriggered) through the /status subresource; cert-manager issues a "
        "revision after 3"
    )
    assert await CertRenew().applied(kube, TARGET, PARAMS, CTX)
    assert not await CertRenew().applied(kube, TARGET, PARAMS, Context("exec-2", "x", NOW))


async def test_refuses_a_certificate_already_being_issued(fake_kube, kube):
    crt = objects.certificate("web", "prod", revision=3)
    crt["status"]["conditions"].append({**ISSUING, "reason": "Expiring"})
    fake_kube.add(crt)
    # cert-manager is still issuing it (the fake would finish at its next tick)
    fake_kube.set_stuck("Certificate", "prod", "web")
    with pytest.raises(ActionRefused, match=r"already being issued .*'Expiring'"):
        await CertRenew().apply(kube, TARGET, PARAMS, CTX)
    assert fake_kube.mutations() == []


async def test_a_conflict_on_the_status_put_is_read_and_redone(fake_kube, kube):
    fake_kube.controllers_enabled = False
    fake_kube.add(objects.certificate("web", "prod", revision=3))
    fake_kube.fail_next(status=409, method="PUT", path_contains="/status")
    await CertRenew().apply(kube, TARGET, PARAMS, CTX)

    assert [(r.method, r.response_status) for r in fake_kube.requests] == [
        ("GET", 200),
        ("PATCH", 200),
        ("PUT", 409),
        ("GET", 200),  # re-read; the stamp is already there, so no second PATCH
        ("PUT", 200),
    ]
    first_put, second_put = fake_kube.mutations("PUT")
    assert (
        second_put.body["metadata"]["resourceVersion"]
        == (first_put.body["metadata"]["resourceVersion"])
    )
    assert conditions(stored(fake_kube))["Issuing"] == ISSUING
    assert await CertRenew().applied(kube, TARGET, PARAMS, CTX)


async def test_a_conflict_on_the_stamp_is_read_and_redone(fake_kube, kube):
    fake_kube.controllers_enabled = False
    fake_kube.add(objects.certificate("web", "prod", revision=3))
    fake_kube.fail_next(status=409, method="PATCH")
    await CertRenew().apply(kube, TARGET, PARAMS, CTX)
    assert [(r.method, r.response_status) for r in fake_kube.requests] == [
        ("GET", 200),
        ("PATCH", 409),
        ("GET", 200),
        ("PATCH", 200),
        ("PUT", 200),
    ]


async def test_a_stale_stamp_with_a_different_revision_is_rewritten(fake_kube, kube):
    fake_kube.controllers_enabled = False
    crt = objects.certificate("web", "prod", revision=3)
    crt["metadata"]["annotations"] = {**STAMP, "remediator.io/renew-from-revision": "2"}
    fake_kube.add(crt)
    await CertRenew().apply(kube, TARGET, PARAMS, CTX)
    [stamp] = fake_kube.mutations("PATCH")
    assert stamp.body["metadata"]["annotations"] == STAMP
    assert stored(fake_kube)["metadata"]["annotations"] == STAMP


async def test_server_dry_run_changes_nothing(fake_kube, kube):
    fake_kube.controllers_enabled = False
    seeded = copy.deepcopy(fake_kube.add(objects.certificate("web", "prod", revision=3)))
    outcome = await CertRenew().apply(kube, TARGET, PARAMS, DRY)
    assert [(r.method, r.query, r.response_status) for r in fake_kube.mutations()] == [
        ("PATCH", {"dryRun": "All"}, 200),
        ("PUT", {"dryRun": "All"}, 200),
    ]
    assert stored(fake_kube) == seeded
    assert outcome.endswith("[server dry run: accepted, nothing persisted]")
    assert not await CertRenew().applied(kube, TARGET, PARAMS, CTX)


async def test_applied_is_false_when_only_the_stamp_landed(fake_kube, kube):
    fake_kube.controllers_enabled = False
    fake_kube.add(objects.certificate("web", "prod", revision=3))
    fake_kube.fail_next(status=500, method="PUT")
    with pytest.raises(ServerError):
        await CertRenew().apply(kube, TARGET, PARAMS, CTX)
    crt = stored(fake_kube)
    assert crt["metadata"]["annotations"] == STAMP
    assert "Issuing" not in conditions(crt)
    assert not await CertRenew().applied(kube, TARGET, PARAMS, CTX)

    fake_kube.clear()
    await CertRenew().apply(kube, TARGET, PARAMS, CTX)  # the re-run keeps its stamp
    assert [r.method for r in fake_kube.mutations()] == ["PUT"]
    assert await CertRenew().applied(kube, TARGET, PARAMS, CTX)


async def test_verify_progressing_then_healthy_at_a_new_revision(fake_kube, kube):
    fake_kube.controllers_enabled = False
    fake_kube.add(objects.certificate("web", "prod", revision=3))
    await CertRenew().apply(kube, TARGET, PARAMS, CTX)
    health = await CertRenew().verify(kube, TARGET, PARAMS, CTX)
    assert health.state is HealthState.PROGRESSING
    assert fake_kube.reconcile() == 1  # the simulated cert-manager issues revision 4
    crt = stored(fake_kube)
    assert (crt["status"]["revision"], "Issuing" in conditions(crt)) == (4, False)
    health = await CertRenew().verify(kube, TARGET, PARAMS, CTX)
    assert (health.state, health.message) == (
        HealthState.HEALTHY,
        "Ready with revision 4 (was 3)",
    )
    # Issuing is gone now; the new revision still proves this execution reached the cluster.
    assert await CertRenew().applied(kube, TARGET, PARAMS, CTX)


async def test_verify_with_the_running_controller(fake_kube, kube):
    fake_kube.add(objects.certificate("web", "prod", revision=3))
    await CertRenew().apply(kube, TARGET, PARAMS, CTX)
    await fake_kube.wait_for(lambda: stored(fake_kube)["status"]["revision"] == 4)
    health = await CertRenew().verify(kube, TARGET, PARAMS, CTX)
    assert health.state is HealthState.HEALTHY


async def test_verify_fails_when_issuance_failed(fake_kube, kube):
    fake_kube.controllers_enabled = False
    fake_kube.add(objects.certificate("web", "prod", revision=3))
    await CertRenew().apply(kube, TARGET, PARAMS, CTX)
    failed = {
        "type": "Issuing",
        "status": "False",
        "reason": "Failed",
        "message": "The certificate request has failed to complete and will be retried",
    }
    ready = conditions(stored(fake_kube))["Ready"]
    path = ("cert-manager.io/v1", "Certificate", "prod", "web")
    fake_kube.update(*path, {"status": {"conditions": [ready, failed]}})
    health = await CertRenew().verify(kube, TARGET, PARAMS, CTX)
    assert health.state is HealthState.FAILED
    assert "Issuing=False (Failed)" in health.message

    not_ready = {**ready, "status": "False", "reason": "Failed", "message": "expired"}
    fake_kube.update(*path, {"status": {"conditions": [not_ready]}})
    health = await CertRenew().verify(kube, TARGET, PARAMS, CTX)
    assert health.state is HealthState.FAILED
    assert "not Ready" in health.message


async def test_a_failed_issuing_condition_is_replaced_in_place(fake_kube, kube):
    fake_kube.controllers_enabled = False
    crt = objects.certificate("web", "prod", revision=3, ready=False)
    old = {**ISSUING, "status": "False", "reason": "Failed", "message": "boom"}
    old["lastTransitionTime"] = "2025-04-30T00:00:00Z"
    crt["status"]["conditions"].insert(0, old)
    fake_kube.add(crt)
    await CertRenew().apply(kube, TARGET, PARAMS, CTX)
    [put] = fake_kube.mutations("PUT")
    types = [c["type"] for c in put.body["status"]["conditions"]]
    assert types == ["Issuing", "Ready"]
    assert put.body["status"]["conditions"][0] == ISSUING  # status changed: new time


def test_cert_renew_is_a_live_action_with_minimal_rbac():
    action = CertRenew()
    assert isinstance(action, LiveAction)
    rules = {(r.api_groups, r.resources, r.verbs) for r in action.rbac}
    assert rules == {
        (("cert-manager.io",), ("certificates",), ("get", "patch")),
        (("cert-manager.io",), ("certificates/status",), ("update",)),
    }


async def test_a_lost_status_answer_is_recognised_not_refused(fake_kube, kube):
    # The PUT lands but its answer is lost; aiohttp resends it, the stale resourceVersion
    # gets 409, and the re-read finds this execution's own Issuing condition.
    fake_kube.controllers_enabled = False
    fake_kube.add(objects.certificate("web", "prod", revision=3))
    fake_kube.drop_next(1, method="PUT", apply_then_drop=True)
    outcome = await CertRenew().apply(kube, TARGET, PARAMS, CTX)
    assert "issues a revision after 3" in outcome
    assert [(r.method, r.response_status) for r in fake_kube.requests][-2:] == [
        ("PUT", 409),
        ("GET", 200),
    ]
    assert conditions(stored(fake_kube))["Issuing"] == ISSUING
    assert await CertRenew().applied(kube, TARGET, PARAMS, CTX)
