"""``rollback``: Argo Rollouts ``undo`` to an earlier revision, or ``abort``.

Both modes send the request ``kubectl argo rollouts`` sends (``pkg/kubectl-argo-rollouts/
cmd/undo`` and ``cmd/abort``), plus the execution stamp (``remediator.io/execution-id``
and ``remediator.io/runbook``) on the mutated object's ``metadata.annotations``.

undo. GET the Rollout; list the ReplicaSets matching its ``spec.selector`` and keep the
ones it controls (ownerReference ``controller: true`` with the Rollout's uid); pick the
revision (annotation ``rollout.argoproj.io/revision``): ``to_revision``, or by default the
second-highest. The change is the plugin's JSON patch
``[{"op":"replace","path":"/spec/template","value":<ReplicaSet template without the
rollouts-pod-template-hash label>}]``. The stamp rides in the same JSON patch as extra
``add`` ops on ``/metadata/annotations/<key>`` (RFC 6901: ``/`` in a key is ``~1``), or
one ``add`` of the whole map when the object has no annotations yet; a JSON patch is
applied atomically, so the template and the stamp land together or not at all. With
``spec.workloadRef`` the patch (and so the stamp) goes to the referenced Deployment,
ReplicaSet or PodTemplate, as the plugin's ``undoWorkloadRef`` does (it picks the object
by ``kind`` alone; other kinds are refused). A PodTemplate keeps its pod template at
``/template``: the plugin sends ``/spec/template`` there too, which the API server
rejects (422, a PodTemplate has no ``spec``), so the path follows the kind, as Argo's
controller reads it (``rollout/templateref.go``). Unlike the plugin, which compares
against the Rollout's (then empty) template and always patches, the "already at that
revision" check compares the referenced object's template, so an undo that would change
nothing is refused rather than sent. Templates are compared as Argo does:
``equality.Semantic.DeepDerivative`` of the current template against the ReplicaSet's,
ignoring the hash label (fields the current template leaves unset or empty do not count,
so server-side defaults in the ReplicaSet do not make them differ).

abort. A JSON merge patch ``{"status":{"abort":true}}`` to the ``/status`` subresource,
and on 404 (a Rollout CRD installed without the status subresource) the same patch to
the main resource, as the plugin does. The status endpoint of a CRD ignores every
metadata change (the API server keeps the old object and takes only ``status``), so the
stamp cannot ride along there: it is a separate merge patch of ``metadata.annotations``
on the main resource, sent *after* the abort. If the server dies between the two,
``applied()`` answers false and the step is sent again, which is harmless: abort is
idempotent. In the 404 fallback the main resource takes both, so the stamp is part of
that one request. Abort is refused when there is nothing to abort (the Rollout is fully
promoted and healthy at its stable ReplicaSet).

``applied()`` reads back the object the step mutated (the Rollout; for undo through a
``workloadRef``, the referenced object) and compares its execution-id annotation.

verify. undo: healthy when the controller has observed the latest generation
(``status.observedGeneration``, a string in Argo, equals ``metadata.generation``; with a
``workloadRef`` also the ``rollout.argoproj.io/workload-generation`` annotation equals
``status.workloadObservedGeneration``, as Argo CD's health check does) and
``status.phase`` is ``Healthy``; ``Degraded`` is a failure; anything else is progressing.
Through a ``workloadRef`` the patch leaves the Rollout itself unchanged, and Argo copies
the referenced object's new ``metadata.generation`` into that annotation only when its
informer sees the change; until the annotation names the referenced object's current
generation, the Rollout still describes the old template and verify says progressing.
abort: the purpose is to return to the stable version, and Argo reports a finished
abort as phase ``Degraded`` (message ``RolloutAborted: ...``), so abort is healthy when
``status.abort`` is true, the phase is ``Degraded`` or ``Healthy`` and the replicas the
controller reports available reach ``spec.replicas`` (traffic is back on a stable set
that can carry it). A Rollout whose abort flag is gone and that is Healthy (retried and
finished) is healthy too; one ``Degraded`` without the abort flag failed for another
reason (e.g. progress deadline exceeded).
"""

