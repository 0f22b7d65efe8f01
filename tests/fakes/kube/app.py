"""The aiohttp application: path parsing, auth, RBAC deny list, fault injection, recording,
and dispatch of verbs to :class:`~.api.KubeApi` (or to :mod:`.discovery`). One catch-all route
serves everything."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import hdrs, web
from ruamel.yaml import YAML

from . import status as st
from .discovery import discover, is_discovery
from .faults import Decision
from .logs import TextBody
from .patch import APPLY_PATCH
from .recording import Request
from .resources import EVICTION, LOG, SCALE, STATUS, ResourceRegistry, ResourceType

if TYPE_CHECKING:
    from .server import FakeKube


@dataclass(frozen=True)
class Target:
    """A parsed resource path."""

    rt: ResourceType
    version: str
    namespace: str | None  # None: a list across all namespaces
    name: str | None
    subresource: str | None


def parse_path(registry: ResourceRegistry, path: str) -> Target:
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        raise st.no_such_resource()
    namespace: str | None = None
    # ``namespaces/{ns}/{plural}...`` is namespaced; ``namespaces/{name}/status`` is not.
    if len(rest) >= 3 and rest[0] == "namespaces" and registry.by_path(group, version, rest[2]):
        namespace, rest = rest[1], rest[2:]
    rt = registry.by_path(group, version, rest[0]) if rest else None
    if rt is None or not 1 <= len(rest) <= 3:
        raise st.no_such_resource()
    if not rt.namespaced:
        namespace = ""  # the store key of cluster-scoped objects
    elif namespace is None and len(rest) != 1:
        raise st.no_such_resource()
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else None
    return Target(rt, version, namespace, name, subresource)


def rbac_verb(method: str, target: Target) -> str:
    if method == "GET":
        return "get" if target.name else "list"
    if method == "DELETE":
        return "delete" if target.name else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


def _parse_body(raw: bytes, content_type: str | None) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        pass
    if content_type == APPLY_PATCH:
        try:
            return YAML(typ="safe").load(text)
        except Exception:
            return text
    return text


def status_response(error: st.KubeError) -> web.Response:
    return web.json_response(error.body(), status=error.code, headers=error.headers)


class KubeHttpApp:
    def __init__(self, fake: FakeKube) -> None:
        self.fake = fake

    def build(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        fake = self.fake
        raw = await request.read()
        content_type = request.headers.get(hdrs.CONTENT_TYPE)
        media_type = request.content_type if content_type else None
        body = _parse_body(raw, media_type)
        recorded = Request(
            method=request.method,
            path=request.path,
            query=dict(request.query.items()),
            content_type=content_type,
            body=body,
            response_status=None,
        )
        slot = fake._recorder.start(recorded)
        response_status: int | None = None
        fault: Decision | None = None
        try:
            latency = fake.faults.latency + fake._injector.latency_for(request.method, request.path)
            if latency > 0:
                await asyncio.sleep(latency)
            if request.headers.get(hdrs.AUTHORIZATION) != f"Bearer {fake.token}":
                response = status_response(st.unauthorized())
            else:
                fault = fake._injector.decide(request.method, request.path)
                query, method = recorded.query, request.method
                if fault is None:
                    response = self._serve(method, request.path, query, media_type, body)
                else:
                    if fault.apply_first:  # the write happens; its answer is lost below
                        self._serve(method, request.path, query, media_type, body)
                    if fault.drop:
                        if request.transport is not None:
                            request.transport.close()
                        return web.Response(status=499)  # never reaches the client
                    assert fault.status is not None
                    response = status_response(st.error_for_status(fault.status, fault.retry_after))
            response_status = response.status
            return response
        finally:
            fake._recorder.finish(slot, response_status, fault.label if fault else None)

    def _serve(
        self, method: str, path: str, query: dict[str, str], media_type: str | None, body: Any
    ) -> web.Response:
        try:
            code, payload = self._dispatch(method, path, query, media_type, body)
        except st.KubeError as error:
            return status_response(error)
        except Exception as exc:  # a bug in the fake: answer 500 and fail the test at shutdown
            self.fake._errors.append(exc)
            return status_response(st.internal_error(f"fake kube bug: {exc!r}"))
        if isinstance(payload, TextBody):
            return web.Response(text=payload.text, status=code, content_type=payload.content_type)
        return web.json_response(payload, status=code)

    def _dispatch(
        self, method: str, path: str, query: dict[str, str], media_type: str | None, body: Any
    ) -> tuple[int, Any]:
        fake, api = self.fake, self.fake.api
        parts = [p for p in path.split("/") if p]
        if method == "GET" and is_discovery(parts):
            return 200, discover(fake.registry, parts, (fake.url or "").split("://")[-1])
        target = parse_path(fake.registry, path)
        rt, version, ns = target.rt, target.version, target.namespace
        name, sub = target.name, target.subresource
        if fake.is_denied(rbac_verb(method, target), rt.plural, sub):
            raise st.forbidden(rt, rbac_verb(method, target), ns or "", name, sub)
        if query.get("watch") in ("true", "1"):
            raise st.bad_request("the fake API server does not support watch")
        if method in ("POST", "PUT", "PATCH") and isinstance(body, str):
            raise st.bad_request(f"couldn't get version/kind; json parse error: {body[:80]!r}")
        dry_run = query.get("dryRun") == "All"
        manager = query.get("fieldManager")
        labels, fields = query.get("labelSelector"), query.get("fieldSelector")
        if name is None:
            if method == "GET":
                page = _limit(query.get("limit")), query.get("continue")
                return 200, api.list(rt, version, ns, labels, fields, *page)
            if ns is not None and method == "POST":
                return 201, api.create(rt, version, ns, body, dry_run=dry_run)
            if ns is not None and method == "DELETE":
                options = _delete_options(query, body)
                return 200, api.delete_collection(
                    rt, version, ns, labels, fields, options, dry_run=dry_run
                )
            raise st.method_not_allowed(method)
        assert ns is not None
        if sub is None:
            if method == "GET":
                return 200, api.get(rt, version, ns, name)
            if method == "PUT":
                return 200, api.replace(rt, version, ns, name, body, dry_run=dry_run)
            if method == "PATCH":
                return 200, api.patch(
                    rt, version, ns, name, media_type, body, dry_run=dry_run, field_manager=manager
                )
            if method == "DELETE":
                options = _delete_options(query, body)
                return 200, api.delete(rt, version, ns, name, options, dry_run=dry_run)
            raise st.method_not_allowed(method)
        if not rt.has(sub):
            raise st.no_such_resource()
        if sub == STATUS:
            if method == "GET":
                return 200, api.get(rt, version, ns, name)
            if method == "PUT":
                return 200, api.replace_status(rt, version, ns, name, body, dry_run=dry_run)
            if method == "PATCH":
                return 200, api.patch_status(
                    rt, version, ns, name, media_type, body, dry_run=dry_run, field_manager=manager
                )
        elif sub == SCALE:
            if method == "GET":
                return 200, api.get_scale(rt, ns, name)
            if method == "PUT":
                return 200, api.replace_scale(rt, ns, name, body, dry_run=dry_run)
            if method == "PATCH":
                return 200, api.patch_scale(
                    rt, ns, name, media_type, body, dry_run=dry_run, field_manager=manager
                )
        elif sub == EVICTION and method == "POST":
            return 201, api.evict(rt, ns, name, body, dry_run=dry_run)
        elif sub == LOG and method == "GET":
            return 200, api.read_log(rt, ns, name, query)
        raise st.method_not_allowed(method)


def _delete_options(query: dict[str, str], body: Any) -> dict[str, Any]:
    options: dict[str, Any] = dict(body) if isinstance(body, dict) else {}
    if "propagationPolicy" in query:
        options["propagationPolicy"] = query["propagationPolicy"]
    if "gracePeriodSeconds" in query:
        options["gracePeriodSeconds"] = int(query["gracePeriodSeconds"])
    return options


def _limit(raw: str | None) -> int | None:
    """A list's ``limit``: absent or 0 means all, as on the real server."""
    if raw is None:
        return None
    try:
        limit = int(raw)
    except ValueError:
        raise st.bad_request(f"invalid limit {raw!r}: not an integer") from None
    return limit if limit > 0 else None
