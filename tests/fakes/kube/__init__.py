"""An HTTP-level fake Kubernetes API server for tests.

The real ``kubernetes_asyncio`` client talks to it over HTTP on 127.0.0.1; nothing in
``remediator`` knows it exists. Typical use::

    from tests.fakes.kube import FakeKube, objects

    fake = FakeKube(token="test-token", seed=0)
    fake.add(objects.deployment("web", "prod", replicas=3))
    async with fake.running() as url:
        fake.write_kubeconfig(tmp_path / "kubeconfig")
        ...  # run the code under test against the kubeconfig
        assert fake.get("apps/v1", "Deployment", "prod", "web")["spec"]["replicas"] == 3
        assert [r.method for r in fake.mutations()] == ["PATCH"]

or the pytest fixtures in :mod:`tests.fakes.kube.fixtures` (``fake_kube``,
``fake_kube_client``). Modules: ``resources`` (the kind/plural/group table), ``store``
(objects and resourceVersion), ``patch`` (merge / strategic / JSON patch), ``selectors``,
``api`` (verbs), ``controllers``, ``lifecycle`` (kubelet, Jobs, namespaces, garbage
collector), ``discovery``, ``faults``, ``recording``, ``app`` (HTTP), ``server``
(:class:`FakeKube`), ``objects`` (seed builders), ``logs`` (``pods/log``).
``python -m tests.fakes.kube --kubeconfig PATH`` serves one until killed (``__main__``).

Pod logs are seeded with ``fake.set_logs(ns, pod, lines, container=None, previous=False)``;
events are plain core/v1 ``Event`` objects (``objects.event``) listed with field selectors such
as ``involvedObject.name=web-1,type=Warning``; ``fake.set_latency(s, path_contains="/log")``
slows down only matching requests.
"""

from . import objects
from .api import Deletion
from .faults import ALL_FAULT_KINDS, MUTATING_METHODS, FaultKind, Faults, LatencyRule
from .patch import APPLY_PATCH, JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH
from .recording import Request
from .resources import DEFAULT_RESOURCES, EVICTION, LOG, SCALE, STATUS, ResourceType
from .server import FakeKube, FakeKubeError
from .status import KubeError

__all__ = [
    "ALL_FAULT_KINDS",
    "APPLY_PATCH",
    "DEFAULT_RESOURCES",
    "EVICTION",
    "JSON_PATCH",
    "LOG",
    "MERGE_PATCH",
    "MUTATING_METHODS",
    "SCALE",
    "STATUS",
    "STRATEGIC_MERGE_PATCH",
    "Deletion",
    "FakeKube",
    "FakeKubeError",
    "FaultKind",
    "Faults",
    "KubeError",
    "LatencyRule",
    "Request",
    "ResourceType",
    "objects",
]
