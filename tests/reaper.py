"""Process groups that die with the test run, even when pytest itself is SIGKILLed.

A SIGKILLed pytest runs no teardown, and a server started through a shell (as the
README's command is) is not even pytest's child. Left running, it holds its port and
fails the next run. So each such group gets a watchdog: a direct child of pytest that
the kernel signals when pytest dies (``PR_SET_PDEATHSIG``), and that then kills the
whole group.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO

# Runs in its own interpreter: set up after exec, where no other thread can hold a lock.
_WATCHDOG = """
import ctypes, os, signal, sys
group, parent = int(sys.argv[1]), int(sys.argv[2])
def reap(*_):
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os._exit(0)
signal.signal(signal.SIGTERM, reap)
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
if os.getppid() != parent:  # pytest died before the line above
    reap()
print("armed", flush=True)
while True:
    signal.pause()
"""


@contextmanager
def reaped(group: int) -> Iterator[None]:
    """Kill process group ``group`` when the block ends, or when this process dies
    before it does (the exit that runs no ``finally``)."""
    watchdog = subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG, str(group), str(os.getpid())],
        stdout=subprocess.PIPE,
    )
    try:
        assert watchdog.stdout is not None
        assert watchdog.stdout.readline() == b"armed\n", "the watchdog did not start"
        yield
    finally:
        watchdog.terminate()
        watchdog.wait(timeout=10)
        if watchdog.stdout is not None:
            watchdog.stdout.close()


def spawn(
    argv: Sequence[str | Path], owner: ExitStack, log: IO[bytes], cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` (output to ``log``) in a group of its own, reaped when ``owner``
    closes: for servers whose lifetime spans a fixture rather than a ``with`` block."""
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        start_new_session=True,  # a group of its own, for the reaper
    )
    owner.enter_context(reaped(process.pid))
    return process
