"""``notify``: tell people, change nothing in the cluster."""

from __future__ import annotations

from typing import ClassVar

import structlog
from pydantic import Field

from remediator.actions.base import (
    Context,
    Health,
    HealthState,
    Params,
    PolicyRule,
    RenderedTarget,
)
from remediator.kube import Kube

log = structlog.get_logger(__name__)


class NotifyParams(Params):
    message: str = Field(min_length=1, description="Template; the text to send.")
    channel: str | None = Field(
        default=None, description="Slack channel id; the owning team's by default."
    )


class Notify:
    name: ClassVar[str] = "notify"
    mutates: ClassVar[bool] = False
    kinds: ClassVar[frozenset[str]] = frozenset()
    params_model: ClassVar[type[Params]] = NotifyParams
    rbac: ClassVar[tuple[PolicyRule, ...]] = ()

    def describe(self, target: RenderedTarget, params: Params) -> str:
        assert isinstance(params, NotifyParams)
        where = f" to {params.channel}" if params.channel else ""
        return f"notify{where} about {target}: {params.message}"

    async def apply(
        self, kube: Kube | None, target: RenderedTarget, params: Params, ctx: Context
    ) -> str:
        assert isinstance(params, NotifyParams)
        log.info("notify", target=str(target), channel=params.channel, message=params.message)
        if ctx.say is None:  # no chat configured: the timeline and the log are the record
            return f"notified about {target}: {params.message}"
        where = await ctx.say(params.channel, f"{target}: {params.message}")
        return f"notified {where} about {target}: {params.message}"

    async def applied(
        self, kube: Kube | None, target: RenderedTarget, params: Params, ctx: Context
    ) -> bool:
        return False  # a message leaves no trace to read back; at worst it is sent twice

    async def verify(
        self, kube: Kube | None, target: RenderedTarget, params: Params, ctx: Context
    ) -> Health:
        return Health(HealthState.HEALTHY, "nothing to verify")
