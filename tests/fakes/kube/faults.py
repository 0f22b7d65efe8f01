"""Fault injection: latency, seeded random errors and scripted one-shot faults.

A fault is decided *before* the request touches the store, so a faulted request changes
nothing - unless the fault says ``apply_first`` ("the write happened but the response was
lost"), which the exactly-once tests need.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

FaultKind = Literal["429", "500", "503", "drop"]
ALL_FAULT_KINDS: tuple[FaultKind, ...] = ("429", "500", "503", "drop")
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass
class Faults:
    """Random faults; assign a new one to ``FakeKube.faults`` or edit it during a test.

    ``latency`` (seconds) is added to every request. ``error_rate`` (0..1) is the chance,
    drawn from ``random.Random(seed)``, that a request matching ``only`` (a set of HTTP
    methods, e.g. :data:`MUTATING_METHODS`; ``None`` = all) fails with one of ``kinds``:
    ``"429"`` (with ``Retry-After: retry_after``), ``"500"``, ``"503"``, or ``"drop"`` (the
    connection is closed without a response). With ``apply_then_drop`` a dropped *mutation*
    is applied before the connection is closed.
    """

    latency: float = 0.0
    error_rate: float = 0.0
    kinds: tuple[FaultKind, ...] = ALL_FAULT_KINDS
    retry_after: int = 1
    only: frozenset[str] | None = None
    apply_then_drop: bool = False


@dataclass(frozen=True)
class Decision:
    """What to do with one request instead of (or after) serving it normally."""

    status: int | None = None  # answer with this error Status ...
    retry_after: int | None = None
    drop: bool = False  # ... or close the connection without a response
    apply_first: bool = False  # serve the request (change state) before failing/dropping it

    @property
    def label(self) -> str:
        what = "drop" if self.drop else str(self.status)
        return f"apply_then_{what}" if self.apply_first else what


@dataclass
class ScriptedFault:
    remaining: int
    decision: Decision
    method: str | None = None
    path_contains: str | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path_contains is None or self.path_contains in path


@dataclass(frozen=True)
class LatencyRule:
    """Extra delay for requests whose path contains ``path_contains`` and whose method is
    ``method`` (``None`` = any); set with ``FakeKube.set_latency``."""

    seconds: float
    path_contains: str | None = None
    method: str | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path_contains is None or self.path_contains in path


@dataclass
class FaultInjector:
    seed: int = 0
    config: Faults = field(default_factory=Faults)
    scripted: deque[ScriptedFault] = field(default_factory=deque)
    latencies: list[LatencyRule] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def add(self, fault: ScriptedFault) -> None:
        if fault.remaining > 0:
            self.scripted.append(fault)

    def set_latency(self, rule: LatencyRule) -> None:
        """Replace the rule for the same (path_contains, method); ``seconds <= 0`` removes it."""
        method = rule.method.upper() if rule.method is not None else None
        self.latencies = [
            r for r in self.latencies if (r.path_contains, r.method) != (rule.path_contains, method)
        ]
        if rule.seconds > 0:
            self.latencies.append(LatencyRule(rule.seconds, rule.path_contains, method))

    def latency_for(self, method: str, path: str) -> float:
        """The largest matching per-path delay (0 if none); added to ``Faults.latency``."""
        return max((r.seconds for r in self.latencies if r.matches(method, path)), default=0.0)

    def decide(self, method: str, path: str) -> Decision | None:
        """Consume a matching scripted fault (oldest first), else roll the random one."""
        for fault in self.scripted:
            if fault.matches(method, path):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.scripted.remove(fault)
                return fault.decision
        config = self.config
        if config.error_rate <= 0 or not config.kinds:
            return None
        if config.only is not None and method.upper() not in config.only:
            return None
        if self._rng.random() >= config.error_rate:
            return None
        kind = self._rng.choice(config.kinds)
        if kind == "drop":
            apply_first = config.apply_then_drop and method.upper() in MUTATING_METHODS
            return Decision(drop=True, apply_first=apply_first)
        retry_after = config.retry_after if kind == "429" else None
        return Decision(status=int(kind), retry_after=retry_after)
