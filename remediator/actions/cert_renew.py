"""``cert_renew``: trigger cert-manager re-issuance, as ``cmctl renew`` does.

The change is cmctl's (``pkg/renew/renew.go``): read the Certificate, set the ``Issuing``
condition to ``True`` with reason ``ManuallyTriggered`` (``SetCertificateCondition``:
replace the existing ``Issuing`` entry in place or append one; ``lastTransitionTime``
is now, kept when the condition already was True; ``observedGeneration`` is
``metadata.generation``) and PUT the whole object to ``/status``, optimistic on the
read ``resourceVersion``. A 409 Conflict means the Certificate changed since it was
read, so everything is read and decided again (``Kube.on_conflict_retry``); cmctl gives
up there instead. A Certificate that already has ``Issuing=True`` is refused (cmctl
skips it): cert-manager is issuing it already.

The stamp. A status endpoint takes only ``status``: the API server keeps the stored
metadata, so annotations sent in the PUT are dropped and cannot mark the execution.
The stamp is therefore a JSON merge patch of ``metadata.annotations`` on the main
resource, sent *before* the status PUT, and it records the revision the renewal starts
from: ``remediator.io/execution-id``, ``remediator.io/runbook`` and
``remediator.io/renew-from-revision`` (``status.revision``, 0 before the first issue).
Stamping first records the decision; the stamp patch carries the read resourceVersion
(so a Certificate that moved on since the read gives 409 and is read again, and the
recorded revision is never stale), and the PUT carries the resourceVersion the stamp
patch returned. A stamp alone does not prove the trigger reached the cluster (the server
may die between the two requests), so ``applied()`` is true only when the stamp names
this execution *and* the trigger is visible: either ``status.revision`` moved past the
recorded revision (cert-manager already issued and removed the condition) or
``Issuing=True`` with reason ``ManuallyTriggered`` is present. If only the stamp
landed, ``applied()`` is false and the re-run finds its own stamp, keeps it, and sends
the PUT. The stamp patch changes only metadata, so it does not bump the generation and
does not itself trigger anything in cert-manager.

verify. Healthy when ``Ready=True`` and ``status.revision`` is greater than the recorded
revision (a new certificate was issued); progressing while ``Issuing=True``; failed
when cert-manager gave up on this attempt (``Issuing=False``, e.g. reason ``Failed``) or
``Ready=False`` with the ``Issuing`` condition gone. A Certificate that is Ready with the
condition gone but no new revision yet is still reported progressing.
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

GROUP = "cert-manager.io"
VERSION = "v1"
PLURAL = "certificates"
RENEW_FROM_REVISION = "remediator.io/renew-from-revision"
ISSUING = "Issuing"
READY = "Ready"
REASON = "ManuallyTriggered"
MESSAGE = "Certificate re-issuance manually triggered"
MERGE_PATCH = "application/merge-patch+json"


class CertRenewParams(Params):
    pass


class CertRenew:
    name: ClassVar[str] = "cert_renew"
    mutates: ClassVar[bool] = True
    kinds: ClassVar[frozenset[str]] = frozenset({"Certificate"})
    params_model: ClassVar[type[Params]] = CertRenewParams
    rbac: ClassVar[tuple[PolicyRule, ...]] = (
        PolicyRule((GROUP,), ("certificates",), ("get", "patch")),
        PolicyRule((GROUP,), ("certificates/status",), ("update",)),
    )

    def describe(self, target: RenderedTarget, params: Params) -> str:
        return (
            f"renew {target}: set condition Issuing=True (reason ManuallyTriggered) "
            "so cert-manager re-issues it"
        )

    async def apply(
        self, kube: Kube | None, target: RenderedTarget, params: Params, ctx: Context
    ) -> str:
        k = cluster(kube)
        start: dict[str, int] = {}

        async def renew() -> JSON:
            crt = await _read(k, target)
            issuing = _condition(crt, ISSUING, "True")
            mine = crt.get("metadata", {}).get("annotations", {}).get(EXECUTION_ANNOTATION)
            if issuing is not None and issuing.get("reason") == REASON and mine == ctx.execution_id:
                # Our own earlier write whose answer was lost (a resent PUT then sees 409):
                # it is applied, not a reason to refuse.
                recorded = _int(crt["metadata"]["annotations"].get(RENEW_FROM_REVISION))
                start.setdefault("revision", _revision(crt) if recorded is None else recorded)
                return crt
            if issuing is not None:
                raise ActionRefused(
                    f"{target} is already being issued (condition Issuing=True, reason "
                    f"{issuing.get('reason')!r}); not triggering again"
                )
            revision = _revision(crt)
            start["revision"] = revision
            stamp = {**ctx.annotations(), RENEW_FROM_REVISION: str(revision)}
            annotations = crt.get("metadata", {}).get("annotations") or {}
            if any(annotations.get(key) != value for key, value in stamp.items()):
                crt = await k.write(
                    f"PATCH {target}",
                    k.custom.patch_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    target.namespace,
                    PLURAL,
                    target.name,
                    # resourceVersion makes the patch fail with 409 if the Certificate
                    # (and so the revision recorded here) changed since the read.
                    {"metadata": {"annotations": stamp, "resourceVersion": _rv(crt)}},
                    dry_run=ctx.dry_run,
                    _content_type=MERGE_PATCH,
                )
            set_issuing(crt, ctx)
            return await k.write(
                f"PUT {target} status",
                k.custom.replace_namespaced_custom_object_status,
                GROUP,
                VERSION,
                target.namespace,
                PLURAL,
                target.name,
                crt,
                dry_run=ctx.dry_run,
            )

        await k.on_conflict_retry(renew)
        outcome = (
            f"triggered re-issuance of {target}: set Issuing=True (reason {REASON}) through "
            f"the /status subresource; cert-manager issues a revision after "
            f"{start['revision']}"
        )
        if ctx.server_dry_run:
            outcome += " [server dry run: accepted, nothing persisted]"
        return outcome

    async def applied(
        self, kube: Kube | None, target: RenderedTarget, params: Params, ctx: Context
    ) -> bool:
        crt = await _read(cluster(kube), target)
        annotations = crt.get("metadata", {}).get("annotations") or {}
        if annotations.get(EXECUTION_ANNOTATION) != ctx.execution_id:
            return False
        start = _int(annotations.get(RENEW_FROM_REVISION))
        if start is None:
            return False
        issuing = _condition(crt, ISSUING, "True")
        return _revision(crt) > start or (issuing is not None and issuing.get("reason") == REASON)

    async def verify(
        self, kube: Kube | None, target: RenderedTarget, params: Params, ctx: Context
    ) -> Health:
        crt = await _read(cluster(kube), target)
        return renewal_health(crt)


def renewal_health(crt: JSON) -> Health:
    """How far the renewal recorded in ``crt``'s stamp got."""
    annotations = crt.get("metadata", {}).get("annotations") or {}
    start = _int(annotations.get(RENEW_FROM_REVISION))
    if start is None:
        return Health(
            HealthState.FAILED,
            f"no renewal recorded: annotation {RENEW_FROM_REVISION} is missing or invalid",
        )
    revision = _revision(crt)
    ready = _condition(crt, READY)
    issuing = _condition(crt, ISSUING)
    ready_true = ready is not None and ready.get("status") == "True"
    if ready_true and revision > start:
        return Health(HealthState.HEALTHY, f"Ready with revision {revision} (was {start})")
    if issuing is not None and issuing.get("status") == "True":
        return Health(HealthState.PROGRESSING, f"issuing a revision after {start}")
    if issuing is not None:
        return Health(
            HealthState.FAILED,
            f"issuance failed: Issuing={issuing.get('status')} ({issuing.get('reason')}): "
            f"{issuing.get('message')}",
        )
    if not ready_true:
        why = f"{ready.get('reason')}: {ready.get('message')}" if ready else "no Ready condition"
        return Health(HealthState.FAILED, f"not Ready after issuance at revision {revision}: {why}")
    return Health(
        HealthState.PROGRESSING, f"Ready at revision {revision}; waiting for a revision > {start}"
    )