from __future__ import annotations

from dataclasses import dataclass
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
from remediator.kube.errors import NotFound

GROUP = "argoproj.io"
VERSION = "v1alpha1"
PLURAL = "rollouts"
REVISION_ANNOTATION = "rollout.argoproj.io/revision"
WORKLOAD_GENERATION_ANNOTATION = "rollout.argoproj.io/workload-generation"
POD_TEMPLATE_HASH = "rollouts-pod-template-hash"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"


class RollbackParams(Params):
    mode: Literal["undo", "abort"] = "undo"
    to_revision: int = Field(
        default=0, ge=0, description="Revision to return to; 0 means the previous one."
    )


class Rollback:
    name: ClassVar[str] = "rollback"
    mutates: ClassVar[bool] = True
    kinds: ClassVar[frozenset[str]] = frozenset({"Rollout"})
    params_model: ClassVar[type[Params]] = RollbackParams
    rbac: ClassVar[tuple[PolicyRule, ...]] = (
        PolicyRule((GROUP,), ("rollouts",), ("get", "patch")),
        PolicyRule((GROUP,), ("rollouts/status",), ("patch",)),
        PolicyRule(("apps",), ("replicasets",), ("list",)),
        # undo through a workloadRef reads and patches the referenced object
        PolicyRule(("apps",), ("deployments", "replicasets"), ("get", "patch")),
        PolicyRule(("",), ("podtemplates",), ("get", "patch")),
    )

    def describe(self, target: RenderedTarget, params: Params) -> str:
        assert isinstance(params, RollbackParams)
        if params.mode == "abort":
            return f"abort {target}: set status.abort=true, returning traffic to the stable version"
        revision = (
            f"revision {params.to_revision}" if params.to_revision else "the previous revision"
        )
        return f"roll back {target} to {revision} (replace spec.template with that ReplicaSet's)"

    async def apply(
        self, kube: Kube | None, target: RenderedTarget, params: Params, ctx: Context
    ) -> str:
        assert isinstance(params, RollbackParams)
        k = cluster(kube)
        if params.mode == "abort":
            outcome = await _abort(k, target, ctx)
        else:
            outcome = await _undo(k, target, params.to_revision, ctx)
        if ctx.server_dry_run:
            outcome += " [server dry run: accepted, nothing persisted]"
        return outcome

    async def applied(
        self, kube: Kube | None, target: RenderedTarget, params: Params, ctx: Context
    ) -> bool:
        assert isinstance(params, RollbackParams)
        k = cluster(kube)
        obj = await _read_rollout(k, target)
        if params.mode == "undo" and _workload_ref(obj) is not None:
            _, obj = await _read_workload(k, target, obj)
        return bool(_stamp_of(obj) == ctx.execution_id)

    async def verify(
        self, kube: Kube | None, target: RenderedTarget, params: Params, ctx: Context
    ) -> Health:
        assert isinstance(params, RollbackParams)
        k = cluster(kube)
        rollout = await _read_rollout(k, target)
        if params.mode == "abort":
            return abort_status(rollout)
        if _workload_ref(rollout) is not None:
            waiting = workload_unseen(rollout, *await _read_workload(k, target, rollout))
            if waiting is not None:
                return waiting
        return rollout_health(rollout)


# --- undo ---------------------------------------------------------------------------


