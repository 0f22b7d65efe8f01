"""Fixtures for end-to-end tests against a real Alertmanager (see ``alertmanager.py``)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Unpack

import pytest

from .alertmanager import (
    ALERTMANAGER_BIN,
    AlertmanagerFactory,
    AlertmanagerProcess,
    ConfigOptions,
    start_alertmanager,
)

E2E_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test collected under tests/e2e with ``e2e``."""
    for item in items:
        if item.path.resolve().is_relative_to(E2E_DIR):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def alertmanager_factory(tmp_path: Path) -> Iterator[AlertmanagerFactory]:
    """Start real Alertmanagers on loopback; every one is stopped at teardown.

    Fails (never skips) when the binary is missing: e2e coverage must not vanish silently.
    """
    if shutil.which(ALERTMANAGER_BIN) is None:
        pytest.fail(
            f"{ALERTMANAGER_BIN} is not on PATH; e2e tests need a real Alertmanager: "
            "install the Debian package with `apt-get install prometheus-alertmanager`",
            pytrace=False,
        )
    started: list[AlertmanagerProcess] = []

    def factory(**config_kwargs: Unpack[ConfigOptions]) -> AlertmanagerProcess:
        am = start_alertmanager(tmp_path / f"alertmanager-{len(started)}", **config_kwargs)
        started.append(am)
        return am

    yield factory
    for am in started:
        am.stop()
