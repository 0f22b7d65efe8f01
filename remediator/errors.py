"""The error tree. Every error the server handles on purpose is a RemediatorError.

RemediatorError
 ├── ConfigError          bad configuration: the server refuses to start
 ├── RunbookError         a runbook file is invalid (file, line and field named)
 ├── PlanError            a runbook cannot be rendered for an alert (carries a reason)
 └── StoreUnavailable     the store cannot persist now; callers answer 503
"""

from __future__ import annotations


class RemediatorError(Exception):
    """Base of every error the server raises deliberately."""


class ConfigError(RemediatorError):
    """The configuration is invalid; the message names the key."""


class RunbookError(RemediatorError):
    """One or more runbook files are invalid; ``problems`` holds one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class PlanError(RemediatorError):
    """Rendering a runbook for an alert failed; ``reason`` is a BlockReason value."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class StoreUnavailable(RemediatorError):
    """The store could not persist; the caller must not acknowledge the request."""
