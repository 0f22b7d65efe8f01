"""One error tree for every way a Kubernetes call can fail, mapped from HTTP status.

Callers decide on the class, never on status codes: a ``Transient`` error may succeed
if tried again, a ``Permanent`` one never will, and ``ambiguous`` says a write may have
reached the server even though no answer came back (so it must be checked, not resent).
The original exception is always chained.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException

from remediator.errors import RemediatorError


class KubeError(RemediatorError):
    """A Kubernetes API call failed; ``reason`` is the API's Status reason."""

    status: int = 0
    reason: str = "Unknown"
    retry_after: float | None = None
    ambiguous: bool = False  # a write may have been applied although it failed

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retry_after is not None:
            self.retry_after = retry_after


class Transient(KubeError):
    """Worth retrying: the cluster may accept the same call a moment later."""


class Permanent(KubeError):
    """Retrying the same call cannot help; the reason is in the message."""


class NotFound(Permanent):
    status, reason = 404, "NotFound"


class Forbidden(Permanent):
    status, reason = 403, "Forbidden"


class Unauthorized(Permanent):
    status, reason = 401, "Unauthorized"


class Invalid(Permanent):
    status, reason = 422, "Invalid"


class BadRequest(Permanent):
    status, reason = 400, "BadRequest"


class Conflict(Transient):
    """The object changed since it was read: read it again and redo the change."""

    status, reason = 409, "Conflict"


class TooManyRequests(Transient):
    status, reason = 429, "TooManyRequests"


class ServerError(Transient):
    status, reason = 500, "InternalError"
    ambiguous = True


class Timeout(Transient):
    status, reason = 504, "Timeout"
    ambiguous = True


class Disconnected(Transient):
    """The connection failed; ``ambiguous`` unless it failed before the request left."""

    reason = "Disconnected"
    ambiguous = True


class Untrusted(Permanent):
    """The API server's certificate did not verify: a wrong CA stays wrong on retry."""

    reason = "Untrusted"


class Unreachable(Transient):
    """The API server could not be reached at all: nothing was sent."""

    reason = "Unreachable"


_BY_STATUS: Mapping[int, type[KubeError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: Invalid,
    429: TooManyRequests,
}


def translate(exc: BaseException, what: str) -> KubeError:
    """The KubeError for ``exc``, raised while doing ``what`` (e.g. 'GET Deployment prod/web')."""
    if isinstance(exc, KubeError):
        return exc
    if isinstance(exc, ApiException):
        return _from_api(exc, what)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ServerFingerprintMismatch):
        return Untrusted(f"{what}: the API server's certificate is not trusted: {exc}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return Unreachable(f"{what}: cannot reach the API server: {exc}")
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return Timeout(f"{what}: no answer within the request timeout")
    if isinstance(exc, aiohttp.ClientError):
        return Disconnected(f"{what}: connection lost: {type(exc).__name__}: {exc}")
    return KubeError(f"{what}: {type(exc).__name__}: {exc}")


def _from_api(exc: ApiException, what: str) -> KubeError:
    status = int(exc.status or 0)
    body = _status_body(exc.body)
    message = str(body.get("message") or exc.reason or "no message")
    retry_after = _retry_after(exc.headers, body)
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else Permanent
    err = cls(
        f"{what}: {status} {body.get('reason') or exc.reason}: {message}", retry_after=retry_after
    )
    if cls is ServerError or cls is Permanent:
        err.status = status
    return err


def _status_body(raw: Any) -> dict[str, Any]:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if not isinstance(raw, str):
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _retry_after(headers: Any, body: Mapping[str, Any]) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    if value is None:
        details = body.get("details")
        if isinstance(details, dict):
            value = details.get("retryAfterSeconds")
    try:
        seconds = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    return seconds if seconds is not None and seconds >= 0 else None
