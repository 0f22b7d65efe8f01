"""What the fake saw: one frozen :class:`Request` per HTTP request, in arrival order."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from .faults import MUTATING_METHODS


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query string
    query: dict[str, str]
    content_type: (
        str | None
    )  # the Content-Type header as sent (kubernetes_asyncio sends one on GETs too)
    body: Any  # parsed JSON; the raw text if it was not JSON; None if empty
    response_status: int | None  # None: no response was sent (dropped) or still in flight
    fault: str | None = None  # the injected fault, e.g. "429", "drop", "apply_then_drop"
    # time.perf_counter() when the fake had read the request (for latency benchmarks);
    # not part of equality, so tests can compare against a constructed Request.
    at: float = field(default_factory=time.perf_counter, compare=False)

    @property
    def is_mutation(self) -> bool:
        return self.method in MUTATING_METHODS


class Recorder:
    def __init__(self) -> None:
        self._requests: list[Request] = []
        self._offset = 0  # slots handed out before the last clear()

    def start(self, request: Request) -> int:
        self._requests.append(request)
        return self._offset + len(self._requests) - 1

    def finish(self, slot: int, status: int | None, fault: str | None) -> None:
        index = slot - self._offset
        if 0 <= index < len(self._requests):
            self._requests[index] = dataclasses.replace(
                self._requests[index], response_status=status, fault=fault
            )

    @property
    def requests(self) -> list[Request]:
        return list(self._requests)

    def clear(self) -> None:
        self._offset += len(self._requests)
        self._requests = []
