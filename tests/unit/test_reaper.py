"""The test helper that keeps a SIGKILLed pytest from leaving servers running."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]

# Stands in for pytest: starts a group through a shell, as the README fixture does (the
# shell's child is the long-lived process), arms the reaper, says the pid, and waits.
PARENT = textwrap.dedent(
    """
    import subprocess, sys, time
    from tests.reaper import reaped
    shell = subprocess.Popen("sleep 60; true", shell=True, start_new_session=True)
    with reaped(shell.pid):
        print(shell.pid, flush=True)
        time.sleep(60)
    """
)

# Stand in for pytest with a fixture's server, started by the helper the fixture uses:
# each says the pid of the server's group leader and a directory to remove, then waits.
SERVERS = {
    "alertmanager": """
        from tests.e2e.alertmanager import start_alertmanager
        am = start_alertmanager(Path(sys.argv[1]), receiver_url="http://127.0.0.1:9/")
        print(am.process.pid, sys.argv[1], flush=True)
    """,
    "postgresql": """
        from tests.fakes.postgres import Cluster
        cluster = Cluster()
        cluster.start()
        print(cluster.postmaster(), cluster.root, flush=True)
    """,
}


def gone(pid: int) -> bool:
    """Dead or a zombie (a reparented zombie may wait for a reaper here)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def processes(field: int, value: int) -> list[int]:
    """The pids whose /proc stat ``field`` (after the name: 1 ppid, 2 pgrp) is ``value``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[field]) == value:
                found.append(int(entry.name))
    return found


def assert_dies_with(parent: subprocess.Popen[str], leader: int) -> None:
    """SIGKILL ``parent`` (no teardown runs) and see every process of ``leader``'s group go."""
    group = processes(2, leader)
    try:
        assert leader in group, "not the leader of a group of its own"
        assert not any(gone(pid) for pid in group)
        parent.kill()
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while not all(gone(pid) for pid in group) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(gone(pid) for pid in group), "the group outlived its SIGKILLed parent"
    finally:
        parent.kill()
        parent.wait(timeout=10)
        for pid in {leader, *group}:
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)
        assert parent.stdout is not None
        parent.stdout.close()


def test_a_sigkilled_parent_takes_the_group_with_it() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    shell = int(parent.stdout.readline())
    deadline = time.monotonic() + 10
    while not (children := processes(1, shell)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert children, "the shell started no child"
    assert_dies_with(parent, shell)


@pytest.mark.parametrize("server", SERVERS)
def test_a_sigkilled_parent_takes_its_fixtures_server_with_it(server: str, tmp_path: Path) -> None:
    script = f"import sys, time\nfrom pathlib import Path\n{textwrap.dedent(SERVERS[server])}"
    parent = subprocess.Popen(
        [sys.executable, "-c", f"{script}time.sleep(60)", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    leader, leftovers = parent.stdout.readline().split()
    try:
        assert_dies_with(parent, int(leader))
    finally:
        shutil.rmtree(leftovers, ignore_errors=True)
