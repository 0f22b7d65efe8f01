"""Tests of the ingest benchmark harness: ``pytest bench/test_ingest.py``.

The wrk parser is tested on captured output; the load script and the whole harness
(bare server in both roles) run for real where wrk is installed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import ingest
import pytest

LATENCY_OUTPUT = """\
Running 2s test @ http://127.0.0.1:41703/api/v1/alerts
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     6.31ms    1.61ms  22.95ms   91.13%
    Req/Sec     5.12k   512.11     5.61k    85.00%
  Latency Distribution
     50%    5.97ms
     75%    6.54ms
     90%    7.63ms
     99%   12.91ms
  10197 requests in 2.00s, 1.57MB read
Requests/sec:   5093.61
Transfer/sec:    802.09KB
bench-lua: bodies=10229 body_bytes=25440523 body_min=2360 body_max=2589 requests=10197 \
duration_us=2001906 p50_us=5972 p99_us=12914 status_errors=0 connect_errors=0 read_errors=0 \
write_errors=0 timeouts=0
"""

FAILING_OUTPUT = """\
Running 1m test @ http://127.0.0.1:8080/api/v1/alerts
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.02s   400.00ms   1.90s    70.00%
    Req/Sec    30.00      5.00     40.00     60.00%
  Latency Distribution
     50%  812.00us
     75%    1.00s
     90%    1.50s
     99%    1.01m
  1800 requests in 1.00m, 200.00KB read
  Socket errors: connect 0, read 2, write 0, timeout 7
  Non-2xx or 3xx responses: 1200
Requests/sec:     29.98
Transfer/sec:      3.33KB
"""


def test_wrk_durations_in_milliseconds() -> None:
    assert ingest.to_ms("812.00", "us") == pytest.approx(0.812)
    assert ingest.to_ms("1.5", "ms") == 1.5
    assert ingest.to_ms("2", "s") == 2000.0
    assert ingest.to_ms("1.01", "m") == pytest.approx(60600.0)
    with pytest.raises(ValueError, match="not a wrk duration"):
        ingest.to_ms("1", "d")


def test_parses_latency_output_and_lua_line() -> None:
    result = ingest.parse_wrk(LATENCY_OUTPUT)
    assert result.requests_per_sec == 5093.61
    assert result.p50_ms == pytest.approx(5.97)
    assert result.p99_ms == pytest.approx(12.91)
    assert result.requests == 10197
    assert result.duration_s == pytest.approx(2.0)
    assert result.errors == 0
    assert result.body_avg_bytes == pytest.approx(25440523 / 10229)
    assert (result.body_min_bytes, result.body_max_bytes) == (2360, 2589)


def test_counts_non_2xx_and_socket_errors() -> None:
    result = ingest.parse_wrk(FAILING_OUTPUT)
    assert result.p50_ms == pytest.approx(0.812)
    assert result.p99_ms == pytest.approx(60600.0)
    assert result.duration_s == pytest.approx(60.0)
    assert result.non_2xx == 1200
    assert result.socket_errors == {"read": 2, "timeout": 7}
    assert result.errors == 1209
    assert result.body_avg_bytes is None


def test_refuses_output_without_latency_distribution() -> None:
    without = "\n".join(
        line for line in LATENCY_OUTPUT.splitlines() if "%" not in line or "Stdev" in line
    )
    with pytest.raises(ValueError, match="--latency"):
        ingest.parse_wrk(without)
    with pytest.raises(ValueError, match="Requests/sec"):
        ingest.parse_wrk("wrk: connection refused\n")


needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")


class _Capture(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((self.headers.get("Authorization", ""), body))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def capture() -> Iterator[tuple[int, list[tuple[str, bytes]]]]:
    seen: list[tuple[str, bytes]] = []
    handler = type("Handler", (_Capture,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@needs_wrk
def test_every_alert_sent_is_new_and_a_valid_notification(
    capture: tuple[int, list[tuple[str, bytes]]],
) -> None:
    notification = pytest.importorskip("remediator.models.alert").Notification
    port, seen = capture
    for salt in ("0a01", "0a02"):  # two runs, as warm-up and measurement are
        subprocess.run(
            [
                *("wrk", "-t2", "-c4", "-d1s", "-s", str(ingest.LUA_SCRIPT)),
                *(f"http://127.0.0.1:{port}/api/v1/alerts", "--", salt, "tok"),
            ],
            check=True,
            capture_output=True,
        )
    assert len(seen) > 100
    keys = set()
    for auth, body in seen:
        assert auth == "Bearer tok"
        parsed = notification.model_validate_json(body)
        raw = json.loads(body)
        assert raw["version"] == "4"
        assert raw["truncatedAlerts"] == 0
        assert len(parsed.alerts) == ingest.ALERTS_PER_BODY
        for alert in parsed.alerts:
            assert alert.ends_at is None
            assert len(alert.fingerprint) == 16
            int(alert.fingerprint, 16)
            assert {"alertname", "namespace", "pod", "container", "severity", "job"} <= set(
                alert.labels
            )
            keys.add(alert.fingerprint)
    assert len(keys) == len(seen) * ingest.ALERTS_PER_BODY, "an alert was sent twice"
    sizes = [len(body) for _, body in seen]
    assert 1800 < sum(sizes) / len(sizes) < 3000


@needs_wrk
def test_bare_against_bare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.json"
    bare = "{python} {bench}/bare_server.py --port {port}"
    argv = ["--duration", "2", "--rounds", "2", "--warmup", "1", "--subject-cmd", bare]
    assert ingest.main([*argv, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ratio (subject/baseline req/s):" in printed
    data = json.loads(out.read_text())
    assert data["targets"]["verdict"] in {"MET", "MISSED"}
    assert data["baseline"]["errors"] == data["subject"]["errors"] == 0
    assert 0.3 < data["ratio"] < 3.0
    assert len(data["slices"]) == 2


def test_a_subject_that_does_not_start_is_a_harness_failure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    if shutil.which("wrk") is None:
        assert ingest.main([]) == 1
        return
    failing = "{python} -c 'import sys; print(\"boom\"); sys.exit(3)'"
    assert ingest.main(["--duration", "1", "--rounds", "1", "--subject-cmd", failing]) == 1
    err = capsys.readouterr().err
    assert "subject exited with status 3 before it was ready" in err
    assert "boom" in err
    kept = re.search(r"are kept in (\S+)", err)
    assert kept is not None, "a failed run keeps the servers' logs"
    shutil.rmtree(kept[1])
