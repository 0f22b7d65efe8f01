"""``scale``: change replicas through the scale subresource, within runbook bounds."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from remediator.actions.base import Params, RenderedTarget


class ScaleParams(Params):
    replicas: int | None = Field(default=None, ge=0, description="Absolute replica count.")
    delta: int | None = Field(default=None, description="Relative change, e.g. 2 or -1.")
    factor: float | None = Field(default=None, gt=0, description="Multiply current replicas.")
    min: int = Field(ge=0, description="Never scale below this.")
    max: int = Field(ge=1, description="Never scale above this.")
    hpa: Literal["refuse", "adjust"] = Field(
        default="refuse",
        description="When an HPA targets the workload: refuse, or adjust the HPA's bounds.",
    )

    @model_validator(mode="after")
    def _one_amount(self) -> ScaleParams:
        given = [x for x in (self.replicas, self.delta, self.factor) if x is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of replicas, delta, factor")
        if self.min > self.max:
            raise ValueError("min must not exceed max")
        return self


class Scale:
    name: ClassVar[str] = "scale"
    mutates: ClassVar[bool] = True
    kinds: ClassVar[frozenset[str]] = frozenset({"Deployment", "StatefulSet", "Rollout"})
    params_model: ClassVar[type[Params]] = ScaleParams

    def describe(self, target: RenderedTarget, params: Params) -> str:
        assert isinstance(params, ScaleParams)
        if params.replicas is not None:
            amount = f"to {params.replicas} replicas"
        elif params.delta is not None:
            amount = f"by {params.delta:+d} replicas"
        else:
            amount = f"by a factor of {params.factor:g}"
        return (
            f"scale {target} {amount}, kept within {params.min}..{params.max}; "
            f"if an HPA targets it: {params.hpa}"
        )
