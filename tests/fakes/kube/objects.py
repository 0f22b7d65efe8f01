"""Builders for realistic seed objects (plain dicts, already in a settled, healthy state).

Every builder sets a deterministic ``metadata.uid`` (uuid5 of apiVersion/kind/namespace/name)
so owner references can be built before the owner is added to the fake; ``FakeKube.add``
keeps a provided uid, creationTimestamp and generation.
"""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from .selectors import format_label_selector
from .store import rfc3339

Json = dict[str, Any]

ROLLOUT_HASH_LABEL = "rollouts-pod-template-hash"
DEPLOYMENT_HASH_LABEL = "pod-template-hash"
ROLLOUT_REVISION_ANNOTATION = "rollout.argoproj.io/revision"
WORKLOAD_GENERATION_ANNOTATION = "rollout.argoproj.io/workload-generation"
DEPLOYMENT_REVISION_ANNOTATION = "deployment.kubernetes.io/revision"

#: A fixed, recent default for timestamps in seeded objects.
SEED_TIME = datetime(2025, 5, 1, 9, 0, tzinfo=UTC)

_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery rand.SafeEncodeString


def stable_uid(api_version: str, kind: str, namespace: str, name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"fake-kube:{api_version}/{kind}/{namespace}/{name}"))


def pod_template_hash(template: Json | None) -> str:
    """A 10-character, k8s-looking hash of a pod template, ignoring the hash labels."""
    stripped = copy.deepcopy(template or {})
    labels = (stripped.get("metadata") or {}).get("labels") or {}
    labels.pop(ROLLOUT_HASH_LABEL, None)
    labels.pop(DEPLOYMENT_HASH_LABEL, None)
    digest = hashlib.sha256(json.dumps(stripped, sort_keys=True).encode()).digest()
    return "".join(_SAFE_ALPHABET[b % len(_SAFE_ALPHABET)] for b in digest[:10])


def _metadata(
    api_version: str,
    kind: str,
    name: str,
    namespace: str,
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    created: datetime | None = None,
) -> Json:
    metadata: Json = {
        "name": name,
        "namespace": namespace,
        "uid": stable_uid(api_version, kind, namespace, name),
        "creationTimestamp": rfc3339(created or SEED_TIME),
        "generation": 1,
    }
    if labels:
        metadata["labels"] = dict(labels)
    if annotations:
        metadata["annotations"] = dict(annotations)
    return metadata


def owner_reference(owner: Json, *, controller: bool = True) -> Json:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def pod_template(labels: dict[str, str], image: str, container: str) -> Json:
    return {
        "metadata": {"labels": dict(labels)},
        "spec": {
            "containers": [
                {
                    "name": container,
                    "image": image,
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                }
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
        },
    }


def _condition(
    type_: str, status: str, reason: str, message: str, at: datetime = SEED_TIME
) -> Json:
    stamp = rfc3339(at)
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": stamp,
        "lastUpdateTime": stamp,
    }


# -- apps/v1 ------------------------------------------------------------------------------------


def deployment(
    name: str,
    namespace: str = "default",
    replicas: int = 3,
    labels: dict[str, str] | None = None,
    *,
    image: str = "registry.example.com/app:1.0.0",
    annotations: dict[str, str] | None = None,
    template_annotations: dict[str, str] | None = None,
    paused: bool = False,
    ready: int | None = None,
) -> Json:
    labels = labels or {"app": name}
    template = pod_template(labels, image, name)
    if template_annotations:
        template["metadata"]["annotations"] = dict(template_annotations)
    ready = replicas if ready is None else ready
    spec: Json = {
        "replicas": replicas,
        "selector": {"matchLabels": dict(labels)},
        "template": template,
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
        },
        "revisionHistoryLimit": 10,
        "progressDeadlineSeconds": 600,
    }
    if paused:
        spec["paused"] = True
    available = ready >= replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(
            "apps/v1",
            "Deployment",
            name,
            namespace,
            labels=labels,
            annotations={DEPLOYMENT_REVISION_ANNOTATION: "1", **(annotations or {})},
        ),
        "spec": spec,
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            **({"unavailableReplicas": replicas - ready} if ready < replicas else {}),
            "conditions": [
                _condition(
                    "Available",
                    "True" if available else "False",
                    "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                    "Deployment has minimum availability."
                    if available
                    else "Deployment does not have minimum availability.",
                ),
                _condition(
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    f'ReplicaSet "{name}-{pod_template_hash(template)}" has successfully '
                    "progressed.",
                ),
            ],
        },
    }


