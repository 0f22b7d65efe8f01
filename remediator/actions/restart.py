"""``restart``: a rollout restart, as ``kubectl rollout restart`` does it.

The same strategic-merge patch kubectl sends (the pod template's ``restartedAt``
annotation, second precision), plus the execution stamp on the object's own metadata
in the same request, so "was it applied?" has one exact answer after a crash.
Verification follows ``kubectl rollout status``.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any, ClassVar

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

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
_API_SUFFIX = {"Deployment": "deployment", "StatefulSet": "stateful_set", "DaemonSet": "daemon_set"}


class RestartParams(Params):
    pass


class Restart:
    name: ClassVar[str] = "restart"
    mutates: ClassVar[bool] = True
    kinds: ClassVar[frozenset[str]] = frozenset(_API_SUFFIX)
    params_model: ClassVar[type[Params]] = RestartParams
    rbac: ClassVar[tuple[PolicyRule, ...]] = (
        PolicyRule(("apps",), ("deployments", "statefulsets", "daemonsets"), ("get", "patch")),
    )

    def describe(self, target: RenderedTarget, params: Params) -> str:
        return (
            f"restart {target}: set the pod template annotation "
            "kubectl.kubernetes.io/restartedAt to now (rolling restart of every pod)"
        )

    async def apply(
        self, kube: Kube | None, target: RenderedTarget, params: Params, ctx: Context
    ) -> str:
        k = cluster(kube)
        current = await _read(k, target)
        if target.kind == "Deployment" and current.get("spec", {}).get("paused"):
            raise ActionRefused(
                f"{target} is paused; like kubectl, restart refuses a paused Deployment "
                "(resume it first)"
            )
        # Go's time.RFC3339 on a UTC clock: second precision, "Z".
        stamp = ctx.now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "metadata": {"annotations": ctx.annotations()},
            "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}},
        }
        patch = getattr(k.apps, f"patch_namespaced_{_API_SUFFIX[target.kind]}")
        result = await k.write(
            f"PATCH {target}", patch, target.name, target.namespace, body, dry_run=ctx.dry_run
        )
        generation = result.get("metadata", {}).get("generation")
        return f"restarted {target} ({RESTARTED_AT}={stamp}, generation {generation})"

    async def applied(
        self, kube: Kube | None, target: RenderedTarget, params: Params, ctx: Context
    ) -> bool:
        current = await _read(cluster(kube), target)
        annotations = current.get("metadata", {}).get("annotations") or {}
        return bool(annotations.get(EXECUTION_ANNOTATION) == ctx.execution_id)

    async def verify(
        self, kube: Kube | None, target: RenderedTarget, params: Params, ctx: Context
    ) -> Health:
        return rollout_status(target.kind, await _read(cluster(kube), target))


async def _read(kube: Kube, target: RenderedTarget) -> JSON:
    read = getattr(kube.apps, f"read_namespaced_{_API_SUFFIX[target.kind]}")
    return await kube.read(f"GET {target}", read, target.name, target.namespace)


def rollout_status(kind: str, obj: JSON) -> Health:
    """Whether a rollout is complete, judged as ``kubectl rollout status`` judges it."""
    meta: dict[str, Any] = obj.get("metadata", {})
    spec: dict[str, Any] = obj.get("spec", {})
    status: dict[str, Any] = obj.get("status") or {}
    if (status.get("observedGeneration") or 0) < (meta.get("generation") or 0):
        return Health(HealthState.PROGRESSING, "waiting for the controller to see the change")
    if kind == "DaemonSet":
        desired = status.get("desiredNumberScheduled") or 0
        updated = status.get("updatedNumberScheduled") or 0
        available = status.get("numberAvailable") or 0
        if updated < desired or available < desired:
            return Health(
                HealthState.PROGRESSING,
                f"{updated} of {desired} updated, {available} available",
            )
        return Health(HealthState.HEALTHY, f"{desired} of {desired} pods updated and available")
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return Health(HealthState.FAILED, f"progress deadline exceeded: {cond.get('message')}")
    wanted = spec.get("replicas", 1)
    updated = status.get("updatedReplicas") or 0
    total = status.get("replicas") or 0
    ready_key = "readyReplicas" if kind == "StatefulSet" else "availableReplicas"
    ready = status.get(ready_key) or 0
    if updated < wanted:
        return Health(HealthState.PROGRESSING, f"{updated} of {wanted} replicas updated")
    if total > updated:
        return Health(
            HealthState.PROGRESSING, f"{total - updated} old replicas pending termination"
        )
    if ready < updated:
        return Health(HealthState.PROGRESSING, f"{ready} of {updated} updated replicas ready")
    return Health(HealthState.HEALTHY, f"{wanted} of {wanted} replicas updated and ready")
