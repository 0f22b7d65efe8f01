"""Server configuration: one YAML file, with environment variables for secrets.

Environment variables (``REMEDIATOR_`` prefix, ``__`` between levels, e.g.
``REMEDIATOR_AUTH__BEARER_TOKEN``) override the file, so a token never has to be
written into a ConfigMap. Unknown keys are errors, and errors name the key.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from remediator.errors import ConfigError
from remediator.models.duration import Duration


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 9595
    external_url: str = Field(default="", description="Base URL used in incident links.")
    max_body_bytes: Annotated[int, Field(ge=1024)] = 1024 * 1024


class AuthSettings(Section):
    """Credentials Alertmanager must present; bearer token or basic auth."""

    bearer_token: SecretStr | None = None
    bearer_token_file: Path | None = None
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    insecure_no_auth: bool = Field(
        default=False, description="Accept unauthenticated webhooks. Never in production."
    )

    @model_validator(mode="after")
    def _one_source_each(self) -> AuthSettings:
        if self.bearer_token and self.bearer_token_file:
            raise ValueError("set bearer_token or bearer_token_file, not both")
        if self.password and self.password_file:
            raise ValueError("set password or password_file, not both")
        if (self.password or self.password_file) and not self.username:
            raise ValueError("password needs username")
        return self

    def resolved_token(self) -> str | None:
        if self.bearer_token_file is not None:
            return _read_secret(self.bearer_token_file, "auth.bearer_token_file")
        return self.bearer_token.get_secret_value() if self.bearer_token else None

    def resolved_password(self) -> str | None:
        if self.password_file is not None:
            return _read_secret(self.password_file, "auth.password_file")
        return self.password.get_secret_value() if self.password else None


def _read_secret(path: Path, key: str) -> str:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from exc
    if not value:
        raise ConfigError(f"{key}: {path} is empty")
    return value


class StoreSettings(Section):
    url: str = Field(
        default="sqlite+aiosqlite:///remediator.db",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///FILE (one replica) or "
        "postgresql+asyncpg://USER:PASSWORD@HOST/DB (several replicas).",
    )
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        default="FULL",
        description=(
            "Level of commits that acknowledge webhooks: FULL survives power loss, NORMAL "
            "only a process crash. Timeline bookkeeping always commits at NORMAL."
        ),
    )

    @field_validator("url")
    @classmethod
    def _supported(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite:///", "postgresql+asyncpg://")):
            raise ValueError(
                "use sqlite+aiosqlite:///PATH (one replica) or "
                "postgresql+asyncpg://USER:PASSWORD@HOST/DB (several replicas)"
            )
        return value


class RunbookSettings(Section):
    dir: Path = Path("runbooks")
    watch: bool = Field(default=True, description="Hot-reload runbooks when files change.")
    source_url: str | None = Field(
        default=None,
        description=(
            "Where the incident page links a runbook's file: an http(s) URL with {file} "
            "(relative to runbooks.dir) and {commit} (HEAD when the directory is not a Git "
            "checkout), e.g. https://github.com/acme/ops/blob/{commit}/runbooks/{file}."
        ),
    )

    @field_validator("source_url")
    @classmethod
    def _link_template(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.match(r"https?://[^/]", value):
            raise ValueError("must be an http(s) URL")
        unknown = set(re.findall(r"{([^}]*)}", value)) - {"file", "commit"}
        if unknown:
            raise ValueError(
                f"unknown placeholder {{{sorted(unknown)[0]}}}; use {{file}} and {{commit}}"
            )
        return value


class NamespaceBudget(Section):
    """A cap on how often any runbooks act in one namespace, however many there are."""

    count: Annotated[int, Field(ge=1)] = Field(description="Incidents acted on per window.")
    window: Duration = Field(description="How far back the count looks.")


class NamespacePolicy(Section):
    allow: list[str] = Field(
        default_factory=list,
        description="Glob patterns of namespaces actions may touch; empty allows none.",
    )
    deny: list[str] = Field(
        default_factory=lambda: ["kube-system"],
        description="Glob patterns that are never touched, even when allowed.",
    )
    max_runs: NamespaceBudget | None = Field(
        default=None,
        description="At most this many incidents acted on per namespace per window, by all "
        "runbooks together; unset: no cap beyond each runbook's own.",
    )


class KindPolicy(Section):
    allow: list[str] = Field(
        default_factory=list,
        description="Glob patterns of target kinds actions may touch; empty allows none.",
    )


class RateSettings(Section):
    """The global token bucket every live or simulated action draws one token from."""

    per_minute: Annotated[float, Field(gt=0)] = Field(
        default=30.0, description="Tokens added per minute."
    )
    burst: Annotated[int, Field(ge=1)] = Field(default=10, description="Bucket size.")


class BreakerSettings(Section):
    """Stops automatic actions during alert storms or repeated failures."""

    window: Duration = Field(
        default=timedelta(minutes=10), description="How far back the breaker looks."
    )
    max_targets: Annotated[int, Field(ge=1)] = Field(
        default=10, description="Open when more distinct targets than this were touched."
    )
    max_failure_ratio: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.5,
        description="Open when more than this share of finished actions failed (0: any; 1: never).",
    )
    min_finished: Annotated[int, Field(ge=1)] = Field(
        default=4, description="Finished actions needed before the failure ratio counts."
    )
    quiet_period: Duration = Field(
        default=timedelta(minutes=15), description="Open at least this long; then re-check."
    )
    check_interval: Annotated[float, Field(gt=0)] = Field(
        default=30.0,
        description="Seconds between looks for an open breaker whose quiet period is over.",
    )


class GuardSettings(Section):
    dry_run: bool = Field(
        default=True, description="Shadow mode: record what would be done, change nothing."
    )
    namespaces: NamespacePolicy = Field(default_factory=NamespacePolicy)
    kinds: KindPolicy = Field(default_factory=KindPolicy)
    rate: RateSettings = Field(default_factory=RateSettings)
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)


class KubeSettings(Section):
    """How to reach the cluster; only used when a step may act (or server dry-run is on)."""

    source: Literal["auto", "kubeconfig", "in-cluster"] = Field(
        default="auto",
        description="auto: the pod's service account inside a cluster, else the kubeconfig.",
    )
    kubeconfig: Path | None = Field(default=None, description="Default: ~/.kube/config.")
    context: str | None = Field(default=None, description="Kubeconfig context to use.")
    # In-cluster only. Where kubelet mounts the service account unless the pod projects its
    # token elsewhere (a projected volume with its own audience or expiry, say).
    token_file: Path = Field(
        default=Path("/var/run/secrets/kubernetes.io/serviceaccount/token"),
        description="In-cluster: the service-account token, re-read every minute (rotation).",
    )
    ca_file: Path = Field(
        default=Path("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"),
        description="In-cluster: the CA that signs the API server's certificate.",
    )
    request_timeout: Annotated[float, Field(gt=0)] = Field(
        default=10.0, description="Seconds one API request may take."
    )
    deadline: Annotated[float, Field(gt=0)] = Field(
        default=60.0, description="Seconds one call may take with all its retries."
    )
    server_dry_run: bool = Field(
        default=False,
        description="In shadow mode, also send each mutation with dryRun=All, so the "
        "timeline shows whether the API server would have accepted it.",
    )


class SlackSettings(Section):
    """Approvals in Slack; without a bot token approvals still work through the API/CLI."""

    bot_token: SecretStr | None = None
    bot_token_file: Path | None = None
    signing_secret: SecretStr | None = None
    signing_secret_file: Path | None = None
    channel: str | None = Field(
        default=None, description="Channel id for approval requests when a runbook names none."
    )
    approvers: list[str] = Field(
        default_factory=list,
        description="User (U…) or user-group (S…) ids who may approve when a runbook names none.",
    )
    base_url: str = Field(default="https://slack.com/api/", description="Slack Web API base URL.")
    sweep_interval: Annotated[float, Field(gt=0)] = Field(
        default=15.0, description="Seconds between looks for expired approvals."
    )

    @model_validator(mode="after")
    def _one_source_each(self) -> SlackSettings:
        if self.bot_token and self.bot_token_file:
            raise ValueError("set bot_token or bot_token_file, not both")
        if self.signing_secret and self.signing_secret_file:
            raise ValueError("set signing_secret or signing_secret_file, not both")
        return self

    def resolved_bot_token(self) -> str | None:
        if self.bot_token_file is not None:
            return _read_secret(self.bot_token_file, "slack.bot_token_file")
        return self.bot_token.get_secret_value() if self.bot_token else None

    def resolved_signing_secret(self) -> str | None:
        if self.signing_secret_file is not None:
            return _read_secret(self.signing_secret_file, "slack.signing_secret_file")
        return self.signing_secret.get_secret_value() if self.signing_secret else None


class TeamSettings(Section):
    """Where one team's notifications, approval requests and escalations go."""

    channel: str | None = Field(default=None, description="The team's Slack channel id.")
    approvers: list[str] = Field(
        default_factory=list, description="User (U…) or user-group (S…) ids of the team."
    )