def statefulset(
    name: str,
    namespace: str = "default",
    replicas: int = 3,
    labels: dict[str, str] | None = None,
    *,
    image: str = "registry.example.com/db:1.0.0",
    ready: int | None = None,
) -> Json:
    labels = labels or {"app": name}
    template = pod_template(labels, image, name)
    ready = replicas if ready is None else ready
    revision = f"{name}-{pod_template_hash(template)}"
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _metadata("apps/v1", "StatefulSet", name, namespace, labels=labels),
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": dict(labels)},
            "template": template,
            "podManagementPolicy": "OrderedReady",
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "revisionHistoryLimit": 10,
        },
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "readyReplicas": ready,
            "currentReplicas": replicas,
            "updatedReplicas": replicas,
            "availableReplicas": ready,
            "currentRevision": revision,
            "updateRevision": revision,
            "collisionCount": 0,
        },
    }


def daemonset(
    name: str,
    namespace: str = "default",
    labels: dict[str, str] | None = None,
    *,
    image: str = "registry.example.com/agent:1.0.0",
    nodes: int = 3,
) -> Json:
    labels = labels or {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": _metadata("apps/v1", "DaemonSet", name, namespace, labels=labels),
        "spec": {
            "selector": {"matchLabels": dict(labels)},
            "template": pod_template(labels, image, name),
            "updateStrategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
            },
            "revisionHistoryLimit": 10,
        },
        "status": {
            "observedGeneration": 1,
            "desiredNumberScheduled": nodes,
            "currentNumberScheduled": nodes,
            "updatedNumberScheduled": nodes,
            "numberAvailable": nodes,
            "numberReady": nodes,
            "numberMisscheduled": 0,
        },
    }


def replicaset(
    name: str,
    namespace: str = "default",
    *,
    owner: Json | None,
    revision: int = 1,
    template: Json | None = None,
    image: str | None = None,
    replicas: int = 0,
) -> Json:
    """A ReplicaSet controlled by ``owner`` (a Rollout or Deployment dict), or a standalone
    one (``owner=None``, e.g. the target of a Rollout's workloadRef).

    The template defaults to the owner's ``spec.template`` (with ``image`` swapped in for
    every container if given). An owned ReplicaSet carries the owner's revision annotation
    and hash label (``rollouts-pod-template-hash`` for Rollouts, ``pod-template-hash`` for
    Deployments) in its template, labels and selector; a standalone one neither.
    """
    template = copy.deepcopy(
        template if template is not None else (owner or {}).get("spec", {}).get("template") or {}
    )
    if image is not None:
        for container in template.get("spec", {}).get("containers", []):
            container["image"] = image
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    selector = copy.deepcopy(
        (owner or {}).get("spec", {}).get("selector") or {"matchLabels": dict(labels)}
    )
    annotations: dict[str, str] = {}
    if owner is not None:
        is_rollout = owner["kind"] == "Rollout"
        hash_label = ROLLOUT_HASH_LABEL if is_rollout else DEPLOYMENT_HASH_LABEL
        template_hash = pod_template_hash(template)
        labels[hash_label] = template_hash
        selector.setdefault("matchLabels", {})[hash_label] = template_hash
        revision_key = ROLLOUT_REVISION_ANNOTATION if is_rollout else DEPLOYMENT_REVISION_ANNOTATION
        annotations[revision_key] = str(revision)
    metadata = _metadata(
        "apps/v1", "ReplicaSet", name, namespace, labels=labels, annotations=annotations
    )
    if owner is not None:
        metadata["ownerReferences"] = [owner_reference(owner)]
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": metadata,
        "spec": {"replicas": replicas, "selector": selector, "template": template},
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "fullyLabeledReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
        },
    }


