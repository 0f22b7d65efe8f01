"""Guards on virtual time: cooldowns, windows, the per-target lock, the token bucket and
the circuit breaker, decided against a real store with a clock the test moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from remediator.actions.registry import builtin_actions
from remediator.authoring.facts import sample_instance
from remediator.pipeline import guard
from remediator.pipeline.plan import Plan, plan
from remediator.runbooks.loader import load_file
from remediator.settings import (
    BreakerSettings,
    GuardSettings,
    KindPolicy,
    NamespaceBudget,
    NamespacePolicy,
    RateSettings,
)
from remediator.store import executions
from remediator.store.db import create_engine, migrate
from remediator.store.executions import ExecutionKey
from remediator.store.tables import executions as executions_table
from remediator.store.tables import incidents
from tests.sqlite_work import counted

ACTIONS = builtin_actions()
MUTATING = frozenset(n for n, a in ACTIONS.items() if a.mutates)
T0 = datetime(2025, 5, 1, 10, 0, tzinfo=UTC)
RUNBOOK = """\
name: web
version: 1
owner: t
match: ['alertname="A"']
target: {kind: Deployment, namespace: "{{ labels.namespace }}", name: "{{ labels.app }}"}
steps:
  - action: restart
guards:
  cooldown: 30m
"""
WINDOWS = """\
  max_runs: {count: 3, window: 1h}
  max_runs_per_namespace: {count: 2, window: 1h}
