"""What a kubelet, the Job controller, the namespace controller and the garbage collector
do to objects, so a client that creates them through the API sees them run and finish.

Like :mod:`.controllers`, each part acts only on what arrives through the API in its
initial state (or on what it started itself), so seeded objects keep the status a test
gave them:

- kubelet: a pod created through the API (``phase: Pending``, no ``startTime``) is bound
  to ``fake-node-1`` and runs (Running, Ready). Its containers run "programs": one whose
  command is ``sh -c 'exit N'`` exits with N, any other keeps running. When every
  container exited and ``restartPolicy`` is ``Never`` (or ``OnFailure`` and all exited
  0), the pod ends ``Succeeded`` (all 0) or ``Failed``. Restarts are not simulated.
- Job controller: a Job created through the API (no ``status.startTime``) gets one pod at
  a time (``{job}-xxxxx``: the template plus the job labels and a controller
  ownerReference). A pod that succeeds completes the Job (``SuccessCriteriaMet`` and
  ``Complete``, ``completionTime``); more failed pods than ``spec.backoffLimit``
  (default 6) fail it (``FailureTarget`` and ``Failed``, ``BackoffLimitExceeded``).
  Completions and parallelism other than 1 are not simulated.
- namespace controller: a deleted Namespace (``Terminating``) loses everything in it,
  then goes away itself.
- garbage collector (only with ``dependents``, as it deletes seeded objects too): an
  object whose owners are all gone is deleted (Background and Foreground propagation
  alike); an owner deleted with Orphan propagation (the default for batch/v1 Jobs) leaves
  its dependents, minus the ownerReference.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from . import status as st
from .api import KubeApi
from .objects import container_id, owner_reference
from .resources import ResourceType
from .store import Json

NODE = "fake-node-1"
HOST_IP = "172.18.0.2"
EXIT = re.compile(r"\s*exit\s+(\d+)\s*;?\s*")
POD_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady")
JOB_LABELS = ("batch.kubernetes.io/controller-uid", "batch.kubernetes.io/job-name")
JOB_DONE = "Reached expected number of succeeded pods"
JOB_FAILED = "Job has reached the specified backoff limit"


class Lifecycle:
    def __init__(self, api: KubeApi, *, dependents: bool) -> None:
        self.api = api
        self.store = api.store
        self.dependents = dependents
        self._jobs: set[str] = set()  # uids of the Jobs this controller runs

    def step(self) -> int:
        """Advance every object by at most one step; return how many writes it took."""
        pods, jobs, namespaces = (
            self._type("v1", "pods"),
            self._type("batch/v1", "jobs"),
            self._type("v1", "namespaces"),
        )
        writes = self._namespaces(namespaces) if namespaces else 0
        if pods:
            writes += self._kubelet(pods)
            if jobs:
                writes += self._job_controller(jobs, pods)
        if self.dependents:
            writes += self._collect_garbage()
        return writes

    def _type(self, api_version: str, plural: str) -> ResourceType | None:
        try:
            return self.api.registry.resolve(api_version, plural)
        except KeyError:  # a fake built without this kind
            return None

    # -- namespaces ---------------------------------------------------------------------------

    def _namespaces(self, namespaces: ResourceType) -> int:
        writes = 0
        for ns in self.store.list(namespaces):
            if ns["metadata"].get("deletionTimestamp"):
                writes += self.store.purge_namespace(ns["metadata"]["name"])
                self.store.delete(namespaces, "", ns["metadata"]["name"])
                writes += 1
        return writes

    # -- kubelet ------------------------------------------------------------------------------

    def _kubelet(self, pods: ResourceType) -> int:
        writes = 0
        for pod in self.store.list(pods):
            status = pod.get("status") or {}
            new: Json | None = None
            if status.get("phase") == "Pending" and not status.get("startTime"):
                new = self._start(pod) if not status.get("containerStatuses") else None
            elif status.get("phase") == "Running":
                new = self._finish(pod)
            if new is not None:
                self.store.update(pods, pod, new, keep_generation=True)
                writes += 1
        return writes

    def _start(self, pod: Json) -> Json:
        now, meta = self.store.now(), pod["metadata"]
        new = copy.deepcopy(pod)
        spec = new.setdefault("spec", {})
        spec.setdefault("nodeName", NODE)
        pod_ip = f"10.244.0.{int(meta['uid'][:2], 16) % 250 + 2}"
        new["status"] = {
            "phase": "Running",
            "conditions": [_condition(t, "True", now) for t in (*POD_CONDITIONS, "PodScheduled")],
            "hostIP": HOST_IP,
            "hostIPs": [{"ip": HOST_IP}],
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": now,
            "qosClass": (pod.get("status") or {}).get("qosClass", "BestEffort"),
            "containerStatuses": [
                {
                    "name": c["name"],
                    "image": c.get("image", ""),
                    "imageID": "",
                    "containerID": container_id(meta["namespace"], meta["name"], c["name"], 0),
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": now}},
                }
                for c in spec.get("containers") or []
            ],
        }
        return new

    def _finish(self, pod: Json) -> Json | None:
        """The pod after all its containers exited, or None while one still runs."""
        spec = pod.get("spec") or {}
        codes = [exit_code(c) for c in spec.get("containers") or []]
        if not codes or None in codes:
            return None
        policy = spec.get("restartPolicy", "Always")
        if not (policy == "Never" or (policy == "OnFailure" and not any(codes))):
            return None  # the kubelet would restart it
        now = self.store.now()
        new = copy.deepcopy(pod)
        status = new["status"]
        status["phase"] = "Failed" if any(codes) else "Succeeded"
        for cs, code in zip(status.get("containerStatuses") or [], codes, strict=False):
            started = (cs.get("state") or {}).get("running", {}).get("startedAt", now)
            terminated = {
                "exitCode": code,
                "reason": "Error" if code else "Completed",
                "startedAt": started,
                "finishedAt": now,
                "containerID": cs.get("containerID", ""),
            }
            cs.update(ready=False, started=False, state={"terminated": terminated})
        for condition in status.get("conditions") or []:
            if condition["type"] in ("Ready", "ContainersReady"):
                condition.update(status="False", reason="PodCompleted", lastTransitionTime=now)
        return new

    # -- Job controller -----------------------------------------------------------------------

    def _job_controller(self, jobs: ResourceType, pods: ResourceType) -> int:
        writes = 0
        for job in self.store.list(jobs):
            uid, status = job["metadata"]["uid"], job.get("status") or {}
            if uid not in self._jobs:
                if status.get("startTime") or status.get("conditions"):
                    continue  # seeded, or finished: not this controller's
                self._jobs.add(uid)
            new_status = self._job_status(job, pods)
            if new_status != status:
                self.store.update(jobs, job, {**job, "status": new_status}, keep_generation=True)
                writes += 1
        return writes

    def _job_status(self, job: Json, pods: ResourceType) -> Json:
        meta, spec = job["metadata"], job.get("spec") or {}
        owned = [
            p
            for p in self.store.list(pods, meta["namespace"])
            if any(
                ref.get("uid") == meta["uid"] and ref.get("controller")
                for ref in p["metadata"].get("ownerReferences") or []
            )
        ]
        phases = [(p.get("status") or {}).get("phase") for p in owned]
        succeeded, failed = phases.count("Succeeded"), phases.count("Failed")
        active = len(phases) - succeeded - failed
        now = self.store.now()
        status: Json = copy.deepcopy(job.get("status") or {})
        status.setdefault("startTime", now)
        status.update(ready=sum(map(_ready, owned)), terminating=0, uncountedTerminatedPods={})
        if succeeded:
            status["conditions"] = [
                _condition(t, "True", now, "CompletionsReached", JOB_DONE, probed=now)
                for t in ("SuccessCriteriaMet", "Complete")
            ]
            status["completionTime"] = now
        elif failed > spec.get("backoffLimit", 6):
            status["conditions"] = [
                _condition(t, "True", now, "BackoffLimitExceeded", JOB_FAILED, probed=now)
                for t in ("FailureTarget", "Failed")
            ]
        elif not active and self._run_pod(job, pods):
            active = 1
        if status.get("conditions"):
            self._jobs.discard(meta["uid"])
        for field, count in (("active", active), ("succeeded", succeeded), ("failed", failed)):
            if count:
                status[field] = count
            else:
                status.pop(field, None)
        return status

    def _run_pod(self, job: Json, pods: ResourceType) -> bool:
        meta = job["metadata"]
        template = copy.deepcopy((job.get("spec") or {}).get("template") or {})
        labels = (template.get("metadata") or {}).get("labels") or {}
        for key in (*JOB_LABELS, "controller-uid", "job-name"):
            labels[key] = meta["uid"] if key.endswith("controller-uid") else meta["name"]
        pod: Json = {
            "metadata": {
                "generateName": f"{meta['name']}-",
                "labels": labels,
                "ownerReferences": [owner_reference(job)],
            },
            "spec": template.get("spec") or {},
        }
        try:
            self.api.create(pods, "v1", meta["namespace"], pod, dry_run=False)
        except st.KubeError:  # e.g. the namespace is terminating; the real one retries too
            return False
        return True

    # -- garbage collector --------------------------------------------------------------------

    def _collect_garbage(self) -> int:
        uids, orphaned, writes = self.store.uids(), self.api.orphaned, 0
        for rt in self.api.registry:
            for obj in self.store.list(rt):
                meta = obj["metadata"]
                refs: list[Any] = meta.get("ownerReferences") or []
                if not refs:
                    continue
                kept = [r for r in refs if r.get("uid") not in orphaned]
                if len(kept) < len(refs):
                    new = copy.deepcopy(obj)
                    if kept:
                        new["metadata"]["ownerReferences"] = kept
                    else:
                        del new["metadata"]["ownerReferences"]
                    self.store.update(rt, obj, new, keep_generation=True)
                elif not any(r.get("uid") in uids for r in refs):
                    self.store.delete(rt, meta.get("namespace", ""), meta["name"])
                else:
                    continue
                writes += 1
        return writes


def exit_code(container: Json) -> int | None:
    """N for a container running ``sh -c 'exit N'``; None for any other program."""
    argv = [*(container.get("command") or []), *(container.get("args") or [])]
    if len(argv) != 3 or argv[0] not in ("sh", "/bin/sh") or argv[1] != "-c":
        return None
    match = EXIT.fullmatch(argv[2])
    return int(match[1]) if match else None


def _ready(pod: Json) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _condition(
    type_: str, value: str, now: str, reason: str = "", message: str = "", probed: str | None = None
) -> Json:
    condition: Json = {"type": type_, "status": value, "lastProbeTime": probed}
    condition["lastTransitionTime"] = now
    if reason:
        condition.update(reason=reason, message=message)
    return condition
