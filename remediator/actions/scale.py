"""``scale``: change replicas through the scale subresource, within runbook bounds.

The new count is an absolute ``replicas``, a relative ``delta``, or a ``factor`` of the
current count (rounded up), always clamped to ``min..max``. The change itself is the
request ``kubectl scale`` sends: a JSON merge patch ``{"spec":{"replicas":N}}`` to the
workload's ``/scale`` subresource (Argo Rollouts through the CustomObjectsApi).

Crash safety. A relative change must never be applied twice, and the scale subresource
cannot carry an annotation, so one execution takes two requests:

1. Stamp the workload: a merge patch of ``metadata.annotations`` on the main resource
   with the execution id, the runbook, ``remediator.io/scale-from: "M"``,
   ``remediator.io/scale-to: "N"`` and ``remediator.io/scale-via`` (``scale`` or
   ``hpa/<name>``). This records the *decision* before anything changes.
2. Carry it out: patch ``/scale`` to N (or the HPA, below).

``applied()`` is true when the stamp names this execution and ``spec.replicas`` equals
the recorded scale-to (for the HPA route: the HPA carries this execution's stamp, which
is written in the same request as its new bounds). If the server dies between 1 and 2,
the re-apply finds its own stamp and reuses the recorded N instead of computing it again
from the current count, so ``delta: 2`` can never become +4. Server dry run
(``dryRun=All``) sends the same two requests and persists neither.

HPA. The HPA owns ``replicas`` and would undo a manual scale on its next sync. With
``hpa: refuse`` (the default) an HPA whose ``scaleTargetRef`` names the workload makes
the step refuse. With ``hpa: adjust`` the HPA's bounds are moved so the HPA itself
brings the workload to N: scaling up raises ``minReplicas`` to N (and ``maxReplicas``
if N exceeds it); scaling down lowers ``maxReplicas`` to N (and ``minReplicas`` if it
exceeds N). That merge patch carries the execution stamp too.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

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
from remediator.actions.restart import rollout_status
from remediator.kube import JSON, Kube
from remediator.kube.errors import NotFound

SCALE_FROM = "remediator.io/scale-from"
SCALE_TO = "remediator.io/scale-to"
SCALE_VIA = "remediator.io/scale-via"
MERGE_PATCH = "application/merge-patch+json"

_APPS = {"Deployment": "deployment", "StatefulSet": "stateful_set"}
_ROLLOUTS = ("argoproj.io", "v1alpha1")
_VIA_SCALE = "scale"
_VIA_HPA = "hpa/"


class ScaleParams(Params):
    replicas: int | None = Field(default=None, ge=0, description="Absolute replica count.")
    delta: int | None = Field(default=None, description="Relative change, e.g. 2 or -1.")
    factor: float | None = Field(default=None, gt=0, description="Multiply current replicas.")
    min: int = Field(ge=0, description="Never scale below this.")
    max: int = Field(ge=1, description="Never scale above this.")
    hpa: Literal["refuse", "adjust"] = Field(
        default="refuse",
        description="When an HPA targets the workload: refuse, or adjust the HPA's bounds.",
    )

    @model_validator(mode="after")
    def _one_amount(self) -> ScaleParams:
        given = [x for x in (self.replicas, self.delta, self.factor) if x is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of replicas, delta, factor")
        if self.min > self.max:
            raise ValueError("min must not exceed max")
        return self

    @property
    def direction(self) -> int:
        """+1 for a relative scale-up, -1 for a scale-down, 0 for an absolute count."""
        if self.delta is not None:
            return (self.delta > 0) - (self.delta < 0)
        if self.factor is not None:
            return (self.factor > 1) - (self.factor < 1)
        return 0

    def desired(self, current: int) -> tuple[int, str]:
        """The new count for ``current`` replicas, and a note when the bounds cut it."""
        if self.replicas is not None:
            wanted = self.replicas
        elif self.delta is not None:
            wanted = current + self.delta
        else:
            # Decimal of the written value: 50 * 0.14 is 7, not 7.000000000000001 -> 8.
            wanted = math.ceil(Decimal(current) * Decimal(str(self.factor)))
        if wanted > self.max:
            return self.max, f" (clamped to max {self.max})"
        if wanted < self.min:
            return self.min, f" (clamped to min {self.min})"
        return wanted, ""


class Scale:
    name: ClassVar[str] = "scale"
    mutates: ClassVar[bool] = True
    kinds: ClassVar[frozenset[str]] = frozenset({"Deployment", "StatefulSet", "Rollout"})
    params_model: ClassVar[type[Params]] = ScaleParams
    rbac: ClassVar[tuple[PolicyRule, ...]] = (
        PolicyRule(
            ("apps",),
            ("deployments", "statefulsets", "deployments/scale", "statefulsets/scale"),
            ("get", "patch"),
        ),
        PolicyRule(("argoproj.io",), ("rollouts", "rollouts/scale"), ("get", "patch")),
        PolicyRule(("autoscaling",), ("horizontalpodautoscalers",), ("get", "list", "patch")),
    )

    def describe(self, target: RenderedTarget, params: Params) -> str:
        assert isinstance(params, ScaleParams)
        if params.replicas is not None:
            amount = f"to {params.replicas} replicas"
        elif params.delta is not None:
            amount = f"by {params.delta:+d} replicas"
        else:
            amount = f"by a factor of {params.factor:g}"
        return (
            f"scale {target} {amount}, kept within {params.min}..{params.max}; "
            f"if an HPA targets it: {params.hpa}"
        )

    async def apply(
        self, kube: Kube | None, target: RenderedTarget, params: Params, ctx: Context
    ) -> str:
        assert isinstance(params, ScaleParams)
        k = cluster(kube)
        obj = await _read(k, target)
        scale = await _read_scale(k, target)
        current = _int(scale.get("spec", {}).get("replicas")) or 0
        hpas = await _hpas_for(k, target)
        if hpas and params.hpa == "refuse":
            names = ", ".join(f"{target.namespace}/{_name(h)}" for h in hpas)
            raise ActionRefused(
                f"HorizontalPodAutoscaler {names} targets {target} and owns its replicas; "
                "a manual scale would be undone (set hpa: adjust to move the HPA's bounds)"
            )
        if len(hpas) > 1:
            names = ", ".join(_name(h) for h in hpas)
            raise ActionRefused(f"several HPAs ({names}) target {target}; will not pick one")
        hpa = hpas[0] if hpas else None

        recorded = _recorded(obj, ctx)
        if recorded is not None:
            # A re-apply of this execution: the decision was stamped before the change.
            before, after = recorded
            note = " (re-applied from the recorded decision)"
        else:
            before, (after, note) = current, params.desired(current)
            if after == current:
                raise ActionRefused(
                    f"{target} is already at {current} replicas "
                    f"({self.describe(target, params)}); nothing to change"
                )
            if params.direction * (after - current) < 0:
                # The bounds would turn a scale-up into a scale-down (or the reverse).
                raise ActionRefused(
                    f"{target} has {current} replicas, outside {params.min}..{params.max}; "
                    f"{self.describe(target, params)} would move it the other way, to {after}"
                )
            if hpa is not None and after == 0:
                raise ActionRefused(
                    f"cannot scale {target} to 0 through HPA {target.namespace}/{_name(hpa)} "
                    "(minReplicas must stay at least 1)"
                )
            via = f"{_VIA_HPA}{_name(hpa)}" if hpa is not None else _VIA_SCALE
            stamp = {
                **ctx.annotations(),
                SCALE_FROM: str(before),
                SCALE_TO: str(after),
                SCALE_VIA: via,
            }
            await _patch(k, target, {"metadata": {"annotations": stamp}}, ctx)

        if hpa is not None:
            return await _adjust_hpa(k, target, hpa, before, after, ctx) + note
        if recorded is not None and current == after:
            return f"scaled {target} from {before} to {after} (already applied by this execution)"
        await _patch(k, target, {"spec": {"replicas": after}}, ctx, scale=True)
        return f"scaled {target} from {before} to {after}{note}"

    async def applied(
        self, kube: Kube | None, target: RenderedTarget, params: Params, ctx: Context
    ) -> bool:
        k = cluster(kube)
        obj = await _read(k, target)
        recorded = _recorded(obj, ctx)
        if recorded is None:
            return False
        via = _annotations(obj).get(SCALE_VIA, _VIA_SCALE)
        if via.startswith(_VIA_HPA):
            try:
                hpa = await k.read(
                    f"GET HorizontalPodAutoscaler {target.namespace}/{via[len(_VIA_HPA) :]}",
                    k.autoscaling.read_namespaced_horizontal_pod_autoscaler,
                    via[len(_VIA_HPA) :],
                    target.namespace,
                )
            except NotFound:
                return False
            return _annotations(hpa).get(EXECUTION_ANNOTATION) == ctx.execution_id
        return _int(obj.get("spec", {}).get("replicas")) == recorded[1]

    async def verify(
        self, kube: Kube | None, target: RenderedTarget, params: Params, ctx: Context
    ) -> Health:
        obj = await _read(cluster(kube), target)
        spec: dict[str, Any] = obj.get("spec", {})
        status: dict[str, Any] = obj.get("status") or {}
        replicas = _int(spec.get("replicas"))
        replicas = 1 if replicas is None else replicas
        recorded = _recorded(obj, ctx)
        before, wanted = recorded if recorded is not None else (replicas, replicas)
        via_hpa = recorded is not None and _annotations(obj).get(SCALE_VIA, "").startswith(_VIA_HPA)
        if not via_hpa and replicas != wanted:
            return Health(
                HealthState.FAILED,
                f"spec.replicas is {replicas}, not {wanted}: something else scaled {target}",
            )
        total = _int(status.get("replicas")) or 0
        if target.kind == "Rollout":
            return _rollout_health(obj, wanted, before, via_hpa)
        if not via_hpa:
            return rollout_status(target.kind, obj)
        # The HPA moves spec.replicas; judge the workload against the recorded N.
        if wanted >= before:
            ready = _int(status.get(_READY[target.kind])) or 0
            progress = rollout_status(target.kind, obj)
            if ready >= wanted and progress.state == HealthState.HEALTHY:
                return Health(HealthState.HEALTHY, f"{ready} replicas ready (at least {wanted})")
            if progress.state == HealthState.FAILED:
                return progress
            return Health(
                HealthState.PROGRESSING,
                f"waiting for the HPA: {ready} of at least {wanted} replicas ready",
            )
        progress = rollout_status(target.kind, obj)
        if replicas <= wanted and total <= wanted and progress.state == HealthState.HEALTHY:
            return Health(HealthState.HEALTHY, f"{total} replicas (at most {wanted})")
        if progress.state == HealthState.FAILED:
            return progress
        return Health(
            HealthState.PROGRESSING, f"waiting for the HPA: {total} replicas, want at most {wanted}"
        )


_READY = {"Deployment": "availableReplicas", "StatefulSet": "readyReplicas"}


def _rollout_health(obj: JSON, wanted: int, before: int, via_hpa: bool) -> Health:
    meta: dict[str, Any] = obj.get("metadata", {})
    status: dict[str, Any] = obj.get("status") or {}
    observed = status.get("observedGeneration")
    generation = meta.get("generation")
    if observed is not None and generation is not None and str(observed) != str(generation):
        return Health(HealthState.PROGRESSING, "waiting for the controller to see the change")
    phase = status.get("phase") or "Unknown"
    available = _int(status.get("availableReplicas")) or 0
    total = _int(status.get("replicas")) or 0
    if phase == "Degraded":
        return Health(HealthState.FAILED, f"Rollout is Degraded: {status.get('message', '')}")
    # Scaling up: enough available pods. Scaling down: the surplus pods are gone.
    done = total <= wanted if wanted < before else available >= wanted
    if phase == "Healthy" and done:
        return Health(HealthState.HEALTHY, f"Healthy, {available} available (want {wanted})")
    return Health(
        HealthState.PROGRESSING,
        f"phase {phase}, {available} available, {total} total (want {wanted})"
        + (" via the HPA" if via_hpa else ""),
    )


async def _adjust_hpa(
    k: Kube, target: RenderedTarget, hpa: JSON, before: int, after: int, ctx: Context
) -> str:
    name = _name(hpa)
    where = f"HPA {target.namespace}/{name}"
    if _annotations(hpa).get(EXECUTION_ANNOTATION) == ctx.execution_id:
        return f"{where} already adjusted by this execution (HPA owns replicas)"
    spec: dict[str, Any] = hpa.get("spec", {})
    low = _int(spec.get("minReplicas"))
    low = 1 if low is None else low
    high = _int(spec.get("maxReplicas")) or low
    if after > before:
        new_low, new_high = max(low, after), max(high, after)
    else:
        new_high = min(high, after)
        new_low = min(low, new_high)
    changes: dict[str, int] = {}
    words: list[str] = []
    # The field that makes the HPA move comes first in the text.
    order = (("minReplicas", low, new_low), ("maxReplicas", high, new_high))
    for field, old, new in order if after > before else order[::-1]:
        if new != old:
            changes[field] = new
            words.append(f"{field} {old}→{new}")
    body: JSON = {"metadata": {"annotations": {**ctx.annotations(), SCALE_TO: str(after)}}}
    if changes:
        body["spec"] = changes
    await k.write(
        f"PATCH {where}",
        k.autoscaling.patch_namespaced_horizontal_pod_autoscaler,
        name,
        target.namespace,
        body,
        dry_run=ctx.dry_run,
        _content_type=MERGE_PATCH,
    )
    if not words:
        return f"{where} already keeps {target} at {after} (HPA owns replicas)"
    return f"set {where} {', '.join(words)} (HPA owns replicas)"


def _recorded(obj: JSON, ctx: Context) -> tuple[int, int] | None:
    """(scale-from, scale-to) stamped by execution ``ctx.execution_id``, if any."""
    annotations = _annotations(obj)
    if annotations.get(EXECUTION_ANNOTATION) != ctx.execution_id:
        return None
    before, after = _int(annotations.get(SCALE_FROM)), _int(annotations.get(SCALE_TO))
    if after is None:
        return None
    return (after if before is None else before), after


async def _hpas_for(k: Kube, target: RenderedTarget) -> list[JSON]:
    listing = await k.read(
        f"LIST HorizontalPodAutoscaler {target.namespace}",
        k.autoscaling.list_namespaced_horizontal_pod_autoscaler,
        target.namespace,
    )
    group = _ROLLOUTS[0] if target.kind == "Rollout" else "apps"
    found = []
    for item in listing.get("items") or []:
        ref = (item.get("spec") or {}).get("scaleTargetRef") or {}
        # Group, kind and name identify the target, as for the HPA controller; a kind of
        # the same name in another API group is another object. No apiVersion: counted.
        api_version = str(ref.get("apiVersion") or f"{group}/")
        same_group = api_version.rpartition("/")[0] == group
        if same_group and ref.get("kind") == target.kind and ref.get("name") == target.name:
            found.append(item)
    return found


async def _read(k: Kube, target: RenderedTarget) -> JSON:
    if target.kind == "Rollout":
        return await k.read(
            f"GET {target}",
            k.custom.get_namespaced_custom_object,
            *_ROLLOUTS,
            target.namespace,
            "rollouts",
            target.name,
        )
    read = getattr(k.apps, f"read_namespaced_{_APPS[target.kind]}")
    return await k.read(f"GET {target}", read, target.name, target.namespace)


async def _read_scale(k: Kube, target: RenderedTarget) -> JSON:
    if target.kind == "Rollout":
        return await k.read(
            f"GET {target}/scale",
            k.custom.get_namespaced_custom_object_scale,
            *_ROLLOUTS,
            target.namespace,
            "rollouts",
            target.name,
        )
    read = getattr(k.apps, f"read_namespaced_{_APPS[target.kind]}_scale")
    return await k.read(f"GET {target}/scale", read, target.name, target.namespace)


async def _patch(
    k: Kube, target: RenderedTarget, body: JSON, ctx: Context, *, scale: bool = False
) -> JSON:
    """A JSON merge patch of the main resource (its annotations) or, as ``kubectl scale``
    sends it, of ``/scale``."""
    suffix = "_scale" if scale else ""
    if target.kind == "Rollout":
        fn = getattr(k.custom, f"patch_namespaced_custom_object{suffix}")
        args: tuple[object, ...] = (*_ROLLOUTS, target.namespace, "rollouts", target.name, body)
    else:
        fn = getattr(k.apps, f"patch_namespaced_{_APPS[target.kind]}{suffix}")
        args = (target.name, target.namespace, body)
    what = f"PATCH {target}/scale" if scale else f"PATCH {target}"
    return await k.write(what, fn, *args, dry_run=ctx.dry_run, _content_type=MERGE_PATCH)


def _annotations(obj: JSON) -> dict[str, str]:
    annotations = (obj.get("metadata") or {}).get("annotations")
    return annotations if isinstance(annotations, dict) else {}


def _name(obj: JSON) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None
