"""``Kube``: the only door to the cluster.

Every call goes through ``read`` or ``write``, which add the per-call timeout, the
retry policy of ``retry.py`` and the error tree of ``errors.py``, and hand back plain
JSON dicts whatever API produced them, so actions compare exactly what the server holds.
Answers are parsed as JSON and never turned into the client's models: a Deployment's
round trip through them costs ~0.75 ms of CPU, on the path to every action and verify.

The client's HTTP session does not consult the environment on each call. Upstream's
does (``trust_env``): a netrc lookup and a proxy lookup on worker threads for every
request, 1 to 3 ms per call on a small VM, paid twice before an action's write. The
proxy is resolved once at connect instead, from the kubeconfig's ``proxy-url`` or else
``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` as kubectl reads them; netrc, which kubectl
ignores, is ignored too.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any, Self
from urllib.parse import urlsplit

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config.config_exception import ConfigException

from remediator.errors import ConfigError
from remediator.kube.errors import Conflict, translate
from remediator.kube.retry import Sleep, with_retries
from remediator.settings import KubeSettings

JSON = dict[str, Any]


class Kube:
    def __init__(
        self, api: client.ApiClient, settings: KubeSettings, *, sleep: Sleep = asyncio.sleep
    ) -> None:
        self._api = api
        self._settings = settings
        self._sleep = sleep
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.autoscaling = client.AutoscalingV2Api(api)
        self.custom = client.CustomObjectsApi(api)

    @classmethod
    async def connect(cls, settings: KubeSettings, *, sleep: Sleep = asyncio.sleep) -> Self:
        """Load the kubeconfig (or the in-cluster service account) and open a client."""
        configuration = client.Configuration()
        if settings.kubeconfig is not None and not settings.kubeconfig.is_file():
            raise ConfigError(f"kube.kubeconfig: {settings.kubeconfig} does not exist")
        try:
            if not _in_cluster(settings):
                await config.load_kube_config(
                    config_file=str(settings.kubeconfig) if settings.kubeconfig else None,
                    context=settings.context,
                    client_configuration=configuration,
                    persist_config=False,
                )
            else:
                # The loader is sync and unannotated upstream; it only reads two files. It
                # leaves a hook on the configuration that re-reads the token once a minute,
                # which is how a rotated (bound, projected) token is picked up.
                config.load_incluster_config(  # type: ignore[no-untyped-call]
                    client_configuration=configuration,
                    token_filename=str(settings.token_file),
                    cert_filename=str(settings.ca_file),
                )
        except (ConfigException, OSError, ValueError) as exc:
            raise ConfigError(f"kube: cannot load the cluster configuration: {exc}") from exc
        if configuration.proxy is None:
            configuration.proxy = env_proxy(configuration.host or "")
        return cls(_api_client(configuration), settings, sleep=sleep)

    async def close(self) -> None:
        await self._api.close()

    async def read(
        self, what: str, fn: Callable[..., Awaitable[Any]], *args: Any, **kw: Any
    ) -> JSON:
        """A GET or LIST, retried on every transient error within the deadline."""
        return await self._call(what, fn, args, kw, write=False)

    async def peek(
        self, what: str, seconds: float, fn: Callable[..., Awaitable[Any]], *args: Any, **kw: Any
    ) -> Any:
        """One read-only call bounded by ``seconds`` and never retried, for context that
        must not hold up a remediation. Returns what the client returns (a log is text)."""
        try:
            return await _answer(fn, args, kw, seconds)
        except Exception as exc:
            raise translate(exc, what) from exc

    async def write(
        self, what: str, fn: Callable[..., Awaitable[Any]], *args: Any, **kw: Any
    ) -> JSON:
        """A mutation, retried only when the server certainly did not apply it."""
        return await self._call(what, fn, args, kw, write=True)

    async def on_conflict_retry(
        self, change: Callable[[], Awaitable[JSON]], attempts: int = 5
    ) -> JSON:
        """Run read-modify-write ``change`` again (with a fresh read) when it hits 409."""
        for attempt in range(1, attempts + 1):
            try:
                return await change()
            except Conflict:
                if attempt == attempts:
                    raise
                await self._sleep(0.05 * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _call(
        self,
        what: str,
        fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kw: dict[str, Any],
        *,
        write: bool,
    ) -> JSON:
        deadline = self._settings.deadline
        ends = time.monotonic() + deadline

        async def once() -> Any:
            # No single request outlives the overall deadline.
            seconds = min(self._settings.request_timeout, max(ends - time.monotonic(), 0.01))
            try:
                return await _answer(fn, args, kw, seconds)
            except Exception as exc:
                raise translate(exc, what) from exc

        result = await with_retries(once, write=write, deadline=deadline, sleep=self._sleep)
        return result if isinstance(result, dict) else {}


async def _answer(
    fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kw: dict[str, Any], seconds: float
) -> Any:
    """The server's answer as JSON (text when it is not JSON, e.g. a pod log); a non-2xx
    answer raises the same ApiException the client would have raised."""
    response = await fn(*args, _request_timeout=seconds, _preload_content=False, **kw)
    try:
        body = await response.read()
    finally:
        response.release()
    if not 200 <= response.status <= 299:
        error = ApiException(status=response.status, reason=response.reason)
        error.body, error.headers = body, response.headers
        raise error
    text = body.decode("utf-8", "replace")
    if response.content_type == "application/json":
        return json.loads(text) if text else {}
    return text


def env_proxy(server: str) -> str | None:
    """The proxy the environment names for ``server``, unless NO_PROXY exempts it."""
    url = urlsplit(server)
    if url.hostname is None or urllib.request.proxy_bypass(url.hostname):
        return None
    return urllib.request.getproxies().get(url.scheme)


def _api_client(configuration: client.Configuration) -> client.ApiClient:
    """An ApiClient whose session leaves the environment alone (see the module doc)."""
    api = client.ApiClient(configuration)
    rest = api.rest_client
    upstream: aiohttp.ClientSession = rest.pool_manager
    # Same connector (TLS settings, pool size); upstream's read buffer, sized for large
    # objects. detach() closes the old session without closing the shared connector.
    rest.pool_manager = aiohttp.ClientSession(
        connector=upstream.connector, trust_env=False, read_bufsize=2**21
    )
    upstream.detach()
    return api


def _in_cluster(settings: KubeSettings) -> bool:
    if settings.source == "auto":
        return settings.kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ
    return settings.source == "in-cluster"
