"""Typed keys for the resources the app shares between handlers and background tasks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from remediator.observability.metrics import Metrics
from remediator.pipeline.approve import Approver
from remediator.runbooks.reload import RunbookRegistry
from remediator.settings import Settings
from remediator.store.ingest import IngestWriter
from remediator.web.background import Background

SETTINGS = web.AppKey("settings", Settings)
CLOCK: web.AppKey[Callable[[], datetime]] = web.AppKey("clock")
METRICS = web.AppKey("metrics", Metrics)
ENGINE = web.AppKey("engine", AsyncEngine)
WRITER = web.AppKey("writer", IngestWriter)
RUNBOOKS = web.AppKey("runbooks", RunbookRegistry)
APPROVER = web.AppKey("approver", Approver)
BACKGROUND = web.AppKey("background", Background)
