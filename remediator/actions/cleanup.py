"""``cleanup``: delete failed or evicted pods and finished Jobs in a namespace.

What goes: pods matching ``selector`` in phase ``Failed`` (Evicted pods are Failed with
``status.reason: Evicted``), and ``Succeeded`` ones when asked, that started (or, lacking
``status.startTime``, were created) before ``ctx.now - older_than``; and, with ``jobs``,
Jobs matching ``selector`` whose ``Complete`` or ``Failed`` condition is ``True`` and that
finished (``status.completionTime``, else that condition's ``lastTransitionTime``) before
the same cutoff. Oldest first, at most ``max`` deletions in all. Objects already being
deleted are left alone.

Each delete names the object's uid as a precondition, so a pod that was replaced by a
new one of the same name (a StatefulSet's) is never taken instead. Jobs are deleted with
``propagationPolicy: Background``, as ``kubectl delete job`` does, so the garbage
collector takes their pods; pods owned by a Job deleted in the same run are therefore not
deleted (or counted) separately. A 404 means someone else deleted the object first: it
is gone, which is what was wanted.

Deleted objects cannot carry the execution stamp, so after deleting, the run is recorded
on a ConfigMap in the namespace, ``remediator-cleanup`` (created on first use): a merge
patch of its ``metadata.annotations`` with the execution id, the runbook,
``remediator.io/cleanup-deleted: "<count>"`` and ``remediator.io/cleanup-cutoff`` (the
instant "older than" was measured from or, when ``max`` cut the run short, the instant
just before the oldest object left for a later run). ``applied()`` reads the stamp back;
a run that finds nothing records ``"0"``. Repeating a cleanup is harmless in any case:
it only ever deletes what matches. ``verify()`` measures from the recorded cutoff, not
from its own clock, so objects that merely grow old while it waits, or that ``max`` left
for later, do not keep it from healing.

The stamp lives on a namespaced ConfigMap rather than on the Namespace itself: the fake
API server the tests run against has no cluster-scoped resources yet, and this way the
action needs no ClusterRole with ``patch namespaces`` (a right that could also rewrite a
namespace's pod-security labels).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field

from remediator.actions.base import (
    EXECUTION_ANNOTATION,
    ActionRefused,
    Context,
    Health,
    HealthState,
    Params,
    PolicyRule,
    RenderedTarget,
    cluster,
)
from remediator.kube import JSON, Kube
from remediator.kube.errors import Conflict, NotFound
from remediator.models.duration import Duration, format_duration

CLEANUP_DELETED = "remediator.io/cleanup-deleted"
CLEANUP_CUTOFF = "remediator.io/cleanup-cutoff"
STAMP_CONFIGMAP = "remediator-cleanup"
MERGE_PATCH = "application/merge-patch+json"
SHOWN_NAMES = 5  # names listed per kind in the outcome text


class CleanupParams(Params):
    selector: str = Field(default="", description="Label selector; empty means all.")
    older_than: Duration = Field(default=timedelta(hours=1))
    include_succeeded: bool = False
    jobs: bool = Field(default=True, description="Also delete finished Jobs.")
    max: int = Field(default=50, ge=1, le=1000, description="Deletions per run at most.")


@dataclass(frozen=True)
class _Candidate:
    kind: Literal["pod", "job"]
    name: str
    uid: str
    since: datetime  # started (pods) or finished (jobs)
    owners: frozenset[str]  # ownerReferences uids
    terminating: bool


class Cleanup:
    name: ClassVar[str] = "cleanup"
    mutates: ClassVar[bool] = True
    kinds: ClassVar[frozenset[str]] = frozenset({"Namespace"})
    params_model: ClassVar[type[Params]] = CleanupParams
    rbac: ClassVar[tuple[PolicyRule, ...]] = (
        PolicyRule(("",), ("pods",), ("list", "delete")),
        PolicyRule(("batch",), ("jobs",), ("list", "delete")),
        PolicyRule(("",), ("configmaps",), ("get", "create", "patch")),  # the stamp
    )

    def describe(self, target: RenderedTarget, params: Params) -> str:
        assert isinstance(params, CleanupParams)
        phases = "Failed/Evicted" + ("/Succeeded" if params.include_succeeded else "")
        what = f"{phases} pods" + (" and finished Jobs" if params.jobs else "")
        selector = f" matching {params.selector!r}" if params.selector else ""
        return (
            f"delete up to {params.max} {what}{selector} in namespace {target.namespace} "
            f"older than {format_duration(params.older_than)}"
        )

    async def apply(
        self, kube: Kube | None, target: RenderedTarget, params: Params, ctx: Context
    ) -> str:
        assert isinstance(params, CleanupParams)
        k = cluster(kube)
        ns = target.namespace
        cutoff = ctx.now - params.older_than
        found = [c for c in await _candidates(k, ns, params, cutoff) if not c.terminating]
        found.sort(key=lambda c: (c.since, c.kind, c.name))
        chosen = found[: params.max]
        if len(found) > params.max:
            # verify() then judges only what is older than the first object left for later.
            cutoff = min(cutoff, found[params.max].since - timedelta(microseconds=1))
        jobs = {c.uid for c in chosen if c.kind == "job"}
        # Their Job's background deletion takes these pods along.
        chosen = [c for c in chosen if c.kind == "job" or not (c.owners & jobs)]

        deleted: dict[str, list[str]] = {"pod": [], "job": []}
        gone = skipped = 0
        for c in chosen:
            try:
                await _delete(k, ns, c, ctx)
            except NotFound:
                gone += 1  # someone else deleted it: gone is what we wanted
            except Conflict:
                skipped += 1  # the uid precondition failed: a new object took the name
                continue
            deleted[c.kind].append(c.name)

        count = len(deleted["pod"]) + len(deleted["job"])
        stamp = {
            **ctx.annotations(),
            CLEANUP_DELETED: str(count),
            CLEANUP_CUTOFF: cutoff.astimezone(UTC).isoformat(),
        }
        await _stamp(k, ns, stamp, ctx)
        notes = []
        if gone:
            notes.append(f"{gone} already gone")
        if skipped:
            notes.append(f"{skipped} skipped: replaced by a new object of the same name")
        if len(found) > params.max:
            notes.append(f"{len(found) - params.max} more left for a later run (max {params.max})")
        suffix = f" ({'; '.join(notes)})" if notes else ""
        if not count:
            return "nothing to clean up" + suffix
        parts = [_listing(names, noun) for noun, names in deleted.items() if names]
        return f"deleted {' and '.join(parts)}{suffix}"

    async def applied(
        self, kube: Kube | None, target: RenderedTarget, params: Params, ctx: Context
    ) -> bool:
        annotations = await _recorded(cluster(kube), target.namespace)
        return annotations.get(EXECUTION_ANNOTATION) == ctx.execution_id

    async def verify(
        self, kube: Kube | None, target: RenderedTarget, params: Params, ctx: Context
    ) -> Health:
        assert isinstance(params, CleanupParams)
        k = cluster(kube)
        cutoff = ctx.now - params.older_than
        recorded = await _recorded(k, target.namespace)
        if recorded.get(EXECUTION_ANNOTATION) == ctx.execution_id:
            cutoff = _time(recorded.get(CLEANUP_CUTOFF)) or cutoff
        left = await _candidates(k, target.namespace, params, cutoff)
        if not left:
            return Health(
                HealthState.HEALTHY,
                f"no matching pods or Jobs older than {format_duration(params.older_than)} left",
            )
        pods = sum(c.kind == "pod" for c in left)
        jobs = len(left) - pods
        terminating = sum(c.terminating for c in left)
        counts = " and ".join(_plural(n, noun) for n, noun in ((pods, "pod"), (jobs, "job")) if n)
        more = f" ({terminating} terminating)" if terminating else ""
        return Health(HealthState.PROGRESSING, f"{counts} still to clean up{more}")


async def _stamp(k: Kube, ns: str, annotations: dict[str, str], ctx: Context) -> None:
    """Record the run on the stamp ConfigMap: patch it, or create it the first time."""
    what = f"ConfigMap {ns}/{STAMP_CONFIGMAP}"
    patch = {"metadata": {"annotations": annotations}}
    for _ in range(2):
        try:
            await k.write(
                f"PATCH {what}",
                k.core.patch_namespaced_config_map,
                STAMP_CONFIGMAP,
                ns,
                patch,
                dry_run=ctx.dry_run,
                _content_type=MERGE_PATCH,
            )
            return
        except NotFound:
            pass
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": STAMP_CONFIGMAP,
                "labels": {"app.kubernetes.io/managed-by": "remediator"},
                "annotations": annotations,
            },
        }
        try:
            await k.write(
                f"POST {what}", k.core.create_namespaced_config_map, ns, body, dry_run=ctx.dry_run
            )
            return
        except Conflict:
            continue  # created by someone else meanwhile (AlreadyExists): patch it
    raise ActionRefused(f"{what} keeps appearing and disappearing; cannot record the cleanup")


async def _recorded(k: Kube, ns: str) -> dict[str, str]:
    """The annotations of the stamp ConfigMap; empty when there is none."""
    try:
        stamp = await k.read(
            f"GET ConfigMap {ns}/{STAMP_CONFIGMAP}",
            k.core.read_namespaced_config_map,
            STAMP_CONFIGMAP,
            ns,
        )
    except NotFound:
        return {}
    annotations = _meta(stamp).get("annotations")
    if not isinstance(annotations, dict):
        return {}
    return {str(key): str(value) for key, value in annotations.items()}


async def _candidates(
    k: Kube, ns: str, params: CleanupParams, cutoff: datetime
) -> list[_Candidate]:
    """Every pod and Job the params select, older than ``cutoff`` (terminating ones too)."""
    selector: dict[str, Any] = {"label_selector": params.selector} if params.selector else {}
    phases = {"Failed", "Succeeded"} if params.include_succeeded else {"Failed"}
    found: list[_Candidate] = []
    pods = await k.read(f"LIST Pod {ns}", k.core.list_namespaced_pod, ns, **selector)
    for pod in pods.get("items") or []:
        status = pod.get("status") or {}
        if status.get("phase") not in phases:
            continue
        since = _time(status.get("startTime")) or _time(_meta(pod).get("creationTimestamp"))
        if since is not None and since <= cutoff:
            found.append(_candidate("pod", pod, since))
    if not params.jobs:
        return found
    jobs = await k.read(f"LIST Job {ns}", k.batch.list_namespaced_job, ns, **selector)
    for job in jobs.get("items") or []:
        since = _finished(job)
        if since is not None and since <= cutoff:
            found.append(_candidate("job", job, since))
    return found


def _finished(job: JSON) -> datetime | None:
    """When a finished Job finished; None while it runs."""
    status = job.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return (
                _time(status.get("completionTime"))
                or _time(cond.get("lastTransitionTime"))
                or _time(_meta(job).get("creationTimestamp"))
            )
    return None


def _candidate(kind: Literal["pod", "job"], obj: JSON, since: datetime) -> _Candidate:
    meta = _meta(obj)
    owners = frozenset(str(o.get("uid")) for o in meta.get("ownerReferences") or [])
    return _Candidate(
        kind=kind,
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid") or ""),
        since=since,
        owners=owners,
        terminating=bool(meta.get("deletionTimestamp")),
    )


async def _delete(k: Kube, ns: str, c: _Candidate, ctx: Context) -> None:
    body: JSON = {"apiVersion": "v1", "kind": "DeleteOptions"}
    if c.uid:
        body["preconditions"] = {"uid": c.uid}
    if c.kind == "pod":
        await k.write(
            f"DELETE Pod {ns}/{c.name}",
            k.core.delete_namespaced_pod,
            c.name,
            ns,
            body=body,
            dry_run=ctx.dry_run,
        )
        return
    await k.write(
        f"DELETE Job {ns}/{c.name}",
        k.batch.delete_namespaced_job,
        c.name,
        ns,
        body=body,
        dry_run=ctx.dry_run,
        propagation_policy="Background",
    )


def _listing(names: list[str], noun: str) -> str:
    shown = ", ".join(names[:SHOWN_NAMES])
    if len(names) > SHOWN_NAMES:
        shown += f", … +{len(names) - SHOWN_NAMES} more"
    return f"{_plural(len(names), noun)} ({shown})"


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _meta(obj: JSON) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
