"""Run a real Alertmanager (Debian ``prometheus-alertmanager`` 0.25) on loopback for e2e tests.

Typical use, through the ``alertmanager_factory`` fixture from ``conftest.py``::

    am = alertmanager_factory(receiver_url=f"{app_url}/api/v1/alerts", bearer_token="t0ken")
    started = datetime.now(UTC)
    await am.fire({"alertname": "PodCrashLooping", "namespace": "shop", "pod": "web-1"},
                  starts_at=started)
    ...  # first webhook arrives ~group_wait later
    await am.resolve({"alertname": "PodCrashLooping", "namespace": "shop", "pod": "web-1"},
                     starts_at=started)

The configuration is written as JSON, which is valid YAML, so no YAML library is needed.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, Required, TypedDict, Unpack

import aiohttp

from tests.reaper import spawn

ALERTMANAGER_BIN = "prometheus-alertmanager"
AMTOOL_BIN = "amtool"
READY_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
GENERATOR_URL = "http://127.0.0.1/e2e-test"

DEFAULT_GROUP_BY: tuple[str, ...] = ("alertname", "namespace")
"""Default route ``group_by``: alerts sharing alertname+namespace go out in one webhook call.

This mirrors a typical production route, so the receiver sees multi-alert payloads. Pass
``group_by=("...",)`` to make every distinct label set its own group (one alert per webhook,
each new alert delivered after ``group_wait`` instead of on the group's next
``group_interval`` tick).
"""


class ConfigOptions(TypedDict, total=False):
    """Keyword options of :func:`write_config`, also accepted by :func:`start_alertmanager`."""

    receiver_url: Required[str]
    bearer_token: str | None
    basic_auth: tuple[str, str] | None
    group_wait: str
    group_interval: str
    repeat_interval: str
    group_by: Sequence[str]


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: pass an aware datetime (e.g. UTC)")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class AlertmanagerProcess:
    """A running Alertmanager; ``url`` is ``http://127.0.0.1:PORT``."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    config_path: Path
    _owned: ExitStack = field(repr=False)  # the log and the process's reaper

    async def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """POST raw alert objects to ``/api/v2/alerts``; raise ``RuntimeError`` on non-2xx."""
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(f"{self.url}/api/v2/alerts", json=alerts) as resp,
        ):
            if not 200 <= resp.status < 300:
                body = await resp.text()
                raise RuntimeError(f"POST /api/v2/alerts -> {resp.status}: {body}")

    async def fire(
        self,
        labels: dict[str, str],
        annotations: dict[str, str] | None = None,
        starts_at: datetime | None = None,
    ) -> None:
        """Fire one alert (no ``endsAt``: it stays firing for ``resolve_timeout``, 5 min).

        ``starts_at`` defaults to now (UTC); keep it to pass to :meth:`resolve`.
        """
        alert: dict[str, Any] = {
            "labels": labels,
            "annotations": annotations or {},
            "startsAt": _rfc3339(starts_at or datetime.now(UTC)),
            "generatorURL": GENERATOR_URL,
        }
        await self.post_alerts([alert])

    async def resolve(self, labels: dict[str, str], starts_at: datetime) -> None:
        """Resolve the alert with these labels by posting it again with ``endsAt`` in the past.

        ``endsAt`` is ``max(starts_at, now - 1s)`` because Alertmanager rejects
        ``endsAt < startsAt``. A resolved webhook is only sent if the firing one was
        delivered before (Alertmanager's dedup stage), on the group's next
        ``group_interval`` tick.
        """
        now = datetime.now(UTC)
        if starts_at > now:
            raise ValueError("starts_at is in the future; the alert cannot be resolved yet")
        ends_at = max(starts_at, now - timedelta(seconds=1))
        alert: dict[str, Any] = {
            "labels": labels,
            "annotations": {},
            "startsAt": _rfc3339(starts_at),
            "endsAt": _rfc3339(ends_at),
            "generatorURL": GENERATOR_URL,
        }
        await self.post_alerts([alert])

    def read_log(self) -> str:
        """Return Alertmanager's log so far (debug level), handy in assertion messages."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Terminate the process (SIGKILL after 5 s) and close its log; idempotent."""
        stop_process(self.process, self._owned)


