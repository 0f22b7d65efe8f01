"""The ``remediator`` command's author tools, run in-process: output and exit codes."""

from __future__ import annotations

import io
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from remediator.actions.registry import builtin_actions
from remediator.authoring.schema import runbook_schema_text
from remediator.cli import main
from remediator.models.alert import Notification
from remediator.runbooks.loader import load_dir
from tests.payloads import alert, crashloop_labels, notification

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "runbooks"

RESTART = """\
name: web-restart
version: 2
owner: platform
match:
  - alertname="KubePodCrashLooping"
  - severity=~"warning|critical"
target:
  kind: Deployment
  namespace: "{{ labels.namespace }}"
  name: "{{ labels.deployment }}"
steps:
  - action: restart
"""

RESTART_DESCRIPTION = (
    "restart Deployment prod/web: set the pod template annotation "
    "kubectl.kubernetes.io/restartedAt to now (rolling restart of every pod)"
)


def _write(directory: Path, filename: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    path.write_text(text, encoding="utf-8")
    return path


# --- lint ----------------------------------------------------------------------------------


def test_lint_shipped_runbooks(capsys: pytest.CaptureFixture[str]) -> None:
    count = len(load_dir(SHIPPED, builtin_actions()).runbooks)
    assert count >= 1

    assert main(["lint", str(SHIPPED)]) == 0

    out, err = capsys.readouterr()
    assert out.splitlines()[-1] == f"{count} runbook(s) OK in {SHIPPED}"
    assert err == ""


def test_lint_broken_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _write(tmp_path, "a.yaml", RESTART.replace("action: restart", "action: reboot"))
    b = _write(
        tmp_path, "b.yaml", RESTART.replace("name: web", "name: other").replace("steps:", "stpes:")
    )

    assert main(["lint", str(tmp_path)]) == 1

    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"{a}:12: steps.0.action: unknown action 'reboot' "
        "(known: cert_renew, cleanup, notify, restart, rollback, scale)",
        f"{b}:1: steps: Field required",
        f"{b}:11: stpes: Extra inputs are not permitted",
        f"3 problem(s) in {tmp_path}",
    ]


def test_lint_warns_about_a_runbook_without_tests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "web.yaml", RESTART)

    assert main(["lint", str(tmp_path)]) == 0

    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f"{path}:1: tests: warning: runbook 'web-restart' has no tests",
        f"1 runbook(s) OK in {tmp_path}",
    ]
    assert err == ""


def test_lint_missing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope"

    assert main(["lint", str(missing)]) == 1

    _, err = capsys.readouterr()
    assert err.splitlines() == [
        f"{missing}: runbook directory does not exist",
        f"1 problem(s) in {missing}",
    ]


# --- test ----------------------------------------------------------------------------------


def test_test_shipped_runbooks(capsys: pytest.CaptureFixture[str]) -> None:
    runbooks = load_dir(SHIPPED, builtin_actions()).runbooks
    cases = sum(len(r.spec.tests) for r in runbooks)
    assert cases >= 1

    assert main(["test", str(SHIPPED)]) == 0

    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[-1] == f"runbook cases: {cases} passed, 0 failed"
    assert len(lines) == cases + 1
    assert all(line.startswith("PASS ") for line in lines[:-1])
    assert (
        "PASS crashloop-restart.yaml crashloop-restart@2: a label that smuggles a path is refused"
    ) in lines
    assert err == ""


# One runbook with two steps; each case below adds a single test to it.
SCALER = """\
name: scaler
version: 3
owner: platform
match:
  - alertname="HighLoad"
  - severity=~"warning|critical"
target:
  kind: Deployment
  namespace: "{{ labels.namespace }}"
  name: "{{ labels.deployment }}"
steps:
  - action: scale
    params:
      replicas: "{{ labels.want }}"
      min: 1
      max: 10
  - action: notify
    params:
      message: "scaled {{ labels.deployment }}"
tests:
"""

SCALE_DESCRIPTION = (
    "scale Deployment prod/web to 4 replicas, kept within 1..10; if an HPA targets it: refuse"
)


