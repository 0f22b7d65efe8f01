"""The OpenAPI 3.1 document of the JSON API, generated from the pydantic models it serves."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic.json_schema import models_json_schema

from remediator import __version__
from remediator.models.alert import Notification
from remediator.models.approval import ApprovalOut, DecisionIn, DecisionOut
from remediator.models.incident import ErrorBody, IncidentDetail, IncidentPage

REF = "#/components/schemas/{model}"


def _json(ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(model=ref)}}},
    }


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def document() -> dict[str, Any]:
    _, schemas = models_json_schema(
        [
            (m, "validation")
            for m in (
                Notification,
                IncidentPage,
                IncidentDetail,
                ErrorBody,
                ApprovalOut,
                DecisionIn,
                DecisionOut,
            )
        ],
        ref_template=REF,
    )
    err = {
        code: _json("ErrorBody", text)
        for code, text in (
            ("400", "Malformed or invalid request; `field` names the problem."),
            ("401", "Missing or wrong credentials."),
        )
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "remediator",
            "version": __version__,
            "description": "Alertmanager-driven remediation: webhook and incident timeline.",
        },
        "components": {
            "schemas": schemas["$defs"],
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
            },
        },
        "security": [{"bearer": []}, {"basic": []}],
        "paths": {
            "/api/v1/alerts": {
                "post": {
                    "summary": "Alertmanager webhook (v4)",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": REF.format(model="Notification")}
                            }
                        },
                    },
                    "responses": {
                        "200": {"description": "Stored durably."},
                        **err,
                        "413": _json("ErrorBody", "Body larger than server.max_body_bytes."),
                        "503": _json("ErrorBody", "Store unavailable; Alertmanager retries."),
                    },
                }
            },
            "/api/v1/incidents": {
                "get": {
                    "summary": "Incidents, newest first",
                    "parameters": [
                        _query("status", "open or resolved", {"enum": ["open", "resolved"]}),
                        _query("runbook", "Matched runbook name", {"type": "string"}),
                        _query("namespace", "Alert namespace label", {"type": "string"}),
                        _query("alertname", "Alert name", {"type": "string"}),
                        _query("team", "Owning team", {"type": "string"}),
                        _query(
                            "since",
                            "Opened at or after: an ISO date or date and time (UTC unless "
                            "it carries an offset)",
                            {"type": "string", "examples": ["2025-05-01", "2025-05-01T10:00Z"]},
                        ),
                        _query(
                            "until",
                            "Opened before: an ISO date (that whole day included) or date and time",
                            {"type": "string", "examples": ["2025-05-02"]},
                        ),
                        _query(
                            "limit",
                            "Page size",
                            {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                        ),
                        _query("cursor", "next_cursor of the previous page", {"type": "string"}),
                    ],
                    "responses": {"200": _json("IncidentPage", "A page of incidents."), **err},
                }
            },
            "/api/v1/incidents/{incident_id}": {
                "get": {
                    "summary": "One incident with its timeline",
                    "parameters": [
                        {
                            "name": "incident_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": _json("IncidentDetail", "The incident."),
                        **err,
                        "404": _json("ErrorBody", "No such incident."),
                    },
                }
            },
            "/api/v1/approvals/{approval_id}": {
                "get": {
                    "summary": "One approval request and its state",
                    "parameters": [_path("approval_id")],
                    "responses": {
                        "200": _json("ApprovalOut", "The approval."),
                        **err,
                        "404": _json("ErrorBody", "No such approval."),
                    },
                }
            },
            "/api/v1/approvals/{approval_id}/{decision}": {
                "post": {
                    "summary": "Approve or reject, with the same rules as the Slack buttons",
                    "parameters": [
                        _path("approval_id"),
                        {
                            "name": "decision",
                            "in": "path",
                            "required": True,
                            "schema": {"enum": ["approve", "reject"]},
                        },
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": REF.format(model="DecisionIn")}}
                        },
                    },
                    "responses": {
                        "200": _json("DecisionOut", "Approved or rejected."),
                        "202": _json("DecisionOut", "Vote recorded; more approvals needed."),
                        **err,
                        "403": _json("DecisionOut", "`by` is not an approver."),
                        "404": _json("DecisionOut", "No such approval."),
                        "409": _json("DecisionOut", "Already decided or expired."),
                    },
                }
            },
        },
    }


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


async def serve(request: web.Request) -> web.Response:
    return web.json_response(document())
