"""Stage: policy before any side effect. Pure: same inputs, same decision.

The store supplies the facts (``store/guard_ledger.py``) inside the transaction that
will record the execution, so two decisions can never both take the last slot. Order
matters only for which reason is reported: static policy first, then per-target,
per-runbook, the namespace's budget for all runbooks, the breaker, and the global
token bucket last (a token is only spent by a step that is otherwise allowed). A
person's approval overrides only the breaker: it pauses automatic actions, and asking a
person is its fallback.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from remediator.models.duration import format_duration
from remediator.models.events import BlockReason, EventKind, Stage
from remediator.models.runbook import RunLimit
from remediator.pipeline.plan import Plan, PlannedStep
from remediator.settings import BreakerSettings, GuardSettings, NamespaceBudget, RateSettings
from remediator.store import guard_ledger
from remediator.store.guard_ledger import Facts
from remediator.store.timeline import NewEvent


@dataclass(frozen=True)
class Decision:
    allowed: bool
    dry_run: bool
    reason: BlockReason | None = None
    message: str = ""
    # State the caller persists with the decision: {"token_bucket": {...}, "breaker": {...}}
    state: dict[str, dict[str, Any]] = field(default_factory=dict)
    breaker_change: str | None = None  # "opened: why" or "closed"


def is_dry_run(plan: Plan, policy: GuardSettings) -> bool:
    return policy.dry_run or plan.runbook.spec.guards.dry_run


def check_static(
    plan: Plan, step: PlannedStep, policy: GuardSettings, *, approved: bool = False
) -> Decision:
    """The guards that need no store: namespaces, kinds, approval (only a step that
    changes something needs a person's approval)."""
    dry_run = is_dry_run(plan, policy)
    namespace, kind = plan.target.namespace, plan.target.kind
    if step.action.mutates:
        denied = next((p for p in policy.namespaces.deny if fnmatchcase(namespace, p)), None)
        if denied is not None:
            return _block(
                dry_run,
                BlockReason.NAMESPACE_DENIED,
                f"namespace {namespace!r} is denied by pattern {denied!r}",
            )
        if not any(fnmatchcase(namespace, p) for p in policy.namespaces.allow):
            return _block(
                dry_run,
                BlockReason.NAMESPACE_NOT_ALLOWED,
                f"namespace {namespace!r} is not in guards.namespaces.allow",
            )
        if not any(fnmatchcase(kind, p) for p in policy.kinds.allow):
            return _block(
                dry_run, BlockReason.KIND_NOT_ALLOWED, f"kind {kind!r} is not in guards.kinds.allow"
            )
        if plan.approval_required and not dry_run and not approved:
            return _block(
                dry_run, BlockReason.AWAITING_APPROVAL, "the runbook requires an approval first"
            )
    return Decision(True, dry_run)


def check(
    plan: Plan,
    step: PlannedStep,
    policy: GuardSettings,
    facts: Facts,
    now: datetime,
    *,
    approved: bool = False,
) -> Decision:
    """Whether ``step`` may run now, given what the ledger says was done before."""
    static = check_static(plan, step, policy, approved=approved)
    if not static.allowed or not step.action.mutates:
        return static
    dry_run = static.dry_run
    guards = plan.runbook.spec.guards
    if facts.busy is not None:
        return _block(
            dry_run, BlockReason.TARGET_BUSY, f"{plan.target} is being acted on by {facts.busy}"
        )
    if facts.last_run is not None and now - facts.last_run < guards.cooldown:
        left = guards.cooldown - (now - facts.last_run)
        return _block(
            dry_run,
            BlockReason.COOLDOWN,
            f"{plan.runbook.spec.name} acted on {plan.target} "
            f"{format_duration(now - facts.last_run)} ago; cooldown "
            f"{format_duration(guards.cooldown)} ends in {format_duration(left)}",
        )
    name, namespace = plan.runbook.spec.name, plan.target.namespace
    windows: tuple[tuple[RunLimit | NamespaceBudget | None, int, BlockReason, str], ...] = (
        (
            guards.max_runs,
            facts.runs,
            BlockReason.MAX_RUNS,
            f"{name} already ran {facts.runs} times",
        ),
        (
            guards.max_runs_per_namespace,
            facts.runs_in_namespace,
            BlockReason.MAX_RUNS_NAMESPACE,
            f"{name} already ran {facts.runs_in_namespace} times in namespace {namespace}",
        ),
        (
            policy.namespaces.max_runs,
            facts.namespace_budget,
            BlockReason.NAMESPACE_BUDGET,
            f"guards.namespaces.max_runs: runbooks already acted for {facts.namespace_budget} "
            f"incidents in namespace {namespace}",
        ),
    )
    for limit, used, reason, said in windows:
        if limit is not None and used >= limit.count:
            window = format_duration(limit.window)
            return _block(dry_run, reason, f"{said} within {window} (max {limit.count})")
    state: dict[str, dict[str, Any]] = {}
    change: str | None = None
    # The breaker pauses what runs on its own; a person's approval is the fallback it
    # asks for, so an approved step passes it (and leaves its state to the next one).
    breaker = None if approved else _breaker(policy.breaker, facts, now)
    if breaker is not None:
        opened, message = breaker
        if opened:
            if not facts.breaker.get("open"):
                state["breaker"] = {"open": True, "opened_at": now.isoformat(), "why": message}
                change = f"opened: {message}"
            return Decision(
                False,
                dry_run,
                BlockReason.CIRCUIT_OPEN,
                f"circuit breaker open: {facts.breaker.get('why') or message}; automatic "
                "actions are paused",
                state,
                change,
            )
        state["breaker"] = _closed(now)
        change = "closed"
    tokens = _refill(policy.rate, facts.bucket, now)
    if tokens < 1:
        wait = (1 - tokens) * 60 / policy.rate.per_minute
        return Decision(
            False,
            dry_run,
            BlockReason.RATE_LIMITED,
            f"global rate limit of {policy.rate.per_minute:g}/min reached; next token in "
            f"{wait:.0f}s",
            state,
            change,
        )
    state["token_bucket"] = {"tokens": tokens - 1, "at": now.isoformat()}
    return Decision(True, dry_run, state=state, breaker_change=change)


def _breaker(settings: BreakerSettings, facts: Facts, now: datetime) -> tuple[bool, str] | None:
    """(True, why) to be or stay open; (False, "") to close; None when nothing changes."""
    targets = facts.targets + (0 if facts.target_touched else 1)
    why = ""
    if targets > settings.max_targets:
        why = (
            f"{targets} distinct targets within {format_duration(settings.window)} "
            f"(max {settings.max_targets})"
        )
    elif facts.finished >= settings.min_finished and (
        facts.failed / facts.finished > settings.max_failure_ratio
    ):
        why = (
            f"{facts.failed} of {facts.finished} actions failed within "
            f"{format_duration(settings.window)}"
        )
    if facts.breaker.get("open"):
        opened_at = datetime.fromisoformat(facts.breaker["opened_at"])
        if now - opened_at < settings.quiet_period or why:
            return True, why
        return False, ""
    return (True, why) if why else None


def _closed(now: datetime) -> dict[str, Any]:
    return {"open": False, "closed_at": now.isoformat()}


def _refill(rate: RateSettings, bucket: dict[str, Any], now: datetime) -> float:
    if not bucket:
        return float(rate.burst)
    elapsed = max(timedelta(0), now - datetime.fromisoformat(bucket["at"]))
    return min(
        float(rate.burst), float(bucket["tokens"]) + elapsed.total_seconds() * rate.per_minute / 60
    )


def _block(dry_run: bool, reason: BlockReason, message: str) -> Decision:
    return Decision(False, dry_run, reason, message)


async def decide(
    conn: AsyncConnection,
    incident_id: str,
    plan: Plan,
    step: PlannedStep,
    policy: GuardSettings,
    mutating_actions: Collection[str],
    now: datetime,
    *,
    approved: bool = False,
) -> Decision:
    """``check`` against the ledger, persisting the bucket and breaker it changes."""
    static = check_static(plan, step, policy, approved=approved)
    if not static.allowed or not step.action.mutates:
        return static
    guards = plan.runbook.spec.guards
    await guard_ledger.serialize(conn)
    scope = guard_ledger.Scope(
        incident_id=incident_id,
        runbook=plan.runbook.spec.name,
        target=plan.target.key,
        namespace=plan.target.namespace,
        dry_run=static.dry_run,
        mutating_actions=mutating_actions,
    )
    facts = await guard_ledger.facts(
        conn,
        scope,
        now,
        runs_window=guards.max_runs.window if guards.max_runs else None,
        namespace_window=(
            guards.max_runs_per_namespace.window if guards.max_runs_per_namespace else None
        ),
        budget_window=policy.namespaces.max_runs.window if policy.namespaces.max_runs else None,
        breaker_window=policy.breaker.window,
    )
    decision = check(plan, step, policy, facts, now, approved=approved)
    names = {
        "token_bucket": guard_ledger.bucket_name(static.dry_run),
        "breaker": guard_ledger.breaker_name(static.dry_run),
    }
    for key, value in decision.state.items():
        if key == "breaker" and value["open"]:
            value = {**value, "incident": incident_id}  # where its closing is told
        await guard_ledger.save_state(conn, names[key], value, now)
    return decision


def breaker_event(change: str) -> NewEvent:
    opened = change.startswith("opened")
    return NewEvent(
        Stage.GUARD,
        EventKind.CIRCUIT_OPENED if opened else EventKind.CIRCUIT_CLOSED,
        f"circuit breaker {change}",
        reason=BlockReason.CIRCUIT_OPEN if opened else None,
    )


@dataclass(frozen=True)
class Closed:
    dry_run: bool
    incident_id: str | None  # the incident whose step opened it
    change: str  # as Decision.breaker_change says it


async def close_quiet(
    conn: AsyncConnection,
    policy: GuardSettings,
    mutating_actions: Collection[str],
    now: datetime,
) -> list[Closed]:
    """Close each breaker whose quiet period is over while its window is calm.

    A step's decision closes it too, but only when a step comes; this lets the metric
    and the timeline say it closed when it did, not at the next alert.
    """
    names = {guard_ledger.breaker_name(dry_run): dry_run for dry_run in (False, True)}
    stored = await guard_ledger.states(conn, names)
    opened = [names[name] for name, state in stored.items() if state.get("open")]
    if not opened:
        return []  # the usual case: no reason to wait for the guard lock
    await guard_ledger.serialize(conn)
    closed = []
    for dry_run in opened:
        scope = guard_ledger.Scope("", "", "", "", dry_run, mutating_actions)
        facts = await guard_ledger.facts(
            conn,
            scope,
            now,
            runs_window=None,
            namespace_window=None,
            budget_window=None,
            breaker_window=policy.breaker.window,
        )
        # No step is being decided, so no new target counts against the window.
        if _breaker(policy.breaker, replace(facts, target_touched=True), now) != (False, ""):
            continue
        await guard_ledger.save_state(conn, guard_ledger.breaker_name(dry_run), _closed(now), now)
        quiet = now - datetime.fromisoformat(facts.breaker["opened_at"])
        change = (
            f"closed: open for {format_duration(quiet)}, and the last "
            f"{format_duration(policy.breaker.window)} is calm"
        )
        closed.append(Closed(dry_run, facts.breaker.get("incident"), change))
    return closed