# -- argoproj.io/v1alpha1 -----------------------------------------------------------------------


#: Where Argo reads the pod template of each kind a workloadRef may name (templateref.go).
WORKLOAD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "PodTemplate": ("template",),
}


def workload_ref(workload: Json) -> Json:
    """A Rollout's ``spec.workloadRef`` naming ``workload``."""
    return {
        "apiVersion": workload["apiVersion"],
        "kind": workload["kind"],
        "name": workload["metadata"]["name"],
    }


def workload_template(workload: Json) -> Json | None:
    """The pod template Argo resolves from ``workload``; None for a kind it does not support."""
    path = WORKLOAD_TEMPLATE_PATHS.get(workload.get("kind", ""))
    node: Any = workload if path else None
    for key in path or ():
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def rollout(
    name: str,
    namespace: str = "default",
    replicas: int = 3,
    labels: dict[str, str] | None = None,
    *,
    image: str = "registry.example.com/app:1.0.0",
    workload: Json | None = None,
    revision: int = 1,
    phase: str = "Healthy",
    paused: bool = False,
    canary_steps: list[Json] | None = None,
) -> Json:
    """A canary Rollout. With ``workload`` (a Deployment, ReplicaSet or PodTemplate dict)
    the spec has a ``workloadRef`` to it instead of a template, and the Rollout is settled
    on that workload's template and generation (as Argo's ``rollout/templateref.go`` and
    ``sync.go`` leave it)."""
    labels = labels or {"app": name}
    spec: Json = {
        "replicas": replicas,
        "selector": {"matchLabels": dict(labels)},
        "revisionHistoryLimit": 10,
        "strategy": {
            "canary": {"steps": canary_steps or [{"setWeight": 20}, {"pause": {"duration": "1m"}}]}
        },
    }
    annotations = {ROLLOUT_REVISION_ANNOTATION: str(revision)}
    settled: Json = {}
    if workload is not None:
        ref = workload_ref(workload)
        spec["workloadRef"] = ref
        pod_hash = pod_template_hash(workload_template(workload) or {"workloadRef": ref})
        generation = str(workload["metadata"].get("generation", 1))
        annotations[WORKLOAD_GENERATION_ANNOTATION] = generation
        settled["workloadObservedGeneration"] = generation
    else:
        spec["template"] = pod_template(labels, image, name)
        pod_hash = pod_template_hash(spec["template"])
    if paused:
        spec["paused"] = True
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": _metadata(
            "argoproj.io/v1alpha1",
            "Rollout",
            name,
            namespace,
            labels=labels,
            annotations=annotations,
        ),
        "spec": spec,
        "status": {
            **settled,
            "observedGeneration": "1",
            "phase": phase,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "HPAReplicas": replicas,
            "selector": format_label_selector(spec["selector"]),
            "currentPodHash": pod_hash,
            "stableRS": pod_hash,
            "currentStepIndex": len(spec["strategy"]["canary"]["steps"]),
            "canary": {},
            "conditions": [
                _condition(
                    "Available", "True", "AvailableReason", "Rollout has minimum availability"
                ),
                _condition("Healthy", "True", "RolloutHealthy", "Rollout is healthy"),
            ],
        },
    }


# -- core/v1, batch/v1 --------------------------------------------------------------------------


def podtemplate(name: str, namespace: str = "default", *, template: Json) -> Json:
    """A core/v1 PodTemplate: its pod template sits at ``template``, not ``spec.template``."""
    return {
        "apiVersion": "v1",
        "kind": "PodTemplate",
        "metadata": _metadata("v1", "PodTemplate", name, namespace),
        "template": copy.deepcopy(template),
    }


_DEFAULT_EXIT_CODES = {"OOMKilled": 137, "Completed": 0, "ContainerCannotRun": 128}


def container_id(namespace: str, pod_name: str, container: str, instance: int) -> str:
    """A deterministic ``containerd://<64 hex>`` id for one run of a container."""
    digest = hashlib.sha256(f"{namespace}/{pod_name}/{container}/{instance}".encode()).hexdigest()
    return f"containerd://{digest}"


