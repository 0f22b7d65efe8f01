"""Simulated controllers: just enough of the Deployment/StatefulSet/DaemonSet, Argo Rollouts
and cert-manager controllers for remediation actions to observe progress, plus the pod, Job,
namespace and garbage-collection lifecycles of :mod:`.lifecycle`.

Each :meth:`Controllers.reconcile_once` call advances every object by at most one step; the
fake runs it every ``tick`` seconds on its own event loop. Controllers only react to changes
(a new ``metadata.generation``, an abort flag, an ``Issuing`` condition, a new generation
of the workload a Rollout's ``workloadRef`` names, an object created through the API): a
status a test seeded stays as it was until something triggers the controller.

With ``dependents`` the Rollout controller also keeps a ReplicaSet per pod template, as
Argo does: on a new generation it reuses the owned ReplicaSet whose
``rollouts-pod-template-hash`` matches the template, or creates ``{rollout}-{hash}``, and
gives it the next ``rollout.argoproj.io/revision`` (also written on the Rollout). Replica
counts of ReplicaSets are not managed. It is off by default because tests that seed
ReplicaSets assert their revisions as seeded.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from .api import KubeApi
from .lifecycle import Lifecycle
from .objects import (
    ROLLOUT_HASH_LABEL,
    ROLLOUT_REVISION_ANNOTATION,
    WORKLOAD_GENERATION_ANNOTATION,
    WORKLOAD_TEMPLATE_PATHS,
    pod_template_hash,
    replicaset,
    workload_template,
)
from .resources import ResourceType
from .selectors import format_label_selector
from .store import Json, Key, Store, key_of, meta, rfc3339

# A reconciler returns the object's new status (None: unchanged); it may also edit the
# object's metadata in place (Argo writes the revision annotation on the Rollout).
Reconciler = Callable[[ResourceType, Key, Json], Json | None]
CERT_DOES_NOT_EXIST = "Issuing certificate as Secret does not exist"


class Controllers:
    def __init__(self, api: KubeApi, *, daemonset_nodes: int = 3, dependents: bool = False) -> None:
        self.store: Store = api.store
        self.registry = api.registry
        self.daemonset_nodes = daemonset_nodes
        self.dependents = dependents
        self.lifecycle = Lifecycle(api, dependents=dependents)
        self.enabled = True
        self.errors: list[BaseException] = []
        self._stuck: set[Key] = set()
        self._rolling: set[Key] = set()  # workloads observed but not yet fully rolled out
        self._reconcilers: dict[tuple[str, str], Reconciler] = {
            ("apps", "deployments"): self._workload,
            ("apps", "statefulsets"): self._workload,
            ("apps", "daemonsets"): self._workload,
            ("argoproj.io", "rollouts"): self._rollout,
            ("cert-manager.io", "certificates"): self._certificate,
            ("cert-manager.io", "issuers"): self._issuer,
        }

    def set_stuck(self, key: Key, stuck: bool) -> None:
        if stuck:
            self._stuck.add(key)
        else:
            self._stuck.discard(key)

    def is_stuck(self, key: Key) -> bool:
        return key in self._stuck

    # -- driving --------------------------------------------------------------------------------

    async def run(self, tick: float) -> None:
        while True:
            await asyncio.sleep(tick)
            if not self.enabled:
                continue
            try:
                self.reconcile_once()
            except Exception as exc:  # surfaced when the fake stops, never swallowed
                if len(self.errors) < 10:
                    self.errors.append(exc)

    def reconcile_once(self) -> int:
        """Advance every watched object by one step; return how many objects were written."""
        writes = self._sync_workload_generations()
        for rt in self.registry:
            reconcile = self._reconcilers.get((rt.group, rt.plural))
            if reconcile is None:
                continue
            for obj in self.store.list(rt):
                key = key_of(rt, obj["metadata"]["namespace"], obj["metadata"]["name"])
                new = copy.deepcopy(obj)
                new_status = reconcile(rt, key, new)
                if new_status is not None:
                    new["status"] = new_status
                if new != obj:
                    self.store.update(rt, obj, new, keep_generation=True)
                    writes += 1
        return writes + self.lifecycle.step()

    # -- apps/v1 workloads --------------------------------------------------------------------

    def _workload(self, rt: ResourceType, key: Key, obj: Json) -> Json | None:
        spec: dict[str, Any] = obj.get("spec") or {}
        status: Json = copy.deepcopy(obj.get("status") or {})
        if rt.kind == "Deployment" and spec.get("paused"):
            return None
        generation = obj["metadata"].get("generation", 1)
        desired = self.daemonset_nodes if rt.kind == "DaemonSet" else spec.get("replicas", 1)
        now = self.store.now()
        if generation > int(status.get("observedGeneration") or 0):
            # Step 1: the controller has seen the new spec; nothing is updated yet.
            status["observedGeneration"] = generation
            if rt.kind == "DaemonSet":
                status["desiredNumberScheduled"] = desired
                status["updatedNumberScheduled"] = 0
            else:
                status["updatedReplicas"] = 0
            if rt.kind == "Deployment":
                _set_condition(
                    status,
                    "Progressing",
                    "True",
                    "ReplicaSetUpdated",
                    f'ReplicaSet "{_rs_name(obj)}" is progressing.',
                    now,
                )
            self._rolling.add(key)
            return status
        if key not in self._rolling or key in self._stuck:
            return None
        # Step 2: every replica is updated, ready and available.
        self._rolling.discard(key)
        if rt.kind == "DaemonSet":
            for field in (
                "desiredNumberScheduled",
                "currentNumberScheduled",
                "updatedNumberScheduled",
                "numberAvailable",
                "numberReady",
            ):
                status[field] = desired
            status["numberMisscheduled"] = 0
            status.pop("numberUnavailable", None)
            return status
        for field in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas"):
            status[field] = desired
        status.pop("unavailableReplicas", None)
        if rt.kind == "StatefulSet":
            status["currentReplicas"] = desired
            revision = f"{obj['metadata']['name']}-{pod_template_hash(spec.get('template'))}"
            status["currentRevision"] = status["updateRevision"] = revision
        if rt.kind == "Deployment":
            _set_condition(
                status,
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                now,
            )
            _set_condition(
                status,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{_rs_name(obj)}" has successfully progressed.',
                now,
            )
        return status

    # -- argoproj.io/v1alpha1 Rollout ---------------------------------------------------------

    def _referenced_workload(self, rollout: Json) -> Json | None:
        """The object a Rollout's ``spec.workloadRef`` names, if Argo supports its kind."""
        ref = (rollout.get("spec") or {}).get("workloadRef")
        if not isinstance(ref, dict) or ref.get("kind") not in WORKLOAD_TEMPLATE_PATHS:
            return None
        try:
            rt = self.registry.resolve(str(ref.get("apiVersion")), str(ref["kind"]))
        except KeyError:
            return None
        return self.store.get(rt, rollout["metadata"]["namespace"], str(ref.get("name")))

    def _sync_workload_generations(self) -> int:
        """Argo's workloadRef informer: a referenced workload's new generation is written to
        the Rollout's workload-generation annotation (a metadata-only merge patch)."""
        rt = self.registry.resolve("argoproj.io/v1alpha1", "rollouts")
        writes = 0
        for rollout in self.store.list(rt):
            workload = self._referenced_workload(rollout)
            if workload is None:
                continue
            generation = str(workload["metadata"].get("generation", 1))
            if (rollout["metadata"].get("annotations") or {}).get(
                WORKLOAD_GENERATION_ANNOTATION
            ) == generation:
                continue
            new = copy.deepcopy(rollout)
            meta(new).setdefault("annotations", {})[WORKLOAD_GENERATION_ANNOTATION] = generation
            self.store.update(rt, rollout, new)
            writes += 1
        return writes

    def _rollout(self, rt: ResourceType, key: Key, obj: Json) -> Json | None:
        spec: dict[str, Any] = obj.get("spec") or {}
        status: Json = copy.deepcopy(obj.get("status") or {})
        generation = obj["metadata"].get("generation", 1)
        observed = int(status.get("observedGeneration") or 0)
        workload = self._referenced_workload(obj)
        workload_generation = (obj["metadata"].get("annotations") or {}).get(
            WORKLOAD_GENERATION_ANNOTATION
        )
        workload_changed = workload is not None and workload_generation not in (
            None,
            status.get("workloadObservedGeneration"),
        )
        aborted = bool(status.get("abort"))
        abort_shown = status.get("phase") == "Degraded" and str(
            status.get("message", "")
        ).startswith("RolloutAborted")
        if (
            generation <= observed
            and not workload_changed
            and aborted == abort_shown
            and key not in self._rolling
        ):
            return None
        if generation > observed or workload_changed:
            status["observedGeneration"] = str(generation)  # Argo writes it as a string
            if workload_changed:
                status["workloadObservedGeneration"] = workload_generation
            template = spec.get("template") or (workload and workload_template(workload))
            pod_hash = pod_template_hash(template or {"workloadRef": spec.get("workloadRef")})
            if self.dependents and spec.get("template"):
                self._replicasets(obj)
            if status.get("currentPodHash") != pod_hash:  # a new revision resets an abort
                status["currentPodHash"] = pod_hash
                status.pop("abort", None)
                status.pop("abortedAt", None)
                aborted = False
        desired = spec.get("replicas", 1)
        status["selector"] = format_label_selector(spec.get("selector") or {})
        if aborted:
            revision = (obj["metadata"].get("annotations") or {}).get(
                ROLLOUT_REVISION_ANNOTATION, generation
            )
            status["phase"] = "Degraded"
            status["message"] = f"RolloutAborted: Rollout aborted update to revision {revision}"
            status.setdefault("abortedAt", self.store.now())
        elif key in self._stuck:
            self._rolling.add(key)
            status["phase"] = "Progressing"
            status["message"] = "more replicas need to be updated"
        elif spec.get("paused"):
            status["phase"] = "Paused"
            status["message"] = "manually paused"
        else:
            self._rolling.discard(key)
            status["phase"] = "Healthy"
            status.pop("message", None)
            for field in (
                "replicas",
                "updatedReplicas",
                "readyReplicas",
                "availableReplicas",
                "HPAReplicas",
            ):
                status[field] = desired
            status["stableRS"] = status.get("currentPodHash")
        return status

    def _replicasets(self, rollout: Json) -> None:
        """Argo's ReplicaSet for the current template gets the next revision."""
        rs_type = self.registry.resolve("apps/v1", "replicasets")
        meta, pod_hash = rollout["metadata"], pod_template_hash(rollout["spec"]["template"])
        owned = [
            rs
            for rs in self.store.list(rs_type, meta["namespace"])
            if any(
                ref.get("uid") == meta["uid"] and ref.get("controller")
                for ref in rs["metadata"].get("ownerReferences") or []
            )
        ]
        top = max(map(_revision, owned), default=0)
        current = [rs for rs in owned if _labels(rs).get(ROLLOUT_HASH_LABEL) == pod_hash]
        revision = top if current and _revision(current[0]) == top else top + 1
        if not current:
            new = replicaset(
                f"{meta['name']}-{pod_hash}", meta["namespace"], owner=rollout, revision=revision
            )
            new["spec"]["replicas"] = rollout["spec"].get("replicas", 1)
            self.store.create(rs_type, meta["namespace"], new)
        elif revision > top:
            new = copy.deepcopy(current[0])
            new["metadata"]["annotations"][ROLLOUT_REVISION_ANNOTATION] = str(revision)
            self.store.update(rs_type, current[0], new, keep_generation=True)
        meta.setdefault("annotations", {})[ROLLOUT_REVISION_ANNOTATION] = str(revision)

    # -- cert-manager.io/v1 Certificate and Issuer --------------------------------------------

    def _certificate(self, rt: ResourceType, key: Key, obj: Json) -> Json | None:
        status: Json = copy.deepcopy(obj.get("status") or {})
        conditions: list[Json] = status.get("conditions") or []
        if not conditions and "revision" not in status and key not in self._stuck:
            # A new Certificate (created through the API): cert-manager's trigger starts
            # the first issuance.
            generation, now = obj["metadata"].get("generation", 1), self.store.now()
            status["conditions"] = [
                _cm_condition(type_, value, "DoesNotExist", CERT_DOES_NOT_EXIST, now, generation)
                for type_, value in (("Ready", "False"), ("Issuing", "True"))
            ]
            return status
        issuing = any(c.get("type") == "Issuing" and c.get("status") == "True" for c in conditions)
        if not issuing or key in self._stuck:
            return None
        moment = self.store.clock()
        now = rfc3339(moment)
        generation = obj["metadata"].get("generation", 1)
        status["conditions"] = [c for c in conditions if c.get("type") not in ("Issuing", "Ready")]
        status["conditions"].append(
            _cm_condition(
                "Ready",
                "True",
                "Ready",
                "Certificate is up to date and has not expired",
                now,
                generation,
            )
        )
        status["revision"] = int(status.get("revision") or 0) + 1
        status["notBefore"] = now
        status["notAfter"] = rfc3339(moment + timedelta(days=90))
        status["renewalTime"] = rfc3339(moment + timedelta(days=60))
        status.pop("lastFailureTime", None)
        status.pop("failedIssuanceAttempts", None)
        return status

    def _issuer(self, rt: ResourceType, key: Key, obj: Json) -> Json | None:
        """Any new Issuer becomes Ready (a selfSigned one does at once in cert-manager)."""
        if obj.get("status"):
            return None
        generation, now = obj["metadata"].get("generation", 1), self.store.now()
        return {"conditions": [_cm_condition("Ready", "True", "IsReady", "", now, generation)]}


