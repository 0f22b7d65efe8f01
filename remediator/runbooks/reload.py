"""Hot reload: watch the runbook directory and swap in a new set only if all of it is valid.

A broken edit never replaces the last good set; the failure is logged with every
problem and counted, and the server keeps acting on what it had.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import structlog
from watchfiles import Change, DefaultFilter, awatch

from remediator.actions.registry import Registry
from remediator.errors import RunbookError
from remediator.observability.metrics import Metrics
from remediator.runbooks.loader import RunbookSet, git_dir, load_dir

log = structlog.get_logger(__name__)


class RunbookRegistry:
    """Holds the active RunbookSet; readers call it to get the current one."""

    def __init__(self, directory: Path, actions: Registry, metrics: Metrics) -> None:
        self._directory = directory
        self._actions = actions
        self._metrics = metrics
        self._current: RunbookSet | None = None
        self._task: asyncio.Task[None] | None = None

    def __call__(self) -> RunbookSet:
        if self._current is None:
            raise RuntimeError("runbooks are not loaded yet")
        return self._current

    @property
    def actions(self) -> Registry:
        return self._actions

    @property
    def loaded(self) -> bool:
        return self._current is not None

    async def load(self) -> bool:
        """(Re)load the directory; True if the new set was installed."""
        try:
            new = await asyncio.to_thread(load_dir, self._directory, self._actions)
        except RunbookError as exc:
            self._metrics.reload_failures.inc()
            log.error(
                "runbooks_invalid",
                directory=str(self._directory),
                problems=exc.problems,
                kept=len(self._current.runbooks) if self._current else 0,
            )
            return False
        self._current = new
        self._metrics.runbooks_loaded.set(len(new.runbooks))
        log.info(
            "runbooks_loaded",
            directory=str(self._directory),
            count=len(new.runbooks),
            commit=new.commit,
        )
        return True

    def watch(self, debounce_ms: int = 300) -> None:
        self._task = asyncio.create_task(self._watch(debounce_ms), name="runbook-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self, debounce_ms: int) -> None:
        # The watcher only sees edits made after it is running, which is a moment after
        # the start-up load; its first (possibly empty) yield says it runs, so one rescan
        # then catches an edit that fell in between.
        live = False
        git = await asyncio.to_thread(git_dir, self._directory)
        paths = [self._directory]
        if git is not None and not git.is_relative_to(self._directory):
            paths.append(git)
        async for changes in awatch(
            *paths,
            watch_filter=_RunbooksAndHead(git),
            debounce=debounce_ms,
            step=50,
            yield_on_timeout=True,
        ):
            if live and not changes:
                continue
            live = True
            try:
                await self.load()
            except Exception:  # hot reload must outlive any one bad edit
                self._metrics.reload_failures.inc()
                log.exception("runbook_reload_crashed", directory=str(self._directory))


class _RunbooksAndHead(DefaultFilter):
    """Runbook files, and the checkout's HEAD and refs: a commit of files saved before it
    changes the commit a set records without touching any runbook file."""

    def __init__(self, git: Path | None) -> None:
        super().__init__()
        self._git = git

    def __call__(self, change: Change, path: str) -> bool:
        if self._git is not None and Path(path).is_relative_to(self._git):
            first = Path(path).relative_to(self._git).parts[:1]
            return first in (("HEAD",), ("packed-refs",), ("refs",))
        return super().__call__(change, path)
