"""The cluster layer against the fake API server: error tree, retries, deadlines.

Waits go through an injected sleep that records and returns at once, so Retry-After
and backoff are asserted without real sleeping.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from kubernetes_asyncio.config import incluster_config

from remediator.errors import ConfigError
from remediator.kube import Kube
from remediator.kube import errors as ke
from remediator.kube.client import env_proxy
from remediator.settings import KubeSettings
from tests.conftest import eventually
from tests.fakes.kube import FakeKube, objects
from tests.fakes.tls import throwaway_tls


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def kube(fake_kube, sleeps):
    fake_kube.add(objects.deployment("web", "prod"))
    # The fake answers on the test's loop: a request timeout of 2 s is far beyond any
    # pause of a loaded machine, so only the tests that mean to time out do.
    settings = KubeSettings(
        source="kubeconfig", kubeconfig=fake_kube.kubeconfig, request_timeout=2, deadline=3
    )
    k = await Kube.connect(settings, sleep=sleeps)
    yield k
    await k.close()


def read(kube: Kube, name: str = "web"):
    return kube.read("GET web", kube.apps.read_namespaced_deployment, name, "prod")


def patch(kube: Kube):
    body = {"metadata": {"labels": {"x": "1"}}}
    return kube.write("PATCH web", kube.apps.patch_namespaced_deployment, "web", "prod", body)


async def test_reads_come_back_as_plain_json(kube):
    obj = await read(kube)
    assert obj["metadata"]["name"] == "web"
    assert obj["kind"] == "Deployment"


async def test_429_is_retried_after_the_servers_retry_after(fake_kube, kube, sleeps):
    fake_kube.fail_next(2, status=429, retry_after=1, method="GET")
    assert (await read(kube))["metadata"]["name"] == "web"
    assert len(sleeps) == 2
    assert all(s >= 1 for s in sleeps)


async def test_a_retry_after_past_the_deadline_is_not_waited_for(fake_kube, kube, sleeps):
    fake_kube.fail_next(1, status=429, retry_after=120, method="GET")  # deadline is 3 s
    with pytest.raises(ke.TooManyRequests):
        await read(kube)
    assert sleeps == []
    assert len(fake_kube.requests) == 1


async def test_no_request_outlives_the_deadline(fake_kube):
    fake_kube.faults.latency = 30
    settings = KubeSettings(
        source="kubeconfig", kubeconfig=fake_kube.kubeconfig, request_timeout=30, deadline=1
    )
    k = await Kube.connect(settings)
    try:
        started = time.monotonic()
        with pytest.raises(ke.Timeout):
            await read(k)
        assert time.monotonic() - started < 10  # the 1 s deadline, not the 30 s timeout
    finally:
        await k.close()


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_retried_for_reads(fake_kube, kube, status):
    fake_kube.fail_next(2, status=status, retry_after=None, method="GET")
    assert (await read(kube))["metadata"]["name"] == "web"
    assert len(fake_kube.requests) == 3


async def test_dropped_connection_is_retried_for_reads(fake_kube, kube):
    fake_kube.drop_next(1, method="GET")
    assert (await read(kube))["metadata"]["name"] == "web"


@pytest.mark.parametrize(
    ("status", "error"),
    [(403, ke.Forbidden), (404, ke.NotFound), (422, ke.Invalid), (400, ke.BadRequest)],
)
async def test_client_errors_fail_fast(fake_kube, kube, status, error):
    fake_kube.fail_next(1, status=status, method="GET")
    with pytest.raises(error) as info:
        await read(kube)
    assert len(fake_kube.requests) == 1
    assert isinstance(info.value, ke.Permanent)
    assert info.value.__cause__ is not None  # the client's exception is chained


async def test_not_found_names_the_call_and_the_server_message(kube):
    with pytest.raises(ke.NotFound) as info:
        await read(kube, "gone")
    assert str(info.value).startswith("GET web: 404 NotFound:")
    assert '"gone" not found' in str(info.value)


async def test_ambiguous_write_failures_are_not_resent_blindly(fake_kube, kube):
    fake_kube.drop_next(1, method="PATCH", apply_then_drop=True)
    with pytest.raises(ke.Disconnected) as info:
        await patch(kube)
    assert info.value.ambiguous
    assert len(fake_kube.mutations()) == 1  # the caller checks the stamp before resending


async def test_writes_are_retried_when_the_server_certainly_refused(fake_kube, kube):
    fake_kube.fail_next(1, status=429, retry_after=1, method="PATCH")
    await patch(kube)
    assert len(fake_kube.mutations()) == 2


async def test_conflict_is_left_to_the_caller_to_reread(fake_kube, kube):
    fake_kube.fail_next(1, status=409, method="PATCH")
    with pytest.raises(ke.Conflict):
        await patch(kube)
    attempts = []

    async def change():
        attempts.append(1)
        await read(kube)
        return await patch(kube)

    fake_kube.fail_next(2, status=409, method="PATCH")
    await kube.on_conflict_retry(change)
    assert len(attempts) == 3


async def test_retries_stop_at_the_overall_deadline(fake_kube, kube, sleeps):
    fake_kube.fail_next(1000, status=503, retry_after=None, method="GET")
    fake_kube.faults.latency = 0.2
    started = time.monotonic()
    # A 503, or on a loaded machine the last attempt cut short by what is left of the deadline.
    with pytest.raises((ke.ServerError, ke.Timeout)):
        await read(kube)
    assert time.monotonic() - started < 6  # the 3 s deadline, not the 1000 failures
    assert 3 <= len(fake_kube.requests) < 40  # ~3 s of 0.2 s requests, then it gives up


async def test_a_read_that_times_out_is_sent_again(fake_kube, kube):
    fake_kube.faults.latency = 5.0  # beyond the 2 s request timeout

    async def seen() -> bool:
        return bool(fake_kube.requests)

    async def answer_quickly_after_the_first() -> None:
        await eventually(seen)
        fake_kube.faults.latency = 0

    helper = asyncio.create_task(answer_quickly_after_the_first())
    assert (await read(kube))["metadata"]["name"] == "web"
    await helper
    assert len([r for r in fake_kube.requests if r.method == "GET"]) == 2


async def test_request_timeout_becomes_a_timeout_error(fake_kube, kube):
    fake_kube.faults.latency = 5.0  # beyond the 2 s request timeout and the 3 s deadline
    with pytest.raises(ke.Timeout):
        await patch(kube)


class CountingExecutor(ThreadPoolExecutor):
    """The loop's default executor, counting the jobs handed to it."""

    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.jobs = 0

    def submit(self, fn, /, *args, **kwargs):
        self.jobs += 1
        return super().submit(fn, *args, **kwargs)


