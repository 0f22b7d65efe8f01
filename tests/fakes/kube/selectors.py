"""Label and field selectors: the query-string forms and the ``metav1.LabelSelector`` object."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Matcher = Callable[[Mapping[str, str]], bool]

_SET_RE = re.compile(r"^\s*(!?)\s*([^\s!=]+)\s+(in|notin)\s+\((.*)\)\s*$")


class SelectorError(ValueError):
    pass


def _split_top_level(selector: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def _requirement(term: str) -> Matcher:
    if match := _SET_RE.match(term):
        _, key, op, values_text = match.groups()
        values = {v.strip() for v in values_text.split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    for op in ("!=", "==", "="):
        if op in term:
            key, _, value = (s.strip() for s in term.partition(op))
            if not key:
                raise SelectorError(f"invalid label selector term {term!r}")
            if op == "!=":
                return lambda labels: labels.get(key) != value
            return lambda labels: key in labels and labels[key] == value
    if term.startswith("!"):
        key = term[1:].strip()
        return lambda labels: key not in labels
    if re.fullmatch(r"[A-Za-z0-9._/-]+", term):
        return lambda labels: term in labels
    raise SelectorError(f"invalid label selector term {term!r}")


def parse_label_selector(selector: str) -> Matcher:
    """``a=b,c!=d,e in (x,y),f notin (z),g,!h`` -> a predicate over a labels mapping."""
    requirements = [_requirement(term) for term in _split_top_level(selector)]
    return lambda labels: all(req(labels) for req in requirements)


def label_selector_matcher(selector: Mapping[str, Any] | None) -> Matcher:
    """A predicate for a ``metav1.LabelSelector`` object (``matchLabels``/``matchExpressions``).

    As in Kubernetes, an empty selector matches everything and ``None`` matches nothing.
    """
    if selector is None:
        return lambda labels: False
    return parse_label_selector(format_label_selector(selector))


def format_label_selector(selector: Mapping[str, Any]) -> str:
    """The string form of a ``metav1.LabelSelector`` (as in the Scale ``status.selector``)."""
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], sorted(expr.get("values") or [])
        if op == "In":
            terms.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            terms.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            terms.append(key)
        elif op == "DoesNotExist":
            terms.append(f"!{key}")
        else:
            raise SelectorError(f"unknown label selector operator {op!r}")
    return ",".join(terms)


def _field_value(obj: Mapping[str, Any], path: str) -> str:
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return ""
        node = node.get(part)
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


#: Field-selector names that are not the object's dotted path, per (group, plural).
FIELD_ALIASES: dict[tuple[str, str], dict[str, str]] = {
    ("", "events"): {"source": "source.component"},
}


def parse_field_selector(
    selector: str, aliases: Mapping[str, str] | None = None
) -> Callable[[Mapping[str, Any]], bool]:
    """``status.phase=Running,metadata.name!=x`` -> a predicate over a whole object.

    Any dotted path is accepted (the real server allows only a few per kind), e.g. for
    core/v1 events ``involvedObject.name=web-1,type=Warning``; ``aliases`` maps a selector
    name to the path it reads (events: ``source`` -> ``source.component``).
    """
    checks: list[tuple[str, bool, str]] = []
    for term in _split_top_level(selector):
        for op in ("!=", "==", "="):
            if op in term:
                path, _, value = (s.strip() for s in term.partition(op))
                path = (aliases or {}).get(path, path)
                checks.append((path, op == "!=", value))
                break
        else:
            raise SelectorError(f"invalid field selector term {term!r}")
    return lambda obj: all(
        (_field_value(obj, path) != value) if negate else (_field_value(obj, path) == value)
        for path, negate, value in checks
    )
