"""``KubeThread``: the context reads' client, on a thread and loop of its own."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

import pytest

from remediator.errors import ConfigError
from remediator.kube import Kube
from remediator.kube.errors import NotFound
from remediator.kube.thread import KubeThread
from remediator.settings import KubeSettings
from tests.conftest import eventually
from tests.fakes.kube import FakeKube, objects


def settings(fake: FakeKube) -> KubeSettings:
    return KubeSettings(source="kubeconfig", kubeconfig=fake.kubeconfig, request_timeout=2)


def reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "kube-reads"]


def is_set(event: threading.Event) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return event.is_set()

    return probe


@pytest.fixture
async def reads(fake_kube):
    fake_kube.add(objects.deployment("web", "prod"))
    reads = await KubeThread.start(settings(fake_kube))
    yield reads
    await reads.close()


async def test_a_read_runs_on_another_thread_and_loop_and_returns_its_answer(reads, fake_kube):
    here = asyncio.get_running_loop()

    async def read(kube: Kube) -> tuple[object, int, str]:
        answer = await kube.peek("GET web", 2, kube.apps.read_namespaced_deployment, "web", "prod")
        return asyncio.get_running_loop(), threading.get_ident(), answer["metadata"]["name"]

    loop, ident, name = await reads.run(read)
    assert name == "web"
    assert loop is not here
    assert ident != threading.get_ident()
    assert [r.path for r in fake_kube.requests] == ["/apis/apps/v1/namespaces/prod/deployments/web"]


async def test_an_error_there_is_raised_here(reads):
    async def missing(kube: Kube) -> object:
        return await kube.peek("GET gone", 2, kube.apps.read_namespaced_deployment, "gone", "x")

    with pytest.raises(NotFound, match="GET gone"):
        await reads.run(missing)


async def test_cancelling_the_caller_cancels_the_read_on_the_thread(reads):
    started, cancelled = threading.Event(), threading.Event()

    async def slow(kube: Kube) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = asyncio.create_task(reads.run(slow))
    await eventually(is_set(started))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await eventually(is_set(cancelled))


async def test_close_cancels_what_runs_there_and_stops_the_thread(fake_kube):
    reads = await KubeThread.start(settings(fake_kube))
    assert len(reader_threads()) == 1
    started = threading.Event()

    async def forever(kube: Kube) -> None:
        started.set()
        await asyncio.sleep(30)

    task = asyncio.create_task(reads.run(forever))
    await eventually(is_set(started))
    await asyncio.wait_for(reads.close(), 5)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert reader_threads() == []
    await reads.close()  # a second close is harmless


async def test_a_bad_configuration_fails_start_and_leaves_no_thread(tmp_path):
    missing = KubeSettings(source="kubeconfig", kubeconfig=tmp_path / "nope")
    with pytest.raises(ConfigError, match="does not exist"):
        await KubeThread.start(missing)
    assert reader_threads() == []
