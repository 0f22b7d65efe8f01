"""The ``matched`` event names the Git commit of the runbook set it used (issue 2): HEAD
of the checkout the runbook directory is in, the new HEAD once a pulled change is
reloaded, and no commit (and no error) when the directory is not a Git checkout."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from remediator.app import create_app
from remediator.keys import RUNBOOKS
from remediator.settings import RunbookSettings, Settings
from tests.conftest import AUTH, FIXTURES, eventually
from tests.gitrepo import git
from tests.payloads import alert, crashloop_labels, notification


@pytest.fixture
def upstream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository with the fixture runbooks committed under ``runbooks/``."""
    # Never let git find a repository above the test's own directory.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    root = tmp_path / "upstream"
    shutil.copytree(FIXTURES / "runbooks", root / "runbooks")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "runbooks")
    return root


@pytest.fixture
def checkout(tmp_path: Path, upstream: Path) -> Path:
    """The clone the server reads its runbooks from, as a deployment keeps one."""
    git(tmp_path, "clone", "-q", str(upstream), "checkout")
    return tmp_path / "checkout"


def reading(settings: Settings, directory: Path) -> Settings:
    return settings.model_copy(update={"runbooks": RunbookSettings(dir=directory, watch=True)})


async def matched_event(client: Any, namespace: str) -> dict[str, Any]:
    """Send a new crash-loop alert in ``namespace``; its ``matched`` event once its
    timeline has reached the would-be action (so nothing after matching failed)."""
    body = notification(alert(crashloop_labels(namespace=namespace)))
    resp = await client.post("/api/v1/alerts", json=body, headers=AUTH)
    assert resp.status == 200, await resp.text()

    async def done() -> list[dict[str, Any]] | None:
        resp = await client.get("/api/v1/incidents", params={"namespace": namespace}, headers=AUTH)
        [item] = (await resp.json())["items"]
        resp = await client.get(f"/api/v1/incidents/{item['id']}", headers=AUTH)
        events: list[dict[str, Any]] = (await resp.json())["events"]
        return events if events[-1]["kind"] == "dry_run" else None

    events = await eventually(done)
    assert [e["kind"] for e in events] == ["received", "matched", "planned", "dry_run"]
    return events[1]


async def test_matched_names_the_checkout_head_and_the_new_one_after_a_pull(
    aiohttp_client, settings, upstream, checkout
):
    app = create_app(reading(settings, checkout / "runbooks"))
    client = await aiohttp_client(app)
    first = git(checkout, "rev-parse", "HEAD")
    assert len(first) == 40

    event = await matched_event(client, "prod")
    assert (event["runbook"], event["data"]) == (
        "crashloop",
        {"version": "2", "file": "crashloop.yaml", "commit": first},
    )

    # A change is committed upstream and pulled into the checkout, as a sync job does.
    path = upstream / "runbooks" / "crashloop.yaml"
    path.write_text(path.read_text().replace("version: 2", "version: 3"))
    git(upstream, "commit", "-q", "-am", "crashloop: version 3")
    git(checkout, "pull", "-q", "--ff-only")
    second = git(checkout, "rev-parse", "HEAD")
    assert second not in (first, f"{first}-dirty")

    async def reloaded() -> bool:
        return app[RUNBOOKS]().commit == second

    await eventually(reloaded, timeout=10)
    event = await matched_event(client, "stage")
    assert event["data"] == {"version": "3", "file": "crashloop.yaml", "commit": second}


async def test_outside_a_git_checkout_matched_has_no_commit(
    aiohttp_client, settings, tmp_path, monkeypatch
):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert not (tmp_path / ".git").exists()
    client = await aiohttp_client(create_app(settings))

    event = await matched_event(client, "prod")
    assert event["data"] == {"version": "2", "file": "crashloop.yaml", "commit": None}


async def test_a_commit_after_the_edit_replaces_the_dirty_commit(
    aiohttp_client, settings, checkout
):
    """Saved first (the set is reloaded as ``-dirty``), committed later: the commit alone
    touches no runbook file, yet the set must name the clean commit it now is."""
    app = create_app(reading(settings, checkout / "runbooks"))
    await aiohttp_client(app)
    first = git(checkout, "rev-parse", "HEAD")
    path = checkout / "runbooks" / "crashloop.yaml"
    path.write_text(path.read_text().replace("version: 2", "version: 3"))

    async def commit_is(expected: str) -> bool:
        return app[RUNBOOKS]().commit == expected

    await eventually(lambda: commit_is(f"{first}-dirty"), timeout=10)
    git(checkout, "commit", "-q", "-am", "crashloop: version 3")
    await eventually(lambda: commit_is(git(checkout, "rev-parse", "HEAD")), timeout=10)
