"""API discovery: ``/api``, ``/api/v1``, ``/apis``, ``/apis/{group}`` and
``/apis/{group}/{version}``, built from the resource table, in the shapes the real server
answers (APIVersions, APIGroupList, APIGroup, APIResourceList).

A client asks these to learn whether a CRD is installed (an unserved group/version is a
404), so removing a kind from the fake's table (``FakeKube(resources=...)``) makes it look
uninstalled. Verbs list what the fake serves: ``watch`` is left out because it refuses it.
"""

from __future__ import annotations

from . import status as st
from .resources import EVICTION, SCALE, STATUS, ResourceRegistry, ResourceType
from .store import Json

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update"]
SUBRESOURCE_VERBS = {STATUS: ["get", "patch", "update"], SCALE: ["get", "patch", "update"]}


def is_discovery(parts: list[str]) -> bool:
    """``/api``, ``/api/v1``, ``/apis``, ``/apis/{group}``, ``/apis/{group}/{version}``."""
    return parts in (["api"], ["api", "v1"]) or (parts[:1] == ["apis"] and len(parts) <= 3)


def discover(registry: ResourceRegistry, parts: list[str], server: str) -> Json:
    if parts == ["api"]:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server}],
        }
    if parts == ["api", "v1"]:
        return _resource_list(registry, "", "v1")
    groups = _groups(registry)
    if parts == ["apis"]:
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": list(groups.values())}
    group = groups.get(parts[1])
    if group is None:
        raise st.no_such_resource()
    if len(parts) == 2:
        return {"kind": "APIGroup", "apiVersion": "v1", **group}
    if parts[2] not in [v["version"] for v in group["versions"]]:
        raise st.no_such_resource()
    return _resource_list(registry, parts[1], parts[2])


def _groups(registry: ResourceRegistry) -> dict[str, Json]:
    groups: dict[str, Json] = {}
    for rt in registry:
        if not rt.group:
            continue
        entry = groups.setdefault(rt.group, {"name": rt.group, "versions": []})
        for version in rt.versions:
            gv = {"groupVersion": f"{rt.group}/{version}", "version": version}
            if gv not in entry["versions"]:
                entry["versions"].append(gv)
        entry.setdefault("preferredVersion", entry["versions"][0])
    return groups


def _resource_list(registry: ResourceRegistry, group: str, version: str) -> Json:
    resources: list[Json] = []
    for rt in registry:
        if rt.group == group and version in rt.versions:
            resources.append(_resource(rt, rt.plural, rt.kind, VERBS, singular=rt.kind.lower()))
            resources.extend(_subresource(rt, sub) for sub in sorted(rt.subresources))
    group_version = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }


def _subresource(rt: ResourceType, sub: str) -> Json:
    name = f"{rt.plural}/{sub}"
    if sub == SCALE:
        scale = _resource(rt, name, "Scale", SUBRESOURCE_VERBS[SCALE])
        return {**scale, "group": "autoscaling", "version": "v1"}
    if sub == EVICTION:
        return {**_resource(rt, name, "Eviction", ["create"]), "group": "policy", "version": "v1"}
    return _resource(rt, name, rt.kind, SUBRESOURCE_VERBS.get(sub, ["get"]))  # status, log


def _resource(
    rt: ResourceType, name: str, kind: str, verbs: list[str], *, singular: str = ""
) -> Json:
    return {
        "name": name,
        "singularName": singular,
        "namespaced": rt.namespaced,
        "kind": kind,
        "verbs": list(verbs),
    }