def pod(
    name: str,
    namespace: str = "default",
    phase: str = "Running",
    reason: str | None = None,
    labels: dict[str, str] | None = None,
    created: datetime | None = None,
    *,
    owner: Json | None = None,
    image: str = "registry.example.com/app:1.0.0",
    node: str = "node-1",
    restarts: int = 0,
    waiting_reason: str | None = None,
    container: str = "app",
    containers: list[str] | None = None,
    failing_container: str | None = None,
    ready: bool | None = None,
    last_terminated_reason: str | None = None,
    last_exit_code: int | None = None,
    last_finished_at: datetime | None = None,
    limits: dict[str, str] | None = None,
    requests: dict[str, str] | None = None,
) -> Json:
    """A Pod. ``reason`` is the pod-level ``status.reason`` (e.g. ``Evicted``).

    ``containers`` names the containers (default ``[container]``). The *failing* container
    (``failing_container``, default the first) carries ``restarts``, ``waiting_reason``
    (``state.waiting``, e.g. ``CrashLoopBackOff``), ``ready`` (default: running and not
    waiting) and, if ``last_terminated_reason`` or ``last_exit_code`` is given,
    ``lastState.terminated`` (``reason`` default ``Error``/``Completed`` by exit code; exit
    code default 137 for ``OOMKilled``, 0 for ``Completed``, else 1; ``finishedAt`` default
    ``created + 5m``). The other containers are healthy for the phase. ``limits`` /
    ``requests`` go into every container's ``resources`` (requests default to limits, as the
    API server defaults them) and set ``status.qosClass``.

    A crash-looping, OOM-killed pod::

        pod("web-1", "prod", restarts=7, waiting_reason="CrashLoopBackOff",
            last_terminated_reason="OOMKilled", limits={"memory": "256Mi"})
    """
    created = created or SEED_TIME
    metadata = _metadata(
        "v1", "Pod", name, namespace, labels=labels or {"app": name}, created=created
    )
    if owner is not None:
        metadata["ownerReferences"] = [owner_reference(owner)]
    names = list(containers) if containers else [container]
    failing = failing_container or names[0]
    if failing not in names:
        raise ValueError(f"failing_container {failing!r} is not one of {names}")
    healthy_state = _container_state(phase, None, created)
    statuses: list[Json] = []
    for cname in names:
        is_failing = cname == failing
        state = _container_state(phase, waiting_reason, created) if is_failing else healthy_state
        is_running = "running" in state
        cs: Json = {
            "name": cname,
            "image": image,
            "imageID": "",
            "ready": (ready if ready is not None else is_running) if is_failing else is_running,
            "started": is_running,
            "restartCount": restarts if is_failing else 0,
            "state": copy.deepcopy(state),
        }
        if is_failing and (last_terminated_reason is not None or last_exit_code is not None):
            code = last_exit_code
            if code is None:
                code = _DEFAULT_EXIT_CODES.get(last_terminated_reason or "", 1)
            finished = last_finished_at or created + timedelta(minutes=5)
            cs["lastState"] = {
                "terminated": {
                    "exitCode": code,
                    "reason": last_terminated_reason or ("Completed" if code == 0 else "Error"),
                    "startedAt": rfc3339(finished - timedelta(seconds=30)),
                    "finishedAt": rfc3339(finished),
                    "containerID": container_id(namespace, name, cname, max(restarts - 1, 0)),
                }
            }
        statuses.append(cs)
    all_ready = all(cs["ready"] for cs in statuses)
    status: Json = {
        "phase": phase,
        "conditions": [
            {
                "type": "Ready",
                "status": "True" if all_ready else "False",
                "lastTransitionTime": rfc3339(created),
            }
        ],
        "startTime": rfc3339(created),
        "containerStatuses": statuses,
    }
    if reason is not None:
        status["reason"] = reason
        status["message"] = f"Pod {reason.lower()}"
    spec_containers: list[Json] = []
    for cname in names:
        spec_container: Json = {"name": cname, "image": image}
        if limits or requests:
            resources: Json = {}
            if limits:
                resources["limits"] = dict(limits)
            resources["requests"] = {**(limits or {}), **(requests or {})}
            spec_container["resources"] = resources
        spec_containers.append(spec_container)
    if limits or requests:
        status["qosClass"] = _qos_class(spec_containers)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "nodeName": node,
            "restartPolicy": "Always",
            "containers": spec_containers,
        },
        "status": status,
    }


