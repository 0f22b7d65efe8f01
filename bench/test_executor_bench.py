"""Smoke test of the executor benchmark: ``pytest bench/test_executor_bench.py``.

Not part of the default suite (``testpaths`` is ``tests``): it starts real servers and
takes about half a minute. The harness runs end to end at a small size, and the storm's
action count must come out exactly as the limits allow.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from pathlib import Path

import aiohttp
import executor
import pytest


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert executor.percentile(values, 50) == 50.0
    assert executor.percentile(values, 99) == 99.0
    assert executor.percentile([3.0], 99) == 3.0


def test_reads_are_counted_by_resource_and_subresource() -> None:
    kind = executor.read_kind
    assert kind("/apis/apps/v1/namespaces/lat/deployments/web-1", "lat") == "deployments"
    assert kind("/api/v1/namespaces/lat/pods", "lat") == "pods"
    assert kind("/api/v1/namespaces/lat/pods/web-1-abc/log", "lat") == "pods/log"
    scale = "/apis/apps/v1/namespaces/lat/deployments/web-1/scale"
    assert kind(scale, "lat") == "deployments/scale"


def test_expected_actions_take_the_tightest_limit() -> None:
    args = argparse.Namespace(storm_targets=500, max_targets=1000, burst=120, per_minute=0.001)
    expected = executor.expected_actions(args, elapsed_s=300.0)
    assert (expected["low"], expected["high"], expected["exact"]) == (120, 120, True)
    args.per_minute = 60.0  # one token a second: no longer exact over a long run
    expected = executor.expected_actions(args, elapsed_s=10.5)
    assert (expected["low"], expected["high"], expected["exact"]) == (120, 130, False)
    args.max_targets = 50
    assert executor.expected_actions(args, elapsed_s=0.0)["low"] == 50


def test_the_watcher_times_the_actions_get_not_the_snapshots() -> None:
    """Snapshot GET, then the action's GET, then the PATCH: the split starts at the second."""

    async def run() -> tuple[float, float, list[float]]:
        fake = executor.FakeKube(token="t", run_controllers=False)
        fake.add(executor.objects.deployment("web", "prod"))
        path = executor.deployment_path("prod", "web")
        auth = {"Authorization": "Bearer t"}
        watcher = executor.Watcher(fake)
        async with fake.running() as url, aiohttp.ClientSession(headers=auth) as http:
            for _ in range(2):
                async with http.get(url + path) as r:
                    assert r.status == 200
            patch = {"Content-Type": "application/strategic-merge-patch+json"}
            async with http.patch(url + path, data=b'{"spec":{"replicas":3}}', headers=patch):
                pass
            async with http.get(url + path):  # a verify look, after the write
                pass
            seen = await watcher.wait(path, 5.0)
        assert seen is not None
        return *seen, [r.at for r in fake.requests]

    read, write, stamps = asyncio.run(run())
    assert (read, write) == (stamps[1], stamps[2])


@pytest.mark.timeout(300)
def test_small_run_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    argv = [
        sys.executable,
        str(Path(executor.__file__)),
        "--alerts=8",
        "--rounds=2",
        "--gap-ms=10",
        "--rollout-s=1",
        "--storm-alerts=300",
        "--storm-targets=30",
        "--batch=50",
        "--burst=7",
        f"--json={out}",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=280, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(out.read_text())
    latency, storm = data["latency"], data["storm"]
    for role in ("baseline", "subject"):
        assert latency[role]["measured"] == 8
        assert latency[role]["missing"] == latency[role]["errors"] == 0
    assert storm["processed"] == 300
    assert storm["expected"]["low"] == storm["expected"]["high"] == 7
    assert set(storm["observed"].values()) == {7}
    assert storm["actions_match"] is True
    assert "EXACT MATCH" in done.stdout
