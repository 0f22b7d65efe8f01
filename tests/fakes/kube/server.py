""":class:`FakeKube`: the public face of the fake API server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from aiohttp import web

from .api import Deletion, KubeApi, check_name
from .app import KubeHttpApp
from .controllers import Controllers
from .faults import Decision, FaultInjector, Faults, LatencyRule, ScriptedFault
from .logs import first_container
from .recording import Recorder, Request
from .resources import DEFAULT_RESOURCES, ResourceRegistry, ResourceType
from .store import Clock, Json, JsonList, Store, key_of, utc_now

if TYPE_CHECKING:
    from kubernetes_asyncio.client import ApiClient


T = TypeVar("T")
RequestList = list[Request]  # module-level aliases: ``list`` is a method name below
DeletionList = list[Deletion]


class FakeKubeError(AssertionError):
    """The fake itself failed (a bug in a handler or a controller) during the test."""


class FakeKube:
    """An in-process Kubernetes API server speaking real JSON over HTTP on 127.0.0.1.

    Seed objects with :meth:`add`, start it with ``async with fake.running() as url``, point
    a client at :meth:`write_kubeconfig`, and assert on :attr:`requests` / :meth:`get`.
    Cluster-scoped objects (Namespaces) use namespace ``""`` in :meth:`get` and friends.

    ``dependents=True`` adds the controllers that change seeded objects too: the garbage
    collector and Argo's ReplicaSet per Rollout revision (see :mod:`.controllers`,
    :mod:`.lifecycle`). ``python -m tests.fakes.kube`` serves one like that.
    """

    def __init__(
        self,
        token: str = "test-token",  # noqa: S107 - a fixed test credential
        seed: int = 0,
        *,
        tick: float = 0.02,
        run_controllers: bool = True,
        clock: Clock = utc_now,
        daemonset_nodes: int = 3,
        resources: tuple[ResourceType, ...] = DEFAULT_RESOURCES,
        dependents: bool = False,
    ) -> None:
        self.token = token
        self.tick = tick
        self.registry = ResourceRegistry(resources)
        self.store = Store(seed=seed, clock=clock)
        self.api = KubeApi(self.store, self.registry)
        self.controllers = Controllers(
            self.api, daemonset_nodes=daemonset_nodes, dependents=dependents
        )
        self.controllers.enabled = run_controllers
        self.url: str | None = None
        self.kubeconfig: Path | None = None
        self._injector = FaultInjector(seed=seed)
        self._recorder = Recorder()
        self._denied: set[tuple[str, str, str | None]] = set()
        self._errors: list[BaseException] = []
        self._running = False

    # -- seeding and inspecting state (no HTTP, no recording, no faults) ------------------------

    def add(self, obj: Json) -> Json:
        """Store a seed object as-is (status included) and fill in server metadata; keeps a
        provided uid/creationTimestamp/generation. Namespace defaults to ``default``."""
        rt = self.registry.for_object(obj)
        metadata = obj.get("metadata") or {}
        name, namespace = metadata.get("name", ""), metadata.get("namespace") or "default"
        if not rt.namespaced:
            namespace = ""
        check_name(rt, name)
        if self.store.get(rt, namespace, name) is not None:
            raise ValueError(f"{rt.qualified} {namespace}/{name} already exists in the fake")
        return self.store.create(rt, namespace, obj, seed=True)

    def add_all(self, objs: Iterable[Json]) -> JsonList:
        return [self.add(obj) for obj in objs]

    def get(self, api_version: str, kind_or_plural: str, namespace: str, name: str) -> Json | None:
        """The current stored object, or ``None``."""
        return self.store.get(self.registry.resolve(api_version, kind_or_plural), namespace, name)

    def list(self, api_version: str, kind_or_plural: str, namespace: str | None = None) -> JsonList:
        return self.store.list(self.registry.resolve(api_version, kind_or_plural), namespace)

    def update(
        self, api_version: str, kind_or_plural: str, namespace: str, name: str, merge: Json
    ) -> Json:
        """Apply a JSON merge patch as a test (status included, generation rules apply)."""
        from .patch import merge_patch

        rt = self.registry.resolve(api_version, kind_or_plural)
        current = self.store.get(rt, namespace, name)
        if current is None:
            raise KeyError(f"{rt.qualified} {namespace}/{name} is not in the fake")
        return self.store.update(rt, current, merge_patch(current, merge))

    def remove(
        self, api_version: str, kind_or_plural: str, namespace: str, name: str
    ) -> Json | None:
        """Delete an object as a test (not recorded in :attr:`deletions`)."""
        rt = self.registry.resolve(api_version, kind_or_plural)
        if self.store.get(rt, namespace, name) is None:
            return None
        return self.store.delete(rt, namespace, name)

    @property
    def resource_version(self) -> str:
        """The global resourceVersion counter (the last write's)."""
        return self.store.resource_version

    @property
    def deletions(self) -> DeletionList:
        """Objects deleted through the API, with the propagationPolicy each asked for."""
        return list(self.api.deletions)

    # -- pod logs -----------------------------------------------------------------------------

    def set_logs(
        self,
        namespace: str,
        pod: str,
        lines: list[str],
        container: str | None = None,
        previous: bool = False,
    ) -> None:
        """Seed what ``GET .../pods/{pod}/log`` answers for ``container`` (``None``: the
        pod's first container - resolved now if the pod is in the fake, else when read) and
        ``previous`` (``previous=true``: the last terminated instance). One line per item, a
        trailing newline optional; replaces earlier lines for the same key. The pod itself
        must be added for the endpoint to answer (404 otherwise). See :mod:`.logs`."""
        if container is None:
            stored = self.get("v1", "Pod", namespace, pod)
            container = first_container(stored) if stored is not None else None
        self.api.logs.set(namespace, pod, list(lines), container, previous)

    def logs(
        self, namespace: str, pod: str, container: str | None = None, previous: bool = False
    ) -> list[str] | None:
        """The lines seeded for a container (``None``: the pod's first), or ``None``."""
        stored = self.get("v1", "Pod", namespace, pod)
        if container is None and stored is not None:
            container = first_container(stored)
        return self.api.logs.lines(namespace, stored, pod, container, previous)

    # -- API surface configuration ------------------------------------------------------------

    def set_subresource(
        self, api_version: str, kind_or_plural: str, subresource: str, enabled: bool
    ) -> None:
        """E.g. ``set_subresource("argoproj.io/v1alpha1", "Rollout", "status", False)`` to
        simulate an old Rollout CRD: ``/status`` then answers 404 and the main resource
        accepts status changes."""
        self.registry.set_subresource(api_version, kind_or_plural, subresource, enabled)

    def deny(self, verb: str, plural: str, subresource: str | None = None) -> None:
        """RBAC: answer 403 Forbidden to ``verb`` (get/list/create/update/patch/delete/
        deletecollection or ``*``) on ``plural`` (or ``*``) and ``subresource`` (None = the
        main resource, ``*`` = any)."""
        self._denied.add((verb, plural, subresource))

    def allow_all(self) -> None:
        self._denied.clear()

    def is_denied(self, verb: str, plural: str, subresource: str | None) -> bool:
        return any(
            v in ("*", verb) and p in ("*", plural) and (s == "*" or s == subresource)
            for v, p, s in self._denied
        )

    # -- controllers --------------------------------------------------------------------------

    @property
    def controllers_enabled(self) -> bool:
        return self.controllers.enabled

    @controllers_enabled.setter
    def controllers_enabled(self, enabled: bool) -> None:
        self.controllers.enabled = enabled

    def set_stuck(self, kind: str, namespace: str, name: str, stuck: bool = True) -> None:
        """A stuck workload/Rollout observes new generations but never finishes rolling out;
        a stuck Certificate never leaves ``Issuing``. ``kind`` is a Kind or plural."""
        rt = self.registry.by_kind(kind)
        self.controllers.set_stuck(key_of(rt, namespace, name), stuck)

    def reconcile(self) -> int:
        """Run one controller step now (also works when controllers are disabled)."""
        return self.controllers.reconcile_once()

    async def wait_for(
        self, predicate: Callable[[], T | None], timeout: float = 5.0, interval: float = 0.01
    ) -> T:
        """Poll ``predicate`` (e.g. over :meth:`get`) until it returns something truthy."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if loop.time() > deadline:
                raise AssertionError(f"fake kube: condition not met in {timeout}s: {value!r}")
            await asyncio.sleep(interval)

    # -- faults -------------------------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self._injector.config

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self._injector.config = faults

    def fail_next(
        self,
        n: int = 1,
        status: int = 429,
        retry_after: int | None = 1,
        method: str | None = None,
        path_contains: str | None = None,
        *,
        apply_first: bool = False,
    ) -> None:
        """Answer the next ``n`` matching requests with an error Status (``Retry-After`` is
        sent for 429 and 503 when ``retry_after`` is set). With ``apply_first`` the request is
        served (state changes) and only then is its answer replaced by the error."""
        decision = Decision(status=status, retry_after=retry_after, apply_first=apply_first)
        self._injector.add(ScriptedFault(n, decision, method, path_contains))

    def drop_next(
        self,
        n: int = 1,
        method: str | None = None,
        path_contains: str | None = None,
        *,
        apply_then_drop: bool = False,
    ) -> None:
        """Close the connection without answering the next ``n`` matching requests. With
        ``apply_then_drop`` the write happens first ("the response was lost")."""
        decision = Decision(drop=True, apply_first=apply_then_drop)
        self._injector.add(ScriptedFault(n, decision, method, path_contains))

    def set_latency(
        self, seconds: float, path_contains: str | None = None, method: str | None = None
    ) -> None:
        """Delay only requests whose path contains ``path_contains`` (and whose method is
        ``method``), e.g. ``set_latency(2.0, path_contains="/log")``. The delay is added to
        ``faults.latency``; when several rules match, the largest counts. Setting the same
        (path_contains, method) again replaces it; ``seconds=0`` removes it."""
        self._injector.set_latency(LatencyRule(seconds, path_contains, method))

    def clear_faults(self) -> None:
        """Drop scripted faults and per-path latencies; reset :attr:`faults` to no faults."""
        self._injector.scripted.clear()
        self._injector.latencies.clear()
        self._injector.config = Faults()

    # -- recording ----------------------------------------------------------------------------

    @property
    def requests(self) -> RequestList:
        """Every request since the last :meth:`clear`, in arrival order."""
        return self._recorder.requests

    def mutations(self, method: str | None = None, path_contains: str | None = None) -> RequestList:
        """Non-GET requests, optionally filtered by method and a path substring."""
        return [
            r
            for r in self._recorder.requests
            if r.method != "GET"
            and (method is None or r.method == method.upper())
            and (path_contains is None or path_contains in r.path)
        ]

    def clear(self) -> None:
        """Forget recorded requests (state, faults and deletions are kept)."""
        self._recorder.clear()

    # -- running ------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self, tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
        """Serve on ``http://127.0.0.1:<free port>`` (``https://`` with the server context
        ``tls``, as a real API server does) and run the controllers; yields the URL.

        On exit, raises :class:`FakeKubeError` if a handler or controller crashed (unless the
        body is already failing)."""
        if self._running:
            raise RuntimeError("FakeKube is already running")
        self._running = True
        runner = web.AppRunner(
            KubeHttpApp(self).build(), access_log=None, handle_signals=False, shutdown_timeout=0.25
        )
        await runner.setup()
        controllers: asyncio.Task[None] | None = None
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
            await site.start()
            port = runner.addresses[0][1]
            self.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
            controllers = asyncio.create_task(
                self.controllers.run(self.tick), name="fake-kube-controllers"
            )
            yield self.url
        finally:
            if controllers is not None:
                controllers.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await controllers
            await runner.cleanup()
            self.url = None
            self._running = False
        errors = self._errors + self.controllers.errors
        if errors:
            raise FakeKubeError(f"the fake API server failed: {errors!r}") from errors[0]

    def kubeconfig_dict(self, context: str = "fake", namespace: str | None = None) -> Json:
        if self.url is None:
            raise RuntimeError("start the fake first: async with fake.running(): ...")
        context_body: Json = {"cluster": context, "user": f"{context}-user"}
        if namespace:
            context_body["namespace"] = namespace
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": context, "cluster": {"server": self.url, "insecure-skip-tls-verify": True}}
            ],
            "users": [{"name": f"{context}-user", "user": {"token": self.token}}],
            "contexts": [{"name": context, "context": context_body}],
            "current-context": context,
            "preferences": {},
        }

    def write_kubeconfig(
        self, path: Path | str, context: str = "fake", namespace: str | None = None
    ) -> Path:
        """Write a kubeconfig (JSON, which is valid YAML) for the running fake: server URL,
        bearer token, ``insecure-skip-tls-verify``. Remembered as :attr:`kubeconfig`."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.kubeconfig_dict(context, namespace), indent=2) + "\n")
        self.kubeconfig = target
        return target

    @contextlib.asynccontextmanager
    async def api_client(self) -> AsyncIterator[ApiClient]:
        """A real ``kubernetes_asyncio`` ApiClient on its own Configuration (never the global
        default), loaded from :attr:`kubeconfig` if written, else from :meth:`kubeconfig_dict`."""
        from kubernetes_asyncio import client, config

        configuration = client.Configuration()
        if self.kubeconfig is not None:
            await config.load_kube_config(
                config_file=str(self.kubeconfig), client_configuration=configuration
            )
        else:
            await config.load_kube_config_from_dict(
                self.kubeconfig_dict(), client_configuration=configuration
            )
        async with client.ApiClient(configuration) as api:
            yield api
