"""The worker: claims work items and runs each through the pipeline.

Two lanes run side by side: one for alerts and approvals, one for verify looks. A look
waits on the cluster and may take a snapshot after it, so a new alert must never queue
behind one; the lanes share the store connection only between their awaits. While the
alert lane waits idle, the ingest writer commits new work already claimed by it and
hands it over (``free_slots``/``hand``), so an alert that finds the worker idle goes to
its action without a claim round trip.

Started and stopped by the app. A job that raises is retried with backoff and then
failed for good, with the error in the incident's timeline; the worker never dies of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from remediator.models.events import EventKind, Stage
from remediator.observability.metrics import Metrics
from remediator.pipeline.build import Pipeline
from remediator.pipeline.record import Recorder
from remediator.settings import WorkerSettings
from remediator.store import jobs, timeline
from remediator.store.jobs import Job
from remediator.store.timeline import NewEvent

log = structlog.get_logger(__name__)
MAX_BACKOFF = 60.0
INGEST_PRIORITY = 0.1


async def stop_task(task: asyncio.Task[None], grace: float) -> None:
    """Wait for a task asked to stop; cancel it if it does not within ``grace`` seconds.

    Cancelling a task inside a database transaction is the last resort: the driver's
    clean-up then races the loop's shutdown.
    """
    done, _ = await asyncio.wait({task}, timeout=grace)
    if not done:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Worker:
    def __init__(
        self,
        engine: AsyncEngine,
        pipeline: Pipeline,
        recorder: Recorder,
        settings: WorkerSettings,
        metrics: Metrics,
        clock: Callable[[], datetime],
        ready: Callable[[], bool],
        ingest_idle: asyncio.Event | None = None,
    ) -> None:
        self._engine = engine
        self._pipeline = pipeline
        self._recorder = recorder
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._ready = ready
        self._ingest_idle = ingest_idle
        self._wakeup = asyncio.Event()  # new work for the alert lane
        self._stopped = asyncio.Event()
        self.id = worker_id()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._idle = False  # the alert lane waits for work
        self._handed: list[Job] = []
        self._depth_at = float("-inf")
        self._stale_at = float("-inf")

    def wake(self) -> None:
        """Called after new work is committed, so it is picked up without polling delay."""
        self._wakeup.set()

    def free_slots(self) -> int:
        """How many new alerts the alert lane takes straight from the webhook now."""
        if self._stopping or not self._idle or self._handed or not self._ready():
            return 0
        return self._settings.batch_size

    def hand(self, claimed: list[Job]) -> None:
        """Jobs the ingest writer committed as claimed by this worker (its commit
        listener, ``wake``, then wakes the lane)."""
        self._handed.extend(claimed)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(verify=False), name="worker"),
            asyncio.create_task(self._run(verify=True), name="worker-verify"),
        ]

    async def stop(self, grace: float = 10.0) -> None:
        """Finish the jobs in hand, then stop; cancel only what outlives ``grace``."""
        self._stopping = True
        self._wakeup.set()
        self._stopped.set()
        for task in self._tasks:
            await stop_task(task, grace)

    async def _run(self, *, verify: bool) -> None:
        # Verify looks fall due on a schedule (verify_interval), so that lane polls.
        wakeup = self._stopped if verify else self._wakeup
        # Jobs handed over are claimed by this worker alone: finish them even when stopping.
        while not self._stopping or (self._handed and not verify):
            if not verify:
                wakeup.clear()
            if self._handed and not verify:
                handed, self._handed = self._handed, []
                await self._batch(handed)
                continue
            if not self._ready():
                # Without runbooks every alert would be "no match"; keep it queued instead,
                # and keep the depth gauge honest about the work piling up.
                with contextlib.suppress(Exception):
                    await self._gauge_depth()
                await asyncio.sleep(self._settings.poll_interval)
                continue
            await self._yield_to_ingest()
            if not verify:
                await self._requeue_stale()
            try:
                claimed = await jobs.claim(
                    self._engine, self.id, self._clock(), self._settings.batch_size, verify=verify
                )
                await self._gauge_depth()
            except Exception:
                log.exception("claim_failed")
                claimed = []
            if claimed:
                await self._batch(claimed)
                continue
            if not verify:
                self._idle = True  # while it waits, the ingest writer may hand it work
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), self._settings.poll_interval)
            if not verify:
                self._idle = False

    async def _requeue_stale(self) -> None:
        """With several replicas, hand out again what a dead replica had claimed.

        SQLite has one replica and requeues everything at start instead. The requeued
        job meets its own intent in the ledger and is reconciled, never re-applied.
        """
        now = time.monotonic()
        every = min(10.0, self._settings.stale_after)
        if self._engine.dialect.name != "postgresql" or now - self._stale_at < every:
            return
        self._stale_at = now
        cutoff = self._clock() - timedelta(seconds=self._settings.stale_after)
        try:
            requeued = await jobs.requeue_stale(self._engine, cutoff)
        except Exception:
            log.exception("requeue_stale_failed")
            return
        if requeued:
            log.warning("jobs_requeued", count=requeued, claimed_before=cutoff.isoformat())

    async def _gauge_depth(self) -> None:
        """Refresh the queue-depth gauge, at most once a second (it is a COUNT)."""
        now = time.monotonic()
        if now - self._depth_at >= 1.0:
            self._depth_at = now
            self._metrics.queue_depth.set(await jobs.depth(self._engine))

    async def _batch(self, batch: list[Job]) -> None:
        """One transaction for the batch; if it fails, each job alone, so one bad job
        cannot hold the others back."""
        if len(batch) == 1:
            await self._one(batch[0])
            return
        try:
            await self._pipeline.process(batch)
        except Exception:
            log.warning("batch_failed_retrying_singly", size=len(batch), exc_info=True)
            for job in batch:
                await self._one(job)

    async def _yield_to_ingest(self) -> None:
        """Let waiting webhooks commit first, for at most INGEST_PRIORITY seconds.

        Acknowledging Alertmanager is what must never lag (it retries and re-sends);
        the work queue is durable and drains right after a burst. The bound keeps a
        steady stream of webhooks from starving remediation.
        """
        if self._ingest_idle is not None and not self._ingest_idle.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ingest_idle.wait(), INGEST_PRIORITY)

    async def _one(self, job: Job) -> None:
        with structlog.contextvars.bound_contextvars(incident_id=job.incident_id, job_id=job.id):
            try:
                await self._pipeline.process([job])
            except Exception as exc:
                log.exception("job_failed", attempt=job.attempts)
                await self._failed(job, exc)

    async def _failed(self, job: Job, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        try:
            if job.attempts < self._settings.max_attempts:
                delay = min(MAX_BACKOFF, 2.0**job.attempts)
                not_before = self._clock() + timedelta(seconds=delay)
                await jobs.retry_later(self._engine, job.id, not_before, error)
                self._metrics.job_failures.labels("retried").inc()
                return
            event = NewEvent(
                Stage.RECORD,
                EventKind.FAILED,
                f"processing failed after {job.attempts} attempts: {error}",
            )
            async with self._engine.begin() as conn:
                await jobs.finish(conn, [job.id], self._clock(), error=error)
                await timeline.append(conn, [(job.incident_id, event)], self._clock())
            self._metrics.job_failures.labels("failed").inc()
            self._recorder.observe([(job.incident_id, event)])
        except Exception:
            # The store is down too; the job stays claimed and is requeued as stale.
            log.exception("job_failure_not_recorded")
