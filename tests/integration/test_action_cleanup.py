"""``cleanup`` against the fake API server, through the real kubernetes_asyncio client.

Every test asserts what the server received (verb, path, query, content type, body), and
what it then holds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from remediator.actions.base import (
    EXECUTION_ANNOTATION,
    RUNBOOK_ANNOTATION,
    Context,
    HealthState,
    LiveAction,
    RenderedTarget,
)
from remediator.actions.cleanup import (
    CLEANUP_CUTOFF,
    CLEANUP_DELETED,
    STAMP_CONFIGMAP,
    Cleanup,
    CleanupParams,
)
from remediator.kube import Kube
from remediator.kube.errors import KubeError
from tests.fakes.kube import FakeKube, objects

MERGE = "application/merge-patch+json"
NOW = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)  # cutoff with the default 1h: 11:00
CTX = Context(execution_id="exec-1", runbook="tidy", now=NOW)
DRY = Context(execution_id="exec-1", runbook="tidy", now=NOW, server_dry_run=True)
PROD = RenderedTarget("Namespace", "prod", "")
PODS = "/api/v1/namespaces/prod/pods"
JOBS = "/apis/batch/v1/namespaces/prod/jobs"
CONFIGMAPS = "/api/v1/namespaces/prod/configmaps"
WEB = {"app": "web"}

action = Cleanup()


def at(hour: int, minute: int = 0) -> datetime:
    return NOW.replace(hour=hour, minute=minute)


def seed(fake: FakeKube) -> dict[str, dict[str, Any]]:
    """A namespace with something of everything; returns the seeded objects by name."""
    migrate_1 = objects.job("migrate-1", "prod", completion_time=at(10), labels=WEB)
    no_start = objects.pod("web-6", "prod", "Failed", labels=WEB, created=at(7))
    del no_start["status"]["startTime"]  # judged by creationTimestamp
    seeded = [
        objects.pod("web-1", "prod", "Failed", labels=WEB, created=at(9)),
        objects.pod("web-2", "prod", "Failed", "Evicted", labels=WEB, created=at(8)),
        objects.pod("web-3", "prod", "Failed", labels=WEB, created=at(11, 30)),  # too young
        objects.pod("web-4", "prod", "Running", labels=WEB, created=at(8)),
        objects.pod("web-5", "prod", "Succeeded", labels=WEB, created=at(8, 30)),
        no_start,
        objects.pod("api-1", "prod", "Failed", labels={"app": "api"}, created=at(8)),
        objects.pod("web-9", "stage", "Failed", labels=WEB, created=at(8)),  # other namespace
        migrate_1,
        # Failed Jobs have no completionTime: the Failed condition's time counts.
        objects.job("migrate-2", "prod", completion_time=at(9, 30), labels=WEB, failed=True),
        objects.job("migrate-3", "prod", finished=False, labels=WEB, created=at(8)),
        objects.job("migrate-4", "prod", completion_time=at(11, 45), labels=WEB),
        objects.pod(
            "migrate-1-x7k2p", "prod", "Failed", labels=WEB, created=at(9, 55), owner=migrate_1
        ),
    ]
    fake.add_all(seeded)
    return {o["metadata"]["name"]: o for o in seeded}


def uid(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["uid"])


def delete_options(obj: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid(obj)}}


def stamp(
    count: int, execution: str = "exec-1", cutoff: str = "2025-05-01T11:00:00+00:00"
) -> dict[str, str]:
    return {
        EXECUTION_ANNOTATION: execution,
        RUNBOOK_ANNOTATION: "tidy",
        CLEANUP_DELETED: str(count),
        CLEANUP_CUTOFF: cutoff,
    }


def seen(fake: FakeKube) -> list[tuple[str, str, dict[str, str], str | None, Any]]:
    """Every request as (verb, path, query, content type of a PATCH, body)."""
    return [
        (r.method, r.path, r.query, r.content_type if r.method == "PATCH" else None, r.body)
        for r in fake.requests
    ]


def names(fake: FakeKube, kind: str, namespace: str = "prod") -> set[str]:
    api_version = "batch/v1" if kind == "Job" else "v1"
    return {o["metadata"]["name"] for o in fake.list(api_version, kind, namespace)}


def configmap(fake: FakeKube) -> dict[str, Any] | None:
    return fake.get("v1", "ConfigMap", "prod", STAMP_CONFIGMAP)


@pytest.fixture
def fake(fake_kube: FakeKube) -> FakeKube:
    return fake_kube


def test_cleanup_is_a_live_action_with_minimal_rbac() -> None:
    assert isinstance(action, LiveAction)
    rules = {
        (g, r): set(rule.verbs)
        for rule in action.rbac
        for g in rule.api_groups
        for r in rule.resources
    }
    assert rules == {
        ("", "pods"): {"list", "delete"},
        ("batch", "jobs"): {"list", "delete"},
        ("", "configmaps"): {"get", "create", "patch"},
    }


async def test_deletes_old_failed_pods_and_finished_jobs_oldest_first(
    fake: FakeKube, kube: Kube
) -> None:
    obj = seed(fake)

    outcome = await action.apply(kube, PROD, CleanupParams(selector="app=web"), CTX)

    assert outcome == "deleted 3 pods (web-6, web-2, web-1) and 2 jobs (migrate-2, migrate-1)"
    job_query = {"propagationPolicy": "Background"}
    created = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": STAMP_CONFIGMAP,
            "labels": {"app.kubernetes.io/managed-by": "remediator"},
            "annotations": stamp(5),
        },
    }
    assert seen(fake) == [
        ("GET", PODS, {"labelSelector": "app=web"}, None, None),
        ("GET", JOBS, {"labelSelector": "app=web"}, None, None),
        ("DELETE", f"{PODS}/web-6", {}, None, delete_options(obj["web-6"])),
        ("DELETE", f"{PODS}/web-2", {}, None, delete_options(obj["web-2"])),
        ("DELETE", f"{PODS}/web-1", {}, None, delete_options(obj["web-1"])),
        ("DELETE", f"{JOBS}/migrate-2", job_query, None, delete_options(obj["migrate-2"])),
        # migrate-1-x7k2p (09:55) belongs to migrate-1: the Job's deletion takes it along.
        ("DELETE", f"{JOBS}/migrate-1", job_query, None, delete_options(obj["migrate-1"])),
        (
            "PATCH",
            f"{CONFIGMAPS}/{STAMP_CONFIGMAP}",
            {},
            MERGE,
            {"metadata": {"annotations": stamp(5)}},
        ),
        ("POST", CONFIGMAPS, {}, None, created),
    ]
    assert [r.response_status for r in fake.requests][-2:] == [404, 201]
    assert names(fake, "Pod") == {"web-3", "web-4", "web-5", "api-1", "migrate-1-x7k2p"}
    assert names(fake, "Pod", "stage") == {"web-9"}
    assert names(fake, "Job") == {"migrate-3", "migrate-4"}
    assert {(d.kind, d.name, d.propagation_policy) for d in fake.deletions} == {
        ("Pod", "web-6", None),
        ("Pod", "web-2", None),
        ("Pod", "web-1", None),
        ("Job", "migrate-2", "Background"),
        ("Job", "migrate-1", "Background"),
    }
    cm = configmap(fake)
    assert cm is not None
    assert stamp(5).items() <= cm["metadata"]["annotations"].items()


async def test_include_succeeded_and_no_selector(fake: FakeKube, kube: Kube) -> None:
    seed(fake)

    outcome = await action.apply(kube, PROD, CleanupParams(include_succeeded=True, jobs=False), CTX)

    # Without jobs, the Job's failed pod is deleted on its own; api-1 matches no selector.
    assert outcome == ("deleted 6 pods (web-6, api-1, web-2, web-5, web-1, … +1 more)")
    assert [r.path for r in fake.requests if r.method == "GET"] == [PODS]
    assert fake.requests[0].query == {}
    assert names(fake, "Pod") == {"web-3", "web-4"}
    assert names(fake, "Job") == {"migrate-1", "migrate-2", "migrate-3", "migrate-4"}


async def test_respects_max_taking_the_oldest(fake: FakeKube, kube: Kube) -> None:
    seed(fake)

    outcome = await action.apply(kube, PROD, CleanupParams(selector="app=web", max=2), CTX)

    assert outcome == "deleted 2 pods (web-6, web-2) (4 more left for a later run (max 2))"
    assert [r.path for r in fake.mutations("DELETE")] == [f"{PODS}/web-6", f"{PODS}/web-2"]
    assert "web-1" in names(fake, "Pod")


async def test_older_than_moves_the_cutoff(fake: FakeKube, kube: Kube) -> None:
    seed(fake)

    outcome = await action.apply(
        kube, PROD, CleanupParams(selector="app=web", older_than=timedelta(hours=3)), CTX
    )

    # Cutoff 09:00: web-6 (07:00), web-2 (08:00) and web-1 (09:00, not younger) go.
    assert outcome == "deleted 3 pods (web-6, web-2, web-1)"


async def test_not_found_on_delete_counts_as_gone(fake: FakeKube, kube: Kube) -> None:
    seed(fake)
    # Someone else deletes web-2 just before we do: our DELETE answers 404.
    fake.fail_next(1, status=404, method="DELETE", path_contains="/pods/web-2", apply_first=True)

    outcome = await action.apply(kube, PROD, CleanupParams(selector="app=web"), CTX)

    assert outcome == (
        "deleted 3 pods (web-6, web-2, web-1) and 2 jobs (migrate-2, migrate-1) (1 already gone)"
    )
    assert [r.response_status for r in fake.mutations("DELETE")] == [200, 404, 200, 200, 200]
    assert "web-2" not in names(fake, "Pod")
    cm = configmap(fake)
    assert cm is not None
    assert cm["metadata"]["annotations"][CLEANUP_DELETED] == "5"


async def test_a_failed_uid_precondition_skips_the_object(fake: FakeKube, kube: Kube) -> None:
    seed(fake)
    fake.fail_next(1, status=409, method="DELETE", path_contains="/pods/web-1")

    outcome = await action.apply(kube, PROD, CleanupParams(selector="app=web", jobs=False), CTX)

    assert outcome == (
        "deleted 3 pods (web-6, web-2, migrate-1-x7k2p) "
        "(1 skipped: replaced by a new object of the same name)"
    )
    assert "web-1" in names(fake, "Pod")


async def test_an_ambiguous_delete_failure_raises_and_a_rerun_finishes(
    fake: FakeKube, kube: Kube
) -> None:
    seed(fake)
    params = CleanupParams(selector="app=web")
    fake.fail_next(1, status=500, method="DELETE", path_contains="/jobs/migrate-2")

    with pytest.raises(KubeError):
        await action.apply(kube, PROD, params, CTX)
    assert not await action.applied(kube, PROD, params, CTX)
    assert names(fake, "Job") == {"migrate-1", "migrate-2", "migrate-3", "migrate-4"}

    outcome = await action.apply(kube, PROD, params, CTX)

    assert outcome == "deleted 2 jobs (migrate-2, migrate-1)"
    assert await action.applied(kube, PROD, params, CTX)


async def test_long_name_lists_are_truncated(fake: FakeKube, kube: Kube) -> None:
    fake.add_all(
        objects.pod(f"batch-{i}", "prod", "Failed", labels=WEB, created=at(8, i)) for i in range(7)
    )

    outcome = await action.apply(kube, PROD, CleanupParams(), CTX)

    assert outcome == "deleted 7 pods (batch-0, batch-1, batch-2, batch-3, batch-4, … +2 more)"


async def test_nothing_to_clean_up_is_not_an_error(fake: FakeKube, kube: Kube) -> None:
    fake.add(objects.pod("web-1", "prod", "Running", labels=WEB, created=at(8)))
    fake.add(objects.pod("web-2", "prod", "Failed", labels=WEB, created=at(11, 30)))

    outcome = await action.apply(kube, PROD, CleanupParams(), CTX)

    assert outcome == "nothing to clean up"
    assert [r.method for r in fake.mutations()] == ["PATCH", "POST"]
    assert await action.applied(kube, PROD, CleanupParams(), CTX)
    cm = configmap(fake)
    assert cm is not None
    assert cm["metadata"]["annotations"][CLEANUP_DELETED] == "0"
    assert names(fake, "Pod") == {"web-1", "web-2"}


async def test_server_dry_run_deletes_nothing(fake: FakeKube, kube: Kube) -> None:
    seed(fake)
    pods_before, jobs_before = names(fake, "Pod"), names(fake, "Job")

    outcome = await action.apply(kube, PROD, CleanupParams(selector="app=web"), DRY)

    assert outcome == "deleted 3 pods (web-6, web-2, web-1) and 2 jobs (migrate-2, migrate-1)"
    mutations = fake.mutations()
    assert [(r.method, r.query) for r in mutations] == [
        ("DELETE", {"dryRun": "All"}),
        ("DELETE", {"dryRun": "All"}),
        ("DELETE", {"dryRun": "All"}),
        ("DELETE", {"dryRun": "All", "propagationPolicy": "Background"}),
        ("DELETE", {"dryRun": "All", "propagationPolicy": "Background"}),
        ("PATCH", {"dryRun": "All"}),
        ("POST", {"dryRun": "All"}),
    ]
    assert (names(fake, "Pod"), names(fake, "Job")) == (pods_before, jobs_before)
    assert fake.deletions == []
    assert configmap(fake) is None
    assert not await action.applied(kube, PROD, CleanupParams(selector="app=web"), CTX)


async def test_applied_before_and_after_and_a_later_run_patches_the_stamp(
    fake: FakeKube, kube: Kube
) -> None:
    seed(fake)
    params = CleanupParams(selector="app=web")

    assert not await action.applied(kube, PROD, params, CTX)
    await action.apply(kube, PROD, params, CTX)
    assert await action.applied(kube, PROD, params, CTX)
    fake.remove("v1", "Pod", "prod", "migrate-1-x7k2p")  # the garbage collector's part

    later = Context(execution_id="exec-2", runbook="tidy", now=NOW + timedelta(hours=1))
    assert not await action.applied(kube, PROD, params, later)
    fake.clear()
    outcome = await action.apply(kube, PROD, params, later)

    assert outcome == "deleted 1 pod (web-3) and 1 job (migrate-4)"
    stamp_writes = [(r.method, r.response_status, r.body) for r in fake.mutations("PATCH")]
    assert stamp_writes == [
        (
            "PATCH",
            200,
            {"metadata": {"annotations": stamp(2, "exec-2", "2025-05-01T12:00:00+00:00")}},
        )
    ]
    assert fake.mutations("POST") == []
    assert await action.applied(kube, PROD, params, later)
    assert not await action.applied(kube, PROD, params, CTX)


async def test_verify_until_nothing_old_is_left(fake: FakeKube, kube: Kube) -> None:
    seed(fake)
    terminating = objects.pod("web-7", "prod", "Failed", labels=WEB, created=at(6))
    terminating["metadata"]["deletionTimestamp"] = "2025-05-01T11:59:00Z"
    terminating["metadata"]["finalizers"] = ["example.com/hold"]
    fake.add(terminating)
    params = CleanupParams(selector="app=web")

    before = await action.verify(kube, PROD, params, CTX)
    assert (before.state, before.message) == (
        HealthState.PROGRESSING,
        "5 pods and 2 jobs still to clean up (1 terminating)",
    )

    await action.apply(kube, PROD, params, CTX)
    assert "web-7" not in [r.path.rsplit("/", 1)[-1] for r in fake.mutations("DELETE")]

    # The fake has no garbage collector: the Job's pod and the finalizer linger.
    after = await action.verify(kube, PROD, params, CTX)
    assert (after.state, after.message) == (
        HealthState.PROGRESSING,
        "2 pods still to clean up (1 terminating)",
    )
    fake.remove("v1", "Pod", "prod", "migrate-1-x7k2p")
    fake.remove("v1", "Pod", "prod", "web-7")
    done = await action.verify(kube, PROD, params, CTX)
    assert done.state == HealthState.HEALTHY
    assert done.message == "no matching pods or Jobs older than 1h left"


async def test_verify_measures_from_the_recorded_cutoff(fake: FakeKube, kube: Kube) -> None:
    seed(fake)
    params = CleanupParams(selector="app=web", jobs=False)
    await action.apply(kube, PROD, params, CTX)
    an_hour_later = Context(execution_id="exec-1", runbook="tidy", now=NOW + timedelta(hours=1))

    # web-3 (11:30) is old by now, but was not when the cleanup ran.
    assert (await action.verify(kube, PROD, params, an_hour_later)).state == HealthState.HEALTHY
    # Without this execution's stamp, verify measures from its own clock.
    other = Context(execution_id="exec-2", runbook="tidy", now=NOW + timedelta(hours=1))
    later = await action.verify(kube, PROD, params, other)
    assert (later.state, later.message) == (HealthState.PROGRESSING, "1 pod still to clean up")


async def test_verify_after_a_capped_run_ignores_what_max_left(fake: FakeKube, kube: Kube) -> None:
    seed(fake)
    params = CleanupParams(selector="app=web", jobs=False, max=2)

    await action.apply(kube, PROD, params, CTX)

    (patch,) = fake.mutations("PATCH")
    # Just before web-1 (09:00), the oldest pod left for a later run.
    assert patch.body["metadata"]["annotations"][CLEANUP_CUTOFF] == (
        "2025-05-01T08:59:59.999999+00:00"
    )
    assert (await action.verify(kube, PROD, params, CTX)).state == HealthState.HEALTHY
    assert names(fake, "Pod") >= {"web-1", "migrate-1-x7k2p"}