async def _undo(kube: Kube, target: RenderedTarget, to_revision: int, ctx: Context) -> str:
    rollout = await _read_rollout(kube, target)
    revision, rs = await _revision_to_restore(kube, target, rollout, to_revision)
    rs_name = rs.get("metadata", {}).get("name", "?")
    rs_template: JSON = _strip_hash(rs.get("spec", {}).get("template") or {})

    if _workload_ref(rollout) is None:
        kind, mutated = ROLLOUT_TEMPLATE, rollout
    else:
        kind, mutated = await _read_workload(kube, target, rollout)
    current = kind.template_of(mutated)
    if current is not None and derives(_strip_hash(current), rs_template):
        where = "" if mutated is rollout else f" (its workloadRef {kind.kind} {_name(mutated)})"
        raise ActionRefused(
            f"{target}{where} is already at revision {revision}: its pod template matches "
            f"ReplicaSet {rs_name}; nothing to roll back"
        )

    body = [{"op": "replace", "path": kind.pointer, "value": rs_template}]
    body += stamp_ops(mutated, ctx)
    field = ".".join(kind.template)
    if mutated is rollout:
        await _patch_rollout(kube, target, body, ctx, JSON_PATCH)
        patched = f"{field} of {target}"
    else:
        where = f"{kind.kind} {target.namespace}/{_name(mutated)}"
        # The typed APIs send a list body as application/json-patch+json.
        await kube.write(
            f"PATCH {where}",
            kind.method(kube, "patch"),
            _name(mutated),
            target.namespace,
            body,
            dry_run=ctx.dry_run,
        )
        patched = f"{field} of {where} (workloadRef)"
    images = ", ".join(_images(rs_template)) or "no containers"
    return (
        f"rolled back {target} to revision {revision} (ReplicaSet {rs_name}): "
        f"replaced {patched}; images now {images}"
    )


async def _revision_to_restore(
    kube: Kube, target: RenderedTarget, rollout: JSON, to_revision: int
) -> tuple[int, JSON]:
    """The (revision, ReplicaSet) to go back to, picked as the plugin's rolloutRevision."""
    owned = await _owned_replicasets(kube, target, rollout)
    revisions: list[tuple[int, JSON]] = []
    for rs in owned:
        value = _revision(rs)
        if value is not None:
            revisions.append((value, rs))
    if to_revision:
        for value, rs in revisions:
            if value == to_revision:
                return value, rs
        known = ", ".join(str(v) for v in sorted({v for v, _ in revisions})) or "none"
        raise ActionRefused(
            f"revision {to_revision} of {target} not found in its ReplicaSet history "
            f"(revisions present: {known})"
        )
    # Second-highest revision; on ties the first seen wins, as in the plugin.
    latest: tuple[int, JSON] | None = None
    previous: tuple[int, JSON] | None = None
    for value, rs in revisions:
        if latest is None or latest[0] < value:
            previous, latest = latest, (value, rs)
        elif previous is None or previous[0] < value:
            previous = (value, rs)
    if previous is None:
        only = f"only revision {latest[0]} exists" if latest else "no ReplicaSets found"
        raise ActionRefused(f"{target} has no earlier revision to roll back to ({only})")
    return previous


async def _owned_replicasets(kube: Kube, target: RenderedTarget, rollout: JSON) -> list[JSON]:
    uid = rollout.get("metadata", {}).get("uid")
    selector = label_selector(rollout.get("spec", {}).get("selector") or {})
    kw: dict[str, Any] = {"label_selector": selector} if selector else {}
    listed = await kube.read(
        f"LIST ReplicaSets of {target}",
        kube.apps.list_namespaced_replica_set,
        target.namespace,
        **kw,
    )
    owned = []
    for rs in listed.get("items") or []:
        refs = rs.get("metadata", {}).get("ownerReferences") or []
        if any(ref.get("controller") is True and ref.get("uid") == uid for ref in refs):
            owned.append(rs)
    return owned


def _revision(rs: JSON) -> int | None:
    """The ReplicaSet's revision; a missing annotation is 0, a malformed one is skipped."""
    raw = (rs.get("metadata", {}).get("annotations") or {}).get(REVISION_ANNOTATION)
    if raw is None:
        return 0
    try:
        return int(str(raw), 10)
    except ValueError:
        return None


