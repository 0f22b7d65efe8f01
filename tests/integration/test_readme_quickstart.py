"""The README's first command and its "Try it" paragraph, run as written: the commands
are read from the README itself, so a change there that stops working fails here.

The server runs in a fresh copy of the checkout, not in the checkout itself: the
command's store (``remediator.db``) lands in its working directory, and one left there
by an earlier run (the developer's own) would already hold the test alert.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from tests.reaper import reaped

ROOT = Path(__file__).parents[2]
README = ROOT / "README.md"
# What a fresh checkout does not have: VCS data, caches, stores of earlier runs.
NOT_IN_A_CHECKOUT = shutil.ignore_patterns(
    ".git", "*.db", "*.db-*", "__pycache__", "*.egg-info", ".*_cache", ".hypothesis",
    ".venv", "build", "dist", "test-artifacts",
)  # fmt: skip


class Quickstart(NamedTuple):
    serve: str  # the command after `pip install -e . &&`
    send: str  # sends the test alert
    list_incidents: str  # a curl command
    detail_path: str  # /api/v1/incidents/ID
    kinds: list[str]  # the timeline it promises
    again: str  # the event a second send adds
    port: int


def quickstart() -> Quickstart:
    """The "Two commands" section's first command and the commands of its "Try it"."""
    section = README.read_text("utf-8").split("\n## Two commands\n", 1)[1].split("\n## ", 1)[0]
    command = re.search(r"^```sh\n(.*?)\n```", section, re.M | re.S)
    try_it = re.search(r"^Try it:.*?(?:\n\n|\Z)", section, re.M | re.S)
    assert command, "the README's Two commands section lost its first command"
    assert try_it, "the README's Two commands section lost its Try it paragraph"
    install, sep, serve = command.group(1).partition(" && ")
    # CI installs the package exactly so before the tests; the test does not run pip.
    assert (install, sep) == ("pip install -e .", " && "), command.group(1)
    # A span may wrap onto the next line of the paragraph; the shell reads it as one line.
    spans = [" ".join(s.split()) for s in re.findall(r"`([^`]+)`", try_it.group(0))]
    assert len(spans) == 5, spans
    send, list_incidents, detail_path, timeline, again = spans
    assert send.startswith("remediator send-test-alert "), send
    port = re.fullmatch(r"curl .* 127\.0\.0\.1:(\d+)/api/v1/incidents", list_incidents)
    assert port, list_incidents
    assert detail_path == "/api/v1/incidents/ID", detail_path
    kinds = timeline.split(" → ")
    return Quickstart(serve, send, list_incidents, detail_path, kinds, again, int(port[1]))


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    copy = tmp_path / "remediator"
    shutil.copytree(ROOT, copy, ignore=NOT_IN_A_CHECKOUT)
    return copy


@pytest.fixture
def environ() -> dict[str, str]:
    """This environment, with no REMEDIATOR_ settings of its own, and first on PATH the
    commands that installed this interpreter's ``remediator`` (``pip install -e .``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMEDIATOR_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def serving(checkout: Path, environ: dict[str, str], tmp_path: Path) -> Iterator[Path]:
    """The README's command running in ``checkout``; killed, with the shell that runs it,
    however the test ends. Yields the path of its log."""
    qs = quickstart()
    if not port_is_free(qs.port):
        pytest.fail(
            f"port {qs.port} (fixed by examples/local.yaml) is in use on 127.0.0.1: stop what "
            "listens there (another `remediator serve`?) and run this test again",
            pytrace=False,
        )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S602 - the README's command, as typed
            qs.serve,
            shell=True,
            cwd=checkout,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the shell and the server
        )
    try:
        with reaped(process.pid):  # even if pytest is SIGKILLed
            ready(f"http://127.0.0.1:{qs.port}/readyz", process, log)
            yield log
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the server exited:\n{log.read_text()}"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"the server was not ready within 30 s:\n{log.read_text()}")


def shell(command: str, cwd: Path, env: dict[str, str]) -> str:
    """Run ``command`` as a user types it; its output, failing the test if it fails."""
    result = subprocess.run(  # noqa: S602 - the README's commands, as typed
        command, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"`{command}` failed:\n{result.stdout}{result.stderr}"
    return result.stdout


def test_the_readme_quickstart_runs_as_written(serving, checkout, environ):
    qs = quickstart()

    def detail(until: str) -> dict[str, Any]:
        """The one incident, as the README's curl commands show it, once its timeline
        has an ``until`` event."""
        deadline = time.monotonic() + 20
        while True:
            [item] = json.loads(shell(qs.list_incidents, checkout, environ))["items"]
            path = qs.detail_path.replace("ID", item["id"])
            command = qs.list_incidents.removesuffix("/api/v1/incidents") + path
            found: dict[str, Any] = json.loads(shell(command, checkout, environ))
            if any(e["kind"] == until for e in found["events"]):
                return found
            got = [e["kind"] for e in found["events"]]
            assert time.monotonic() < deadline, f"no {until}: {got}\n{serving.read_text()}"
            time.sleep(0.1)

    assert shell(qs.send, checkout, environ).startswith("200 ")
    first = detail(qs.kinds[-1])
    assert [e["kind"] for e in first["events"]] == qs.kinds

    assert shell(qs.send, checkout, environ).startswith("200 ")
    second = detail(qs.again)
    assert [e["kind"] for e in second["events"]] == [*qs.kinds, qs.again]
    assert second["id"] == first["id"]
    assert len(second["executions"]) == len(first["executions"]) == 1  # nothing ran twice
