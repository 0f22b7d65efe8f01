"""The live suite, run as its docstring says against ``python -m tests.fakes.kube``, so it
keeps working where no cluster exists (and the fake keeps up with what it needs)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(180)
async def test_the_live_suite_passes_against_the_fake(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kc"
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.kube",
        "--kubeconfig",
        str(kubeconfig),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert server.stdout is not None
    try:
        ready = await asyncio.wait_for(server.stdout.readline(), 30)
        assert b"fake kube serving" in ready, ready
        suite = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/live",
            cwd=ROOT,
            env={**os.environ, "KUBECONFIG": str(kubeconfig)},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(suite.communicate(), 150)
    finally:
        server.terminate()
        rest, _ = await asyncio.wait_for(server.communicate(), 30)
    report = output.decode()
    assert suite.returncode == 0, report
    assert "5 passed" in report.splitlines()[-1], report
    # The fake surfaces a crash of its own controllers when it stops.
    assert server.returncode == 0, rest.decode()
