"""``/api/v1/approvals``: the non-Slack path to the same decisions, with the same rules.

The caller authenticates with the API credentials and names the person deciding
(``by``, a Slack user id); only listed approvers count, exactly as for a click.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import ValidationError

from remediator.keys import APPROVER, CLOCK, ENGINE, METRICS
from remediator.models.approval import ApprovalOut, DecisionIn, DecisionOut
from remediator.models.ids import ID_PATTERN
from remediator.pipeline import approve
from remediator.store import approvals
from remediator.web.errors import error

STATUS = {
    "approved": 200,
    "rejected": 200,
    "recorded": 202,
    "unknown": 404,
    "not_approver": 403,
    "not_pending": 409,
    "expired": 409,
}


async def get_approval(request: web.Request) -> web.Response:
    approval_id = request.match_info["approval_id"]
    if not ID_PATTERN.fullmatch(approval_id):
        return error(404, f"no approval {approval_id}")
    async with request.app[ENGINE].connect() as conn:
        approval = await approvals.get(conn, approval_id)
    if approval is None:
        return error(404, f"no approval {approval_id}")
    body = ApprovalOut.model_validate(approval, from_attributes=True)
    return web.json_response(body.model_dump(mode="json"))


async def decide(request: web.Request) -> web.Response:
    approval_id, decision = request.match_info["approval_id"], request.match_info["decision"]
    if not ID_PATTERN.fullmatch(approval_id):
        return error(404, f"no approval {approval_id}")
    try:
        body = DecisionIn.model_validate_json(await request.read())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        return error(400, f"{where}: {first['msg']}", where)
    app = request.app
    outcome = await approve.decide(app[ENGINE], approval_id, body.by, decision, "api", app[CLOCK]())
    app[METRICS].approvals.labels(outcome.kind).inc()
    await approve.show(app[ENGINE], app[APPROVER], outcome)
    answer = DecisionOut(outcome=outcome.kind, message=outcome.message)
    return web.json_response(answer.model_dump(), status=STATUS[outcome.kind])
