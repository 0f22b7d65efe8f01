"""Executor benchmark: alert → first write at the cluster, and an alert storm under limits.

Both parts run the real server, ``python -m remediator serve``, live (``guards.dry_run:
false``) against the fake Kubernetes API server of ``tests/fakes/kube``, which serves from
this process's event loop. The fake stamps every request it reads with
``time.perf_counter()`` (``Request.at``), the clock the sender here reads too, so "sent"
and "seen by the cluster" are comparable without any clock sync. The server has a fresh
SQLite store in a temp dir, one runbook (``restart`` a Deployment named by the alert's
labels) and warning-level logs; Alertmanager's ``group_wait`` is not in the path, since
the webhook is posted to directly.

latency
    ``--alerts`` alerts, each for its own Deployment (no cooldown or busy target in the
    way; rate limit and breaker set out of reach), posted one at a time: POST, wait until
    the fake has seen the PATCH of that Deployment, pause ``--gap-ms``, next. Measured:
    POST sent → PATCH read by the fake (the server's ingest commit, claim, match, plan,
    guards, durable intent, the action's GET and its PATCH). The fake's controllers are
    off here (one pass over all objects blocks this loop for tens of ms, which would be
    timed as server latency); instead each restarted Deployment is marked rolled out
    ``--rollout-s`` (15 s) after its PATCH, one cheap status write. Until then the
    restart's verify job looks at it every ``worker.verify_interval`` (5 s) while later
    alerts are measured: the background work a live server has.
    Baseline, same run, alternating with the subject in ``--rounds`` slices: a relay
    (this file with ``--relay-port``), an aiohttp webhook that ``json.loads`` the body,
    answers 200 and calls the same ``restart`` action with the same cluster client: no
    store, no pipeline, no guards. The ratio shows what those cost; the targets
    (p50 ≤ 10 ms, p99 ≤ 50 ms) are absolute.

storm
    ``--storm-alerts`` alerts (distinct fingerprints) over ``--storm-targets`` Deployments,
    in Alertmanager-sized bodies (``--batch`` alerts per POST, ``--concurrency`` POSTs in
    flight, retried on 5xx as Alertmanager does). Limits: the runbook's cooldown (1 h) lets
    each Deployment be restarted at most once; the global token bucket holds ``--burst``
    tokens and refills at ``--per-minute``; the breaker opens past ``--max-targets``
    distinct targets. The harness computes from these settings how many restarts the
    limits allow and compares that, exactly, with the PATCHes the fake applied, the
    Deployments whose generation moved, and the executions the server recorded. It waits
    until every job (verify jobs included) is finished, reading the server's SQLite file
    read-only. Peak RSS is the server's ``VmHWM``.

    python bench/executor.py [--alerts 300] [--storm-alerts 10000] [--json out.json]

Exit status: 0 when measured (targets met or not); 1 when the harness could not measure
(a server that does not start, alerts never processed); 2 when the storm's actions
differ from what the limits allow, or a latency alert never reached the cluster.
The harness's own smoke test: ``pytest bench/test_executor_bench.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import os
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(REPO_ROOT))  # the fake lives in tests/, which is not installed

from ingest import cpu_seconds, free_port, log_tail, machine_cpu_seconds, server_env  # noqa: E402

from tests.fakes.kube import FakeKube, objects  # noqa: E402

TOKEN = "bench-token"
KUBE_TOKEN = "bench-kube-token"
ALERTS_PATH = "/api/v1/alerts"
ALERTNAME = "BenchCrashLooping"
RUNBOOK_NAME = "bench-restart"
COOLDOWN = timedelta(hours=1)
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)

TARGET_P50_MS = 10.0
TARGET_P99_MS = 50.0
TARGET_RSS_MB = 150.0
NOISY_CPU = 0.25  # cores other processes may take before a run is called noisy

SUBJECT_CMD = [sys.executable, "-m", "remediator", "serve", "--config"]

RUNBOOK = f"""\
name: {RUNBOOK_NAME}
version: 1
owner: bench
description: Restart the Deployment the alert names.
match: ['alertname="{ALERTNAME}"']
target:
  kind: Deployment
  namespace: "{{{{ labels.namespace }}}}"
  name: "{{{{ labels.deployment }}}}"
steps:
  - action: restart
guards:
  cooldown: {int(COOLDOWN.total_seconds())}s
