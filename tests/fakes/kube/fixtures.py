"""pytest fixtures for the fake API server, registered for every test by
``pytest_plugins`` in ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from kubernetes_asyncio.client import ApiClient

from remediator.kube import Kube
from remediator.settings import KubeSettings

from .server import FakeKube

FAKE_KUBE_TOKEN = "test-token"


@pytest_asyncio.fixture
async def fake_kube(tmp_path: Path) -> AsyncIterator[FakeKube]:
    """A running :class:`FakeKube` (no objects, controllers on, no faults) with ``.url`` set
    and a kubeconfig written to ``tmp_path / "kubeconfig"`` (``.kubeconfig``)."""
    fake = FakeKube(token=FAKE_KUBE_TOKEN, seed=0)
    async with fake.running():
        fake.write_kubeconfig(tmp_path / "kubeconfig", context="fake")
        yield fake


@pytest_asyncio.fixture
async def fake_kube_client(fake_kube: FakeKube) -> AsyncIterator[ApiClient]:
    """A real ``kubernetes_asyncio`` ApiClient for ``fake_kube``, closed after the test."""
    async with fake_kube.api_client() as api:
        yield api


@pytest_asyncio.fixture
async def kube(fake_kube: FakeKube) -> AsyncIterator[Kube]:
    """remediator's own cluster client, connected to ``fake_kube``, closed after the test."""
    settings = KubeSettings(
        source="kubeconfig", kubeconfig=fake_kube.kubeconfig, request_timeout=5, deadline=10
    )
    client = await Kube.connect(settings)
    try:
        yield client
    finally:
        await client.close()