def _case(expect: dict[str, Any], **labels: str | None) -> dict[str, Any]:
    base: dict[str, str | None] = {
        "alertname": "HighLoad",
        "severity": "critical",
        "namespace": "prod",
        "deployment": "web",
        "want": "4",
    }
    base.update(labels)
    return {
        "name": "the case",
        "alert": {"labels": {k: v for k, v in base.items() if v is not None}},
        "expect": expect,
    }


CASES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "full plan matches": (
        _case(
            {
                "target": {"kind": "Deployment", "namespace": "prod", "name": "web"},
                "steps": [{"action": "scale"}, {"action": "notify"}],
            }
        ),
        [],
    ),
    "wrong target name": (
        _case({"target": {"kind": "Deployment", "namespace": "prod", "name": "x"}}),
        ["target.name: expected 'x', got 'web'"],
    ),
    "wrong target kind and namespace": (
        _case({"target": {"kind": "Rollout", "namespace": "stage", "name": "web"}}),
        [
            "target.kind: expected 'Rollout', got 'Deployment'",
            "target.namespace: expected 'stage', got 'prod'",
        ],
    ),
    "no match expected and none": (_case({"match": False}, severity="info"), []),
    "no match expected but matched": (
        _case({"match": False}),
        ["expected no match, but every matcher matched"],
    ),
    "match expected but a matcher failed": (
        _case(
            {"target": {"kind": "Deployment", "namespace": "prod", "name": "web"}}, severity=None
        ),
        ['expected a match, but matcher severity=~"warning|critical" failed'],
    ),
    "refusal expected and given": (
        _case({"refused": "invalid_name"}, deployment="web/../../secrets"),
        [],
    ),
    "params refusal expected and given": (_case({"refused": "invalid_params"}, want="-1"), []),
    "template refusal expected and given": (_case({"refused": "template_error"}, want=None), []),
    "refusal expected but a plan was made": (
        _case({"refused": "invalid_name"}),
        ["expected refusal 'invalid_name', but a plan was made"],
    ),
    "other refusal than expected": (
        _case({"refused": "template_error"}, deployment="Web_X"),
        [
            "plan refused (invalid_name): "
            "target.name 'Web_X' is not a valid object name (DNS-1123 subdomain)"
        ],
    ),
    "unexpected refusal": (
        _case({"steps": [{"action": "scale"}, {"action": "notify"}]}, want="lots"),
        [
            "plan refused (invalid_params): steps[0].params.replicas: "
            "Input should be a valid integer, unable to parse string as an integer"
        ],
    ),
    "named params are a subset": (
        _case(
            {
                "steps": [
                    {"action": "scale", "params": {"replicas": 4, "hpa": "refuse"}},
                    {"action": "notify", "params": {"message": "scaled web"}},
                ]
            }
        ),
        [],
    ),
    "param value differs": (
        _case({"steps": [{"action": "scale", "params": {"replicas": 5}}, {"action": "notify"}]}),
        ["steps[0].params.replicas: expected 5, got 4"],
    ),
    "param that was never set": (
        _case(
            {"steps": [{"action": "scale"}, {"action": "notify", "params": {"channel": "#ops"}}]}
        ),
        ["steps[1].params.channel: expected '#ops', got None"],
    ),
    "descriptions equal": (
        _case(
            {
                "steps": [
                    {"action": "scale", "description": SCALE_DESCRIPTION},
                    {
                        "action": "notify",
                        "description": "notify about Deployment prod/web: scaled web",
                    },
                ]
            }
        ),
        [],
    ),
    "description differs": (
        _case({"steps": [{"action": "scale", "description": "scale web"}, {"action": "notify"}]}),
        [f"steps[0].description: expected 'scale web', got {SCALE_DESCRIPTION!r}"],
    ),
    "wrong step action": (
        _case({"steps": [{"action": "restart"}]}),
        ["steps: expected ['restart'], got ['scale', 'notify']"],
    ),
    "steps in the wrong order": (
        _case({"steps": [{"action": "notify"}, {"action": "scale"}]}),
        ["steps: expected ['notify', 'scale'], got ['scale', 'notify']"],
    ),
    "a step missing from the expectation": (
        _case({"steps": [{"action": "scale"}]}),
        ["steps: expected ['scale'], got ['scale', 'notify']"],
    ),
}


