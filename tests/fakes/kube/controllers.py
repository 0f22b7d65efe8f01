"""Simulated controllers: just enough of the Deployment/StatefulSet/DaemonSet, Argo Rollouts
and cert-manager controllers for remediation actions to observe progress.

Each :meth:`Controllers.reconcile_once` call advances every object by at most one step; the
fake runs it every ``tick`` seconds on its own event loop. Controllers only react to changes
(a new ``metadata.generation``, an abort flag, an ``Issuing`` condition, a new generation
of the workload a Rollout's ``workloadRef`` names): a status a test seeded stays as it was
until something triggers the controller.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from .objects import (
    ROLLOUT_REVISION_ANNOTATION,
    WORKLOAD_GENERATION_ANNOTATION,
    WORKLOAD_TEMPLATE_PATHS,
    pod_template_hash,
    workload_template,
)
from .resources import ResourceRegistry, ResourceType
from .selectors import format_label_selector
from .store import Json, Key, Store, key_of, meta, rfc3339

Reconciler = Callable[[ResourceType, Key, Json], Json | None]


class Controllers:
    def __init__(
        self, store: Store, registry: ResourceRegistry, *, daemonset_nodes: int = 3
    ) -> None:
        self.store = store
        self.registry = registry
        self.daemonset_nodes = daemonset_nodes
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
                new_status = reconcile(rt, key, obj)
                if new_status is not None and new_status != obj.get("status"):
                    new = copy.deepcopy(obj)
                    new["status"] = new_status
                    self.store.update(rt, obj, new, keep_generation=True)
                    writes += 1
        return writes

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

    # -- cert-manager.io/v1 Certificate -------------------------------------------------------

    def _certificate(self, rt: ResourceType, key: Key, obj: Json) -> Json | None:
        status: Json = copy.deepcopy(obj.get("status") or {})
        conditions: list[Json] = status.get("conditions") or []
        issuing = any(c.get("type") == "Issuing" and c.get("status") == "True" for c in conditions)
        if not issuing or key in self._stuck:
            return None
        moment = self.store.clock()
        now = rfc3339(moment)
        generation = obj["metadata"].get("generation", 1)
        status["conditions"] = [c for c in conditions if c.get("type") not in ("Issuing", "Ready")]
        status["conditions"].append(
            {
                "type": "Ready",
                "status": "True",
                "reason": "Ready",
                "message": "Certificate is up to date and has not expired",
                "lastTransitionTime": now,
                "observedGeneration": generation,
            }
        )
        status["revision"] = int(status.get("revision") or 0) + 1
        status["notBefore"] = now
        status["notAfter"] = rfc3339(moment + timedelta(days=90))
        status["renewalTime"] = rfc3339(moment + timedelta(days=60))
        status.pop("lastFailureTime", None)
        status.pop("failedIssuanceAttempts", None)
        return status


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
