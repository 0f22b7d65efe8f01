"""The test helper that keeps a SIGKILLed pytest from leaving servers running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

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


def gone(pid: int) -> bool:
    """Dead or a zombie (a reparented zombie may wait for a reaper here)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def descendants(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_a_sigkilled_parent_takes_the_group_with_it() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    shell = int(parent.stdout.readline())
    deadline = time.monotonic() + 10
    while not (children := descendants(shell)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert children, "the shell started no child"
    group = [shell, *children]
    try:
        assert not any(gone(pid) for pid in group)
        parent.kill()  # no teardown runs
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while not all(gone(pid) for pid in group) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(gone(pid) for pid in group), "the shell's group outlived its SIGKILLed parent"
    finally:
        for pid in group:
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)
        parent.stdout.close()