def _strip_hash(template: JSON) -> JSON:
    """A deep copy of a pod template without the rollouts-pod-template-hash label."""
    copy: JSON = _deepcopy(template)
    labels = (copy.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(POD_TEMPLATE_HASH, None)
    return copy


def _deepcopy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deepcopy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deepcopy(v) for v in value]
    return value


def _images(template: JSON) -> list[str]:
    containers = (template.get("spec") or {}).get("containers") or []
    return [f"{c.get('name')}={c.get('image')}" for c in containers if isinstance(c, dict)]


def derives(current: Any, other: Any) -> bool:
    """``equality.Semantic.DeepDerivative(current, other)`` on JSON values.

    Unset or empty values in ``current`` (null, "", {}, []) match anything; map keys
    that ``current`` lacks are ignored; everything else must be equal.
    """
    if current is None:
        return True
    if isinstance(current, dict):
        if not current:
            return True
        if not isinstance(other, dict):
            return False
        return all(k in other and derives(v, other[k]) for k, v in current.items())
    if isinstance(current, list):
        if not current:
            return True
        if not isinstance(other, list) or len(current) != len(other):
            return False
        return all(derives(a, b) for a, b in zip(current, other, strict=True))
    if isinstance(current, str):
        return current == "" or current == other
    return type(current) is type(other) and bool(current == other)


def label_selector(selector: JSON) -> str:
    """``metav1.LabelSelectorAsSelector(selector).String()``: what the plugin lists with."""
    requirements: list[tuple[str, str]] = []
    for key, value in (selector.get("matchLabels") or {}).items():
        requirements.append((key, f"{key}={value}"))
    for expr in selector.get("matchExpressions") or []:
        key, op = str(expr.get("key")), expr.get("operator")
        values = ",".join(sorted(str(v) for v in expr.get("values") or []))
        if op == "In":
            requirements.append((key, f"{key} in ({values})"))
        elif op == "NotIn":
            requirements.append((key, f"{key} notin ({values})"))
        elif op == "Exists":
            requirements.append((key, key))
        elif op == "DoesNotExist":
            requirements.append((key, f"!{key}"))
        else:
            raise ActionRefused(f"unsupported label selector operator {op!r} in spec.selector")
    requirements.sort(key=lambda r: r[0])
    return ",".join(text for _, text in requirements)


def _workload_ref(rollout: JSON) -> JSON | None:
    ref = rollout.get("spec", {}).get("workloadRef")
    return ref if isinstance(ref, dict) and ref else None


@dataclass(frozen=True)
class TemplateOwner:
    """A kind whose pod template undo replaces: where the template sits in the object, and
    the typed client API (``Kube`` attribute and method suffix) that reads and patches it
    (none for the Rollout itself, reached through the CustomObjectsApi)."""

    kind: str
    template: tuple[str, ...]
    api: str = ""
    suffix: str = ""

    @property
    def pointer(self) -> str:
        return "/" + "/".join(self.template)

    def template_of(self, obj: JSON) -> JSON | None:
        node: Any = obj
        for key in self.template:
            node = node.get(key) if isinstance(node, dict) else None
        return node if isinstance(node, dict) else None

    def method(self, kube: Kube, verb: str) -> Any:
        return getattr(getattr(kube, self.api), f"{verb}_namespaced_{self.suffix}")


ROLLOUT_TEMPLATE = TemplateOwner("Rollout", ("spec", "template"))
#: The kinds the plugin's ``undoWorkloadRef`` patches, chosen by ``kind`` as it does.
WORKLOAD_KINDS = {
    w.kind: w
    for w in (
        TemplateOwner("Deployment", ("spec", "template"), "apps", "deployment"),
        TemplateOwner("ReplicaSet", ("spec", "template"), "apps", "replica_set"),
        TemplateOwner("PodTemplate", ("template",), "core", "pod_template"),
    )
}


