"""``metav1.Status`` bodies, shaped like the real API server's (k8s.io/apimachinery errors)."""

from __future__ import annotations

from typing import Any

from .resources import ResourceType

Json = dict[str, Any]


class KubeError(Exception):
    """Raised anywhere in request handling; the app turns it into a Status response."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: Json | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def body(self) -> Json:
        return failure(self.code, self.reason, self.message, self.details)


def failure(code: int, reason: str, message: str, details: Json | None = None) -> Json:
    body: Json = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


def success(code: int = 200, details: Json | None = None) -> Json:
    body: Json = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


def _details(rt: ResourceType, name: str, *, kind: str | None = None) -> Json:
    details: Json = {"name": name}
    if rt.group:
        details["group"] = rt.group
    details["kind"] = kind or rt.plural
    return details


def not_found(rt: ResourceType, name: str) -> KubeError:
    return KubeError(404, "NotFound", f'{rt.qualified} "{name}" not found', _details(rt, name))


def no_such_resource() -> KubeError:
    return KubeError(404, "NotFound", "the server could not find the requested resource", {})


def already_exists(rt: ResourceType, name: str) -> KubeError:
    return KubeError(
        409, "AlreadyExists", f'{rt.qualified} "{name}" already exists', _details(rt, name)
    )


def conflict(rt: ResourceType, name: str) -> KubeError:
    message = (
        f'Operation cannot be fulfilled on {rt.qualified} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again"
    )
    return KubeError(409, "Conflict", message, _details(rt, name))


def precondition_failed(rt: ResourceType, name: str, what: str) -> KubeError:
    message = (
        f'Operation cannot be fulfilled on {rt.qualified} "{name}": Precondition failed: {what}'
    )
    return KubeError(409, "Conflict", message, _details(rt, name))


def invalid(
    rt: ResourceType, name: str, field: str, value: Any, detail: str, *, kind: str | None = None
) -> KubeError:
    """422 Invalid with one FieldValueInvalid cause. ``kind`` overrides the qualified kind,
    e.g. ``Scale.autoscaling`` for writes to the scale subresource."""
    qualified = kind or rt.qualified_kind
    kind_name, _, group = qualified.partition(".")
    shown = f'"{value}"' if isinstance(value, str) else _go_repr(value)
    cause_message = f"Invalid value: {shown}: {detail}"
    details: Json = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = kind_name
    details["causes"] = [{"reason": "FieldValueInvalid", "message": cause_message, "field": field}]
    message = f'{qualified} "{name}" is invalid: {field}: {cause_message}'
    return KubeError(422, "Invalid", message, details)


def _go_repr(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def bad_request(message: str) -> KubeError:
    return KubeError(400, "BadRequest", message)


def unsupported_media_type(accepted: list[str]) -> KubeError:
    message = (
        "the body of the request was in an unknown format - accepted media types include: "
        + ", ".join(accepted)
    )
    return KubeError(415, "UnsupportedMediaType", message, {})


def method_not_allowed(method: str) -> KubeError:
    return KubeError(
        405,
        "MethodNotAllowed",
        f"the server does not allow this method ({method}) on the requested resource",
        {},
    )


def unauthorized() -> KubeError:
    return KubeError(401, "Unauthorized", "Unauthorized")


def forbidden(
    rt: ResourceType, verb: str, namespace: str, name: str | None, subresource: str | None
) -> KubeError:
    resource = f"{rt.plural}/{subresource}" if subresource else rt.plural
    subject = f'{rt.qualified} "{name}"' if name else rt.qualified
    message = (
        f'{subject} is forbidden: User "system:serviceaccount:remediator:remediator" cannot '
        f'{verb} resource "{resource}" in API group "{rt.group}" in the namespace "{namespace}"'
    )
    return KubeError(403, "Forbidden", message, _details(rt, name or ""))


def too_many_requests(retry_after: int | None) -> KubeError:
    details: Json = {}
    headers: dict[str, str] = {}
    if retry_after:
        details["retryAfterSeconds"] = retry_after
        headers["Retry-After"] = str(retry_after)
    return KubeError(
        429, "TooManyRequests", "Too many requests, please try again later.", details, headers
    )


def internal_error(message: str = "fake kube injected an internal error") -> KubeError:
    return KubeError(
        500,
        "InternalError",
        f"Internal error occurred: {message}",
        {"causes": [{"message": message}]},
    )


def service_unavailable(retry_after: int | None = None) -> KubeError:
    headers = {"Retry-After": str(retry_after)} if retry_after else {}
    return KubeError(
        503,
        "ServiceUnavailable",
        "the server is currently unable to handle the request",
        {},
        headers,
    )


def error_for_status(code: int, retry_after: int | None = None) -> KubeError:
    """The canned error a scripted ``fail_next(status=code)`` answers with."""
    if code == 429:
        return too_many_requests(retry_after)
    if code == 500:
        return internal_error()
    if code == 503:
        return service_unavailable(retry_after)
    if code == 504:
        return KubeError(
            504, "Timeout", "Timeout: request did not complete within the allotted timeout", {}
        )
    if code == 401:
        return unauthorized()
    if code == 403:
        return KubeError(403, "Forbidden", "forbidden: injected by fake kube", {})
    if code == 409:
        return KubeError(409, "Conflict", "Operation cannot be fulfilled: injected conflict", {})
    return KubeError(code, "Unknown", f"fake kube injected status {code}", {})
