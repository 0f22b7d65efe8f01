"""The set of actions runbooks may name."""

from __future__ import annotations

from collections.abc import Mapping

from remediator.actions.base import Action
from remediator.actions.cert_renew import CertRenew
from remediator.actions.cleanup import Cleanup
from remediator.actions.notify import Notify
from remediator.actions.restart import Restart
from remediator.actions.rollback import Rollback
from remediator.actions.scale import Scale

Registry = Mapping[str, Action]


def mutating(actions: Registry) -> frozenset[str]:
    """The names of the actions that change the cluster: the ones the guards count."""
    return frozenset(name for name, a in actions.items() if a.mutates)


def builtin_actions() -> Registry:
    actions: list[Action] = [Notify(), Restart(), Rollback(), Scale(), Cleanup(), CertRenew()]
    return {a.name: a for a in actions}