def stop_process(process: subprocess.Popen[bytes], owned: ExitStack) -> None:
    """SIGTERM, SIGKILL after STOP_TIMEOUT; then close what it owned (its log, its
    reaper). Idempotent."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    owned.close()


class AlertmanagerFactory(Protocol):
    """Type of the ``alertmanager_factory`` fixture: start one Alertmanager per call."""

    def __call__(self, **config_kwargs: Unpack[ConfigOptions]) -> AlertmanagerProcess: ...


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_config(
    path: Path,
    *,
    receiver_url: str,
    bearer_token: str | None = None,
    basic_auth: tuple[str, str] | None = None,
    group_wait: str = "1s",
    group_interval: str = "1s",
    repeat_interval: str = "1h",
    group_by: Sequence[str] = DEFAULT_GROUP_BY,
) -> None:
    """Write an Alertmanager config with one webhook receiver ``remediator`` (send_resolved).

    Everything routes to it, grouped by ``group_by`` (see :data:`DEFAULT_GROUP_BY`).
    ``repeat_interval`` is effectively rounded up to a multiple of ``group_interval``.
    """
    if bearer_token is not None and basic_auth is not None:
        raise ValueError("choose bearer_token or basic_auth, not both")
    http_config: dict[str, Any] = {}
    if bearer_token is not None:
        http_config["authorization"] = {"type": "Bearer", "credentials": bearer_token}
    if basic_auth is not None:
        http_config["basic_auth"] = {"username": basic_auth[0], "password": basic_auth[1]}
    webhook: dict[str, Any] = {"url": receiver_url, "send_resolved": True}
    if http_config:
        webhook["http_config"] = http_config
    config = {
        "route": {
            "receiver": "remediator",
            "group_by": list(group_by),
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        },
        "receivers": [{"name": "remediator", "webhook_configs": [webhook]}],
    }
    path.write_text(json.dumps(config, indent=2) + "\n")


def _check_config(config_path: Path) -> None:
    amtool = shutil.which(AMTOOL_BIN)
    if amtool is None:
        raise RuntimeError(f"{AMTOOL_BIN} not found: apt-get install prometheus-alertmanager")
    result = subprocess.run(
        [amtool, "check-config", str(config_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"amtool check-config {config_path} failed ({result.returncode}):\n"
            f"{result.stdout}{result.stderr}\n--- config ---\n{config_path.read_text()}"
        )


def is_ready(port: int, path: str = "/-/ready") -> bool:
    """True when GET ``path`` on the loopback ``port`` answers 200."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def _launch(tmp_dir: Path, config_path: Path, attempt: int) -> AlertmanagerProcess:
    binary = shutil.which(ALERTMANAGER_BIN)
    if binary is None:
        raise RuntimeError(f"{ALERTMANAGER_BIN} not found: apt-get install prometheus-alertmanager")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_dir / f"alertmanager-{attempt}.log"
    argv = [
        binary,
        f"--config.file={config_path}",
        f"--storage.path={tmp_dir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        f"--web.external-url={url}",
        "--log.level=debug",
    ]
    with ExitStack() as owned:
        process = spawn(argv, owned, owned.enter_context(log_path.open("wb")))
        return AlertmanagerProcess(url, process, log_path, config_path, owned.pop_all())


def start_alertmanager(
    tmp_dir: Path, **config_kwargs: Unpack[ConfigOptions]
) -> AlertmanagerProcess:
    """Write and validate the config, start Alertmanager and wait for ``/-/ready`` (15 s).

    Files live under ``tmp_dir``: ``alertmanager.yml``, ``data/``, ``alertmanager-N.log``.
    Raises ``RuntimeError`` (with amtool output or the process log) on failure. The caller
    owns the process and must call :meth:`AlertmanagerProcess.stop`.
    """
    tmp_dir.mkdir(parents=True, exist_ok=True)
    config_path = tmp_dir / "alertmanager.yml"
    write_config(config_path, **config_kwargs)
    _check_config(config_path)
    for attempt in range(3):  # retry only if the probed port got taken in between
        am = _launch(tmp_dir, config_path, attempt)
        port = int(am.url.rsplit(":", 1)[1])
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline and am.process.poll() is None:
            if is_ready(port):
                return am
            time.sleep(0.05)
        exit_code = am.process.poll()
        am.stop()
        log = am.read_log()
        if exit_code is not None and "address already in use" in log:
            continue
        state = (
            f"not ready after {READY_TIMEOUT:.0f} s"
            if exit_code is None
            else f"exited with code {exit_code} before becoming ready"
        )
        raise RuntimeError(f"Alertmanager at {am.url} {state}; log:\n{log}")
    raise RuntimeError(f"Alertmanager could not bind a free port; log:\n{log}")
