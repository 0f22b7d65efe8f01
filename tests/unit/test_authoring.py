"""The committed runbook JSON Schema: up to date, and agreeing with the shipped runbooks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from remediator.authoring.schema import runbook_schema_text

REPO = Path(__file__).resolve().parents[2]
RUNBOOKS = REPO / "runbooks"
SCHEMA_FILE = RUNBOOKS / "schema.json"
SHIPPED = sorted([*RUNBOOKS.glob("*.yaml"), *RUNBOOKS.glob("*.yml")])


def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text("utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _errors(document: Any) -> list[str]:
    return sorted(
        f"{'.'.join(str(p) for p in e.absolute_path) or '(top level)'}: {e.message}"
        for e in _validator().iter_errors(document)
    )


def test_committed_schema_is_up_to_date() -> None:
    committed = SCHEMA_FILE.read_text("utf-8") if SCHEMA_FILE.exists() else None

    assert committed == runbook_schema_text(), (
        "runbooks/schema.json is out of date with remediator.models.runbook; "
        "run `remediator schema --output runbooks/schema.json` and commit the result"
    )


def test_there_are_shipped_runbooks() -> None:
    assert [p.name for p in SHIPPED if p.name == "crashloop-restart.yaml"] == [
        "crashloop-restart.yaml"
    ]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_runbooks_validate_against_the_schema(path: Path) -> None:
    document = YAML(typ="safe").load(path.read_text("utf-8"))

    assert _errors(document) == []


def test_schema_rejects_what_the_loader_rejects() -> None:
    document = {
        "name": "web",
        "version": "1",
        "owner": "platform",
        "match": ['alertname="A"'],
        "target": {"kind": "Deployment", "namespace": "prod", "namepsace": "x"},
        "stpes": [{"action": "restart"}],
        "verify": {"timeout": "five minutes"},
    }

    assert _errors(document) == [
        "(top level): 'steps' is a required property",
        "(top level): Additional properties are not allowed ('stpes' was unexpected)",
        "target: Additional properties are not allowed ('namepsace' was unexpected)",
        "verify.timeout: 'five minutes' does not match '^(\\\\d+(ms|s|m|h|d|w))+$'",
    ]


def test_schema_accepts_a_complete_runbook() -> None:
    document = {
        "name": "web",
        "version": "1",
        "owner": "platform",
        "match": ['alertname="A"'],
        "target": {"kind": "Deployment", "namespace": "{{ labels.namespace }}", "name": "web"},
        "steps": [{"action": "scale", "params": {"replicas": 3, "min": 1, "max": 5}}],
        "guards": {"dry_run": True},
        "approval": {"required": True, "when": ["severity=critical"]},
        "verify": {"timeout": "1h30m"},
        "escalate": [{"action": "notify", "params": {"message": "help"}}],
        "tests": [
            {
                "name": "case",
                "alert": {"labels": {"alertname": "A"}},
                "expect": {"match": True, "refused": "invalid_name"},
            }
        ],
    }

    assert _errors(document) == []