class RoutingSettings(Section):
    """Teams are first-class: an alert goes to its owning team, the platform is the fallback."""

    team_label: str = Field(
        default="team",
        description="Alert label naming the owning team; else the runbook's owner.",
    )
    teams: dict[str, TeamSettings] = Field(
        default_factory=dict, description="Team name → its channel and approvers."
    )


class ContextSettings(Section):
    """What the incident records about its target when it opens and after each action."""

    enabled: Literal["auto", "on", "off"] = Field(
        default="auto", description="auto: whenever the server has a cluster connection."
    )
    log_lines: Annotated[int, Field(ge=0, le=500)] = Field(
        default=20, description="Log lines of the failing container (previous one if restarted)."
    )
    events_window: Duration = Field(
        default=timedelta(minutes=15), description="How far back Kubernetes events are read."
    )
    timeout: Annotated[float, Field(gt=0)] = Field(
        default=2.0, description="Seconds one read may take."
    )
    budget: Annotated[float, Field(gt=0)] = Field(
        default=5.0, description="Seconds a whole capture may delay the remediation, at most."
    )
    max_bytes: Annotated[int, Field(ge=1024)] = Field(
        default=16384, description="Cap on the text one snapshot stores."
    )
    reuse: Duration = Field(
        default=timedelta(seconds=30),
        description="An incident opening on a target read this recently, and not acted on "
        "since, shares that snapshot instead of reading again (alert storms); 0s reads each time.",
    )
    redact: list[str] = Field(
        default_factory=list,
        description="Extra regexes whose matches are masked in captured text "
        "(tokens, passwords and bearer headers are masked always).",
    )
    links: dict[str, str] = Field(
        default_factory=dict,
        description="Name → URL template (labels, annotations, start/end times), e.g. Grafana.",
    )

    @field_validator("redact")
    @classmethod
    def _regexes(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a valid regex: {exc}") from exc
        return value


class WorkerSettings(Section):
    stale_after: Annotated[float, Field(gt=0)] = Field(
        default=300.0,
        description="PostgreSQL: seconds after which a claimed work item whose replica "
        "died is handed out again (after the execution-id check, never blindly re-applied).",
    )
    verify_interval: Annotated[float, Field(gt=0)] = Field(
        default=5.0, description="Seconds between looks at a target being verified."
    )
    batch_size: Annotated[int, Field(ge=1, le=500)] = Field(
        default=32, description="Work items claimed and processed in one transaction."
    )
    poll_interval: Annotated[float, Field(gt=0)] = 1.0
    max_attempts: Annotated[int, Field(ge=1)] = 5


class RetentionSettings(Section):
    """How long resolved incidents are kept; a periodic task purges the older ones."""

    enabled: bool = Field(default=True, description="Purge old resolved incidents.")
    max_age: Duration = Field(
        default=timedelta(days=30),
        description="Purge a resolved incident once nothing was recorded on it for this long "
        "(at least 1h; never less than the longest guard window of the loaded runbooks).",
        json_schema_extra={"default": "30d"},
    )
    interval: Annotated[float, Field(gt=0)] = Field(
        default=3600.0, description="Seconds between purges."
    )
    batch: Annotated[int, Field(ge=1, le=10000)] = Field(
        default=500, description="Incidents deleted per transaction."
    )

    @field_validator("max_age")
    @classmethod
    def _at_least_an_hour(cls, value: timedelta) -> timedelta:
        # A bare number is seconds: `max_age: 30` would otherwise empty the history.
        if value < timedelta(hours=1):
            raise ValueError("must be at least 1h")
        return value


class LogSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"


class Settings(BaseSettings):
    """The whole configuration; see the README's configuration reference."""

    model_config = SettingsConfigDict(
        env_prefix="REMEDIATOR_", env_nested_delimiter="__", extra="forbid"
    )

    server: ServerSettings = Field(default_factory=ServerSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    runbooks: RunbookSettings = Field(default_factory=RunbookSettings)
    guards: GuardSettings = Field(default_factory=GuardSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    kube: KubeSettings = Field(default_factory=KubeSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    context: ContextSettings = Field(default_factory=ContextSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    log: LogSettings = Field(default_factory=LogSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file so secrets can stay out of it.
        return env_settings, init_settings

    @classmethod
    def load(cls, path: Path | None = None, **overrides: Any) -> Settings:
        """Read ``path`` (if any), apply the environment and ``overrides``; validate."""
        data: dict[str, Any] = {}
        source = str(path) if path else "configuration"
        if path is not None:
            try:
                loaded = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
            except OSError as exc:
                raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
            except YAMLError as exc:
                raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
            if loaded is not None and not isinstance(loaded, dict):
                raise ConfigError(f"{path}: the top level must be a mapping")
            data = loaded or {}
        for dotted, value in overrides.items():
            section, key = dotted.split(".", 1)
            data.setdefault(section, {})[key] = value
        try:
            return cls(**data)
        except ValidationError as exc:
            raise ConfigError(_describe(source, exc)) from None


def _describe(source: str, exc: ValidationError) -> str:
    lines = [f"{source}: invalid configuration"]
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"]) or "(top level)"
        lines.append(f"  {key}: {err['msg']}")
    return "\n".join(lines)