def set_issuing(crt: JSON, ctx: Context) -> None:
    """cert-manager's ``SetCertificateCondition(crt, generation, Issuing, True, ...)``."""
    now = ctx.now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    condition: JSON = {
        "type": ISSUING,
        "status": "True",
        "lastTransitionTime": now,
        "reason": REASON,
        "message": MESSAGE,
        "observedGeneration": crt.get("metadata", {}).get("generation") or 0,
    }
    status = crt.get("status")
    if not isinstance(status, dict):
        status = crt["status"] = {}
    conditions = status.get("conditions")
    if not isinstance(conditions, list):
        conditions = status["conditions"] = []
    for index, existing in enumerate(conditions):
        if isinstance(existing, dict) and existing.get("type") == ISSUING:
            if existing.get("status") == "True":
                condition["lastTransitionTime"] = existing.get("lastTransitionTime")
            conditions[index] = condition
            return
    conditions.append(condition)


async def _read(kube: Kube, target: RenderedTarget) -> JSON:
    return await kube.read(
        f"GET {target}",
        kube.custom.get_namespaced_custom_object,
        GROUP,
        VERSION,
        target.namespace,
        PLURAL,
        target.name,
    )


def _condition(crt: JSON, kind: str, status: str | None = None) -> JSON | None:
    for cond in (crt.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == kind:
            if status is None or cond.get("status") == status:
                return cond
            return None
    return None


def _rv(crt: JSON) -> str | None:
    value = crt.get("metadata", {}).get("resourceVersion")
    return None if value is None else str(value)


def _revision(crt: JSON) -> int:
    return _int((crt.get("status") or {}).get("revision")) or 0


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(str(value), 10)
    except ValueError:
        return None