async def test_a_call_costs_no_trip_to_a_worker_thread(fake_kube, kube):
    # Upstream's session looks up netrc and the proxy on threads for every request;
    # each hop costs a millisecond or more here, twice before every action's write.
    await read(kube)  # the connection is open: only the calls themselves are counted
    counting = CountingExecutor()
    asyncio.get_running_loop().set_default_executor(counting)
    await read(kube)
    await patch(kube)
    assert counting.jobs == 0


class RecordingProxy:
    """An HTTP forward proxy that records each request line and answers for the server."""

    def __init__(self, body: bytes) -> None:
        self.lines: list[str] = []
        self._body = body

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.lines.append(head.split(b"\r\n", 1)[0].decode())
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(self._body)}\r\n\r\n".encode()
                    + self._body
                )
                await writer.drain()
        except asyncio.IncompleteReadError:  # the client closed the connection
            pass
        finally:
            writer.close()


@pytest.fixture
async def proxy():
    recording = RecordingProxy(json.dumps(objects.deployment("web", "prod")).encode())
    server = await asyncio.start_server(recording, "127.0.0.1", 0)
    recording.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    yield recording
    server.close()
    await server.wait_closed()


@pytest.fixture
def no_proxy_env(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


async def test_the_environments_proxy_is_used_as_kubectl_would(fake_kube, proxy, no_proxy_env):
    no_proxy_env.setenv("HTTP_PROXY", proxy.url)
    settings = KubeSettings(source="kubeconfig", kubeconfig=fake_kube.kubeconfig)
    k = await Kube.connect(settings)
    try:
        assert (await read(k))["metadata"]["name"] == "web"
    finally:
        await k.close()
    path = "/apis/apps/v1/namespaces/prod/deployments/web"
    assert proxy.lines == [f"GET {fake_kube.url}{path} HTTP/1.1"]
    assert not [r for r in fake_kube.requests if r.path == path]


async def test_no_proxy_exempts_the_api_server(fake_kube, proxy, no_proxy_env):
    fake_kube.add(objects.deployment("web", "prod"))
    no_proxy_env.setenv("HTTP_PROXY", proxy.url)
    no_proxy_env.setenv("NO_PROXY", "127.0.0.1")
    settings = KubeSettings(source="kubeconfig", kubeconfig=fake_kube.kubeconfig)
    k = await Kube.connect(settings)
    try:
        assert (await read(k))["metadata"]["name"] == "web"
    finally:
        await k.close()
    assert proxy.lines == []


def test_env_proxy_follows_the_scheme_and_no_proxy(no_proxy_env):
    no_proxy_env.setenv("HTTPS_PROXY", "http://squid:3128")
    no_proxy_env.setenv("NO_PROXY", ".svc,10.0.0.1")
    assert env_proxy("https://api.example.com:6443") == "http://squid:3128"
    assert env_proxy("http://api.example.com") is None  # no HTTP_PROXY set
    assert env_proxy("https://10.0.0.1:443") is None
    assert env_proxy("https://kubernetes.default.svc") is None


async def test_kube_context_picks_the_cluster_from_a_kubeconfig_with_several(fake_kube, tmp_path):
    fake_kube.add(objects.deployment("web", "prod"))
    config = fake_kube.kubeconfig_dict("fake")
    # The current context points at a port nothing listens on; only "fake" works.
    config["clusters"].append({"name": "dead", "cluster": {"server": "http://127.0.0.1:9"}})
    config["users"].append({"name": "dead-user", "user": {"token": "x"}})
    config["contexts"].append({"name": "dead", "context": {"cluster": "dead", "user": "dead-user"}})
    config["current-context"] = "dead"
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(config))

    async def first_read(context: str | None, deadline: float) -> Any:
        settings = KubeSettings(
            source="kubeconfig",
            kubeconfig=path,
            context=context,
            request_timeout=deadline,
            deadline=deadline,
        )
        k = await Kube.connect(settings)
        try:
            return await read(k)
        finally:
            await k.close()

    assert (await first_read("fake", 10))["metadata"]["name"] == "web"
    with pytest.raises(ke.KubeError):
        await first_read(None, 1)  # the current context: the dead one


