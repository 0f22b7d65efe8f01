"""Pod logs: seeded lines per (namespace, pod, container, previous) and the
``GET .../pods/{name}/log`` verb with the API server's and kubelet's error answers.

Seed with :meth:`FakeKube.set_logs <tests.fakes.kube.server.FakeKube.set_logs>`. What the
endpoint answers, given the pod exists:

- ``container`` unset: the pod's only container; with several containers the real server
  refuses (400 ``a container name must be specified for pod P, choose one of: [a b]``).
- ``container`` not in the pod (init and ephemeral containers count): 400
  ``container X is not valid for pod P``.
- ``previous=true`` with nothing seeded as previous: 400
  ``previous terminated container "X" in pod "P" not found``.
- current logs not seeded: the empty string - unless the container's status is ``waiting``
  with no ``lastState.terminated``, which the kubelet refuses with 400
  ``container "X" in pod "P" is waiting to start: REASON``.
- ``tailLines=N``: the last N lines; ``limitBytes=N``: the first N bytes of the result;
  ``sinceSeconds``, ``sinceTime``, ``timestamps``, ``follow``, ``pretty`` and
  ``insecureSkipTLSVerifyBackend`` are accepted and ignored (a follow answers what is
  seeded and ends, like a container that has exited).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import status as st
from .resources import ResourceType

Json = dict[str, Any]
LogKey = tuple[str, str, str | None, bool]  # (namespace, pod, container or None, previous)

_TRUE = frozenset({"1", "t", "T", "true", "TRUE", "True"})  # Go strconv.ParseBool
_FALSE = frozenset({"0", "f", "F", "false", "FALSE", "False"})
_WAITING_DETAIL = {  # the kubelet's wording for the common pending failures
    "ErrImagePull": "image can't be pulled",
    "ImagePullBackOff": "trying and failing to pull image",
}


@dataclass(frozen=True)
class TextBody:
    """A ``text/plain`` answer (the app sends every other payload as JSON)."""

    text: str
    content_type: str = "text/plain"


def container_names(pod: Json) -> list[str]:
    """Init, regular, then ephemeral container names (the server's VisitContainers order)."""
    spec = pod.get("spec") or {}
    return [
        c.get("name", "")
        for field in ("initContainers", "containers", "ephemeralContainers")
        for c in spec.get(field) or []
    ]


def first_container(pod: Json) -> str | None:
    containers = (pod.get("spec") or {}).get("containers") or []
    return containers[0].get("name") if containers else None


class PodLogs:
    """Seeded log lines; ``container=None`` stands for the pod's first container."""

    def __init__(self) -> None:
        self._lines: dict[LogKey, list[str]] = {}

    def set(
        self,
        namespace: str,
        pod: str,
        lines: list[str],
        container: str | None = None,
        previous: bool = False,
    ) -> None:
        self._lines[(namespace, pod, container, previous)] = [_strip_newline(x) for x in lines]

    def clear(self) -> None:
        self._lines.clear()

    def lines(
        self,
        namespace: str,
        pod: Json | None,
        pod_name: str,
        container: str | None,
        previous: bool,
    ) -> list[str] | None:
        """The seeded lines for ``container`` (an explicit seed wins over a ``None`` one,
        which only the first container gets), or ``None`` if nothing was seeded."""
        explicit = self._lines.get((namespace, pod_name, container, previous))
        if explicit is not None:
            return list(explicit)
        if container is not None and pod is not None and container == first_container(pod):
            default = self._lines.get((namespace, pod_name, None, previous))
            if default is not None:
                return list(default)
        return None

    def read(
        self, pods: ResourceType, pod: Json | None, name: str, query: dict[str, str]
    ) -> TextBody:
        """Answer ``GET /api/v1/namespaces/{ns}/pods/{name}/log?{query}``."""
        if pod is None:
            raise st.not_found(pods, name)
        namespace = pod["metadata"]["namespace"]
        previous = _parse_bool(query, "previous")
        for flag in ("timestamps", "follow", "insecureSkipTLSVerifyBackend"):
            _parse_bool(query, flag)
        tail = _parse_int(pods, name, query, "tailLines", minimum=0)
        limit = _parse_int(pods, name, query, "limitBytes", minimum=1)
        _parse_int(pods, name, query, "sinceSeconds", minimum=1)
        container = _validate_container(pod, name, query.get("container") or "")
        lines = self.lines(namespace, pod, name, container, previous)
        if lines is None:
            if previous:
                raise st.bad_request(
                    f'previous terminated container "{container}" in pod "{name}" not found'
                )
            _check_waiting(pod, name, container)
            lines = []
        if tail is not None:
            lines = lines[len(lines) - tail :] if tail else []
        data = "".join(f"{line}\n" for line in lines).encode()
        if limit is not None:
            data = data[:limit]
        return TextBody(data.decode(errors="ignore"))


def _strip_newline(line: str) -> str:
    return line[:-1] if line.endswith("\n") else line


def _parse_bool(query: dict[str, str], key: str) -> bool:
    value = query.get(key)
    if value is None or value == "":
        return False
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise st.bad_request(f'strconv.ParseBool: parsing "{value}": invalid syntax')


def _parse_int(
    pods: ResourceType, name: str, query: dict[str, str], key: str, *, minimum: int
) -> int | None:
    value = query.get(key)
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise st.bad_request(f'strconv.ParseInt: parsing "{value}": invalid syntax') from None
    if number < minimum:
        detail = "must be greater than or equal to 0" if minimum == 0 else "must be greater than 0"
        raise st.invalid(pods, name, key, number, detail, kind="PodLogOptions")
    return number


def _validate_container(pod: Json, name: str, container: str) -> str:
    """k8s.io/kubernetes pkg/registry/core/pod ValidateContainer."""
    names = container_names(pod)
    if container:
        if container not in names:
            raise st.bad_request(f"container {container} is not valid for pod {name}")
        return container
    regular = [c.get("name", "") for c in (pod.get("spec") or {}).get("containers") or []]
    if len(regular) == 1:
        return regular[0]
    if not regular:
        raise st.bad_request(f"pod {name} does not have a container")
    raise st.bad_request(
        f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
    )


def _check_waiting(pod: Json, name: str, container: str) -> None:
    """The kubelet's refusal to read a container that never ran (no logs were seeded)."""
    status = pod.get("status") or {}
    statuses = [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
        *(status.get("ephemeralContainerStatuses") or []),
    ]
    for cs in statuses:
        if cs.get("name") != container:
            continue
        waiting = (cs.get("state") or {}).get("waiting")
        if waiting is not None and not (cs.get("lastState") or {}).get("terminated"):
            reason = waiting.get("reason") or ""
            detail = _WAITING_DETAIL.get(reason, reason)
            raise st.bad_request(
                f'container "{container}" in pod "{name}" is waiting to start: {detail}'
            )
        return
