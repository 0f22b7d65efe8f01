"""``create_app``: the aiohttp application and the lifetime of everything it shares.

Each resource is opened and closed in its own cleanup context, in dependency order:
store → runbooks → writer and worker. Handlers never touch the cluster; they persist
and hand work to the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from remediator.actions.base import Say
from remediator.actions.registry import Registry, builtin_actions, mutating
from remediator.keys import (
    APPROVER,
    BACKGROUND,
    CLOCK,
    ENGINE,
    METRICS,
    RUNBOOKS,
    SETTINGS,
    WRITER,
)
from remediator.kube import Kube
from remediator.kube.thread import KubeThread
from remediator.observability.logs import configure as configure_logs
from remediator.observability.metrics import Metrics
from remediator.pipeline import approve, guard
from remediator.pipeline.approve import Approver
from remediator.pipeline.build import Pipeline
from remediator.pipeline.context import ContextStage
from remediator.pipeline.execute import Runtime
from remediator.pipeline.plan import Plan
from remediator.pipeline.record import Recorder
from remediator.pipeline.route import Router
from remediator.pipeline.worker import Worker
from remediator.runbooks.reload import RunbookRegistry
from remediator.settings import Settings
from remediator.slack import messages
from remediator.slack.client import Slack, SlackError
from remediator.store import jobs, retention, timeline
from remediator.store.db import claim_sqlite, create_engine, migrate
from remediator.store.ingest import IngestWriter
from remediator.web import alertmanager, approvals, health, incidents, openapi, pages, slack
from remediator.web.auth import Credentials
from remediator.web.background import Background
from remediator.web.middlewares import observe, require_auth

log = structlog.get_logger(__name__)


def run(config: Path | None, overrides: dict[str, Any]) -> None:
    """Load settings, configure logs and serve until SIGTERM/SIGINT."""
    settings = Settings.load(config, **overrides)
    configure_logs(settings.log.level, settings.log.format)
    app = create_app(settings)
    app.on_startup.append(_freeze_startup_heap)  # after the cleanup contexts have started
    s = settings
    log.info(
        "starting",
        listen=f"http://{s.server.host}:{s.server.port}",
        dry_run=s.guards.dry_run,
        store=s.store.url.split("://", 1)[0],
        runbooks=str(s.runbooks.dir),
        namespaces_allowed=s.guards.namespaces.allow,
    )
    web.run_app(app, host=s.server.host, port=s.server.port, print=None, access_log=None)


async def _freeze_startup_heap(app: web.Application) -> None:
    """Exempt what startup built from the cyclic GC for the life of the process.

    Imported modules, loaded runbooks and built statements, ~165,000 objects, live
    until exit. Each full collection walked them all and held the event loop for ~50 ms,
    seven times in ten seconds of webhook load: that was the webhook's p99. Frozen, a
    full collection takes ~2 ms. The price is bounded: cycles among them that a hot
    reload later drops (the first runbook set) stay allocated. Only a served process
    does this, not ``create_app``: a test session builds many apps in one interpreter.
    """
    gc.collect()
    gc.freeze()
    log.info("startup_heap_frozen", objects=gc.get_freeze_count())


def utcnow() -> datetime:
    return datetime.now(UTC)


def create_app(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utcnow,
    actions: Registry | None = None,
) -> web.Application:
    """Build the app; raises ConfigError before anything starts if credentials are missing."""
    credentials = Credentials.from_settings(settings.auth)
    if credentials is None:
        log.warning("insecure_no_auth", message="THE WEBHOOK ACCEPTS UNAUTHENTICATED REQUESTS")
        # Also where an operator looks first, whatever log.level filters out.
        print(
            "WARNING: remediator started with --insecure-no-auth: THE WEBHOOK AND API ACCEPT "
            "UNAUTHENTICATED REQUESTS; anyone who can reach the port can trigger remediations",
            file=sys.stderr,
        )
    app = web.Application(
        client_max_size=settings.server.max_body_bytes,
        middlewares=[observe, require_auth(credentials)],
    )
    app[SETTINGS] = settings
    app[CLOCK] = clock
    app[METRICS] = Metrics()
    app[RUNBOOKS] = RunbookRegistry(
        settings.runbooks.dir, actions or builtin_actions(), app[METRICS]
    )
    app[BACKGROUND] = Background()
    app.cleanup_ctx.extend([_store, _runbooks, _slack, _processing, _expiry, _breakers, _retention])
    app.router.add_post("/api/v1/alerts", alertmanager.receive)
    app.router.add_get("/api/v1/incidents", incidents.list_incidents)
    app.router.add_get("/api/v1/incidents/{incident_id}", incidents.get_incident)
    app.router.add_get("/incidents", pages.incident_list)
    app.router.add_get("/incidents/{incident_id}", pages.incident_detail)
    app.router.add_get("/api/v1/approvals/{approval_id}", approvals.get_approval)
    app.router.add_post(
        "/api/v1/approvals/{approval_id}/{decision:approve|reject}", approvals.decide
    )
    app.router.add_post("/slack/interactions", slack.interactions)
    app.router.add_get("/openapi.json", openapi.serve)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_get("/metrics", health.metrics)
    return app


async def _store(app: web.Application) -> AsyncIterator[None]:
    store = app[SETTINGS].store
    lock = claim_sqlite(store.url)
    engine = create_engine(store.url, sqlite_synchronous=store.sqlite_synchronous)
    await migrate(engine)
    if engine.dialect.name == "sqlite":
        # One replica owns a SQLite file, so anything still "running" died with us.
        requeued = await jobs.requeue_stale(engine, app[CLOCK]())
        if requeued:
            log.info("jobs_requeued", count=requeued)
    app[ENGINE] = engine
    yield
    await engine.dispose()
    if lock is not None:
        lock.close()


async def _runbooks(app: web.Application) -> AsyncIterator[None]:
    registry = app[RUNBOOKS]
    await registry.load()
    if app[SETTINGS].runbooks.watch:
        registry.watch()
    yield
    await registry.stop()


async def _slack(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    token = settings.slack.resolved_bot_token()
    client = Slack(token, settings.slack.base_url) if token else None
    router = Router(settings.routing, settings.slack)
    app[APPROVER] = Approver(
        settings.slack, client, settings.server.external_url, app[CLOCK], router
    )
    yield
    await app[BACKGROUND].drain(grace=10)
    if client is not None:
        await client.close()


@contextlib.asynccontextmanager
async def _every(
    name: str, interval: float, tick: Callable[[], Awaitable[None]]
) -> AsyncIterator[None]:
    """Run ``tick`` now and every ``interval`` seconds while the app runs. A failing tick
    is logged and tried again next time: the store may be down for a moment."""

    async def loop() -> None:
        while True:
            try:
                await tick()
            except Exception:
                log.exception(f"{name}_failed")
            await asyncio.sleep(interval)

    task = asyncio.create_task(loop(), name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _expiry(app: web.Application) -> AsyncIterator[None]:
    """Expire approvals nobody decided on in time, and tell Slack."""
    approver, engine, metrics = app[APPROVER], app[ENGINE], app[METRICS]

    async def sweep() -> None:
        for approval in await approve.expire_due(engine, app[CLOCK]()):
            metrics.approvals_expired.inc()
            await approve.refresh(engine, approver, approval, result=approve.EXPIRED)

    async with _every("approval_sweep", app[SETTINGS].slack.sweep_interval, sweep):
        yield


async def _breakers(app: web.Application) -> AsyncIterator[None]:
    """Close a circuit breaker once its quiet period is over, whether or not a step comes."""
    engine, metrics, clock = app[ENGINE], app[METRICS], app[CLOCK]
    policy = app[SETTINGS].guards
    mutating_actions = mutating(app[RUNBOOKS].actions)
    recorder = Recorder(metrics)

    async def look() -> None:
        now = clock()
        async with engine.begin() as conn:
            closed = await guard.close_quiet(conn, policy, mutating_actions, now)
            opened_by = {c.incident_id: c for c in closed if c.incident_id}
            told = await timeline.existing(conn, list(opened_by))
            written = [(i, guard.breaker_event(opened_by[i].change)) for i in sorted(told)]
            await timeline.append(conn, written, now)
        recorder.observe(written)
        for c in closed:
            if c.incident_id not in told:  # its incident is gone; the log line says it alone
                metrics.circuit_open.set(0)
                log.info("circuit_closed", dry_run=c.dry_run, message=c.change)

    async with _every("breaker_check", policy.breaker.check_interval, look):
        yield


async def _retention(app: web.Application) -> AsyncIterator[None]:
    """Purge resolved incidents older than ``retention.max_age``, every ``interval``."""
    engine, metrics, runbooks = app[ENGINE], app[METRICS], app[RUNBOOKS]
    settings = app[SETTINGS]
    keep = settings.retention

    def horizon() -> timedelta:
        # The guards count past executions: keep every incident a guard window still sees.
        windows = [keep.max_age, settings.guards.breaker.window]
        budget = settings.guards.namespaces.max_runs
        if budget is not None:
            windows.append(budget.window)
        for runbook in runbooks().runbooks:
            guards = runbook.spec.guards
            limits = (guards.max_runs, guards.max_runs_per_namespace)
            windows += [guards.cooldown, *(limit.window for limit in limits if limit)]
        return max(windows)

    async def sweep() -> None:
        if runbooks.loaded:  # until then the guard windows are unknown
            cutoff = app[CLOCK]() - horizon()
            purged = await retention.purge(engine, cutoff, keep.batch)
            if purged:
                metrics.incidents_purged.inc(purged)
                log.info("incidents_purged", count=purged, cutoff=cutoff.isoformat())

    if not keep.enabled:
        yield
        return
    async with _every("retention", keep.interval, sweep):
        yield


def _messenger(approver: Approver) -> Callable[[Plan], Say]:
    """``notify`` delivery: to the step's channel, else the owning team's, else the
    platform's; a message with nowhere to go fails the step with that reason."""
    slack = approver.slack
    assert slack is not None

    def for_plan(plan: Plan) -> Say:
        async def say(channel: str | None, text: str) -> str:
            where = approver.router.channel(plan.team, channel)
            if where is None:
                raise SlackError(f"no channel for team {plan.team!r} and no slack.channel")
            # The message itself, then what the target looks like and where to read on.
            lines = [text]
            if plan.context:
                lines.append(f"Context: {plan.context}")
            url = approver.incident_url(plan.incident_id) if plan.incident_id else None
            if url:
                lines.append(f"<{url}|Incident timeline>")
            await slack.post(where, text, messages.notice(lines))
            return where

        return say

    return for_plan