async def _read_workload(
    kube: Kube, target: RenderedTarget, rollout: JSON
) -> tuple[TemplateOwner, JSON]:
    """The object the Rollout's workloadRef names, and how to reach its template."""
    ref = _workload_ref(rollout) or {}
    kind, name = WORKLOAD_KINDS.get(str(ref.get("kind"))), ref.get("name")
    if kind is None or not name:
        raise ActionRefused(
            f"{target} references a workload of kind {ref.get('kind')!r} (workloadRef); "
            f"rollback supports {', '.join(WORKLOAD_KINDS)} references"
        )
    obj = await kube.read(
        f"GET {kind.kind} {target.namespace}/{name}",
        kind.method(kube, "read"),
        name,
        target.namespace,
    )
    return kind, obj


# --- abort --------------------------------------------------------------------------


async def _abort(kube: Kube, target: RenderedTarget, ctx: Context) -> str:
    rollout = await _read_rollout(kube, target)
    status: JSON = rollout.get("status") or {}
    phase = status.get("phase") or "unknown"
    if (
        not status.get("abort")
        and phase == "Healthy"
        and _generation_observed(rollout)
        and status.get("stableRS")
        and status.get("stableRS") == status.get("currentPodHash")
    ):
        raise ActionRefused(
            f"nothing to abort: {target} is Healthy and fully promoted to its stable "
            f"ReplicaSet (pod hash {status.get('stableRS')})"
        )
    body: JSON = {"status": {"abort": True}}
    via = "the /status subresource"
    try:
        await kube.write(
            f"PATCH {target} status",
            kube.custom.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            target.namespace,
            PLURAL,
            target.name,
            body,
            dry_run=ctx.dry_run,
            _content_type=MERGE_PATCH,
        )
    except NotFound:
        # No status subresource (as the plugin does, retry on the main resource), which
        # then also takes the stamp in the same request.
        await _patch_rollout(
            kube, target, {**body, "metadata": {"annotations": ctx.annotations()}}, ctx
        )
        via = "the main resource (the Rollout has no /status subresource)"
    else:
        await _patch_rollout(kube, target, {"metadata": {"annotations": ctx.annotations()}}, ctx)
    already = " (it was already aborted)" if status.get("abort") else ""
    stable = status.get("stableRS") or "unknown"
    return (
        f"aborted {target}: set status.abort=true via {via}{already}; was phase {phase}, "
        f"traffic returns to the stable ReplicaSet (pod hash {stable})"
    )


async def _patch_rollout(
    kube: Kube,
    target: RenderedTarget,
    body: JSON | list[JSON],
    ctx: Context,
    content_type: str = MERGE_PATCH,
) -> JSON:
    return await kube.write(
        f"PATCH {target}",
        kube.custom.patch_namespaced_custom_object,
        GROUP,
        VERSION,
        target.namespace,
        PLURAL,
        target.name,
        body,
        dry_run=ctx.dry_run,
        _content_type=content_type,
    )


# --- shared -------------------------------------------------------------------------


async def _read_rollout(kube: Kube, target: RenderedTarget) -> JSON:
    return await kube.read(
        f"GET {target}",
        kube.custom.get_namespaced_custom_object,
        GROUP,
        VERSION,
        target.namespace,
        PLURAL,
        target.name,
    )


def _name(obj: JSON) -> str:
    return str(obj.get("metadata", {}).get("name", ""))


def _stamp_of(obj: JSON) -> Any:
    return (obj.get("metadata", {}).get("annotations") or {}).get(EXECUTION_ANNOTATION)


def pointer_token(key: str) -> str:
    """One RFC 6901 reference token: ``~`` becomes ``~0``, then ``/`` becomes ``~1``."""
    return key.replace("~", "~0").replace("/", "~1")