@pytest.mark.parametrize("title", list(CASES))
def test_test_expectations(tmp_path: Path, capsys: pytest.CaptureFixture[str], title: str) -> None:
    case, problems = CASES[title]
    _write(tmp_path, "scaler.yaml", SCALER + "  - " + json.dumps(case) + "\n")

    code = main(["test", str(tmp_path)])

    out, err = capsys.readouterr()
    status = "FAIL" if problems else "PASS"
    assert out.splitlines() == [
        f"{status} scaler.yaml scaler@3: the case",
        *(f"       {p}" for p in problems),
        f"runbook cases: {0 if problems else 1} passed, {1 if problems else 0} failed",
    ]
    assert err == ""
    assert code == (1 if problems else 0)


def test_test_reports_every_case_and_fails_on_any_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tests = """\
tests:
  - name: restarts web
    alert:
      labels: {alertname: KubePodCrashLooping, severity: critical, namespace: prod, deployment: web}
    expect:
      target: {kind: Deployment, namespace: prod, name: x}
  - name: info is ignored
    alert:
      labels: {alertname: KubePodCrashLooping, severity: info, namespace: prod, deployment: web}
    expect:
      match: false
"""
    _write(tmp_path, "a-restart.yaml", RESTART + tests)
    _write(tmp_path, "b-untested.yaml", RESTART.replace("name: web-restart", "name: untested"))

    assert main(["test", str(tmp_path)]) == 1

    out, _ = capsys.readouterr()
    assert out.splitlines() == [
        "FAIL a-restart.yaml web-restart@2: restarts web",
        "       target.name: expected 'x', got 'web'",
        "PASS a-restart.yaml web-restart@2: info is ignored",
        "runbook cases: 1 passed, 1 failed",
    ]


def test_test_on_an_invalid_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "a.yaml", RESTART.replace("kind: Deployment", "kind: Certificate"))

    assert main(["test", str(tmp_path)]) == 1

    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"{path}:8: target.kind: restart acts on DaemonSet, Deployment, StatefulSet, "
        "not Certificate",
        f"1 problem(s) in {tmp_path}",
    ]


# --- schema --------------------------------------------------------------------------------


def test_schema_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0

    out, err = capsys.readouterr()
    schema = json.loads(out)
    assert {"name", "version", "owner", "match", "target", "steps"} <= set(schema["properties"])
    assert set(schema["required"]) == {"name", "version", "owner", "match", "target", "steps"}
    assert schema["additionalProperties"] is False
    assert schema["$defs"]["Step"]["additionalProperties"] is False
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert out == runbook_schema_text()
    assert err == ""


def test_schema_to_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "schema.json"

    assert main(["schema", "--output", str(output)]) == 0

    out, _ = capsys.readouterr()
    assert out == ""
    assert output.read_text("utf-8") == runbook_schema_text()
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == output.read_text("utf-8")


# --- explain -------------------------------------------------------------------------------


def _payload(tmp_path: Path, body: Any) -> Path:
    path = tmp_path / "payload.json"
    path.write_text(body if isinstance(body, str) else json.dumps(body), "utf-8")
    return path


@pytest.fixture
def explain_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "runbooks"
    _write(directory, "web.yaml", RESTART)
    _write(
        directory,
        "disk.yaml",
        """\
name: disk-notify
version: 1
owner: storage
match:
  - alertname="KubePersistentVolumeFillingUp"
target:
  kind: PersistentVolumeClaim
  namespace: "{{ labels.namespace }}"
  name: "{{ labels.persistentvolumeclaim }}"
steps:
  - action: notify
    params:
      message: "{{ labels.persistentvolumeclaim }} is filling up"
""",
    )
    return directory