"""


class HarnessError(Exception):
    """The benchmark could not be run; the message says why."""


# ------------------------------------------------------------------------------ alerts


def deployment_path(namespace: str, name: str) -> str:
    return f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"


def make_alert(namespace: str, deployment: str, serial: int) -> dict[str, Any]:
    """A firing alert as Alertmanager sends it; ``serial`` makes it a new instance."""
    labels = {
        "alertname": ALERTNAME,
        "namespace": namespace,
        "deployment": deployment,
        "pod": f"{deployment}-{serial:06d}",
        "severity": "critical",
    }
    text = "\x00".join(f"{k}\xff{v}" for k, v in sorted(labels.items()))
    starts = T0 + timedelta(milliseconds=serial)
    return {
        "status": "firing",
        "labels": labels,
        "annotations": {"summary": f"{deployment} is crash looping"},
        "startsAt": starts.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        "fingerprint": hashlib.sha256(text.encode()).hexdigest()[:16],
    }


def notification(alerts: Sequence[dict[str, Any]]) -> bytes:
    return json.dumps(
        {
            "version": "4",
            "groupKey": f'{{}}:{{alertname="{ALERTNAME}"}}',
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "remediator",
            "groupLabels": {"alertname": ALERTNAME},
            "commonLabels": {"alertname": ALERTNAME},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "alerts": list(alerts),
        }
    ).encode()


# ------------------------------------------------------------------------- processes


def write_config(workdir: Path, port: int, kubeconfig: Path, guards: dict[str, Any]) -> Path:
    """The server's config, as JSON (which YAML reads as it is)."""
    runbooks = workdir / "runbooks"
    runbooks.mkdir(exist_ok=True)
    (runbooks / f"{RUNBOOK_NAME}.yaml").write_text(RUNBOOK, encoding="utf-8")
    config = {
        "server": {"host": "127.0.0.1", "port": port},
        "auth": {"bearer_token": TOKEN},
        "store": {"url": f"sqlite+aiosqlite:///{workdir / 'bench.db'}"},
        "runbooks": {"dir": str(runbooks), "watch": False},
        "guards": {
            "dry_run": False,
            "namespaces": {"allow": ["bench-*"], "deny": []},
            "kinds": {"allow": ["*"]},
            **guards,
        },
        "worker": {"poll_interval": 0.1},
        "kube": {"source": "kubeconfig", "kubeconfig": str(kubeconfig)},
        "log": {"level": "warning"},
    }
    path = workdir / "config.yaml"
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return path


@dataclass
class Proc:
    """A server subprocess in its own session, with its log in a file."""

    name: str
    argv: list[str]
    port: int
    log_path: Path
    proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise HarnessError(f"{self.name} is not running")
        return self.proc.pid

    async def start(self, session: aiohttp.ClientSession, ready_within: float) -> None:
        with self.log_path.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                cwd=REPO_ROOT,
                env=server_env(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        url = f"http://127.0.0.1:{self.port}/readyz"
        deadline = time.monotonic() + ready_within
        while True:
            if self.proc.returncode is not None:
                raise HarnessError(
                    f"{self.name} exited with status {self.proc.returncode} before it was "
                    f"ready; log {self.log_path}:\n{log_tail(self.log_path)}"
                )
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=1)) as resp:
                    if resp.status == 200:
                        return
            if time.monotonic() > deadline:
                raise HarnessError(
                    f"{self.name} not ready within {ready_within:g} s; log {self.log_path}:\n"
                    + log_tail(self.log_path)
                )
            await asyncio.sleep(0.05)

    def alive(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            code = None if self.proc is None else self.proc.returncode
            raise HarnessError(
                f"{self.name} died (status {code}); log {self.log_path}:\n"
                + log_tail(self.log_path)
            )

    async def stop(self, grace: float = 15.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


@contextlib.asynccontextmanager
async def running(proc: Proc, session: aiohttp.ClientSession) -> AsyncIterator[Proc]:
    try:
        await proc.start(session, ready_within=60.0)
        yield proc
    finally:
        await proc.stop()


def memory_mb(pid: int) -> dict[str, float]:
    """VmHWM (peak resident set) and VmRSS of a live process, in MB (10^6 bytes)."""
    out: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0]) * 1024 / 1e6
    return out


@dataclass
class CpuMeter:
    """Cores used by the server, by this process (client + fake) and by everyone else."""

    pid: int
    _t: float = 0.0
    _server: float = 0.0
    _self: float = 0.0
    _machine: float = 0.0

    def __post_init__(self) -> None:
        self._t = time.monotonic()
        self._server = cpu_seconds(self.pid) or 0.0
        self._self = sum(os.times()[:2])
        self._machine = (machine_cpu_seconds() or (0.0, 0.0))[0]

    def read(self) -> dict[str, float]:
        wall = max(1e-9, time.monotonic() - self._t)
        server = ((cpu_seconds(self.pid) or 0.0) - self._server) / wall
        own = (sum(os.times()[:2]) - self._self) / wall
        machine = ((machine_cpu_seconds() or (0.0, 0.0))[0] - self._machine) / wall
        return {"server": server, "bench": own, "other": max(0.0, machine - server - own)}


# --------------------------------------------------------------------------- the fake


