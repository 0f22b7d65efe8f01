"""Hot reload of the runbook directory, with the real watcher (watchfiles)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from remediator.actions.registry import builtin_actions
from remediator.app import create_app
from remediator.keys import RUNBOOKS
from remediator.observability.metrics import Metrics
from remediator.runbooks.reload import RunbookRegistry
from remediator.settings import RunbookSettings
from tests.conftest import AUTH, eventually
from tests.payloads import alert, crashloop_labels, notification

RELOAD_TIMEOUT = 10.0

CERT_RUNBOOK = """\
name: cert-expiry
version: 1
owner: platform
match:
  - alertname="CertificateExpiringSoon"
target:
  kind: Certificate
  namespace: "{{ labels.namespace }}"
  name: "{{ labels.certificate }}"
steps:
  - action: notify
    params:
      message: "certificate {{ labels.certificate }} expires soon"
"""

# Valid YAML, invalid runbook: an unknown action and a typo'd key.
INVALID_RUNBOOK = CERT_RUNBOOK.replace("action: notify", "action: teleport").replace(
    "steps:", "stpes:"
)
BROKEN_YAML = "name: cert-expiry\nmatch: [unclosed\n"
# Files the YAML parser does not answer with a YAMLError: it raises ValueError (int() digit
# limit) and RecursionError. They are as invalid as any other file and must be reported so.
PATHOLOGICAL = {
    "huge-int": "name: big\nversion: " + "9" * 5000 + "\n",
    "deep-nesting": "name: deep\nmatch: " + "[" * 5000 + "]" * 5000 + "\n",
}


def cert_labels() -> dict[str, str]:
    return {
        "alertname": "CertificateExpiringSoon",
        "namespace": "prod",
        "certificate": "api-tls",
        "severity": "warning",
    }


def write_atomically(path: Path, text: str) -> None:
    """Write as deployment tools do (temp file + rename), so no half-written file is seen."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


@pytest.fixture
async def watched(aiohttp_client, settings):
    s = settings.model_copy(
        update={"runbooks": RunbookSettings(dir=settings.runbooks.dir, watch=True)}
    )
    app = create_app(s)
    client = await aiohttp_client(app)
    assert app[RUNBOOKS].loaded
    return client, app, s.runbooks.dir


async def metric(client, name: str) -> float | None:
    resp = await client.get("/metrics")
    for family in text_string_to_metric_families(await resp.text()):
        for sample in family.samples:
            if sample.name == name and not sample.labels:
                return sample.value
    return None


def metric_is(client, name: str, value: float):
    async def probe():
        return await metric(client, name) == value

    return probe


async def runbook_names(app) -> list[str]:
    return sorted(r.spec.name for r in app[RUNBOOKS]().runbooks)


async def outcome_of(client, labels: dict[str, str], starts_at: str) -> list[tuple[str, str]]:
    """Send one new alert, wait for its match stage, return (kind, runbook) of match events."""
    resp = await client.post(
        "/api/v1/alerts", json=notification(alert(labels, starts_at=starts_at)), headers=AUTH
    )
    assert resp.status == 200
    assert (await resp.json())["received"] == 1
    page = await (await client.get("/api/v1/incidents", headers=AUTH)).json()
    incident_id = page["items"][0]["id"]

    async def matched():
        resp = await client.get(f"/api/v1/incidents/{incident_id}", headers=AUTH)
        events = (await resp.json())["events"]
        found = [(e["kind"], e["runbook"]) for e in events if e["stage"] == "match"]
        return found or None

    return await eventually(matched)


async def test_new_runbook_file_becomes_active(watched):
    client, app, directory = watched
    assert await outcome_of(client, cert_labels(), "2025-05-01T10:00:00Z") == [("no_match", None)]

    write_atomically(directory / "cert-expiry.yaml", CERT_RUNBOOK)
    await eventually(metric_is(client, "remediator_runbooks_loaded", 3.0), timeout=RELOAD_TIMEOUT)

    assert await runbook_names(app) == ["cert-expiry", "crashloop", "disk-notify"]
    assert await outcome_of(client, cert_labels(), "2025-05-01T11:00:00Z") == [
        ("matched", "cert-expiry")
    ]
    assert await metric(client, "remediator_runbook_reload_failures_total") == 0.0


