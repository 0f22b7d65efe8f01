"""The runbook JSON Schema, for editors (yaml-language-server) and review tooling."""

from __future__ import annotations

import json
from typing import Any

from remediator.models.runbook import Runbook

SCHEMA_ID = "https://remediator.io/schemas/runbook.json"


def runbook_schema() -> dict[str, Any]:
    schema = Runbook.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def runbook_schema_text() -> str:
    return json.dumps(runbook_schema(), indent=2, sort_keys=True) + "\n"