async def _processing(app: web.Application) -> AsyncIterator[None]:
    engine, metrics, clock, settings = app[ENGINE], app[METRICS], app[CLOCK], app[SETTINGS]
    recorder = Recorder(metrics)
    # The cluster is only needed when a step may act, shadow mode asks the server, or
    # context capture is switched on explicitly.
    needs_cluster = (
        not settings.guards.dry_run
        or settings.kube.server_dry_run
        or settings.context.enabled == "on"
    )
    kube = await Kube.connect(settings.kube) if needs_cluster else None
    reads = None
    if kube is not None and settings.context.enabled != "off":
        try:
            reads = await KubeThread.start(settings.kube)
        except BaseException:
            await kube.close()
            raise
    approver = app[APPROVER]
    runtime = Runtime(
        kube=kube,
        clock=clock,
        verify_interval=timedelta(seconds=settings.worker.verify_interval),
        server_dry_run=settings.kube.server_dry_run,
        deadline=settings.kube.deadline,
        messenger=_messenger(approver) if approver.slack is not None else None,
    )
    pipeline = Pipeline(
        engine,
        app[RUNBOOKS],
        app[RUNBOOKS].actions,
        settings.guards,
        recorder,
        runtime,
        approver,
        ContextStage(reads, settings.context, clock),
    )
    writer = IngestWriter(engine, clock)
    worker = Worker(
        engine,
        pipeline,
        recorder,
        app[SETTINGS].worker,
        metrics,
        clock,
        ready=lambda: app[RUNBOOKS].loaded,
        ingest_idle=writer.idle,
    )
    writer.after_commit(worker.wake)
    writer.hand_to(worker)
    app[WRITER] = writer
    writer.start()
    worker.start()
    yield
    await writer.stop()
    await worker.stop()
    if reads is not None:
        await reads.close()
    if kube is not None:
        await kube.close()
