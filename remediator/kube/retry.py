"""How Kubernetes calls are retried: tenacity policies shared by every call.

Reads are retried on every transient error. Writes are retried only when the server
certainly did not apply them (429, unreachable); an ambiguous failure (5xx, timeout,
dropped connection) is raised so the caller can check the execution-id annotation
before deciding to send again. Everything stops at an overall deadline.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_before_delay

from remediator.kube.errors import KubeError, Transient

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

BACKOFF_BASE = 0.2
BACKOFF_MAX = 5.0


def retryable(*, write: bool) -> Callable[[BaseException], bool]:
    def check(exc: BaseException) -> bool:
        if not isinstance(exc, Transient):
            return False
        if write and exc.ambiguous:
            return False
        # A conflict needs a fresh read, which only the caller can do.
        return exc.reason != "Conflict"

    return check


def backoff(state: RetryCallState) -> float:
    """Exponential with full jitter; a server's Retry-After wins when it is longer."""
    attempt = state.attempt_number
    delay = random.uniform(0, min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (attempt - 1)))  # noqa: S311
    exc = state.outcome.exception() if state.outcome is not None else None
    if isinstance(exc, KubeError) and exc.retry_after is not None:
        delay = max(delay, exc.retry_after)
    return delay


async def with_retries(
    call: Callable[[], Awaitable[T]], *, write: bool, deadline: float, sleep: Sleep
) -> T:
    """Run ``call`` until it succeeds, fails for good, or ``deadline`` seconds pass.

    A wait that would end past the deadline (a long Retry-After) is not begun: the last
    error is raised at once rather than after the deadline."""
    retrying = AsyncRetrying(
        retry=retry_if_exception(retryable(write=write)),
        wait=backoff,
        stop=stop_before_delay(deadline),
        sleep=sleep,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await call()
    raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover
