"""``restart``: a rollout restart, as ``kubectl rollout restart`` does it."""

from __future__ import annotations

from typing import ClassVar

from remediator.actions.base import Params, RenderedTarget


class RestartParams(Params):
    pass


class Restart:
    name: ClassVar[str] = "restart"
    mutates: ClassVar[bool] = True
    kinds: ClassVar[frozenset[str]] = frozenset({"Deployment", "StatefulSet", "DaemonSet"})
    params_model: ClassVar[type[Params]] = RestartParams

    def describe(self, target: RenderedTarget, params: Params) -> str:
        return (
            f"restart {target}: set the pod template annotation "
            "kubectl.kubernetes.io/restartedAt to now (rolling restart of every pod)"
        )