def test_explain_matching_and_non_matching_alerts(
    tmp_path: Path, explain_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    no_severity = crashloop_labels(deployment="api")
    del no_severity["severity"]
    payload = _payload(
        tmp_path,
        notification(
            alert(crashloop_labels()),
            alert(crashloop_labels(severity="info")),
            alert(no_severity),
        ),
    )

    assert main(["explain", str(payload), "--runbooks", str(explain_dir)]) == 0

    out, err = capsys.readouterr()
    disk_failed = (
        '  no match disk-notify@1: alertname="KubePersistentVolumeFillingUp" failed '
        "(alertname is 'KubePodCrashLooping')"
    )
    assert out.splitlines() == [
        "alert KubePodCrashLooping {alertname='KubePodCrashLooping', deployment='web', "
        "namespace='prod', pod='web-5d8f7-abcde', severity='critical'}",
        f"  MATCH    web-restart@2: {RESTART_DESCRIPTION}",
        disk_failed,
        "alert KubePodCrashLooping {alertname='KubePodCrashLooping', deployment='web', "
        "namespace='prod', pod='web-5d8f7-abcde', severity='info'}",
        "  no runbook matches",
        disk_failed,
        "  no match web-restart@2: severity=~\"warning|critical\" failed (severity is 'info')",
        "alert KubePodCrashLooping {alertname='KubePodCrashLooping', deployment='api', "
        "namespace='prod', pod='web-5d8f7-abcde'}",
        "  no runbook matches",
        disk_failed,
        '  no match web-restart@2: severity=~"warning|critical" failed (severity is absent)',
    ]
    assert err == ""


def test_explain_shows_a_refused_plan(
    tmp_path: Path, explain_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    payload = _payload(tmp_path, notification(alert(crashloop_labels(deployment="Web_X"))))

    assert main(["explain", str(payload), "--runbooks", str(explain_dir)]) == 0

    out, _ = capsys.readouterr()
    assert out.splitlines()[1] == (
        "  MATCH    web-restart@2: refused (invalid_name): "
        "target.name 'Web_X' is not a valid object name (DNS-1123 subdomain)"
    )


def test_explain_reads_stdin(
    explain_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(notification())))

    assert main(["explain", "-", "--runbooks", str(explain_dir)]) == 0

    out, _ = capsys.readouterr()
    assert out.splitlines()[1] == f"  MATCH    web-restart@2: {RESTART_DESCRIPTION}"


@pytest.mark.parametrize(
    "body",
    [
        {"version": "4", "status": "firing"},  # no alerts
        notification(version="3"),
        [notification()],
        "not json at all",
        notification(alert(starts_at="0001-01-01T00:00:00+01:00")),
    ],
    ids=["no-alerts", "version-3", "array", "not-json", "before-year-one"],
)
def test_explain_refuses_what_is_not_a_webhook(
    tmp_path: Path, explain_dir: Path, capsys: pytest.CaptureFixture[str], body: Any
) -> None:
    payload = _payload(tmp_path, body)

    assert main(["explain", str(payload), "--runbooks", str(explain_dir)]) == 2

    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"{payload}: not an Alertmanager webhook payload:\n")
    assert "validation error for Notification" in err


def test_explain_with_broken_runbooks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "runbooks"
    path = _write(broken, "web.yaml", RESTART + "stpes: []\n")
    payload = _payload(tmp_path, notification())

    assert main(["explain", str(payload), "--runbooks", str(broken)]) == 1

    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"{path}:13: stpes: Extra inputs are not permitted",
        f"1 problem(s) in {broken}",
    ]


