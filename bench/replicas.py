"""Replicas benchmark (issue 5): ingest throughput of one and of two replicas on PostgreSQL.

One run measures both configurations on this machine, under the same total load:

* 1 replica: one ``python -m remediator serve`` process, loaded by one wrk with
  ``--connections`` connections;
* 2 replicas: two server processes on the SAME database, loaded at once by two wrk
  processes in parallel, one per replica with half the connections each; their req/s
  are summed.

The store is a real PostgreSQL (Debian's package, via ``tests/fakes/postgres.py``),
started in a temp dir for the run; every slice gets a fresh, empty database and freshly
started servers (each migrates at start, replicas take turns on an advisory lock). The
body is ``bench/alerts.lua``'s (~2 KB, three alerts never seen before: fingerprints carry
a per-wrk-run salt, the wrk thread and a serial, and every wrk run gets its own salt).
Slices alternate (1 2, 2 1, 1 2, ...); reported are medians over the slices and the
ratio of the median req/s, 2 replicas / 1 replica, against the target 1.6.

Latency for 2 replicas: wrk's percentiles cannot be merged, so the worse of the two wrk
processes' p50 and p99 is shown. wrk is closed-loop: latencies are at saturation.

The machine matters: on the project's 2-core VM the servers, PostgreSQL and wrk share
the two cores, so a second replica can at best use what the first leaves idle.

    python bench/replicas.py [--duration 10] [--rounds 3] [--connections 32]

Run as root (PostgreSQL runs as the ``postgres`` user) or as a user who may run initdb.
Exit status: 0 when the measurement was made, target met or not; 1 when it could not be.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import os
import shlex
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

from ingest import (  # noqa: E402
    TOKEN,
    HarnessError,
    Load,
    Server,
    WrkResult,
    cpu_seconds,
    fmt,
    free_port,
    machine_cpu_seconds,
    median,
    progress,
    run_wrk,
    salt_stream,
    settle,
)

from tests.fakes.postgres import Cluster  # noqa: E402

TARGET_RATIO = 1.6
CONFIGS = (1, 2)  # replicas


@dataclass(frozen=True)
class Slice:
    replicas: int
    results: tuple[WrkResult, ...]  # one per wrk process (= per replica)
    server_cpu: float  # cores used by all server processes together
    busy_cpu: float  # cores busy on the whole machine (servers, PostgreSQL, wrk, others)
    drain_s: float  # time for the servers to go idle after the load stopped

    @property
    def rps(self) -> float:
        return sum(r.requests_per_sec for r in self.results)

    @property
    def p50_ms(self) -> float:
        return max(r.p50_ms for r in self.results)

    @property
    def p99_ms(self) -> float:
        return max(r.p99_ms for r in self.results)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.results)


def write_config(workdir: Path, port: int, store_url: str) -> Path:
    runbooks = workdir / "runbooks"
    runbooks.mkdir(exist_ok=True)
    config = workdir / f"config-{port}.yaml"
    config.write_text(
        json.dumps(
            {
                "server": {"host": "127.0.0.1", "port": port},
                "auth": {"bearer_token": TOKEN},
                "store": {"url": store_url},
                "runbooks": {"dir": str(runbooks), "watch": False},
                "log": {"level": "warning"},
            }
        ),
        encoding="utf-8",
    )
    return config


def cpu_of(servers: list[Server]) -> float:
    return sum(cpu_seconds(s.proc.pid) or 0.0 for s in servers if s.proc is not None)


def measure(
    wrk: str, load: Load, cluster: Cluster, replicas: int, salts, workdir: Path, timeout: float
) -> Slice:
    db = asyncio.run(cluster.server.create(migrated=False))
    url = cluster.server.url(db)
    servers = []
    for i in range(replicas):
        port = free_port()
        argv = [sys.executable, "-m", "remediator.cli", "serve"]
        argv += ["--config", str(write_config(workdir, port, url))]
        servers.append(Server(f"replica-{i + 1}", argv, port, workdir / f"{db}-{i + 1}.log"))
    per_wrk = dataclasses.replace(load, connections=load.connections // replicas)
    with contextlib.ExitStack() as stack:
        for server in servers:
            server.start(timeout)
            stack.callback(server.stop)

        def drive(seconds: int) -> tuple[WrkResult, ...]:
            with ThreadPoolExecutor(replicas) as pool:
                futures = [
                    pool.submit(run_wrk, wrk, s.port, per_wrk, seconds, next(salts))
                    for s in servers
                ]
                return tuple(f.result()[0] for f in futures)

        if load.warmup:
            drive(load.warmup)
        settle(servers, load.drain_max)
        before, machine, started = cpu_of(servers), machine_cpu_seconds(), time.monotonic()
        results = drive(load.slice)
        wall = time.monotonic() - started
        cpu = (cpu_of(servers) - before) / wall
        machine_after = machine_cpu_seconds()
        busy = (machine_after[0] - machine[0]) / wall if machine and machine_after else math.nan
        drain, _ = settle(servers, load.drain_max)
        for server in servers:
            if server.proc is None or server.proc.poll() is not None:
                raise HarnessError(f"{server.name} died during the run ({server.log_path})")
    return Slice(replicas, results, cpu, busy, drain)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per slice (10)")
    parser.add_argument("--rounds", type=int, default=3, help="slices per configuration (3)")
    parser.add_argument("--connections", type=int, default=32, help="total connections (32)")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured seconds first (2)")
    args = parser.parse_args()
    wrk = shutil.which("wrk")
    if wrk is None:
        print("error: wrk not found", file=sys.stderr)
        return 1
    # Load.duration/rounds make Load.slice; each slice is one wrk run of --duration.
    load = Load(
        duration=args.duration,
        rounds=1,
        connections=args.connections,
        threads=1,
        warmup=args.warmup,
        timeout=10,
        drain_max=30.0,
    )
    salts = salt_stream()
    workdir = Path(tempfile.mkdtemp(prefix="bench-replicas-"))
    progress("starting PostgreSQL")
    cluster = Cluster()
    slices: dict[int, list[Slice]] = {n: [] for n in CONFIGS}
    try:
        cluster.start()
        for i in range(args.rounds):
            for n in CONFIGS if i % 2 == 0 else CONFIGS[::-1]:
                progress(f"round {i + 1}/{args.rounds}: {n} replica(s), {args.duration} s")
                s = measure(wrk, load, cluster, n, salts, workdir, 60.0)
                slices[n].append(s)
                progress(
                    f"  {s.rps:,.0f} req/s, {s.errors} errors, servers {s.server_cpu:.2f} cores"
                )
    except HarnessError as exc:
        print(f"error: {exc}\n(logs in {workdir})", file=sys.stderr)
        return 1
    finally:
        with contextlib.suppress(Exception):
            cluster.stop()
        cluster.remove()
    shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(
        f"replicas on PostgreSQL: {args.connections} connections in all, wrk 1 thread per "
        f"process, {args.rounds} alternating slices of {args.duration} s each "
        f"(+{args.warmup} s warm-up), fresh database per slice; medians"
    )
    print(f"machine: {os.cpu_count()} cores shared by servers, PostgreSQL and wrk")
    print()
    print(
        f"{'':12}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"{'server cores':>14}{'busy cores':>12}{'drain s':>9}   slices req/s"
    )
    rps = {}
    for n in CONFIGS:
        ss = slices[n]
        rps[n] = median(s.rps for s in ss)
        print(
            f"{f'{n} replica' + ('s' if n > 1 else ''):12}{fmt(rps[n], ',.0f'):>9}"
            f"{fmt(median(s.p50_ms for s in ss), '.1f'):>9}"
            f"{fmt(median(s.p99_ms for s in ss), '.1f'):>9}{sum(s.errors for s in ss):>8}"
            f"{fmt(median(s.server_cpu for s in ss), '.2f'):>14}"
            f"{fmt(median(s.busy_cpu for s in ss), '.2f'):>12}"
            f"{fmt(median(s.drain_s for s in ss), '.1f'):>9}   "
            + " ".join(f"{s.rps:,.0f}" for s in ss)
        )
    print("(2 replicas: req/s summed over both wrk processes; p50/p99 the worse of the two;")
    print(" server cores: all replicas; busy cores: whole machine, incl. PostgreSQL and wrk)")
    ratio = rps[2] / rps[1] if rps[1] else math.nan
    verdict = "PASS" if ratio >= TARGET_RATIO else "MISS"
    print()
    print(
        f"ratio 2 replicas / 1 replica: {fmt(ratio, '.2f')}x  target >= {TARGET_RATIO}x: {verdict}"
    )
    if verdict == "MISS":
        print(f"!!! MISS: two replicas gave {fmt(ratio, '.2f')}x of one, below {TARGET_RATIO}x")
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