"""


def policy(**overrides: object) -> GuardSettings:
    base: dict[str, object] = {
        "dry_run": False,
        "namespaces": NamespacePolicy(allow=["*"]),
        "kinds": KindPolicy(allow=["*"]),
        "rate": RateSettings(per_minute=60, burst=100),
        "breaker": BreakerSettings(max_targets=50),
    }
    return GuardSettings(**{**base, **overrides})


def load(tmp_path: Path, text: str = RUNBOOK):
    path = tmp_path / "web.yaml"
    path.write_text(text)
    return load_file(path, ACTIONS)


@pytest.fixture
def runbook(tmp_path: Path):
    return load(tmp_path)


@pytest.fixture
async def conn(store_url: str):
    engine = create_engine(store_url)
    await migrate(engine)
    async with engine.begin() as connection:
        yield connection
    await engine.dispose()


class Ledger:
    """Decides and records like the pipeline does, with a clock the test owns."""

    def __init__(self, conn, runbook, settings: GuardSettings) -> None:
        self.conn, self.runbook, self.settings = conn, runbook, settings
        self.now = T0
        self.count = 0

    def plan(self, app: str = "web", namespace: str = "prod") -> Plan:
        labels = {"alertname": "A", "namespace": namespace, "app": app}
        return plan(self.runbook, sample_instance(labels), ACTIONS)

    async def decide(
        self, planned: Plan, incident: str, *, approved: bool = False
    ) -> guard.Decision:
        return await guard.decide(
            self.conn,
            incident,
            planned,
            planned.steps[0],
            self.settings,
            MUTATING,
            self.now,
            approved=approved,
        )

    async def run(
        self,
        app: str = "web",
        namespace: str = "prod",
        status: str = "applied",
        *,
        approved: bool = False,
    ):
        """Decide for a new incident; record the execution when allowed."""
        self.count += 1
        incident = f"i{self.count}"
        await self.conn.execute(
            incidents.insert().values(
                id=incident,
                status="open",
                alertname="A",
                namespace=namespace,
                severity="",
                summary="",
                external_url="",
                group_key="",
                created_at=self.now,
                updated_at=self.now,
            )
        )
        planned = self.plan(app, namespace)
        decision = await self.decide(planned, incident, approved=approved)
        if decision.allowed:
            key = ExecutionKey(incident, self.runbook.spec.name, "1", 0, planned.target.key)
            await executions.begin(
                self.conn,
                key,
                "restart",
                dry_run=decision.dry_run,
                status=status,
                detail="",
                namespace=namespace,
                params={},
                uid=incident,
                now=self.now,
            )
        return decision

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


async def test_cooldown_per_runbook_and_target_then_expires(conn, runbook):
    ledger = Ledger(conn, runbook, policy())
    assert (await ledger.run(status="verified")).allowed
    ledger.advance(minutes=29)
    blocked = await ledger.run()
    assert (blocked.allowed, blocked.reason) == (False, "cooldown")
    assert "ends in 1m" in blocked.message
    assert (await ledger.run(app="api", status="verified")).allowed  # another target
    ledger.advance(minutes=1)
    assert (await ledger.run(status="verified")).allowed


async def test_one_action_at_a_time_per_target(conn, tmp_path):
    ledger = Ledger(conn, load(tmp_path, RUNBOOK.replace("30m", "0s")), policy())
    assert (await ledger.run(status="intent")).allowed
    busy = await ledger.run()
    assert (busy.allowed, busy.reason) == (False, "target_busy")
    await conn.execute(executions_table.update().values(status="verified"))
    assert (await ledger.run(status="verified")).allowed


async def test_max_runs_per_runbook_and_per_namespace_windows(conn, tmp_path):
    ledger = Ledger(conn, load(tmp_path, RUNBOOK + WINDOWS), policy())
    assert (await ledger.run(app="a", status="verified")).allowed
    assert (await ledger.run(app="b", status="verified")).allowed
    per_ns = await ledger.run(app="c")
    assert (per_ns.allowed, per_ns.reason) == (False, "max_runs_namespace")
    assert (await ledger.run(app="c", namespace="stage", status="verified")).allowed
    per_runbook = await ledger.run(app="d", namespace="qa")
    assert (per_runbook.allowed, per_runbook.reason) == (False, "max_runs")
    ledger.advance(hours=1, seconds=1)
    assert (await ledger.run(app="d", namespace="qa", status="verified")).allowed


async def test_namespace_budget_counts_every_runbook(conn, tmp_path):
    budget = NamespacePolicy(allow=["*"], max_runs=NamespaceBudget(count=2, window="1h"))
    ledger = Ledger(conn, load(tmp_path), policy(namespaces=budget))
    other = tmp_path / "other"
    other.mkdir()
    api = load(other, RUNBOOK.replace("name: web", "name: api"))
    assert (await ledger.run(app="a", status="verified")).allowed
    ledger.runbook = api  # a second runbook spends the same namespace's budget
    assert (await ledger.run(app="b", status="failed")).allowed
    blocked = await ledger.run(app="c")
    assert (blocked.allowed, blocked.reason) == (False, "namespace_budget")
    assert "2 incidents in namespace prod" in blocked.message
    assert "guards.namespaces.max_runs" in blocked.message
    assert (await ledger.run(app="c", namespace="stage", status="verified")).allowed
    ledger.advance(minutes=59)
    assert not (await ledger.run(app="d")).allowed
    ledger.advance(minutes=1, seconds=1)
    assert (await ledger.run(app="d", status="verified")).allowed


async def test_token_bucket_limits_globally_and_refills(conn, runbook):
    ledger = Ledger(conn, runbook, policy(rate=RateSettings(per_minute=2, burst=2)))
    assert (await ledger.run(app="a", status="verified")).allowed
    assert (await ledger.run(app="b", status="verified")).allowed
    limited = await ledger.run(app="c")
    assert (limited.allowed, limited.reason) == (False, "rate_limited")
    ledger.advance(seconds=29)
    assert not (await ledger.run(app="c")).allowed
    ledger.advance(seconds=1)  # 30 s at 2/min is one token
    assert (await ledger.run(app="c", status="verified")).allowed
    assert not (await ledger.run(app="d")).allowed


async def test_breaker_opens_on_many_targets_and_closes_after_quiet_period(conn, runbook):
    breaker = BreakerSettings(
        max_targets=2, window=timedelta(minutes=10), quiet_period=timedelta(minutes=15)
    )
    ledger = Ledger(conn, runbook, policy(breaker=breaker))
    assert (await ledger.run(app="a", status="verified")).allowed
    assert (await ledger.run(app="b", status="verified")).allowed
    tripped = await ledger.run(app="c")
    assert (tripped.allowed, tripped.reason) == (False, "circuit_open")
    assert tripped.breaker_change is not None
    assert tripped.breaker_change.startswith("opened: 3 distinct targets")
    ledger.advance(minutes=11)  # the window is quiet again, but the breaker stays open
    still = await ledger.run(app="d")
    assert (still.allowed, still.reason, still.breaker_change) == (False, "circuit_open", None)
    ledger.advance(minutes=5)
    closed = await ledger.run(app="d", status="verified")
    assert (closed.allowed, closed.breaker_change) == (True, "closed")


async def test_an_open_breaker_closes_without_a_step_once_quiet_and_calm(conn, runbook):
    breaker = BreakerSettings(
        max_targets=50, min_finished=2, window=timedelta(minutes=30), quiet_period="15m"
    )
    ledger = Ledger(conn, runbook, policy(breaker=breaker))
    for app in "ab":
        assert (await ledger.run(app=app, status="failed")).allowed
    assert (await ledger.run(app="c")).reason == "circuit_open"  # opened by incident i3

    async def close_quiet() -> list[guard.Closed]:
        return await guard.close_quiet(conn, ledger.settings, MUTATING, ledger.now)

    ledger.advance(minutes=16)  # quiet long enough, but the failures are still in the window
    assert await close_quiet() == []
    ledger.advance(minutes=15)
    assert await close_quiet() == [
        guard.Closed(False, "i3", "closed: open for 31m, and the last 30m is calm")
    ]
    assert await close_quiet() == []  # closed once
    after = await ledger.run(app="d")
    assert (after.allowed, after.breaker_change) == (True, None)


@pytest.mark.parametrize(
    ("failed", "trips"),
    [
        ("failed verified verification_failed verified", False),
        ("failed failed failed verified", True),
    ],
    ids=["2-of-4", "3-of-4"],
)
async def test_breaker_opens_on_more_than_the_failure_ratio(conn, runbook, failed, trips):
    breaker = BreakerSettings(max_targets=50, min_finished=4, max_failure_ratio=0.5)
    ledger = Ledger(conn, runbook, policy(breaker=breaker))
    for app, status in zip("abcd", failed.split(), strict=True):
        assert (await ledger.run(app=app, status=status)).allowed
    decision = await ledger.run(app="e")  # a half is not more than 0.5
    assert (decision.allowed, decision.reason) == (
        (False, "circuit_open") if trips else (True, None)
    )
    assert ("3 of 4 actions failed" in decision.message) is trips


async def test_an_approval_passes_an_open_breaker_and_no_other_guard(conn, runbook):
    rate = RateSettings(per_minute=1, burst=2)
    ledger = Ledger(conn, runbook, policy(breaker=BreakerSettings(max_targets=1), rate=rate))
    assert (await ledger.run(app="a", status="intent")).allowed
    tripped = await ledger.run(app="b")
    assert (tripped.allowed, tripped.reason) == (False, "circuit_open")
    approved = await ledger.run(app="b", status="verified", approved=True)
    assert (approved.allowed, approved.breaker_change) == (True, None)
    busy = await ledger.run(app="a", approved=True)
    assert (busy.allowed, busy.reason) == (False, "target_busy")
    limited = await ledger.run(app="c", approved=True)  # the approved step took the last token
    assert (limited.allowed, limited.reason) == (False, "rate_limited")
    still = await ledger.run(app="c")  # automatic actions stay paused
    assert (still.allowed, still.reason, still.breaker_change) == (False, "circuit_open", None)


async def test_dry_run_history_never_limits_live_actions(conn, runbook):
    ledger = Ledger(conn, runbook, policy(dry_run=True))
    assert (await ledger.run(status="dry_run")).allowed
    ledger.settings = policy()
    assert (await ledger.run(status="verified")).allowed  # the dry run left no cooldown


async def test_steps_that_change_nothing_never_count_against_a_target(conn, runbook):
    # A notify step is in the ledger like any step, but it leaves no cooldown and is
    # not a target the breaker counts.
    one_target = BreakerSettings(max_targets=1, window=timedelta(minutes=10))
    ledger = Ledger(conn, runbook, policy(breaker=one_target))
    assert (await ledger.run(app="a", status="verified")).allowed
    await conn.execute(executions_table.update().values(action="notify"))
    again = await ledger.run(app="a", status="verified")  # same runbook, same target
    assert again.allowed, again.message
    await conn.execute(executions_table.update().values(action="notify"))
    # Only notify steps, all on a, are left: b is the first target the breaker sees.
    assert (await ledger.run(app="b", status="verified")).allowed
    tripped = await ledger.run(app="c")
    assert (tripped.allowed, tripped.reason) == (False, "circuit_open")


async def _decision_work(tmp_path: Path, runbook, old: int) -> int:
    """SQLite VM steps one decision takes with ``old`` executions of the same runbook,
    target and namespace behind it, all older than every window and the cooldown."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / f'ledger-{old}.db'}")
    await migrate(engine)
    budget = NamespaceBudget(count=5, window="1h")
    settings = policy(namespaces=NamespacePolicy(allow=["*"], max_runs=budget))
    ids = [f"old{i}" for i in range(old)]
    started = [T0 - timedelta(days=2, minutes=i) for i in range(old)]
    try:
        async with engine.begin() as conn:
            await conn.execute(
                incidents.insert(),
                [
                    {"id": i, "status": "resolved", "alertname": "A", "namespace": "prod",
                     "severity": "", "summary": "", "external_url": "", "group_key": "",
                     "created_at": at, "updated_at": at}
                    for i, at in zip(ids, started, strict=True)
                ],
            )  # fmt: skip
            await conn.execute(
                executions_table.insert(),
                [
                    {"incident_id": i, "runbook": "web", "version": "1", "step": 0,
                     "action": "restart", "target": "Deployment/prod/web", "dry_run": False,
                     "status": "verified", "created_at": at, "detail": "", "uid": i,
                     "namespace": "prod", "params": {}}
                    for i, at in zip(ids, started, strict=True)
                ],
            )  # fmt: skip
        async with counted(engine) as steps, engine.begin() as conn:
            ledger = Ledger(conn, runbook, settings)
            decision = await ledger.decide(ledger.plan(), "new")
            assert decision.allowed, decision.message
    finally:
        await engine.dispose()
    return steps[0]


async def test_a_decision_reads_only_the_rows_in_its_windows(tmp_path):
    """A ledger grows for as long as retention keeps it (shadow mode records every
    alert's steps); a decision must cost the same after 40 old executions as after
    4,000. Before the window indexes, SQLite read all of a runbook's executions for each
    window count, and one decision took 120 ms at 50,000."""
    runbook = load(tmp_path, RUNBOOK + WINDOWS)
    small = await _decision_work(tmp_path, runbook, 40)
    large = await _decision_work(tmp_path, runbook, 4000)
    assert large < small * 1.5, (small, large)