def _revision(rs: Json) -> int:
    value = str((rs["metadata"].get("annotations") or {}).get(ROLLOUT_REVISION_ANNOTATION, 0))
    return int(value) if value.isdigit() else 0


def _labels(obj: Json) -> dict[str, str]:
    return obj["metadata"].get("labels") or {}


def _cm_condition(
    type_: str, value: str, reason: str, message: str, now: str, generation: int
) -> Json:
    """A cert-manager condition (it records the generation it observed)."""
    return {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now,
        "observedGeneration": generation,
    }


def _set_condition(
    status: Json, type_: str, value: str, reason: str, message: str, now: str
) -> None:
    conditions: list[Json] = status.setdefault("conditions", [])
    for condition in conditions:
        if condition.get("type") == type_:
            if condition.get("status") != value:
                condition["lastTransitionTime"] = now
            condition.update(status=value, reason=reason, message=message, lastUpdateTime=now)
            return
    conditions.append(
        {
            "type": type_,
            "status": value,
            "reason": reason,
            "message": message,
            "lastTransitionTime": now,
            "lastUpdateTime": now,
        }
    )


def _rs_name(obj: Json) -> str:
    template = (obj.get("spec") or {}).get("template")
    return f"{obj['metadata']['name']}-{pod_template_hash(template)}"