def stamp_ops(obj: JSON, ctx: Context) -> list[JSON]:
    """JSON patch ops that add the execution stamp to ``obj``'s metadata.annotations."""
    annotations = obj.get("metadata", {}).get("annotations")
    if not isinstance(annotations, dict):
        return [{"op": "add", "path": "/metadata/annotations", "value": ctx.annotations()}]
    return [
        {"op": "add", "path": f"/metadata/annotations/{pointer_token(key)}", "value": value}
        for key, value in ctx.annotations().items()
    ]


def _generation_observed(rollout: JSON) -> bool:
    """Argo CD's isGenerationObserved and isWorkloadGenerationObserved, combined."""
    meta: JSON = rollout.get("metadata", {})
    status: JSON = rollout.get("status") or {}
    if not rollout.get("status"):
        return False
    try:
        observed = int(str(status.get("observedGeneration")))
    except ValueError:
        observed = None  # pre-v0.10 Rollouts kept a hash here
    generation = int(meta.get("generation") or 0)
    if observed is not None and observed != generation:
        return False
    if _workload_ref(rollout) is not None:
        wanted = (meta.get("annotations") or {}).get(WORKLOAD_GENERATION_ANNOTATION)
        seen = status.get("workloadObservedGeneration")
        if wanted is not None and str(wanted) != str(seen):
            return False
    return True


def workload_unseen(rollout: JSON, kind: TemplateOwner, workload: JSON) -> Health | None:
    """Progressing until Argo has recorded the referenced object's current generation."""
    generation = str(workload.get("metadata", {}).get("generation"))
    seen = (rollout.get("metadata", {}).get("annotations") or {}).get(
        WORKLOAD_GENERATION_ANNOTATION
    )
    if seen is not None and str(seen) == generation:
        return None
    return Health(
        HealthState.PROGRESSING,
        f"waiting for Argo Rollouts to see generation {generation} of the workloadRef "
        f"{kind.kind} {_name(workload)} (the Rollout records {seen or 'none'})",
    )


def rollout_health(rollout: JSON) -> Health:
    """Whether a Rollout finished rolling out its current spec (undo's success)."""
    status: JSON = rollout.get("status") or {}
    phase, message = status.get("phase"), status.get("message") or ""
    if not _generation_observed(rollout):
        return Health(HealthState.PROGRESSING, "waiting for the controller to see the change")
    if phase == "Healthy":
        return Health(HealthState.HEALTHY, f"Rollout is Healthy {message}".strip())
    if phase == "Degraded":
        return Health(HealthState.FAILED, f"Rollout is Degraded: {message or 'no message'}")
    if phase == "Paused":
        return Health(HealthState.PROGRESSING, f"Rollout is paused {message}".strip())
    return Health(HealthState.PROGRESSING, f"Rollout phase {phase or 'unknown'} {message}".strip())


def abort_status(rollout: JSON) -> Health:
    """Whether an aborted Rollout is back on its stable version (abort's success)."""
    spec: JSON = rollout.get("spec") or {}
    status: JSON = rollout.get("status") or {}
    phase, message = status.get("phase"), status.get("message") or ""
    if not _generation_observed(rollout):
        return Health(HealthState.PROGRESSING, "waiting for the controller to see the change")
    if not status.get("abort"):
        if phase == "Healthy":
            return Health(HealthState.HEALTHY, "abort cleared and the Rollout is Healthy")
        if phase == "Degraded":
            return Health(
                HealthState.FAILED, f"Rollout is Degraded (not aborted): {message or 'no message'}"
            )
        return Health(HealthState.PROGRESSING, "waiting for the controller to take the abort")
    if phase not in ("Degraded", "Healthy"):
        return Health(
            HealthState.PROGRESSING, f"aborting: phase {phase or 'unknown'} {message}".strip()
        )
    wanted = spec.get("replicas", 1)
    available = status.get("availableReplicas") or 0
    if available < wanted:
        return Health(
            HealthState.PROGRESSING, f"aborted; {available} of {wanted} stable replicas available"
        )
    return Health(
        HealthState.HEALTHY,
        f"aborted: back on the stable ReplicaSet, {available} of {wanted} replicas available",
    )
