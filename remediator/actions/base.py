"""The action plugin contract.

Every action declares its parameters, the RBAC rules it needs, and can describe exactly
what it would change; that text is what dry-run records and what an approver reads.
Only a ``LiveAction`` can change anything: it applies, says whether an execution was
already applied (read back from the execution-id annotation after a crash or a lost
response), and checks whether the target became healthy.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from remediator.errors import RemediatorError
from remediator.kube import Kube

EXECUTION_ANNOTATION = "remediator.io/execution-id"
RUNBOOK_ANNOTATION = "remediator.io/runbook"


class Params(BaseModel):
    """Base of every action's parameters: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class RenderedTarget:
    """A target after templating and name validation."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.name else self.namespace
        return f"{self.kind} {where}"

    @property
    def key(self) -> str:
        """Stable identity used in the exactly-once ledger."""
        return f"{self.kind}/{self.namespace}/{self.name}"

    @classmethod
    def from_key(cls, key: str) -> RenderedTarget:
        kind, namespace, name = key.split("/", 2)
        return cls(kind, namespace, name)


# Delivers a message to a channel (None: the owning team's); returns where it went.
Say = Callable[[str | None, str], Awaitable[str]]


@dataclass(frozen=True)
class Context:
    """What an action needs to know about the execution it carries out."""

    execution_id: str  # written to the target as EXECUTION_ANNOTATION
    runbook: str
    now: datetime
    server_dry_run: bool = False  # send mutations with dryRun=All; change nothing
    say: Say | None = None  # set when a chat integration is configured

    @property
    def dry_run(self) -> str | None:
        """The ``dry_run`` argument every mutating call passes on."""
        return "All" if self.server_dry_run else None

    def annotations(self) -> dict[str, str]:
        """The stamp every mutation carries, so a restarted server can recognise it."""
        return {EXECUTION_ANNOTATION: self.execution_id, RUNBOOK_ANNOTATION: self.runbook}


class HealthState(StrEnum):
    HEALTHY = "healthy"
    PROGRESSING = "progressing"
    FAILED = "failed"  # will not heal by waiting


@dataclass(frozen=True)
class Health:
    state: HealthState
    message: str


@dataclass(frozen=True)
class PolicyRule:
    """One RBAC rule, as in a Role's ``rules:``."""

    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]


class ActionRefused(RemediatorError):
    """The action looked at the target and will not act (e.g. a paused Deployment)."""


class Action(Protocol):
    mutates: ClassVar[bool]  # False for actions that only talk to people
    name: ClassVar[str]
    kinds: ClassVar[frozenset[str]]  # target kinds it accepts; empty means any
    params_model: ClassVar[type[Params]]

    def describe(self, target: RenderedTarget, params: Params) -> str:
        """Exactly what the step would change, in words an on-call engineer reads."""
        ...


@runtime_checkable
class LiveAction(Action, Protocol):
    rbac: ClassVar[tuple[PolicyRule, ...]]

    async def apply(
        self, kube: Kube | None, target: RenderedTarget, params: Params, ctx: Context
    ) -> str:
        """Carry the step out; return a one-line outcome for the timeline."""
        ...

    async def applied(
        self, kube: Kube | None, target: RenderedTarget, params: Params, ctx: Context
    ) -> bool:
        """Whether execution ``ctx.execution_id`` already reached the cluster."""
        ...

    async def verify(
        self, kube: Kube | None, target: RenderedTarget, params: Params, ctx: Context
    ) -> Health:
        """One look at the target: healthy yet, still progressing, or failed."""
        ...


def cluster(kube: Kube | None) -> Kube:
    """The cluster client, or a clear refusal when the server was started without one."""
    if kube is None:
        raise ActionRefused("no cluster connection (the server runs in dry-run mode)")
    return kube
