"""Cross-cutting request handling: latency metrics, auth on the API and the incident
pages, no 500 on bad input."""

from __future__ import annotations

import time

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from sqlalchemy.exc import DBAPIError

from remediator.keys import METRICS
from remediator.web.auth import Credentials
from remediator.web.errors import error, undecodable
from remediator.web.pages import error_page

log = structlog.get_logger(__name__)
PROTECTED_PREFIX = "/api/v1/"
PAGES = "/incidents"  # the HTML timeline: the same credentials, basic auth for browsers


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Time every request; turn a bug into a logged 500 rather than a dropped connection."""
    started = time.perf_counter()
    route = request.match_info.route.resource
    name = route.canonical if route is not None else "unmatched"
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except web.RequestPayloadError as exc:  # a body read by a handler that expects none
        return undecodable(exc)
    except (DBAPIError, OSError, TimeoutError):
        # The store is down or unreachable: a retry later can succeed, so say so.
        log.warning("store_unavailable", path=request.path, exc_info=True)
        return error(503, "store unavailable; retry later")
    except Exception:
        log.exception("unhandled_error", path=request.path, method=request.method)
        return error(500, "internal error; see the server log")
    finally:
        request.app[METRICS].request_latency.labels(name, request.method).observe(
            time.perf_counter() - started
        )


def require_auth(credentials: Credentials | None) -> Middleware:
    """Guard ``/api/v1/*`` and the ``/incidents`` pages; probes and metrics stay open for
    kubelet and Prometheus. A page asks for basic auth, so a browser prompts for it."""

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        page = path == PAGES or path.startswith(f"{PAGES}/")
        if (
            credentials is not None
            and (page or path.startswith(PROTECTED_PREFIX))
            and not credentials.accepts(request.headers.get("Authorization"))
        ):
            if page:
                response = error_page(401, "Missing or wrong credentials.")
                response.headers["WWW-Authenticate"] = 'Basic realm="remediator"'
                return response
            response = error(401, "missing or wrong credentials")
            response.headers["WWW-Authenticate"] = 'Bearer realm="remediator"'
            return response
        return await handler(request)

    return auth
