"""Which team owns an alert, and so where its messages go and who approves for it.

The alert's team label wins when it names a configured team (the service's owners know
best); otherwise the runbook's ``owner``. A team without a channel or approvers falls
back to the platform's (``slack.channel``, ``slack.approvers``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from remediator.settings import RoutingSettings, SlackSettings


@dataclass(frozen=True)
class Router:
    routing: RoutingSettings
    slack: SlackSettings

    def team(self, owner: str, labels: Mapping[str, str]) -> str:
        labelled = labels.get(self.routing.team_label, "")
        return labelled if labelled in self.routing.teams else owner

    def channel(self, team: str, explicit: str | None = None) -> str | None:
        configured = self.routing.teams.get(team)
        return explicit or (configured.channel if configured else None) or self.slack.channel

    def approvers(self, team: str, explicit: list[str]) -> list[str]:
        configured = self.routing.teams.get(team)
        return (
            explicit or (configured.approvers if configured else []) or list(self.slack.approvers)
        )
