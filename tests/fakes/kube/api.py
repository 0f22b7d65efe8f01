"""The Kubernetes API verbs over the store, independent of HTTP.

Each method takes already-parsed arguments, returns the JSON body to answer with, and raises
:class:`~.status.KubeError` for any failure. Auth, RBAC, faults and recording live in ``app.py``.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
from dataclasses import dataclass
from typing import Any

from . import status as st
from .logs import PodLogs, TextBody
from .patch import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    PatchError,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from .resources import SCALE, STATUS, ResourceRegistry, ResourceType
from .selectors import (
    FIELD_ALIASES,
    SelectorError,
    format_label_selector,
    label_selector_matcher,
    parse_field_selector,
    parse_label_selector,
)
from .store import Json, Store, meta

_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN = re.compile(rf"^{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*$")
_DNS1123_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    r"for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_GENERATE_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Deletion:
    """One object removed through the API (DELETE, deletecollection or eviction)."""

    api_version: str
    kind: str
    namespace: str
    name: str
    via: str  # "delete" | "deletecollection" | "eviction"
    propagation_policy: str | None = None
    grace_period_seconds: int | None = None


class KubeApi:
    def __init__(self, store: Store, registry: ResourceRegistry) -> None:
        self.store = store
        self.registry = registry
        self.deletions: list[Deletion] = []
        self.orphaned: set[str] = set()  # uids of owners deleted with propagationPolicy Orphan
        self.logs = PodLogs()

    # -- helpers ------------------------------------------------------------------------------

    def _require(self, rt: ResourceType, namespace: str, name: str) -> Json:
        obj = self.store.get(rt, namespace, name)
        if obj is None:
            raise st.not_found(rt, name)
        return obj

    @staticmethod
    def present(rt: ResourceType, version: str, obj: Json) -> Json:
        """The object as served under ``version`` (no schema conversion, only apiVersion)."""
        obj["apiVersion"] = rt.api_version_for(version)
        return obj

    @staticmethod
    def _body_object(body: Any) -> Json:
        if not isinstance(body, dict):
            raise st.bad_request("the request body must be a JSON object")
        return body

    @staticmethod
    def _check_resource_version(rt: ResourceType, current: Json, wanted: Json) -> None:
        rv = (wanted.get("metadata") or {}).get("resourceVersion")
        if rv and rv != current["metadata"]["resourceVersion"]:
            raise st.conflict(rt, current["metadata"]["name"])

    @staticmethod
    def _check_name(name: str, body: Json) -> None:
        body_name = (body.get("metadata") or {}).get("name")
        if body_name and body_name != name:
            raise st.bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL ({name})"
            )

    def _validate(self, rt: ResourceType, obj: Json) -> None:
        name = obj["metadata"].get("name", "")
        spec: Json = obj["spec"] if isinstance(obj.get("spec"), dict) else {}
        if rt.has(SCALE) and "replicas" in spec:
            check_replicas(rt, name, spec["replicas"], field="spec.replicas")
        if rt.plural == "horizontalpodautoscalers":
            low, high = spec.get("minReplicas", 1), spec.get("maxReplicas")
            if not isinstance(low, int) or low < 1:
                raise st.invalid(
                    rt, name, "spec.minReplicas", low, "must be greater than or equal to 1"
                )
            if isinstance(high, int) and high < low:
                raise st.invalid(
                    rt,
                    name,
                    "spec.maxReplicas",
                    high,
                    "must be greater than or equal to `minReplicas`",
                )

    def _apply_patch(
        self,
        rt: ResourceType,
        current: Json,
        content_type: str | None,
        body: Any,
        field_manager: str | None,
    ) -> Json:
        name = current["metadata"]["name"]
        accepted = [JSON_PATCH, MERGE_PATCH, APPLY_PATCH]
        if not rt.custom:
            accepted.insert(2, STRATEGIC_MERGE_PATCH)
        if content_type not in accepted:
            raise st.unsupported_media_type(accepted)
        if content_type == APPLY_PATCH and not field_manager:
            raise st.bad_request("PATCH, fieldManager is required for apply requests")
        try:
            if content_type == JSON_PATCH:
                result = json_patch(current, body)
            elif content_type == MERGE_PATCH or rt.custom:
                result = merge_patch(current, self._body_object(body))
            else:  # strategic merge, and server-side apply approximated by it
                result = strategic_merge_patch(current, self._body_object(body))
        except PatchError as exc:
            raise st.KubeError(
                422,
                "Invalid",
                f"the server rejected our request due to an error in our request: {exc}",
                {"name": name, **({"group": rt.group} if rt.group else {}), "kind": rt.plural},
            ) from exc
        if not isinstance(result, dict) or not isinstance(result.get("metadata"), dict):
            raise st.bad_request("the patch does not result in an object with metadata")
        return result

    # -- main resource ------------------------------------------------------------------------

    def get(self, rt: ResourceType, version: str, namespace: str, name: str) -> Json:
        return self.present(rt, version, self._require(rt, namespace, name))

    def list(
        self,
        rt: ResourceType,
        version: str,
        namespace: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> Json:
        """Matching objects in key order (namespace, name), like the real server; with
        ``limit``, one page of them and a ``continue`` token for the rest."""
        try:
            labels_ok = parse_label_selector(label_selector or "")
            fields_ok = parse_field_selector(
                field_selector or "", FIELD_ALIASES.get((rt.group, rt.plural))
            )
        except SelectorError as exc:
            raise st.bad_request(f"unable to parse requirement: {exc}") from exc
        after = _continue_key(continue_token) if continue_token else None
        items = [
            self.present(rt, version, obj)
            for obj in self.store.list(rt, namespace)
            if labels_ok(obj["metadata"].get("labels") or {})
            and fields_ok(obj)
            and (after is None or _list_key(obj) > after)
        ]
        metadata: Json = {"resourceVersion": self.store.resource_version}
        if limit is not None and len(items) > limit:
            items, rest = items[:limit], len(items) - limit
            last = json.dumps(_list_key(items[-1])).encode()
            metadata["continue"] = base64.urlsafe_b64encode(last).decode()
            metadata["remainingItemCount"] = rest
        return {
            "kind": f"{rt.kind}List",
            "apiVersion": rt.api_version_for(version),
            "metadata": metadata,
            "items": items,
        }

    def create(
        self, rt: ResourceType, version: str, namespace: str, body: Any, *, dry_run: bool
    ) -> Json:
        obj = copy.deepcopy(self._body_object(body))
        if obj.get("kind") not in (None, rt.kind):
            raise st.bad_request(f"the kind of the object ({obj['kind']}) does not match {rt.kind}")
        metadata = meta(obj)
        if metadata.get("namespace") not in (None, "", namespace):
            raise st.bad_request(
                "the namespace of the provided object does not match the namespace sent on the "
                "request"
            )
        if not metadata.get("name") and metadata.get("generateName"):
            suffix = "".join(
                _GENERATE_NAME_ALPHABET[int(c, 16) % len(_GENERATE_NAME_ALPHABET)]
                for c in self.store.new_uid().replace("-", "")[:5]
            )
            metadata["name"] = f"{metadata['generateName']}{suffix}"
        name = metadata.get("name")
        if not name:
            raise st.KubeError(
                422,
                "Invalid",
                f'{rt.kind} "" is invalid: metadata.name: Required value: '
                "name or generateName is required",
                {
                    "kind": rt.kind,
                    "causes": [{"reason": "FieldValueRequired", "field": "metadata.name"}],
                },
            )
        check_name(rt, name)
        if self.store.get(rt, namespace, name) is not None:
            raise st.already_exists(rt, name)
        self._check_namespace_open(rt, namespace, name)
        obj["apiVersion"] = rt.api_version
        obj["kind"] = rt.kind
        if rt.has(STATUS):  # status is written by controllers through /status, never on create
            obj.pop("status", None)
            if rt.plural == "pods":
                obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        if rt.plural == "namespaces":  # what the API server fills in for a new namespace
            meta(obj).setdefault("labels", {})[NAMESPACE_NAME_LABEL] = name
            obj["spec"] = {"finalizers": ["kubernetes"]}
            obj["status"] = {"phase": "Active"}
        self._validate(rt, obj)
        return self.present(rt, version, self.store.create(rt, namespace, obj, dry_run=dry_run))

    def _check_namespace_open(self, rt: ResourceType, namespace: str, name: str) -> None:
        """Nothing new may be created in a terminating namespace (a missing one is allowed:
        tests seed objects into namespaces they never create)."""
        if not rt.namespaced:
            return
        ns = self.store.get(self.registry.resolve("v1", "namespaces"), "", namespace)
        if ns is not None and ns["metadata"].get("deletionTimestamp"):
            raise st.KubeError(
                403,
                "Forbidden",
                f'{rt.qualified} "{name}" is forbidden: unable to create new content in '
                f"namespace {namespace} because it is being terminated",
                {"name": name, **({"group": rt.group} if rt.group else {}), "kind": rt.plural},
            )

    def replace(
        self, rt: ResourceType, version: str, namespace: str, name: str, body: Any, *, dry_run: bool
    ) -> Json:
        new = copy.deepcopy(self._body_object(body))
        self._check_name(name, new)
        current = self._require(rt, namespace, name)
        self._check_resource_version(rt, current, new)
        meta(new)["name"] = name
        if rt.has(STATUS):
            _copy_status(current, new)
        self._validate(rt, new)
        return self.present(rt, version, self.store.update(rt, current, new, dry_run=dry_run))

    def patch(
        self,
        rt: ResourceType,
        version: str,
        namespace: str,
        name: str,
        content_type: str | None,
        body: Any,
        *,
        dry_run: bool,
        field_manager: str | None = None,
    ) -> Json:
        current = self._require(rt, namespace, name)
        new = self._apply_patch(rt, current, content_type, body, field_manager)
        self._check_resource_version(rt, current, new)
        if rt.has(STATUS):
            _copy_status(current, new)
        self._validate(rt, new)
        return self.present(rt, version, self.store.update(rt, current, new, dry_run=dry_run))

    def delete(
        self,
        rt: ResourceType,
        version: str,
        namespace: str,
        name: str,
        options: Json,
        *,
        dry_run: bool,
    ) -> Json:
        current = self._require(rt, namespace, name)
        preconditions = options.get("preconditions") or {}
        for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
            wanted, actual = preconditions.get(field), current["metadata"].get(field)
            if wanted and wanted != actual:
                raise st.precondition_failed(
                    rt, name, f"{label} in precondition: {wanted}, {label} in object meta: {actual}"
                )
        if rt.plural == "namespaces":  # the namespace controller finishes the job
            return self.present(rt, version, self._terminate(rt, current, dry_run=dry_run))
        deleted = self.store.delete(rt, namespace, name, dry_run=dry_run)
        if not dry_run:
            self._record_deletion(rt, deleted, "delete", options)
            if _propagation(rt, options) == "Orphan":
                self.orphaned.add(current["metadata"]["uid"])
        if rt.plural == "pods":
            return self.present(rt, version, deleted)
        details = {"name": name, **({"group": rt.group} if rt.group else {}), "kind": rt.plural}
        details["uid"] = current["metadata"]["uid"]
        return st.success(200, details)

    def delete_collection(
        self,
        rt: ResourceType,
        version: str,
        namespace: str,
        label_selector: str | None,
        field_selector: str | None,
        options: Json,
        *,
        dry_run: bool,
    ) -> Json:
        listing = self.list(rt, version, namespace, label_selector, field_selector)
        for obj in listing["items"]:
            self.store.delete(rt, namespace, obj["metadata"]["name"], dry_run=dry_run)
            if not dry_run:
                self._record_deletion(rt, obj, "deletecollection", options)
        listing["metadata"]["resourceVersion"] = self.store.resource_version
        return listing

    def _terminate(self, rt: ResourceType, current: Json, *, dry_run: bool) -> Json:
        if current["metadata"].get("deletionTimestamp"):
            return current
        new = copy.deepcopy(current)
        new["metadata"]["deletionTimestamp"] = self.store.now()
        new["status"] = {"phase": "Terminating"}
        return self.store.update(rt, current, new, dry_run=dry_run)

    def _record_deletion(self, rt: ResourceType, obj: Json, via: str, options: Json) -> None:
        grace = options.get("gracePeriodSeconds")
        self.deletions.append(
            Deletion(
                api_version=rt.api_version,
                kind=rt.kind,
                namespace=obj["metadata"].get("namespace", ""),
                name=obj["metadata"]["name"],
                via=via,
                propagation_policy=options.get("propagationPolicy"),
                grace_period_seconds=int(grace) if grace is not None else None,
            )
        )

    # -- status subresource -------------------------------------------------------------------

    def replace_status(
        self, rt: ResourceType, version: str, namespace: str, name: str, body: Any, *, dry_run: bool
    ) -> Json:
        wanted = self._body_object(body)
        self._check_name(name, wanted)
        current = self._require(rt, namespace, name)
        self._check_resource_version(rt, current, wanted)
        new = copy.deepcopy(current)
        _copy_status(wanted, new)
        return self.present(rt, version, self.store.update(rt, current, new, dry_run=dry_run))

    def patch_status(
        self,
        rt: ResourceType,
        version: str,
        namespace: str,
        name: str,
        content_type: str | None,
        body: Any,
        *,
        dry_run: bool,
        field_manager: str | None = None,
    ) -> Json:
        current = self._require(rt, namespace, name)
        patched = self._apply_patch(rt, current, content_type, body, field_manager)
        self._check_resource_version(rt, current, patched)
        new = copy.deepcopy(current)
        _copy_status(patched, new)
        return self.present(rt, version, self.store.update(rt, current, new, dry_run=dry_run))

    # -- scale subresource --------------------------------------------------------------------

    def scale_of(self, rt: ResourceType, obj: Json) -> Json:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        if (
            rt.custom
        ):  # Argo's CRD: statusReplicasPath .status.HPAReplicas, selector .status.selector
            replicas = status.get("HPAReplicas", status.get("replicas", 0))
            selector = status.get("selector") or format_label_selector(spec.get("selector") or {})
        else:
            replicas = status.get("replicas", 0)
            selector = format_label_selector(spec.get("selector") or {})
        metadata = obj["metadata"]
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "uid": metadata["uid"],
                "resourceVersion": metadata["resourceVersion"],
            },
            "spec": {"replicas": spec.get("replicas", 1)},
            "status": {"replicas": replicas, "selector": selector},
        }

    def get_scale(self, rt: ResourceType, namespace: str, name: str) -> Json:
        return self.scale_of(rt, self._require(rt, namespace, name))

    def _write_scale(self, rt: ResourceType, current: Json, wanted: Json, *, dry_run: bool) -> Json:
        name = current["metadata"]["name"]
        self._check_resource_version(rt, current, wanted)
        replicas = (wanted.get("spec") or {}).get("replicas", 0)
        check_replicas(rt, name, replicas, field="spec.replicas", kind="Scale.autoscaling")
        new = copy.deepcopy(current)
        new.setdefault("spec", {})["replicas"] = replicas
        return self.scale_of(rt, self.store.update(rt, current, new, dry_run=dry_run))

    def replace_scale(
        self, rt: ResourceType, namespace: str, name: str, body: Any, *, dry_run: bool
    ) -> Json:
        wanted = self._body_object(body)
        self._check_name(name, wanted)
        return self._write_scale(rt, self._require(rt, namespace, name), wanted, dry_run=dry_run)

    def patch_scale(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        content_type: str | None,
        body: Any,
        *,
        dry_run: bool,
        field_manager: str | None = None,
    ) -> Json:
        current = self._require(rt, namespace, name)
        scale = self.scale_of(rt, current)
        wanted = self._apply_patch(_SCALE_TYPE, scale, content_type, body, field_manager)
        return self._write_scale(rt, current, wanted, dry_run=dry_run)

    # -- pods/eviction ------------------------------------------------------------------------

    def evict(
        self, pods: ResourceType, namespace: str, name: str, body: Any, *, dry_run: bool
    ) -> Json:
        eviction = self._body_object(body)
        self._check_name(name, eviction)
        pod = self._require(pods, namespace, name)
        phase = (pod.get("status") or {}).get("phase")
        if phase not in ("Succeeded", "Failed"):  # terminal pods bypass disruption budgets
            self._consume_disruption(pod, dry_run=dry_run)
        deleted = self.store.delete(pods, namespace, name, dry_run=dry_run)
        if not dry_run:
            self._record_deletion(pods, deleted, "eviction", eviction.get("deleteOptions") or {})
        return st.success(201)

    def _consume_disruption(self, pod: Json, *, dry_run: bool) -> None:
        pdb_rt = self.registry.resolve("policy/v1", "poddisruptionbudgets")
        labels = pod["metadata"].get("labels") or {}
        budgets = [
            pdb
            for pdb in self.store.list(pdb_rt, pod["metadata"]["namespace"])
            if label_selector_matcher((pdb.get("spec") or {}).get("selector"))(labels)
        ]
        if len(budgets) > 1:
            raise st.KubeError(
                500,
                "InternalError",
                "This pod has more than one PodDisruptionBudget, which the eviction subresource "
                "does not support.",
                {},
            )
        if not budgets:
            return
        budget = budgets[0]
        status = budget.get("status") or {}
        if status.get("disruptionsAllowed", 0) <= 0:
            cause = (
                f"The disruption budget {budget['metadata']['name']} needs "
                f"{status.get('desiredHealthy', 0)} healthy pods and has "
                f"{status.get('currentHealthy', 0)} currently"
            )
            raise st.KubeError(
                429,
                "TooManyRequests",
                "Cannot evict pod as it would violate the pod's disruption budget.",
                {"causes": [{"reason": "DisruptionBudget", "message": cause}]},
            )
        new = copy.deepcopy(budget)
        new["status"]["disruptionsAllowed"] = status["disruptionsAllowed"] - 1
        new["status"].setdefault("disruptedPods", {})[pod["metadata"]["name"]] = self.store.now()
        self.store.update(pdb_rt, budget, new, dry_run=dry_run)

    # -- pods/log -----------------------------------------------------------------------------

    def read_log(
        self, pods: ResourceType, namespace: str, name: str, query: dict[str, str]
    ) -> TextBody:
        """The seeded log text (see :mod:`.logs` for the error answers)."""
        return self.logs.read(pods, self.store.get(pods, namespace, name), name, query)


# A pseudo resource type for patching Scale objects (a built-in: strategic merge allowed).
_SCALE_TYPE = ResourceType("autoscaling", ("v1",), "scale", "Scale")


def _propagation(rt: ResourceType, options: Json) -> str:
    """The propagationPolicy a delete gets: batch/v1 Jobs orphan their pods by default."""
    default = "Orphan" if (rt.group, rt.plural) == ("batch", "jobs") else "Background"
    return str(options.get("propagationPolicy") or default)


def _copy_status(source: Json, target: Json) -> None:
    if "status" in source and source["status"] is not None:
        target["status"] = copy.deepcopy(source["status"])
    else:
        target.pop("status", None)


def check_name(rt: ResourceType, name: str) -> None:
    if len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        raise st.invalid(rt, name, "metadata.name", name, _DNS1123_MESSAGE)


def check_replicas(
    rt: ResourceType, name: str, replicas: Any, *, field: str, kind: str | None = None
) -> None:
    if isinstance(replicas, bool) or not isinstance(replicas, int):
        raise st.invalid(rt, name, field, replicas, "must be an integer", kind=kind)
    if replicas < 0:
        raise st.invalid(rt, name, field, replicas, "must be greater than or equal to 0", kind=kind)


def _list_key(obj: Json) -> list[str]:
    return [obj["metadata"].get("namespace", ""), obj["metadata"]["name"]]


def _continue_key(token: str) -> list[str]:
    """The key a ``continue`` token resumes after; the real token is opaque too."""
    try:
        key = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError) as exc:
        raise st.bad_request(f"continue key is not valid: {exc}") from exc
    if not (isinstance(key, list) and len(key) == 2 and all(isinstance(k, str) for k in key)):
        raise st.bad_request("continue key is not valid")
    return key
