"""Probes and metrics: liveness, readiness (store and runbooks), Prometheus exposition."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from remediator.keys import ENGINE, METRICS, RUNBOOKS
from remediator.store.db import ping


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    problems = []
    if not request.app[RUNBOOKS].loaded:
        problems.append("runbooks not loaded (see the log for the errors)")
    try:
        await ping(request.app[ENGINE])
    except (SQLAlchemyError, OSError) as exc:
        problems.append(f"store unavailable: {type(exc).__name__}")
    if problems:
        return web.json_response({"status": "not ready", "problems": problems}, status=503)
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