# --- usage errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "the following arguments are required: COMMAND"),
        (["lint"], "the following arguments are required: directory"),
        (["schema", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_usage_errors(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)

    assert info.value.code == 2
    _, err = capsys.readouterr()
    assert err.startswith("usage: remediator")
    assert message in err


# --- send-test-alert -----------------------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, dict(self.headers), body))  # type: ignore[attr-defined]
        self.send_response(202)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"queued")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def test_send_test_alert_posts_a_webhook(
    receiver: ThreadingHTTPServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("REMEDIATOR_AUTH__BEARER_TOKEN", raising=False)
    url = f"http://127.0.0.1:{receiver.server_address[1]}/api/v1/alerts"

    argv = ["send-test-alert", "--url", url, "--token", "tok", "--label", "deployment=api"]
    assert main(argv) == 0

    assert capsys.readouterr().out == "202 queued\n"
    [(path, headers, body)] = receiver.received  # type: ignore[attr-defined]
    assert path == "/api/v1/alerts"
    assert headers["Authorization"] == "Bearer tok"
    sent = Notification.model_validate_json(body)
    [only] = sent.alerts
    assert only.status == "firing"
    assert dict(only.labels) == {
        "alertname": "KubePodCrashLooping",
        "namespace": "default",
        "deployment": "api",
        "severity": "warning",
    }
    assert only.ends_at is None


def test_send_test_alert_rejects_a_label_without_value(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["send-test-alert", "--url", "http://127.0.0.1:9/", "--label", "team"]) == 2

    _, err = capsys.readouterr()
    assert err == "--label 'team': expected NAME=VALUE\n"


def test_send_test_alert_to_an_unreachable_server(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api/v1/alerts"

    assert main(["send-test-alert", "--url", url]) == 1

    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"cannot reach {url}: ")


def test_missing_files_are_usage_errors_not_tracebacks(tmp_path, capsys):
    from remediator.cli import main

    assert main(["explain", str(tmp_path / "missing.json")]) == 2
    assert main(["schema", "--output", str(tmp_path / "no" / "dir" / "x.json")]) == 2
    err = capsys.readouterr().err
    assert "missing.json" in err
    assert "No such file or directory" in err


def _rbac(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    from ruamel.yaml import YAML

    code = main(["rbac", *args])
    out = capsys.readouterr().out
    return code, (YAML(typ="safe").load(out) if code == 0 else out)


def test_rbac_lists_only_what_the_runbooks_actions_need(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "r.yaml").write_text(
        "name: r\nversion: 1\nowner: t\nmatch: ['alertname=\"A\"']\n"
        "target: {kind: Deployment, namespace: prod, name: web}\n"
        "steps: [{action: restart}]\n"
        "escalate: [{action: notify, params: {message: hi}}]\n"
    )
    code, doc = _rbac(capsys, "--runbooks", str(tmp_path))
    assert code == 0
    assert (doc["apiVersion"], doc["kind"], doc["metadata"]) == (
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        {"name": "remediator"},
    )
    assert doc["rules"] == [
        {
            "apiGroups": ["apps"],
            "resources": ["daemonsets", "deployments", "statefulsets"],
            "verbs": ["get", "patch"],
        }
    ]


def test_rbac_for_every_action_merges_verbs_per_resource(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, doc = _rbac(capsys, "--all", "--kind", "Role", "--namespace", "prod")
    assert code == 0
    assert doc["kind"] == "Role"
    assert doc["metadata"]["namespace"] == "prod"
    pairs = [(g, r) for rule in doc["rules"] for g in rule["apiGroups"] for r in rule["resources"]]
    assert len(pairs) == len(set(pairs))  # each resource appears in exactly one rule
    groups = {g for g, _ in pairs}
    assert {"apps", "argoproj.io", "cert-manager.io", "autoscaling", "batch", ""} <= groups
    assert ("cert-manager.io", "certificates/status") in pairs
    assert ("argoproj.io", "rollouts/status") in pairs
    assert not any(v in rule["verbs"] for rule in doc["rules"] for v in ("*", "escalate", "bind"))


def test_rbac_role_needs_a_namespace(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rbac", "--all", "--kind", "Role"]) == 2
    assert "--namespace" in capsys.readouterr().err


def test_rbac_adds_context_reads_only_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "r.yaml").write_text(
        "name: r\nversion: 1\nowner: t\nmatch: ['alertname=\"A\"']\n"
        "target: {kind: Deployment, namespace: prod, name: web}\n"
        "steps: [{action: restart}]\n"
    )
    _, plain = _rbac(capsys, "--runbooks", str(tmp_path))
    _, with_context = _rbac(capsys, "--runbooks", str(tmp_path), "--context")

    def pairs(doc: Any) -> set[tuple[str, str, str]]:
        return {
            (g, r, v)
            for rule in doc["rules"]
            for g in rule["apiGroups"]
            for r in rule["resources"]
            for v in rule["verbs"]
        }

    added = pairs(with_context) - pairs(plain)
    assert {("", "pods/log", "get"), ("", "events", "list"), ("", "pods", "list")} <= added
    assert not any(r == "pods/log" or r == "events" for _, r, _ in pairs(plain))
    assert not any("secrets" in r for _, r, _ in pairs(with_context))
