"""A real PostgreSQL for the tests (Debian's package), started once per session on
loopback, with a fresh database for every test that asks for one.

Fails, never skips, when the binaries are missing: the PostgreSQL runs must not vanish
silently from CI.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from remediator.store.db import create_engine, migrate
from tests.reaper import reaped

PGBIN = Path("/usr/lib/postgresql/15/bin")
TEMPLATE = "remediator_template"  # migrated once; every test database is a copy


@dataclass(frozen=True)
class Postgres:
    port: int
    socket_dir: str

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    async def create(self, *, migrated: bool = True) -> str:
        """A new database; copied from a migrated template unless ``migrated`` is False.

        Not dropped after the test: its server may still be shutting down, and the whole
        cluster goes at the end of the session.
        """
        name = f"t_{uuid.uuid4().hex[:12]}"
        template = f' TEMPLATE "{TEMPLATE}"' if migrated else ""
        conn = await asyncpg.connect(host="127.0.0.1", port=self.port, user="postgres")
        try:
            await conn.execute(f'CREATE DATABASE "{name}"{template}')
        finally:
            await conn.close()
        return name


def _as_postgres(command: str) -> None:
    argv = ["su", "postgres", "-c", command] if os.geteuid() == 0 else ["sh", "-c", command]
    subprocess.run(argv, check=True, capture_output=True, timeout=60)


class Cluster:
    """One PostgreSQL cluster in a temporary directory; stop and start it at will."""

    def __init__(self) -> None:
        if not (PGBIN / "pg_ctl").exists():
            pytest.fail(
                f"{PGBIN}/pg_ctl not found; these tests need a real PostgreSQL: "
                "apt-get install postgresql",
                pytrace=False,
            )
        self.root = Path(tempfile.mkdtemp(prefix="remediator-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.data = self.root / "data"
        _as_postgres(
            f"{PGBIN}/initdb -D {self.data} -U postgres --auth=trust -E UTF8 --locale=C.UTF-8"
        )
        self.server = Postgres(self.port, str(self.root))
        self._reaper = ExitStack()  # the running postmaster's watchdog

    def start(self) -> None:
        _as_postgres(
            f"{PGBIN}/pg_ctl -D {self.data} -l {self.root}/pg.log -o '-c "
            f"listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.root} "
            "-c fsync=off -c max_connections=200' -w -t 30 start"
        )
        # pg_ctl runs the postmaster in a session of its own (setsid), so its group is
        # the whole server: the postmaster and every backend it forks.
        self._reaper.enter_context(reaped(self.postmaster()))

    def postmaster(self) -> int:
        """The running postmaster's pid (the first line of its lock file)."""
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        try:
            _as_postgres(f"{PGBIN}/pg_ctl -D {self.data} -m immediate -w stop")
        finally:
            self._reaper.close()

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    cluster = Cluster()
    cluster.start()
    try:
        # A session fixture may be set up from inside the test's event loop: run the
        # template's migration on a loop of its own, in a thread.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, _template(cluster.server)).result()
        yield cluster.server
    finally:
        cluster.stop()
        cluster.remove()


async def _template(server: Postgres) -> None:
    conn = await asyncpg.connect(host="127.0.0.1", port=server.port, user="postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
    finally:
        await conn.close()
    engine = create_engine(server.url(TEMPLATE))
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


@pytest_asyncio.fixture
async def postgres_url(postgres: Postgres) -> AsyncIterator[str]:
    """A fresh database with the schema in place."""
    yield postgres.url(await postgres.create())
