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
    owner: Json,
    revision: int,
    template: Json | None = None,
    image: str | None = None,
    replicas: int = 0,
) -> Json:
    """A ReplicaSet controlled by ``owner`` (a Rollout or Deployment dict).

    The template defaults to the owner's ``spec.template`` (with ``image`` swapped in for
    every container if given); the hash label (``rollouts-pod-template-hash`` for Rollouts,
    ``pod-template-hash`` for Deployments) is added to the template, labels and selector.
    """
    is_rollout = owner["kind"] == "Rollout"
    hash_label = ROLLOUT_HASH_LABEL if is_rollout else DEPLOYMENT_HASH_LABEL
    revision_annotation = (
        ROLLOUT_REVISION_ANNOTATION if is_rollout else DEPLOYMENT_REVISION_ANNOTATION
    )
    template = copy.deepcopy(
        template if template is not None else owner["spec"].get("template") or {}
    )
    if image is not None:
        for container in template.get("spec", {}).get("containers", []):
            container["image"] = image
    template_hash = pod_template_hash(template)
    template.setdefault("metadata", {}).setdefault("labels", {})[hash_label] = template_hash
    selector = copy.deepcopy(owner["spec"].get("selector") or {"matchLabels": {}})
    selector.setdefault("matchLabels", {})[hash_label] = template_hash
    labels = dict(template["metadata"]["labels"])
    metadata = _metadata(
        "apps/v1",
        "ReplicaSet",
        name,
        namespace,
        labels=labels,
        annotations={revision_annotation: str(revision)},
    )
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


def rollout(
    name: str,
    namespace: str = "default",
    replicas: int = 3,
    labels: dict[str, str] | None = None,
    *,
    image: str = "registry.example.com/app:1.0.0",
    workload_ref: Json | None = None,
    revision: int = 1,
    phase: str = "Healthy",
    paused: bool = False,
    canary_steps: list[Json] | None = None,
) -> Json:
    """A canary Rollout. With ``workload_ref`` (``{"apiVersion": "apps/v1", "kind":
    "Deployment", "name": ...}``) the spec references that workload instead of a template."""
    labels = labels or {"app": name}
    spec: Json = {
        "replicas": replicas,
        "selector": {"matchLabels": dict(labels)},
        "revisionHistoryLimit": 10,
        "strategy": {
            "canary": {"steps": canary_steps or [{"setWeight": 20}, {"pause": {"duration": "1m"}}]}
        },
    }
    if workload_ref is not None:
        spec["workloadRef"] = dict(workload_ref)
        pod_hash = pod_template_hash({"workloadRef": workload_ref})
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
            annotations={ROLLOUT_REVISION_ANNOTATION: str(revision)},
        ),
        "spec": spec,
        "status": {
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
) -> Json:
    """A Pod. ``reason`` is the pod-level ``status.reason`` (e.g. ``Evicted``);
    ``waiting_reason`` puts the container in ``state.waiting`` (e.g. ``CrashLoopBackOff``)."""
    created = created or SEED_TIME
    metadata = _metadata(
        "v1", "Pod", name, namespace, labels=labels or {"app": name}, created=created
    )
    if owner is not None:
        metadata["ownerReferences"] = [owner_reference(owner)]
    running = phase == "Running" and waiting_reason is None
    state: Json
    if waiting_reason:
        state = {"waiting": {"reason": waiting_reason, "message": f"container is {waiting_reason}"}}
    elif phase in ("Succeeded", "Failed"):
        code = 0 if phase == "Succeeded" else 1
        state = {
            "terminated": {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": rfc3339(created),
                "finishedAt": rfc3339(created + timedelta(minutes=1)),
            }
        }
    elif phase == "Running":
        state = {"running": {"startedAt": rfc3339(created)}}
    else:
        state = {"waiting": {"reason": "ContainerCreating"}}
    status: Json = {
        "phase": phase,
        "conditions": [
            {
                "type": "Ready",
                "status": "True" if running else "False",
                "lastTransitionTime": rfc3339(created),
            }
        ],
        "startTime": rfc3339(created),
        "containerStatuses": [
            {
                "name": container,
                "image": image,
                "imageID": "",
                "ready": running,
                "started": running,
                "restartCount": restarts,
                "state": state,
            }
        ],
    }
    if reason is not None:
        status["reason"] = reason
        status["message"] = f"Pod {reason.lower()}"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "nodeName": node,
            "restartPolicy": "Always",
            "containers": [{"name": container, "image": image}],
        },
        "status": status,
    }


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