# -- in-cluster: HTTPS to $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, the service
# account's bearer token, the cluster CA. The fake answers 401 to any other bearer token,
# so every 200 it recorded is a request that carried the token from the file.


@dataclass
class Cluster:
    """A fake API server reachable the way a pod reaches its own cluster."""

    fake: FakeKube
    token_file: Path
    ca_file: Path

    def settings(self, **kw: Any) -> KubeSettings:
        fields = {"source": "in-cluster", "token_file": self.token_file, "ca_file": self.ca_file}
        return KubeSettings(**(fields | kw), request_timeout=2, deadline=2)

    def rotate_token(self) -> None:
        """Kubelet's part: a new token in the file, and the server accepts only that one."""
        self.fake.token = secrets.token_urlsafe(16)
        self.token_file.write_text(self.fake.token)


@pytest.fixture
async def cluster(tmp_path, no_proxy_env):
    tls = throwaway_tls(tmp_path / "tls")
    fake = FakeKube(token=secrets.token_urlsafe(16))
    fake.add(objects.deployment("web", "prod"))
    async with fake.running(tls.server) as url:
        no_proxy_env.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        no_proxy_env.setenv("KUBERNETES_SERVICE_PORT", str(urlsplit(url).port))
        # A projected token: not the default mount, which tests must not write to.
        token_file = tmp_path / "projected" / "token"
        token_file.parent.mkdir()
        token_file.write_text(fake.token)
        yield Cluster(fake, token_file, tls.ca_file)


async def read_once(settings: KubeSettings, sleep: Sleeps | None = None) -> Any:
    k = await Kube.connect(settings, sleep=sleep or Sleeps())
    try:
        return await read(k)
    finally:
        await k.close()


def statuses(fake: FakeKube) -> list[int | None]:
    return [r.response_status for r in fake.requests]


async def test_in_cluster_speaks_tls_with_the_service_account_token(cluster):
    assert cluster.fake.url.startswith("https://")
    assert (await read_once(cluster.settings()))["metadata"]["name"] == "web"
    assert statuses(cluster.fake) == [200]


async def test_in_cluster_verifies_the_api_server_against_the_ca_file(cluster, tmp_path):
    stranger = throwaway_tls(tmp_path / "another-cluster").ca_file
    sleeps = Sleeps()
    with pytest.raises(ke.Untrusted, match=r"not trusted: .*certificate verify failed"):
        await read_once(cluster.settings(ca_file=stranger), sleeps)
    assert cluster.fake.requests == []  # the handshake failed before any request
    assert sleeps == []  # and a wrong CA is not retried until the deadline


async def test_in_cluster_without_a_token_file_is_a_config_error(cluster, tmp_path):
    with pytest.raises(ConfigError, match="token file"):
        await Kube.connect(cluster.settings(token_file=tmp_path / "missing"))


async def test_auto_picks_in_cluster_inside_a_pod(cluster):
    # Outside a pod auto would read ~/.kube/config; only the service account reaches this
    # fake (HTTPS to the service env vars, the projected token, the CA).
    assert (await read_once(cluster.settings(source="auto")))["metadata"]["name"] == "web"
    assert statuses(cluster.fake) == [200]


async def test_auto_prefers_a_kubeconfig_it_is_given_even_inside_a_pod(cluster, fake_kube):
    fake_kube.add(objects.deployment("web", "prod"))
    settings = cluster.settings(source="auto", kubeconfig=fake_kube.kubeconfig)
    assert (await read_once(settings))["metadata"]["name"] == "web"
    assert statuses(fake_kube) == [200]
    assert cluster.fake.requests == []


async def test_a_rotated_token_is_read_again_from_the_file(cluster, monkeypatch):
    # Bound tokens rotate: kubelet rewrites the file well before the old one expires, and
    # upstream's in-cluster loader re-reads it when its copy is a minute old. The minute is
    # shortened here rather than waited out; the refresh itself is upstream's, unpatched.
    monkeypatch.setattr(incluster_config, "TOKEN_REFRESH_PERIOD", timedelta(0))
    k = await Kube.connect(cluster.settings())
    try:
        await read(k)
        cluster.rotate_token()
        await read(k)
    finally:
        await k.close()
    assert statuses(cluster.fake) == [200, 200]