def _container_state(phase: str, waiting_reason: str | None, created: datetime) -> Json:
    if waiting_reason:
        return {"waiting": {"reason": waiting_reason, "message": f"container is {waiting_reason}"}}
    if phase in ("Succeeded", "Failed"):
        code = 0 if phase == "Succeeded" else 1
        return {
            "terminated": {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": rfc3339(created),
                "finishedAt": rfc3339(created + timedelta(minutes=1)),
            }
        }
    if phase == "Running":
        return {"running": {"startedAt": rfc3339(created)}}
    return {"waiting": {"reason": "ContainerCreating"}}


def _qos_class(spec_containers: list[Json]) -> str:
    """Guaranteed when every container's cpu and memory requests equal its limits."""
    for c in spec_containers:
        resources = c.get("resources") or {}
        limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
        if any(limits.get(r) is None or limits[r] != requests.get(r) for r in ("cpu", "memory")):
            return "Burstable"
    return "Guaranteed"


def job(
    name: str,
    namespace: str = "default",
    finished: bool = True,
    completion_time: datetime | None = None,
    labels: dict[str, str] | None = None,
    *,
    failed: bool = False,
    created: datetime | None = None,
    image: str = "registry.example.com/job:1.0.0",
) -> Json:
    created = created or SEED_TIME
    labels = labels or {"job-name": name}
    status: Json = {"startTime": rfc3339(created)}
    if finished:
        done = completion_time or created + timedelta(minutes=5)
        condition_type = "Failed" if failed else "Complete"
        status["conditions"] = [
            {
                "type": condition_type,
                "status": "True",
                "lastProbeTime": rfc3339(done),
                "lastTransitionTime": rfc3339(done),
                **({"reason": "BackoffLimitExceeded"} if failed else {}),
            }
        ]
        if failed:
            status["failed"] = 1
        else:
            status["succeeded"] = 1
            status["completionTime"] = rfc3339(done)
    else:
        status["active"] = 1
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata("batch/v1", "Job", name, namespace, labels=labels, created=created),
        "spec": {
            "backoffLimit": 6,
            "completions": 1,
            "parallelism": 1,
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "containers": [{"name": name, "image": image}],
                    "restartPolicy": "Never",
                },
            },
        },
        "status": status,
    }


#: apiVersion of an involved object given only by kind (``involved={"kind": ..., "name": ...}``).
EVENT_API_VERSIONS = {
    "Pod": "v1",
    "Node": "v1",
    "Service": "v1",
    "ConfigMap": "v1",
    "PersistentVolumeClaim": "v1",
    "Deployment": "apps/v1",
    "ReplicaSet": "apps/v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "Job": "batch/v1",
    "CronJob": "batch/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "PodDisruptionBudget": "policy/v1",
    "Rollout": "argoproj.io/v1alpha1",
    "Certificate": "cert-manager.io/v1",
}

#: ``source.component`` of the controller that reports events about a kind.
EVENT_COMPONENTS = {
    "Pod": "kubelet",
    "Node": "kubelet",
    "Deployment": "deployment-controller",
    "ReplicaSet": "replicaset-controller",
    "StatefulSet": "statefulset-controller",
    "DaemonSet": "daemonset-controller",
    "Job": "job-controller",
    "CronJob": "cronjob-controller",
    "HorizontalPodAutoscaler": "horizontal-pod-autoscaler",
    "PodDisruptionBudget": "controllermanager",
    "Rollout": "rollouts-controller",
    "Certificate": "cert-manager-certificates-issuing",
}
_SCHEDULER_REASONS = frozenset({"Scheduled", "FailedScheduling", "Preempted"})


