"""The object store: JSON dicts keyed by (group, plural, namespace, name), one global
resourceVersion counter, and the server-owned metadata (uid, creationTimestamp, generation).
Cluster-scoped objects (Namespaces) are kept under namespace ``""``."""

from __future__ import annotations

import copy
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .resources import STATUS, ResourceType

Json = dict[str, Any]
Key = tuple[str, str, str, str]  # (group, plural, namespace, name)
Clock = Callable[[], datetime]
# Module-level aliases: ``list`` is a method name in the classes that use them.
JsonList = list[Json]
KeyList = list[Key]

#: Fields the server owns; a client's PUT/PATCH cannot change them.
SERVER_OWNED = ("uid", "creationTimestamp", "name", "namespace")


def rfc3339(moment: datetime) -> str:
    """Second precision, UTC, ``Z`` suffix: the form the API server writes."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_now() -> datetime:
    return datetime.now(UTC)


def meta(obj: Json) -> Json:
    """``obj["metadata"]``, created if missing."""
    metadata = obj.setdefault("metadata", {})
    if not isinstance(metadata, dict):
        raise TypeError("metadata must be an object")
    return metadata


def key_of(rt: ResourceType, namespace: str, name: str) -> Key:
    return (rt.group, rt.plural, namespace, name)


def generation_relevant(rt: ResourceType, obj: Json) -> Json:
    """The part of an object whose change bumps ``metadata.generation``: everything but
    metadata, and but status when status is a separate subresource (as for CRDs)."""
    excluded = {"metadata", "apiVersion", "kind"} | ({"status"} if rt.has(STATUS) else set())
    return {k: v for k, v in obj.items() if k not in excluded}


class Store:
    def __init__(self, *, seed: int = 0, clock: Clock = utc_now, start_rv: int = 1000) -> None:
        self._objects: dict[Key, Json] = {}
        self._rv = start_rv
        self._uid_rng = random.Random(f"fake-kube-uid-{seed}")
        self.clock = clock

    # -- counters -----------------------------------------------------------------------------

    @property
    def resource_version(self) -> str:
        """The current (last written) resourceVersion."""
        return str(self._rv)

    def _bump(self) -> str:
        self._rv += 1
        return str(self._rv)

    def new_uid(self) -> str:
        return str(uuid.UUID(int=self._uid_rng.getrandbits(128), version=4))

    def now(self) -> str:
        return rfc3339(self.clock())

    # -- reads --------------------------------------------------------------------------------

    def get(self, rt: ResourceType, namespace: str, name: str) -> Json | None:
        obj = self._objects.get(key_of(rt, namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def list(self, rt: ResourceType, namespace: str | None = None) -> JsonList:
        items = [
            obj
            for (group, plural, ns, _), obj in sorted(self._objects.items())
            if group == rt.group and plural == rt.plural and namespace in (None, ns)
        ]
        return copy.deepcopy(items)

    def keys(self) -> KeyList:
        return sorted(self._objects)

    def uids(self) -> set[str]:
        return {obj["metadata"]["uid"] for obj in self._objects.values()}

    # -- writes -------------------------------------------------------------------------------

    def create(
        self,
        rt: ResourceType,
        namespace: str,
        obj: Json,
        *,
        dry_run: bool = False,
        seed: bool = False,
    ) -> Json:
        """Store a new object (caller checked it does not exist). ``seed`` keeps a provided
        uid/creationTimestamp/generation, as test seeding wants; the API path overwrites them."""
        new = copy.deepcopy(obj)
        new.setdefault("apiVersion", rt.api_version)
        new.setdefault("kind", rt.kind)
        metadata = meta(new)
        if namespace:
            metadata["namespace"] = namespace
        else:  # cluster-scoped: stored under namespace "", served without one
            metadata.pop("namespace", None)
        metadata.pop("resourceVersion", None)
        if not seed or not metadata.get("uid"):
            metadata["uid"] = self.new_uid()
        if not seed or not metadata.get("creationTimestamp"):
            metadata["creationTimestamp"] = self.now()
        if not seed or not isinstance(metadata.get("generation"), int):
            metadata["generation"] = 1
        if dry_run:
            return new
        metadata["resourceVersion"] = self._bump()
        self._objects[key_of(rt, namespace, metadata["name"])] = new
        return copy.deepcopy(new)

    def update(
        self,
        rt: ResourceType,
        old: Json,
        new: Json,
        *,
        dry_run: bool = False,
        keep_generation: bool = False,
    ) -> Json:
        """Commit ``new`` as the next version of ``old``: server-owned metadata is carried over,
        generation bumps if the spec changed (unless ``keep_generation``, for controllers'
        status writes), and resourceVersion bumps (unless dry-run or nothing changed)."""
        result = copy.deepcopy(new)
        old_meta, new_meta = old["metadata"], meta(result)
        for field in SERVER_OWNED:
            if field in old_meta:
                new_meta[field] = old_meta[field]
        result["apiVersion"], result["kind"] = old["apiVersion"], old["kind"]
        generation = old_meta.get("generation", 1)
        if not keep_generation and generation_relevant(rt, result) != generation_relevant(rt, old):
            generation += 1
        new_meta["generation"] = generation
        new_meta["resourceVersion"] = old_meta["resourceVersion"]
        if dry_run or result == old:
            return result  # a no-op write does not bump resourceVersion, like the real server
        new_meta["resourceVersion"] = self._bump()
        self._objects[key_of(rt, old_meta.get("namespace", ""), old_meta["name"])] = result
        return copy.deepcopy(result)

    def purge_namespace(self, namespace: str) -> int:
        """Remove every object in ``namespace`` (the namespace controller's sweep)."""
        doomed = [key for key in self._objects if key[2] == namespace]
        for key in doomed:
            del self._objects[key]
            self._bump()
        return len(doomed)

    def delete(self, rt: ResourceType, namespace: str, name: str, *, dry_run: bool = False) -> Json:
        key = key_of(rt, namespace, name)
        obj = copy.deepcopy(self._objects[key])
        if not dry_run:
            del self._objects[key]
            self._bump()
        return obj
