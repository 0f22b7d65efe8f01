"""The action plugin contract.

Every action declares its parameters and can describe exactly what it would change;
that text is what dry-run records and what an approver reads. Only a ``LiveAction``
can change anything, so the executor can tell at a glance which steps may run live.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict


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
    async def apply(self, target: RenderedTarget, params: Params) -> str:
        """Carry the step out; return a one-line outcome for the timeline."""
        ...