def event(
    name: str,
    namespace: str = "default",
    *,
    involved: Json,
    reason: str,
    message: str,
    type: str = "Normal",
    count: int = 1,
    last_timestamp: datetime | None = None,
    first_timestamp: datetime | None = None,
    component: str | None = None,
    host: str | None = None,
) -> Json:
    """A core/v1 Event, as the classic event recorder writes it.

    ``involved`` is the involved object's JSON (e.g. a :func:`pod`) or a reference with at
    least ``kind`` and ``name`` (``namespace`` defaults to the event's, ``apiVersion`` to
    the kind's usual one, ``uid`` to the :func:`stable_uid` the builders use; ``fieldPath``
    is kept). ``name`` is used as is if it contains a dot, else as the prefix of a
    recorder-style name ``<name>.<16 hex digits>`` (``web-1.1839d5b2a4c0f7e1``), unique per
    (first timestamp, reason, message). ``last_timestamp`` defaults to :data:`SEED_TIME`,
    ``first_timestamp`` to ``count - 1`` minutes before it. ``component`` (``source``)
    defaults by kind (``kubelet`` for pods, ``default-scheduler`` for scheduling reasons,
    ``deployment-controller``, ...); ``host`` (kubelet events only) defaults to the pod's
    ``spec.nodeName`` or ``node-1``.
    """
    if type not in ("Normal", "Warning"):
        raise ValueError(f"event type must be Normal or Warning, not {type!r}")
    if count < 1:
        raise ValueError("event count must be at least 1")
    ref = _involved_reference(involved, namespace)
    kind = ref["kind"]
    last = last_timestamp or SEED_TIME
    first = first_timestamp or last - timedelta(minutes=count - 1)
    if component is None:
        component = "default-scheduler" if reason in _SCHEDULER_REASONS else None
        component = component or EVENT_COMPONENTS.get(kind, "controllermanager")
    source: Json = {"component": component}
    if component == "kubelet":
        node = ((involved.get("spec") or {}).get("nodeName")) if "metadata" in involved else None
        source["host"] = host or node or "node-1"
    elif host:
        source["host"] = host
    if "." not in name:
        digest = hashlib.sha256(f"{reason}|{message}|{type}|{kind}".encode()).digest()
        nanos = int(first.timestamp()) * 1_000_000_000 + int.from_bytes(digest[:4]) % 10**9
        name = f"{name}.{nanos:x}"
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": stable_uid("v1", "Event", namespace, name),
            "creationTimestamp": rfc3339(first),
        },
        "involvedObject": ref,
        "reason": reason,
        "message": message,
        "source": source,
        "firstTimestamp": rfc3339(first),
        "lastTimestamp": rfc3339(last),
        "count": count,
        "type": type,
        "eventTime": None,
        "reportingComponent": component,
        "reportingInstance": source.get("host", ""),
    }


def _involved_reference(involved: Json, namespace: str) -> Json:
    if "metadata" in involved:  # a whole object
        metadata = involved["metadata"]
        kind, name = involved["kind"], metadata["name"]
        ns = metadata.get("namespace", namespace)
        api_version = involved.get("apiVersion") or EVENT_API_VERSIONS.get(kind, "v1")
        uid = metadata.get("uid") or stable_uid(api_version, kind, ns, name)
        resource_version, field_path = metadata.get("resourceVersion"), None
    else:
        if "kind" not in involved or "name" not in involved:
            raise ValueError("involved needs an object's JSON or at least kind and name")
        kind, name = involved["kind"], involved["name"]
        ns = involved.get("namespace", namespace)
        api_version = involved.get("apiVersion") or EVENT_API_VERSIONS.get(kind, "v1")
        uid = involved.get("uid") or stable_uid(api_version, kind, ns, name)
        resource_version, field_path = involved.get("resourceVersion"), involved.get("fieldPath")
    ref: Json = {"kind": kind, "namespace": ns, "name": name, "uid": uid}
    ref["apiVersion"] = api_version
    if resource_version:
        ref["resourceVersion"] = resource_version
    if field_path:
        ref["fieldPath"] = field_path
    return ref


