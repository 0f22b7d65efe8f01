"""``cleanup``: delete failed or evicted pods and finished Jobs in a namespace."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from pydantic import Field

from remediator.actions.base import Params, RenderedTarget
from remediator.models.duration import Duration, format_duration


class CleanupParams(Params):
    selector: str = Field(default="", description="Label selector; empty means all.")
    older_than: Duration = Field(default=timedelta(hours=1))
    include_succeeded: bool = False
    jobs: bool = Field(default=True, description="Also delete finished Jobs.")
    max: int = Field(default=50, ge=1, le=1000, description="Deletions per run at most.")


class Cleanup:
    name: ClassVar[str] = "cleanup"
    mutates: ClassVar[bool] = True
    kinds: ClassVar[frozenset[str]] = frozenset({"Namespace"})
    params_model: ClassVar[type[Params]] = CleanupParams

    def describe(self, target: RenderedTarget, params: Params) -> str:
        assert isinstance(params, CleanupParams)
        phases = "Failed/Evicted" + ("/Succeeded" if params.include_succeeded else "")
        what = f"{phases} pods" + (" and finished Jobs" if params.jobs else "")
        selector = f" matching {params.selector!r}" if params.selector else ""
        return (
            f"delete up to {params.max} {what}{selector} in namespace {target.namespace} "
            f"older than {format_duration(params.older_than)}"
        )
