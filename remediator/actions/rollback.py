"""``rollback``: Argo Rollouts ``undo`` to an earlier revision, or ``abort``."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from remediator.actions.base import Params, RenderedTarget


class RollbackParams(Params):
    mode: Literal["undo", "abort"] = "undo"
    to_revision: int = Field(
        default=0, ge=0, description="Revision to return to; 0 means the previous one."
    )


class Rollback:
    name: ClassVar[str] = "rollback"
    mutates: ClassVar[bool] = True
    kinds: ClassVar[frozenset[str]] = frozenset({"Rollout"})
    params_model: ClassVar[type[Params]] = RollbackParams

    def describe(self, target: RenderedTarget, params: Params) -> str:
        assert isinstance(params, RollbackParams)
        if params.mode == "abort":
            return f"abort {target}: set status.abort=true, returning traffic to the stable version"
        revision = (
            f"revision {params.to_revision}" if params.to_revision else "the previous revision"
        )
        return f"roll back {target} to {revision} (replace spec.template with that ReplicaSet's)"
