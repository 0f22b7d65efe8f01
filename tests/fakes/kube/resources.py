"""The one table that maps kind <-> plural <-> API group/version for the fake API server.

Objects are stored per *group* (not per version): ``autoscaling/v1`` and ``autoscaling/v2``
paths read and write the same HorizontalPodAutoscaler objects. No schema conversion happens
between versions; a GET only rewrites ``apiVersion`` to the version in the request path.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

STATUS = "status"
SCALE = "scale"
EVICTION = "eviction"
LOG = "log"


@dataclass(frozen=True)
class ResourceType:
    """One REST resource: ``/apis/{group}/{version}/namespaces/{ns}/{plural}``."""

    group: str  # "" for the core group (served under /api/v1)
    versions: tuple[str, ...]  # first entry is the preferred version
    plural: str
    kind: str
    subresources: frozenset[str] = field(default_factory=frozenset)
    custom: bool = False  # a CRD: strategic-merge patch is refused with 415, like the real server
    namespaced: bool = True  # False: cluster-scoped, served without ``namespaces/{ns}``

    @property
    def api_version(self) -> str:
        return self.api_version_for(self.versions[0])

    def api_version_for(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version

    @property
    def qualified(self) -> str:
        """``deployments.apps`` / ``pods``: the resource name used in Status messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """``Deployment.apps`` / ``Pod``: the kind name used in Invalid messages."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def has(self, subresource: str) -> bool:
        return subresource in self.subresources


def _rt(
    group: str,
    versions: str,
    plural: str,
    kind: str,
    *subs: str,
    custom: bool = False,
    namespaced: bool = True,
) -> ResourceType:
    return ResourceType(
        group, tuple(versions.split(",")), plural, kind, frozenset(subs), custom, namespaced
    )


DEFAULT_RESOURCES: tuple[ResourceType, ...] = (
    _rt("", "v1", "namespaces", "Namespace", STATUS, namespaced=False),
    _rt("", "v1", "pods", "Pod", STATUS, EVICTION, LOG),
    _rt("", "v1", "configmaps", "ConfigMap"),
    _rt("", "v1", "secrets", "Secret"),
    _rt("", "v1", "services", "Service", STATUS),
    _rt("", "v1", "events", "Event"),
    _rt("", "v1", "podtemplates", "PodTemplate"),
    _rt("events.k8s.io", "v1", "events", "Event"),
    _rt("apps", "v1", "deployments", "Deployment", STATUS, SCALE),
    _rt("apps", "v1", "statefulsets", "StatefulSet", STATUS, SCALE),
    _rt("apps", "v1", "daemonsets", "DaemonSet", STATUS),
    _rt("apps", "v1", "replicasets", "ReplicaSet", STATUS, SCALE),
    _rt("batch", "v1", "jobs", "Job", STATUS),
    _rt("autoscaling", "v2,v1", "horizontalpodautoscalers", "HorizontalPodAutoscaler", STATUS),
    _rt("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", STATUS),
    _rt("coordination.k8s.io", "v1", "leases", "Lease"),
    _rt("argoproj.io", "v1alpha1", "rollouts", "Rollout", STATUS, SCALE, custom=True),
    _rt("cert-manager.io", "v1", "certificates", "Certificate", STATUS, custom=True),
    _rt("cert-manager.io", "v1", "issuers", "Issuer", STATUS, custom=True),
)


def split_api_version(api_version: str) -> tuple[str, str]:
    """``apps/v1`` -> ("apps", "v1"); ``v1`` -> ("", "v1")."""
    group, _, version = api_version.rpartition("/")
    return group, version


class ResourceRegistry:
    """A per-fake, mutable copy of the table (tests may add kinds or drop subresources)."""

    def __init__(self, resources: tuple[ResourceType, ...] = DEFAULT_RESOURCES) -> None:
        self._by_plural: dict[tuple[str, str], ResourceType] = {}
        for rt in resources:
            self.register(rt)

    def register(self, rt: ResourceType) -> None:
        self._by_plural[(rt.group, rt.plural)] = rt

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(list(self._by_plural.values()))

    def by_path(self, group: str, version: str, plural: str) -> ResourceType | None:
        rt = self._by_plural.get((group, plural))
        return rt if rt is not None and version in rt.versions else None

    def resolve(self, api_version: str, kind_or_plural: str) -> ResourceType:
        """Find by ``apiVersion`` plus a kind (``Deployment``) or plural (``deployments``)."""
        group, version = split_api_version(api_version)
        for rt in self._by_plural.values():
            if rt.group == group and kind_or_plural in (rt.kind, rt.plural):
                if version not in rt.versions:
                    break
                return rt
        raise KeyError(f"fake kube does not know {kind_or_plural!r} in {api_version!r}")

    def by_kind(self, kind_or_plural: str) -> ResourceType:
        """Find by Kind, plural or ``plural.group`` alone; ambiguous names raise KeyError."""
        matches = [
            rt
            for rt in self._by_plural.values()
            if kind_or_plural in (rt.kind, rt.plural, rt.qualified)
        ]
        if len(matches) != 1:
            raise KeyError(f"fake kube: {kind_or_plural!r} matches {len(matches)} resource types")
        return matches[0]

    def for_object(self, obj: dict[str, object]) -> ResourceType:
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if not isinstance(api_version, str) or not isinstance(kind, str):
            raise ValueError("object needs string apiVersion and kind")
        return self.resolve(api_version, kind)

    def set_subresource(
        self, api_version: str, kind_or_plural: str, name: str, enabled: bool
    ) -> None:
        rt = self.resolve(api_version, kind_or_plural)
        subs = rt.subresources | {name} if enabled else rt.subresources - {name}
        self.register(replace(rt, subresources=frozenset(subs)))
