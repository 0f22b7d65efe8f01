"""The ``remediator`` command: serve, and the runbook author's tools."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
from pydantic import BaseModel, ValidationError
from rich.console import Console

from remediator.actions.registry import builtin_actions
from remediator.authoring.coverage import check_coverage
from remediator.authoring.explain import explain
from remediator.authoring.incidents_view import incident_detail, incident_list
from remediator.authoring.rbac import manifest
from remediator.authoring.schema import runbook_schema_text
from remediator.authoring.testing import run_tests
from remediator.errors import ConfigError, RunbookError
from remediator.models.alert import Notification
from remediator.models.events import IncidentStatus
from remediator.models.incident import IncidentDetail, IncidentPage
from remediator.runbooks.loader import RunbookSet, load_dir

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2
M = TypeVar("M", bound=BaseModel)
DEFAULT_URL = "http://127.0.0.1:9595"
INCIDENT_FILTERS = ("status", "namespace", "runbook", "alertname", "team", "since", "until")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"remediator: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"remediator: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="remediator", description="Alertmanager-driven remediation for Kubernetes."
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the webhook server")
    serve.add_argument("--config", type=Path, help="YAML configuration file")
    serve.add_argument("--host", help="listen address (server.host)")
    serve.add_argument("--port", type=int, help="listen port (server.port)")
    serve.add_argument("--runbooks", type=Path, help="runbook directory (runbooks.dir)")
    serve.add_argument("--store", help="store URL (store.url)")
    serve.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="accept webhooks without credentials (never in production)",
    )
    serve.set_defaults(func=_serve)

    lint = sub.add_parser("lint", help="validate a runbook directory; exit 1 on problems")
    lint.add_argument("directory", type=Path)
    lint.add_argument(
        "--rules",
        type=Path,
        metavar="DIR",
        help="also check the Prometheus alerting rules in DIR against the runbooks: every "
        'remediation: "true" rule matched, every runbook reached, every template label set',
    )
    lint.set_defaults(func=_lint)

    test = sub.add_parser("test", help="run the runbooks' tests: cases")
    test.add_argument("directory", type=Path)
    test.set_defaults(func=_test)

    schema = sub.add_parser("schema", help="print the runbook JSON Schema")
    schema.add_argument("--output", type=Path, help="write to this file instead of stdout")
    schema.set_defaults(func=_schema)

    exp = sub.add_parser("explain", help="show which runbooks match each alert of a payload")
    exp.add_argument("payload", type=Path, help="Alertmanager webhook JSON (- for stdin)")
    exp.add_argument("--runbooks", type=Path, default=Path("runbooks"))
    exp.set_defaults(func=_explain)

    for verb in ("approve", "reject"):
        decide = sub.add_parser(
            verb, help=f"{verb} a pending approval (the same rules as the Slack buttons)"
        )
        decide.add_argument("approval_id")
        decide.add_argument("--by", required=True, help="your Slack user id, e.g. U024BE7LH")
        decide.add_argument("--url", default="http://127.0.0.1:9595", help="the server")
        decide.add_argument("--token", help="bearer token (or REMEDIATOR_AUTH__BEARER_TOKEN)")
        decide.set_defaults(func=_decide, decision=verb)

    rbac = sub.add_parser(
        "rbac", help="print the least-privilege Role/ClusterRole the runbooks' actions need"
    )
    rbac.add_argument(
        "--runbooks", type=Path, default=Path("runbooks"), help="actions used here count"
    )
    rbac.add_argument("--all", action="store_true", help="every built-in action instead")
    rbac.add_argument("--kind", choices=("ClusterRole", "Role"), default="ClusterRole")
    rbac.add_argument("--name", default="remediator")
    rbac.add_argument("--namespace", help="namespace of a Role")
    rbac.add_argument(
        "--context",
        action="store_true",
        help="add the reads context capture needs (pods, pods/log, events, targets)",
    )
    rbac.set_defaults(func=_rbac)

    _incidents_parser(sub)

    send = sub.add_parser("send-test-alert", help="post a sample alert to a running server")
    send.add_argument("--url", default="http://127.0.0.1:9595/api/v1/alerts")
    send.add_argument("--token", help="bearer token (or REMEDIATOR_AUTH__BEARER_TOKEN)")
    send.add_argument("--label", action="append", default=[], metavar="NAME=VALUE")
    send.add_argument("--resolved", action="store_true")
    send.set_defaults(func=_send_test_alert)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from remediator.app import run  # the tools need none of the server's imports

    overrides = {
        key: value
        for key, value in {
            "server.host": args.host,
            "server.port": args.port,
            "runbooks.dir": args.runbooks,
            "store.url": args.store,
            "auth.insecure_no_auth": True if args.insecure_no_auth else None,
        }.items()
        if value is not None
    }
    run(args.config, overrides)
    return EXIT_OK


def _load(directory: Path) -> RunbookSet | None:
    try:
        return load_dir(directory, builtin_actions())
    except RunbookError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) in {directory}", file=sys.stderr)
        return None


def _lint(args: argparse.Namespace) -> int:
    runbooks = _load(args.directory)
    if runbooks is None:
        return EXIT_PROBLEMS
    untested = [r for r in runbooks.runbooks if not r.spec.tests]
    for r in untested:
        print(f"{r.path}:1: tests: warning: runbook {r.spec.name!r} has no tests")
    print(f"{len(runbooks.runbooks)} runbook(s) OK in {args.directory}")
    if args.rules is None:
        return EXIT_OK
    report = check_coverage(args.rules, runbooks)
    for line in report.problems:
        print(line, file=sys.stderr)
    if report.problems:
        print(
            f"{len(report.problems)} coverage problem(s) between {args.rules} and {args.directory}",
            file=sys.stderr,
        )
        return EXIT_PROBLEMS
    print(
        f"{len(report.remediation_rules)} remediation rule(s) in {args.rules} and "
        f"{report.runbooks} runbook(s) cover each other"
    )
    return EXIT_OK


def _test(args: argparse.Namespace) -> int:
    runbooks = _load(args.directory)
    if runbooks is None:
        return EXIT_PROBLEMS
    results = run_tests(runbooks, builtin_actions())
    for result in results:
        status = "PASS" if result.passed else "FAIL"
        print(f"{status} {result.runbook.path.name} {result.runbook.ident}: {result.case}")
        for problem in result.problems:
            print(f"       {problem}")
    failed = sum(not r.passed for r in results)
    print(f"runbook cases: {len(results) - failed} passed, {failed} failed")
    return EXIT_PROBLEMS if failed else EXIT_OK


def _schema(args: argparse.Namespace) -> int:
    text = runbook_schema_text()
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _rbac(args: argparse.Namespace) -> int:
    actions = builtin_actions()
    if args.all:
        names = set(actions)
    else:
        runbooks = _load(args.runbooks)
        if runbooks is None:
            return EXIT_PROBLEMS
        names = {
            step.action for r in runbooks.runbooks for step in (*r.spec.steps, *r.spec.escalate)
        }
    if args.kind == "Role" and not args.namespace:
        print("remediator: --kind Role needs --namespace", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(
        manifest(
            (actions[n] for n in sorted(names)),
            kind=args.kind,
            name=args.name,
            namespace=args.namespace,
            context=args.context,
        )
    )
    return EXIT_OK


def _explain(args: argparse.Namespace) -> int:
    raw = sys.stdin.read() if str(args.payload) == "-" else args.payload.read_text("utf-8")
    try:
        notification = Notification.model_validate_json(raw)
    except ValidationError as exc:
        print(f"{args.payload}: not an Alertmanager webhook payload:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    runbooks = _load(args.runbooks)
    if runbooks is None:
        return EXIT_PROBLEMS
    for explanation in explain(notification, runbooks, builtin_actions()):
        print(explanation.render())
    return EXIT_OK


def _send_test_alert(args: argparse.Namespace) -> int:
    labels = {
        "alertname": "KubePodCrashLooping",
        "namespace": "default",
        "deployment": "web",
        "severity": "warning",
    }
    for item in args.label:
        name, sep, value = item.partition("=")
        if not sep:
            print(f"--label {item!r}: expected NAME=VALUE", file=sys.stderr)
            return EXIT_USAGE
        labels[name] = value
    payload = {
        "version": "4",
        "status": "resolved" if args.resolved else "firing",
        "receiver": "remediator",
        "groupKey": "{}:{}",
        "externalURL": "",
        "alerts": [
            {
                "status": "resolved" if args.resolved else "firing",
                "labels": labels,
                "annotations": {"summary": "sample alert from remediator send-test-alert"},
                "startsAt": datetime(2025, 1, 1, tzinfo=UTC).isoformat(),
                "endsAt": datetime.now(UTC).isoformat()
                if args.resolved
                else "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": _fingerprint(labels),
            }
        ],
    }
    token = args.token or os.environ.get("REMEDIATOR_AUTH__BEARER_TOKEN")
    try:
        status, body = asyncio.run(_call("POST", args.url, token, json=payload))
    except (aiohttp.ClientError, OSError) as exc:
        print(f"cannot reach {args.url}: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    print(f"{status} {body}")
    return EXIT_OK if 200 <= status < 300 else EXIT_PROBLEMS


def _decide(args: argparse.Namespace) -> int:
    url = f"{args.url.rstrip('/')}/api/v1/approvals/{args.approval_id}/{args.decision}"
    token = args.token or os.environ.get("REMEDIATOR_AUTH__BEARER_TOKEN")
    try:
        status, body = asyncio.run(_call("POST", url, token, json={"by": args.by}))
    except (aiohttp.ClientError, OSError) as exc:
        print(f"cannot reach {args.url}: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    try:
        answer = json.loads(body)
        print(f"{answer['outcome']}: {answer['message']}")
    except (ValueError, KeyError, TypeError):
        print(f"{status} {body}")
    return EXIT_OK if 200 <= status < 300 else EXIT_PROBLEMS


def _incidents_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    incidents = sub.add_parser(
        "incidents", help="list incidents and show their timelines (the incident API, as tables)"
    )
    verbs = incidents.add_subparsers(required=True, metavar="{list,show}")

    def server(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--url", default=DEFAULT_URL, help="the server")
        parser.add_argument("--token", help="bearer token (or REMEDIATOR_AUTH__BEARER_TOKEN)")
        parser.add_argument(
            "--json", action="store_true", help="print the API's JSON answer as it came"
        )

    listing = verbs.add_parser("list", help="incidents, newest first")
    listing.add_argument("--status", choices=list(IncidentStatus))
    listing.add_argument("--namespace", metavar="NS")
    listing.add_argument("--runbook", metavar="R", help="incidents this runbook matched")
    listing.add_argument("--alertname", metavar="A")
    listing.add_argument("--team", metavar="T")
    listing.add_argument(
        "--since", metavar="TIME", help="opened at or after: 2025-05-01 or 2025-05-01T10:00Z"
    )
    listing.add_argument(
        "--until", metavar="TIME", help="opened before (a date includes that whole day)"
    )
    listing.add_argument("--limit", type=_page_size, metavar="N", help="1-500 (default 50)")
    listing.add_argument("--cursor", metavar="C", help="the next page, as the last page said")
    server(listing)
    listing.set_defaults(func=_incidents_list)

    show = verbs.add_parser("show", help="one incident: labels, timeline and executions")
    show.add_argument("incident_id", metavar="ID")
    server(show)
    show.set_defaults(func=_incidents_show)


def _page_size(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 500:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to 500")
    return int(text)


def _incidents_list(args: argparse.Namespace) -> int:
    params = {name: getattr(args, name) for name in (*INCIDENT_FILTERS, "limit", "cursor")}
    query = {k: str(v) for k, v in params.items() if v}
    page = _fetched(args, "/api/v1/incidents", query, IncidentPage)
    if isinstance(page, int):
        return page
    console = _console()
    console.print(incident_list(page, console.width))
    if page.next_cursor:
        again = ["remediator", "incidents", "list"]
        for name in (*INCIDENT_FILTERS, "limit"):
            if getattr(args, name):
                again += [f"--{name}", str(getattr(args, name))]
        if args.url != DEFAULT_URL:
            again += ["--url", args.url]
        again += ["--cursor", page.next_cursor]
        console.print(f"next page: {shlex.join(again)}", markup=False, highlight=False)
    return EXIT_OK


def _incidents_show(args: argparse.Namespace) -> int:
    path = f"/api/v1/incidents/{quote(args.incident_id, safe='')}"
    detail = _fetched(args, path, {}, IncidentDetail)
    if isinstance(detail, int):
        return detail
    console = _console()
    console.print(incident_detail(detail, console.width))
    return EXIT_OK


def _fetched(
    args: argparse.Namespace, path: str, params: Mapping[str, str], model: type[M]
) -> M | int:
    """The API's answer as ``model``, or the exit code when there is nothing to draw:
    ``--json`` printed the answer as it came, or the problem has been told."""
    body = _read_api(args, path, params)
    if body is None:
        return EXIT_PROBLEMS
    if args.json:
        print(body)
        return EXIT_OK
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        print(f"remediator: unexpected answer from {args.url}:\n{exc}", file=sys.stderr)
        return EXIT_PROBLEMS


def _read_api(args: argparse.Namespace, path: str, params: Mapping[str, str]) -> str | None:
    """GET ``path`` from the server; the body of a 200, else None once the problem is told."""
    url = f"{args.url.rstrip('/')}{path}"
    token = args.token or os.environ.get("REMEDIATOR_AUTH__BEARER_TOKEN")
    try:
        status, body = asyncio.run(_call("GET", url, token, params=params))
    except (aiohttp.ClientError, OSError) as exc:
        print(f"cannot reach {args.url}: {str(exc) or type(exc).__name__}", file=sys.stderr)
        return None
    if status == 200:
        return body
    try:
        message = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        message = body.strip()[:200] or "no explanation"
    print(f"remediator: {message} (HTTP {status})", file=sys.stderr)
    return None


def _console() -> Console:
    """Colour on a terminal only; piped output is not squeezed into 80 columns."""
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 200
    return console


async def _call(method: str, url: str, token: str | None, **kw: Any) -> tuple[int, str]:
    """One request to the server's API (``params=`` or ``json=`` in ``kw``)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timeout = aiohttp.ClientTimeout(total=10)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.request(method, url, headers=headers, **kw) as response,
    ):
        return response.status, await response.text()


def _fingerprint(labels: dict[str, str]) -> str:
    """Stable per label set, as Alertmanager's is, so a re-send is a re-notification."""
    text = "\x00".join(f"{k}\xff{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


if __name__ == "__main__":
    raise SystemExit(main())