# -- autoscaling/v2, policy/v1, cert-manager.io/v1 ----------------------------------------------


def hpa(
    name: str,
    namespace: str = "default",
    target_kind: str = "Deployment",
    target_name: str | None = None,
    min: int = 2,
    max: int = 10,
    *,
    target_api_version: str = "apps/v1",
    current: int | None = None,
    cpu_utilization: int = 80,
) -> Json:
    current = min if current is None else current
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata("autoscaling/v2", "HorizontalPodAutoscaler", name, namespace),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": target_api_version,
                "kind": target_kind,
                "name": target_name or name,
            },
            "minReplicas": min,
            "maxReplicas": max,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": cpu_utilization},
                    },
                }
            ],
        },
        "status": {
            "currentReplicas": current,
            "desiredReplicas": current,
            "currentMetrics": [],
            "conditions": [
                _condition(
                    "AbleToScale",
                    "True",
                    "ReadyForNewScale",
                    "recommended size matches current size",
                ),
                _condition(
                    "ScalingActive",
                    "True",
                    "ValidMetricFound",
                    "the HPA was able to successfully calculate a replica count",
                ),
            ],
        },
    }


def pdb(
    name: str,
    namespace: str = "default",
    selector: dict[str, str] | None = None,
    disruptions_allowed: int = 0,
    *,
    min_available: int | str | None = None,
    max_unavailable: int | str | None = None,
    current_healthy: int = 3,
    desired_healthy: int | None = None,
    expected_pods: int | None = None,
) -> Json:
    """A PodDisruptionBudget selecting ``selector`` labels (default ``app=name``)."""
    spec: Json = {"selector": {"matchLabels": dict(selector or {"app": name})}}
    if max_unavailable is not None:
        spec["maxUnavailable"] = max_unavailable
    else:
        spec["minAvailable"] = min_available if min_available is not None else current_healthy
    desired = current_healthy - disruptions_allowed if desired_healthy is None else desired_healthy
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata("policy/v1", "PodDisruptionBudget", name, namespace),
        "spec": spec,
        "status": {
            "observedGeneration": 1,
            "disruptionsAllowed": disruptions_allowed,
            "currentHealthy": current_healthy,
            "desiredHealthy": desired,
            "expectedPods": current_healthy if expected_pods is None else expected_pods,
            "conditions": [
                {
                    "type": "DisruptionAllowed",
                    "status": "True" if disruptions_allowed > 0 else "False",
                    "reason": "SufficientPods" if disruptions_allowed > 0 else "InsufficientPods",
                    "message": "",
                    "observedGeneration": 1,
                    "lastTransitionTime": rfc3339(SEED_TIME),
                }
            ],
        },
    }


def certificate(
    name: str,
    namespace: str = "default",
    revision: int = 1,
    ready: bool = True,
    *,
    secret_name: str | None = None,
    dns_names: list[str] | None = None,
    issuer: str = "letsencrypt",
    not_after: datetime | None = None,
) -> Json:
    not_after = not_after or SEED_TIME + timedelta(days=60)
    not_before = not_after - timedelta(days=90)
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": _metadata("cert-manager.io/v1", "Certificate", name, namespace),
        "spec": {
            "secretName": secret_name or f"{name}-tls",
            "dnsNames": dns_names or [f"{name}.example.com"],
            "issuerRef": {"name": issuer, "kind": "ClusterIssuer", "group": "cert-manager.io"},
            "privateKey": {"rotationPolicy": "Always"},
        },
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "reason": "Ready" if ready else "Failed",
                    "message": "Certificate is up to date and has not expired"
                    if ready
                    else "The certificate request has failed to complete and will be retried",
                    "lastTransitionTime": rfc3339(not_before),
                    "observedGeneration": 1,
                }
            ],
            "revision": revision,
            "notBefore": rfc3339(not_before),
            "notAfter": rfc3339(not_after),
            "renewalTime": rfc3339(not_after - timedelta(days=30)),
        },
    }