class Watcher:
    """Per path, when the fake read the action's GET and the first mutating request;
    scans only what is new. The action's GET is the last GET before that mutation: with
    the context snapshot on, the snapshot reads the target too, and usually first."""

    def __init__(self, fake: FakeKube) -> None:
        self.fake = fake
        self._seen = 0
        self.last_get: dict[str, float] = {}
        self.first_mutation: dict[str, tuple[float, float]] = {}

    def poll(self) -> None:
        requests = self.fake.requests
        for r in requests[self._seen :]:
            if r.path in self.first_mutation:
                continue
            if r.is_mutation:
                self.first_mutation[r.path] = (self.last_get.get(r.path, r.at), r.at)
            elif r.method == "GET":
                self.last_get[r.path] = r.at
        self._seen = len(requests)

    async def wait(self, path: str, within: float) -> tuple[float, float] | None:
        """(the action's GET, first mutation) of ``path``, or None if none came in time."""
        deadline = time.perf_counter() + within
        while True:
            self.poll()
            if path in self.first_mutation:
                return self.first_mutation[path]
            if time.perf_counter() > deadline:
                return None
            await asyncio.sleep(0.001)


# ------------------------------------------------------------------------------ stats


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank: the smallest value with at least q % of the values at or below it."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "p50_ms": percentile(values, 50),
        "p99_ms": percentile(values, 99),
        "max_ms": max(values) if values else math.nan,
    }


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def fmt(value: float, spec: str = ".2f") -> str:
    return "?" if math.isnan(value) else format(value, spec)


# ---------------------------------------------------------------------------- latency


@dataclass
class RoleSamples:
    latency_ms: list[float] = field(default_factory=list)
    ack_ms: list[float] = field(default_factory=list)
    to_read_ms: list[float] = field(default_factory=list)  # POST sent -> the action's GET
    read_to_write_ms: list[float] = field(default_factory=list)  # that GET -> the PATCH
    # Deployment name -> (POST sent, GET read, PATCH read), perf_counter seconds
    times: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    missing: int = 0
    errors: int = 0


async def post(session: aiohttp.ClientSession, port: int, body: bytes) -> int:
    async with session.post(
        f"http://127.0.0.1:{port}{ALERTS_PATH}",
        data=body,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    ) as resp:
        await resp.read()
        return resp.status


def rolled_out(fake: FakeKube, namespace: str, name: str) -> None:
    """Write the status the Deployment controller reaches once every replica is new."""
    current = fake.get("apps/v1", "Deployment", namespace, name)
    if current is None:
        return
    replicas = current["spec"].get("replicas", 1)
    status = {
        "observedGeneration": current["metadata"]["generation"],
        **dict.fromkeys(
            ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas"), replicas
        ),
    }
    fake.update("apps/v1", "Deployment", namespace, name, {"status": status})


async def complete_rollouts(
    fake: FakeKube, pending: deque[tuple[float, str, str]], after_s: float
) -> None:
    """Mark each restarted Deployment rolled out ``after_s`` seconds after its PATCH."""
    while True:
        now = time.perf_counter()
        while pending and now - pending[0][0] >= after_s:
            _, namespace, name = pending.popleft()
            rolled_out(fake, namespace, name)
        await asyncio.sleep(0.1)


STAGE_SQL = """
SELECT a.labels, i.created_at, j.claimed_at, e.created_at
FROM alerts a
JOIN incidents i ON i.id = a.incident_id
JOIN jobs j ON j.incident_id = a.incident_id AND j.kind = 'alert'
JOIN executions e ON e.incident_id = a.incident_id
"""


def stage_split(db: Path, times: dict[str, tuple[float, float, float]]) -> dict[str, float]:
    """p50 of each stage of the subject's path, from the timestamps the server stored.

    The server stamps UTC wall-clock time; ``time.time() - time.perf_counter()`` maps it
    onto the fake's clock (the same machine: microseconds apart over a run). Stages:
    ingest (POST sent -> the writer's transaction begins), to claim (-> the job's claim;
    0 when the writer hands the job to an idle worker in its own transaction), to intent
    (-> the execution row: the ingest's commit, 200, wake-up, load, match, plan, guards),
    to GET (-> the action's GET: durable intent commit, client), GET -> PATCH.
    """
    offset = time.time() - time.perf_counter()

    def perf(text: str) -> float:
        return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() - offset

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5.0)
    try:
        rows = conn.execute(STAGE_SQL).fetchall()
    finally:
        conn.close()
    stages: dict[str, list[float]] = {
        k: [] for k in ("ingest", "to_claim", "to_intent", "to_read", "read_to_write")
    }
    for labels, received, claimed, intent in rows:
        name = json.loads(labels).get("deployment")
        if name not in times or claimed is None:
            continue
        t0, read, write = times[name]
        points = [t0, perf(received), perf(claimed), perf(intent), read, write]
        for key, a, b in zip(stages, points, points[1:], strict=False):
            stages[key].append((b - a) * 1e3)
    return {key: percentile(values, 50) for key, values in stages.items()}