async def test_invalid_file_keeps_last_good_set_then_fix_loads_it(watched):
    client, app, directory = watched
    before = app[RUNBOOKS]()

    with capture_logs() as logs:
        write_atomically(directory / "cert-expiry.yaml", INVALID_RUNBOOK)
        await eventually(
            metric_is(client, "remediator_runbook_reload_failures_total", 1.0),
            timeout=RELOAD_TIMEOUT,
        )
    # The log says what was wrong, where, and that the old set stays.
    [failure] = [e for e in logs if e["event"] == "runbooks_invalid"]
    assert failure["log_level"] == "error"
    assert failure["kept"] == 2
    assert any("cert-expiry.yaml" in problem for problem in failure["problems"])
    # The last good set is still the active one, and the server still says it is ready.
    assert app[RUNBOOKS]() is before
    assert await metric(client, "remediator_runbooks_loaded") == 2.0
    resp = await client.get("/readyz")
    assert (resp.status, await resp.json()) == (200, {"status": "ready"})
    assert await outcome_of(client, crashloop_labels(), "2025-05-01T10:00:00Z") == [
        ("matched", "crashloop")
    ]
    assert await outcome_of(client, cert_labels(), "2025-05-01T10:00:00Z") == [("no_match", None)]

    # Broken YAML is no different.
    write_atomically(directory / "cert-expiry.yaml", BROKEN_YAML)
    await eventually(
        metric_is(client, "remediator_runbook_reload_failures_total", 2.0),
        timeout=RELOAD_TIMEOUT,
    )
    assert app[RUNBOOKS]() is before

    # Fixing the file loads it, next to the runbooks that were there all along.
    write_atomically(directory / "cert-expiry.yaml", CERT_RUNBOOK)
    await eventually(metric_is(client, "remediator_runbooks_loaded", 3.0), timeout=RELOAD_TIMEOUT)
    assert await runbook_names(app) == ["cert-expiry", "crashloop", "disk-notify"]
    assert await outcome_of(client, cert_labels(), "2025-05-01T11:00:00Z") == [
        ("matched", "cert-expiry")
    ]
    assert await outcome_of(client, crashloop_labels(), "2025-05-01T11:00:00Z") == [
        ("matched", "crashloop")
    ]
    assert await metric(client, "remediator_runbook_reload_failures_total") == 2.0
    assert (await client.get("/readyz")).status == 200


async def test_removed_runbook_file_stops_matching(watched):
    client, app, directory = watched
    (directory / "disk-notify.yaml").unlink()
    await eventually(metric_is(client, "remediator_runbooks_loaded", 1.0), timeout=RELOAD_TIMEOUT)
    assert await runbook_names(app) == ["crashloop"]
    disk = {"alertname": "KubePersistentVolumeFillingUp", "namespace": "prod"}
    assert await outcome_of(client, disk, "2025-05-01T10:00:00Z") == [("no_match", None)]


async def test_edited_runbook_is_used_at_its_new_version(watched):
    client, app, directory = watched
    path = directory / "crashloop.yaml"
    write_atomically(path, path.read_text().replace("version: 2", "version: 3"))

    async def version():
        [crashloop] = [r for r in app[RUNBOOKS]().runbooks if r.spec.name == "crashloop"]
        return crashloop.spec.version == "3"

    await eventually(version, timeout=RELOAD_TIMEOUT)
    resp = await client.post("/api/v1/alerts", json=notification(), headers=AUTH)
    assert resp.status == 200
    page = await (await client.get("/api/v1/incidents", headers=AUTH)).json()
    incident_id = page["items"][0]["id"]

    async def executed():
        resp = await client.get(f"/api/v1/incidents/{incident_id}", headers=AUTH)
        return (await resp.json())["executions"]

    [execution] = await eventually(executed)
    assert (execution["runbook"], execution["version"]) == ("crashloop", "3")


# --- RunbookRegistry.load() directly ----------------------------------------------------


def sample(metrics: Metrics, name: str) -> float | None:
    return metrics.registry.get_sample_value(name)


async def test_registry_load_installs_only_valid_sets(runbook_dir, tmp_path):
    metrics = Metrics()
    registry = RunbookRegistry(runbook_dir, builtin_actions(), metrics)
    assert not registry.loaded
    with pytest.raises(RuntimeError, match="not loaded"):
        registry()

    assert await registry.load() is True
    first = registry()
    assert sorted(r.spec.name for r in first.runbooks) == ["crashloop", "disk-notify"]
    assert sample(metrics, "remediator_runbooks_loaded") == 2.0

    (runbook_dir / "broken.yaml").write_text(INVALID_RUNBOOK)
    assert await registry.load() is False
    assert registry() is first
    assert sample(metrics, "remediator_runbooks_loaded") == 2.0
    assert sample(metrics, "remediator_runbook_reload_failures_total") == 1.0

    (runbook_dir / "broken.yaml").write_text(CERT_RUNBOOK)
    assert await registry.load() is True
    assert registry() is not first
    assert sorted(r.spec.name for r in registry().runbooks) == [
        "cert-expiry",
        "crashloop",
        "disk-notify",
    ]
    assert sample(metrics, "remediator_runbooks_loaded") == 3.0

    # A duplicate name anywhere rejects the whole set.
    (runbook_dir / "copy.yaml").write_text(CERT_RUNBOOK)
    assert await registry.load() is False
    assert len(registry().runbooks) == 3
    assert sample(metrics, "remediator_runbook_reload_failures_total") == 2.0