def read_kind(path: str, namespace: str) -> str:
    """``deployments``, ``pods``, ``pods/log``: the resource a namespaced path names, and
    its subresource if any."""
    resource, *rest = path.split(f"/{namespace}/", 1)[1].split("/")
    return f"{resource}/{rest[1]}" if len(rest) > 1 else resource


async def measure_latency(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    fake = FakeKube(token=KUBE_TOKEN, run_controllers=False)
    names = {
        "baseline": ("bench-base", "base"),
        "subject": ("bench-lat", "lat"),
    }
    for namespace, prefix in names.values():
        for i in range(args.alerts):
            fake.add(objects.deployment(f"{prefix}-{i:04d}", namespace, replicas=2))
    async with fake.running(), aiohttp.ClientSession() as session:
        kubeconfig = fake.write_kubeconfig(workdir / "kubeconfig")
        sport, rport = free_port(), free_port()
        config = write_config(
            workdir,
            sport,
            kubeconfig,
            {
                "rate": {"burst": 10 * args.alerts, "per_minute": 1e6},
                "breaker": {"max_targets": 10 * args.alerts},
            },
        )
        subject = Proc("remediator", [*SUBJECT_CMD, str(config)], sport, workdir / "server.log")
        relay_argv = [
            sys.executable,
            str(BENCH_DIR / "executor.py"),
            "--relay-port",
            str(rport),
            "--relay-kubeconfig",
            str(kubeconfig),
        ]
        relay = Proc("relay", relay_argv, rport, workdir / "relay.log")
        async with running(subject, session), running(relay, session):
            procs = {"baseline": relay, "subject": subject}
            samples = {role: RoleSamples() for role in procs}
            watcher = Watcher(fake)
            per_round = math.ceil(args.alerts / args.rounds)
            order = ("baseline", "subject")
            cpu = {role: CpuMeter(p.pid) for role, p in procs.items()}
            sent = dict.fromkeys(procs, 0)
            rollouts: deque[tuple[float, str, str]] = deque()
            completer = asyncio.create_task(complete_rollouts(fake, rollouts, args.rollout_s))
            started = time.monotonic()
            for rnd in range(args.rounds):
                for role in order if rnd % 2 == 0 else order[::-1]:
                    namespace, prefix = names[role]
                    for _ in range(per_round):
                        i = sent[role]
                        if i >= args.alerts:
                            break
                        sent[role] += 1
                        name = f"{prefix}-{i:04d}"
                        body = notification([make_alert(namespace, name, i)])
                        t0 = time.perf_counter()
                        status = await post(session, procs[role].port, body)
                        samples[role].ack_ms.append((time.perf_counter() - t0) * 1e3)
                        if status != 200:
                            samples[role].errors += 1
                            continue
                        seen = await watcher.wait(deployment_path(namespace, name), 10.0)
                        if seen is None:
                            samples[role].missing += 1
                            procs[role].alive()
                        else:
                            read, write = seen
                            samples[role].latency_ms.append((write - t0) * 1e3)
                            samples[role].to_read_ms.append((read - t0) * 1e3)
                            samples[role].read_to_write_ms.append((write - read) * 1e3)
                            samples[role].times[name] = (t0, read, write)
                            rollouts.append((write, namespace, name))
                        await asyncio.sleep(args.gap_ms / 1e3)
            wall = time.monotonic() - started
            cores = {role: meter.read() for role, meter in cpu.items()}
            memory = memory_mb(subject.pid)
            completer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await completer
    stages = stage_split(workdir / "bench.db", samples["subject"].times)
    subject_ns = names["subject"][0]
    reads = Counter(
        read_kind(r.path, subject_ns)
        for r in fake.requests
        if r.method == "GET" and f"/{subject_ns}/" in r.path
    )
    # Each restart's own GET is on the path; the rest are context snapshots and verify.
    reads["deployments"] -= len(samples["subject"].latency_ms)
    result: dict[str, Any] = {
        "alerts": args.alerts,
        "rounds": args.rounds,
        "gap_ms": args.gap_ms,
        "rollout_s": args.rollout_s,
        "wall_s": wall,
        "other_reads": dict(sorted(reads.items())),
        "subject_stages_p50_ms": stages,
        "subject_memory_mb": memory,
        "cores_during_run": cores["subject"],
    }
    for role, s in samples.items():
        result[role] = {
            **summary(s.latency_ms),
            "ack_p50_ms": percentile(s.ack_ms, 50),
            "ack_p99_ms": percentile(s.ack_ms, 99),
            "to_read_p50_ms": percentile(s.to_read_ms, 50),
            "read_to_write_p50_ms": percentile(s.read_to_write_ms, 50),
            "measured": len(s.latency_ms),
            "missing": s.missing,
            "errors": s.errors,
        }
    base, subj = result["baseline"], result["subject"]
    result["ratio_p50"] = subj["p50_ms"] / base["p50_ms"] if base["p50_ms"] else math.nan
    result["ratio_p99"] = subj["p99_ms"] / base["p99_ms"] if base["p99_ms"] else math.nan
    result["p50_met"] = subj["p50_ms"] <= TARGET_P50_MS
    result["p99_met"] = subj["p99_ms"] <= TARGET_P99_MS
    return result


# ------------------------------------------------------------------------------ storm


def db_counts(db: Path) -> dict[str, Any]:
    """Jobs and executions by status, read-only from the server's live SQLite file."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5.0)
    try:
        jobs = conn.execute("SELECT kind, status, count(*) FROM jobs GROUP BY kind, status")
        execs = conn.execute(
            "SELECT status, count(*) FROM executions WHERE dry_run = 0 GROUP BY status"
        )
        incidents = conn.execute("SELECT count(*) FROM incidents").fetchone()[0]
        return {
            "jobs": {f"{k}:{s}": n for k, s, n in jobs.fetchall()},
            "executions": dict(execs.fetchall()),
            "incidents": incidents,
        }
    finally:
        conn.close()


def unfinished(counts: dict[str, Any], kind: str | None = None) -> int:
    return sum(
        n
        for key, n in counts["jobs"].items()
        if key.split(":")[1] in ("pending", "running") and kind in (None, key.split(":")[0])
    )


async def scrape(session: aiohttp.ClientSession, port: int) -> dict[str, float]:
    """``/metrics`` samples as ``name{label=value,...}`` → value."""
    async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
        text = await resp.text()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def expected_actions(args: argparse.Namespace, elapsed_s: float) -> dict[str, Any]:
    """What the limits allow, from the settings alone: each term caps the restarts.

    - per target: the cooldown exceeds the run, so each Deployment at most once;
    - breaker: it opens when a step would touch target ``max_targets + 1``;
    - token bucket: ``burst`` tokens at first, plus at most ``per_minute`` / 60 per
      second for as long as the run lasted (``elapsed_s`` bounds the decisions' span).
    The bound is exact when the refill cannot reach a whole token.
    """
    refill = math.floor(args.per_minute * elapsed_s / 60.0)
    low = min(args.storm_targets, args.max_targets, args.burst)
    high = min(args.storm_targets, args.max_targets, args.burst + refill)
    return {
        "per_target": args.storm_targets,
        "breaker_max_targets": args.max_targets,
        "tokens": args.burst,
        "refill_tokens_max": refill,
        "low": low,
        "high": high,
        "exact": low == high,
    }


async def post_storm(
    session: aiohttp.ClientSession, port: int, bodies: Sequence[bytes], concurrency: int
) -> dict[str, Any]:
    """Post every body, ``concurrency`` at a time; a 5xx or a dropped connection is retried
    after a pause, as Alertmanager does."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    acks: list[float] = []
    retries = Counter[str]()
    failed = 0

    async def sender() -> None:
        nonlocal failed
        while not queue.empty():
            body = queue.get_nowait()
            for attempt in range(6):
                t0 = time.perf_counter()
                try:
                    status = await post(session, port, body)
                except aiohttp.ClientError as exc:
                    status, why = 0, type(exc).__name__
                else:
                    why = str(status)
                if status == 200:
                    acks.append((time.perf_counter() - t0) * 1e3)
                    break
                if (status and status < 500) or attempt == 5:
                    failed += 1
                    break
                retries[why] += 1
                await asyncio.sleep(0.5 * 2**attempt)

    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return {
        "posts": len(bodies),
        "ack_p50_ms": percentile(acks, 50),
        "ack_p99_ms": percentile(acks, 99),
        "retries": dict(retries),
        "failed_posts": failed,
    }


async def measure_storm(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    fake = FakeKube(token=KUBE_TOKEN, tick=args.storm_tick)
    targets = [(f"bench-storm-{i % 10:02d}", f"app-{i:04d}") for i in range(args.storm_targets)]
    for namespace, name in targets:
        fake.add(objects.deployment(name, namespace, replicas=2))
    # Alert i is for target i mod N: every body spans many targets, as a storm does.
    alerts = [make_alert(*targets[i % len(targets)], i) for i in range(args.storm_alerts)]
    bodies = [notification(alerts[i : i + args.batch]) for i in range(0, len(alerts), args.batch)]
    db = workdir / "bench.db"
    async with fake.running(), aiohttp.ClientSession() as session:
        kubeconfig = fake.write_kubeconfig(workdir / "kubeconfig")
        port = free_port()
        config = write_config(
            workdir,
            port,
            kubeconfig,
            {
                "rate": {"burst": args.burst, "per_minute": args.per_minute},
                "breaker": {"max_targets": args.max_targets, "window": "1h"},
            },
        )
        server = Proc("remediator", [*SUBJECT_CMD, str(config)], port, workdir / "server.log")
        async with running(server, session):
            memory_idle = memory_mb(server.pid)
            cpu = CpuMeter(server.pid)
            started = time.monotonic()
            posting = await post_storm(session, port, bodies, args.concurrency)
            posted_s = time.monotonic() - started
            alerts_done_s: float | None = None
            while True:
                server.alive()
                counts = await asyncio.to_thread(db_counts, db)
                now = time.monotonic() - started
                if alerts_done_s is None and unfinished(counts, "alert") == 0:
                    alerts_done_s = now
                if unfinished(counts) == 0:
                    break
                if now > args.storm_timeout:
                    raise HarnessError(
                        f"storm: jobs still unfinished after {args.storm_timeout:g} s: "
                        f"{counts['jobs']}"
                    )
                await asyncio.sleep(0.25)
            drained_s = time.monotonic() - started
            cores = cpu.read()
            memory = memory_mb(server.pid)
            metrics = await scrape(session, port)
    patches = fake.mutations()
    restarted = [
        d
        for d in fake.list("apps/v1", "Deployment")
        if d["metadata"]["generation"] > 1
        or "remediator.io/execution-id" in (d["metadata"].get("annotations") or {})
    ]
    expected = expected_actions(args, drained_s)
    executions = counts["executions"]
    acted = sum(n for status, n in executions.items() if status != "cancelled")
    observed = {
        "fake_mutating_requests": len(patches),
        "fake_patched_deployments": len({r.path for r in patches}),
        "fake_restarted_deployments": len(restarted),
        "server_executions": acted,
    }
    in_range = all(expected["low"] <= n <= expected["high"] for n in observed.values())
    blocks = {
        key.split("reason=", 1)[1].rstrip("}"): int(v)
        for key, v in metrics.items()
        if key.startswith("remediator_guard_blocks_total{")
    }
    actions = {
        key.split("{", 1)[1].rstrip("}"): int(v)
        for key, v in metrics.items()
        if key.startswith("remediator_actions_total{")
    }
    alert_jobs = {k.split(":")[1]: n for k, n in counts["jobs"].items() if k.startswith("alert:")}
    return {
        "alerts": args.storm_alerts,
        "targets": args.storm_targets,
        "batch": args.batch,
        "concurrency": args.concurrency,
        "limits": {
            "cooldown_s": COOLDOWN.total_seconds(),
            "burst": args.burst,
            "per_minute": args.per_minute,
            "max_targets": args.max_targets,
        },
        "posting": posting,
        "posted_s": posted_s,
        "alerts_done_s": alerts_done_s,
        "drained_s": drained_s,
        "incidents": counts["incidents"],
        "alert_jobs": alert_jobs,
        "processed": alert_jobs.get("done", 0),
        "verify_jobs": {k.split(":")[1]: n for k, n in counts["jobs"].items() if "verify:" in k},
        "executions": executions,
        "expected": expected,
        "observed": observed,
        "actions_match": in_range and expected["exact"],
        "blocks": blocks,
        "actions_metric": actions,
        "alerts_received_metric": int(
            metrics.get("remediator_alerts_received_total{status=firing}", 0)
        ),
        "memory_idle_mb": memory_idle,
        "memory_mb": memory,
        "rss_met": memory.get("VmHWM", math.inf) <= TARGET_RSS_MB,
        "cores": cores,
    }


# ----------------------------------------------------------------------------- report


def report(latency: dict[str, Any] | None, storm: dict[str, Any] | None) -> list[str]:
    lines: list[str] = []
    add = lines.append
    if latency is not None:
        lat = latency
        add(
            f"latency: {lat['alerts']} alerts per server, each for its own Deployment, one at "
            f"a time {lat['gap_ms']:g} ms apart, in {lat['rounds']} alternating slices "
            f"({lat['wall_s']:.0f} s)"
        )
        add(
            "  POST sent -> PATCH read by the fake API server (nearest-rank percentiles); "
            f"rollouts done {lat['rollout_s']:g} s after the PATCH"
        )
        add(
            "  other reads meanwhile (context snapshots, verify looks): "
            + ", ".join(f"{n} {kind}" for kind, n in lat["other_reads"].items())
        )
        add(
            f"  {'':12}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'ack p50':>9}{'ack p99':>9}"
            f"{'missing':>9}{'errors':>8}"
        )
        for role, label in (("baseline", "relay"), ("subject", "remediator")):
            r = lat[role]
            add(
                f"  {label:12}{fmt(r['p50_ms']):>8}{fmt(r['p99_ms']):>8}{fmt(r['max_ms']):>8}"
                f"{fmt(r['ack_p50_ms']):>9}{fmt(r['ack_p99_ms']):>9}{r['missing']:>9}"
                f"{r['errors']:>8}"
            )
        add(
            "  p50 split: POST sent -> action's GET read by the fake, GET -> PATCH: "
            + "; ".join(
                f"{label} {fmt(lat[role]['to_read_p50_ms'])} + "
                f"{fmt(lat[role]['read_to_write_p50_ms'])} ms"
                for role, label in (("baseline", "relay"), ("subject", "remediator"))
            )
        )
        st = lat["subject_stages_p50_ms"]
        add(
            "  remediator stages, p50 ms (server timestamps): "
            f"ingest {fmt(st['ingest'])}, to claim {fmt(st['to_claim'])}, "
            f"to intent {fmt(st['to_intent'])}, to GET {fmt(st['to_read'])}, "
            f"GET->PATCH {fmt(st['read_to_write'])}"
        )
        c = lat["cores_during_run"]
        add(
            f"  ratio remediator/relay: p50 {fmt(lat['ratio_p50'], '.1f')}x, "
            f"p99 {fmt(lat['ratio_p99'], '.1f')}x   (cores: remediator {c['server']:.2f}, "
            f"bench+fake {c['bench']:.2f}, other processes {c['other']:.2f})"
        )
        s = lat["subject"]
        add(
            f"  target p50 <= {TARGET_P50_MS:g} ms: {verdict(lat['p50_met'])} "
            f"({fmt(s['p50_ms'])} ms); p99 <= {TARGET_P99_MS:g} ms: "
            f"{verdict(lat['p99_met'])} ({fmt(s['p99_ms'])} ms)"
        )
        if c["other"] > NOISY_CPU:
            add(f"  !!! other processes took {c['other']:.2f} cores: the numbers are noisy")
        add("")
    if storm is not None:
        st = storm
        lim, exp, obs = st["limits"], st["expected"], st["observed"]
        add(
            f"storm: {st['alerts']:,} alerts over {st['targets']} Deployments, {st['batch']} "
            f"per POST, {st['concurrency']} POSTs in flight"
        )
        add(
            f"  limits: cooldown {lim['cooldown_s']:.0f} s per target, token bucket burst "
            f"{lim['burst']} refill {lim['per_minute']:g}/min, breaker max_targets "
            f"{lim['max_targets']}"
        )
        p = st["posting"]
        add(
            f"  posted in {st['posted_s']:.1f} s (ack p50 {fmt(p['ack_p50_ms'], '.0f')} ms, "
            f"p99 {fmt(p['ack_p99_ms'], '.0f')} ms, retries {p['retries'] or 0}, failed "
            f"POSTs {p['failed_posts']}); alert jobs done at {st['alerts_done_s']:.1f} s; "
            f"queue drained (verify jobs too) at {st['drained_s']:.1f} s"
        )
        add(
            f"  processed: {st['processed']:,} of {st['alerts']:,} alert jobs done "
            f"({st['alert_jobs']}), {st['incidents']:,} incidents, "
            f"{st['alerts_received_metric']:,} alerts received; "
            f"{st['processed'] / st['alerts_done_s']:,.0f} alerts/s end to end"
        )
        add(
            f"  actions expected: min(targets {exp['per_target']}, "
            f"breaker {exp['breaker_max_targets']}, tokens {exp['tokens']} + refill <= "
            f"{exp['refill_tokens_max']}) = "
            + (str(exp["low"]) if exp["exact"] else f"{exp['low']}..{exp['high']} (NOT exact)")
        )
        add(
            f"  actions taken: fake API server {obs['fake_mutating_requests']} mutating requests "
            f"on {obs['fake_patched_deployments']} Deployments, "
            f"{obs['fake_restarted_deployments']} Deployments restarted; server "
            f"{obs['server_executions']} executions {st['executions']}"
        )
        add(f"  -> {'EXACT MATCH' if st['actions_match'] else 'MISMATCH'}")
        blocks = ", ".join(f"{k} {v:,}" for k, v in sorted(st["blocks"].items()))
        add(f"  blocked (remediator_guard_blocks_total): {blocks or 'none'}")
        accounted = obs["server_executions"] + sum(st["blocks"].values())
        add(
            f"  accounted for: {obs['server_executions']} executed + "
            f"{sum(st['blocks'].values()):,} blocked = {accounted:,} of {st['alerts']:,} alerts"
        )
        add(f"  actions (remediator_actions_total): {st['actions_metric']}")
        m, mi, c = st["memory_mb"], st["memory_idle_mb"], st["cores"]
        add(
            f"  server RSS: {mi.get('VmRSS', math.nan):.1f} MB after start, peak (VmHWM) "
            f"{m.get('VmHWM', math.nan):.1f} MB; target <= {TARGET_RSS_MB:g} MB: "
            f"{verdict(st['rss_met'])}"
        )
        add(
            f"  cores: remediator {c['server']:.2f}, bench+fake {c['bench']:.2f}, other "
            f"processes {c['other']:.2f}"
        )
        if c["other"] > NOISY_CPU:
            add(f"  !!! other processes took {c['other']:.2f} cores: the timings are noisy")
    return lines


# ------------------------------------------------------------------------------ relay


def relay_app(kubeconfig: Path) -> web.Application:
    """The baseline: parse, answer 200, then restart each alert's Deployment with the same
    action and cluster client the server uses, and nothing else."""
    from remediator.actions.base import Context, RenderedTarget
    from remediator.actions.restart import Restart, RestartParams
    from remediator.kube import Kube
    from remediator.settings import KubeSettings

    app = web.Application()
    action, params = Restart(), RestartParams()
    tasks: set[asyncio.Task[str]] = set()
    serial = iter(range(1 << 62))

    async def startup(app: web.Application) -> None:
        app["kube"] = await Kube.connect(KubeSettings(source="kubeconfig", kubeconfig=kubeconfig))

    async def cleanup(app: web.Application) -> None:
        await app["kube"].close()

    async def alerts(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        for a in body["alerts"]:
            labels = a["labels"]
            target = RenderedTarget("Deployment", labels["namespace"], labels["deployment"])
            ctx = Context(f"relay{next(serial)}", "relay", datetime.now(UTC))
            task = asyncio.create_task(action.apply(request.app["kube"], target, params, ctx))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    app.router.add_post(ALERTS_PATH, alerts)
    app.router.add_get("/readyz", readyz)
    return app


# -------------------------------------------------------------------------------- CLI


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--alerts", type=positive, default=300, help="latency alerts (300)")
    parser.add_argument("--rounds", type=positive, default=3, help="latency slices (3)")
    parser.add_argument(
        "--gap-ms", type=float, default=50.0, help="pause after each latency alert (50)"
    )
    parser.add_argument(
        "--rollout-s",
        type=float,
        default=15.0,
        help="latency: seconds until a restarted Deployment is rolled out (15)",
    )
    parser.add_argument("--storm-alerts", type=positive, default=10_000, help="(10000)")
    parser.add_argument("--storm-targets", type=positive, default=500, help="(500)")
    parser.add_argument("--batch", type=positive, default=100, help="alerts per POST (100)")
    parser.add_argument("--concurrency", type=positive, default=4, help="POSTs in flight (4)")
    parser.add_argument("--burst", type=positive, default=120, help="token bucket size (120)")
    parser.add_argument(
        "--per-minute", type=float, default=0.001, help="token refill per minute (0.001)"
    )
    parser.add_argument(
        "--max-targets", type=positive, default=1000, help="breaker max_targets (1000)"
    )
    parser.add_argument(
        "--storm-timeout", type=float, default=240.0, help="give up on the drain after (240 s)"
    )
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-storm", action="store_true")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write results as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, SQLite)")
    # The fake's controller period in the storm: one pass over 500 Deployments takes
    # ~50 ms of this loop, so not the fake's 20 ms default.
    parser.add_argument("--storm-tick", type=float, default=0.5, help=argparse.SUPPRESS)
    parser.add_argument("--relay-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--relay-kubeconfig", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.per_minute <= 0:
        parser.error("--per-minute must be positive (the server requires it)")
    if args.storm_timeout + 60 >= COOLDOWN.total_seconds():
        parser.error("--storm-timeout must stay well under the runbook's cooldown")
    return args


async def run(args: argparse.Namespace) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    latency = storm = None
    with tempfile.TemporaryDirectory(prefix="remediator-exec-bench-") as tmp:
        root = Path(tmp)
        try:
            if not args.skip_latency:
                (root / "latency").mkdir()
                latency = await measure_latency(args, root / "latency")
            if not args.skip_storm:
                (root / "storm").mkdir()
                storm = await measure_storm(args, root / "storm")
        finally:
            if args.keep:
                kept = Path(tempfile.mkdtemp(prefix="remediator-exec-bench-kept-"))
                shutil.copytree(tmp, kept, dirs_exist_ok=True)
                print(f"kept {kept}", file=sys.stderr)
    return latency, storm


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.relay_port is not None:
        web.run_app(
            relay_app(args.relay_kubeconfig),
            host="127.0.0.1",
            port=args.relay_port,
            print=None,
            access_log=None,
        )
        return 0
    try:
        latency, storm = asyncio.run(run(args))
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print("\n".join(report(latency, storm)))
    if args.json is not None:
        data = {"date": datetime.now(UTC).isoformat(), "latency": latency, "storm": storm}
        args.json.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)
    broken = (storm is not None and not storm["actions_match"]) or (
        latency is not None
        and any(latency[r]["missing"] or latency[r]["errors"] for r in ("baseline", "subject"))
    )
    return 2 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