async def test_registry_load_of_a_missing_directory(tmp_path):
    metrics = Metrics()
    registry = RunbookRegistry(tmp_path / "absent", builtin_actions(), metrics)
    assert await registry.load() is False
    assert not registry.loaded
    assert sample(metrics, "remediator_runbooks_loaded") == 0.0
    assert sample(metrics, "remediator_runbook_reload_failures_total") == 1.0


async def test_registry_empty_directory_is_a_valid_empty_set(tmp_path):
    (tmp_path / "empty").mkdir()
    registry = RunbookRegistry(tmp_path / "empty", builtin_actions(), Metrics())
    assert await registry.load() is True
    assert registry().runbooks == ()


@pytest.mark.parametrize("text", PATHOLOGICAL.values(), ids=PATHOLOGICAL.keys())
async def test_registry_load_rejects_pathological_yaml_like_any_invalid_file(runbook_dir, text):
    metrics = Metrics()
    registry = RunbookRegistry(runbook_dir, builtin_actions(), metrics)
    assert await registry.load() is True
    first = registry()
    (runbook_dir / "weird.yaml").write_text(text)
    assert await registry.load() is False
    assert registry() is first
    assert sample(metrics, "remediator_runbook_reload_failures_total") == 1.0


async def test_watcher_survives_a_pathological_file(runbook_dir):
    metrics = Metrics()
    registry = RunbookRegistry(runbook_dir, builtin_actions(), metrics)
    assert await registry.load() is True
    first = registry()
    registry.watch()
    # watch() only schedules the task; its first step arms the watcher.
    await asyncio.sleep(0.1)
    try:
        write_atomically(runbook_dir / "big.yaml", PATHOLOGICAL["huge-int"])
        await eventually(
            lambda: _value(metrics, "remediator_runbook_reload_failures_total", 1.0), timeout=5
        )
        (runbook_dir / "big.yaml").unlink()
        write_atomically(runbook_dir / "cert-expiry.yaml", CERT_RUNBOOK)
        await eventually(lambda: _value(metrics, "remediator_runbooks_loaded", 3.0), timeout=5)
        assert registry() is not first
    finally:
        await registry.stop()


async def _value(metrics: Metrics, name: str, value: float) -> bool:
    return sample(metrics, name) == value


class ConfigMapVolume:
    """A directory laid out and updated as the kubelet does a ConfigMap volume: each key a
    symlink into ``..data``, itself a symlink to a timestamped directory that an update
    replaces with one rename, after which the old directory is deleted."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.generation = 0

    def publish(self, files: dict[str, str]) -> None:
        self.generation += 1
        new = self.root / f"..2026_11_22_{self.generation:02d}"
        new.mkdir()
        for name, text in files.items():
            (new / name).write_text(text)
        old = (self.root / "..data").resolve() if (self.root / "..data").exists() else None
        (self.root / "..data_tmp").symlink_to(new.name)
        (self.root / "..data_tmp").replace(self.root / "..data")
        for name in files:
            link = self.root / name
            if not link.is_symlink():
                link.symlink_to(f"..data/{name}")
        if old is not None:
            shutil.rmtree(old)


async def test_configmap_volume_updates_are_reloaded_every_time(tmp_path):
    """The Helm chart mounts runbooks from a ConfigMap: updates arrive as symlink swaps in
    a directory whose old contents vanish, and each one must still be seen."""
    volume = ConfigMapVolume(tmp_path / "runbooks")
    volume.root.mkdir()
    volume.publish({"cert-expiry.yaml": CERT_RUNBOOK})
    registry = RunbookRegistry(volume.root, builtin_actions(), Metrics())
    await registry.load()
    registry.watch(debounce_ms=50)
    try:

        async def version(expected: str) -> bool:
            [runbook] = registry().runbooks
            return runbook.spec.version == expected

        for n in ("2", "3", "4"):
            await asyncio.sleep(0.3)  # let the watcher settle on the new layout
            volume.publish(
                {"cert-expiry.yaml": CERT_RUNBOOK.replace("version: 1", f"version: {n}")}
            )
            await eventually(lambda n=n: version(n), timeout=RELOAD_TIMEOUT)
    finally:
        await registry.stop()
