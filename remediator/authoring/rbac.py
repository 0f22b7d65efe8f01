"""``remediator rbac``: the least-privilege RBAC the enabled actions need.

Rules come from each action's declared ``rbac``; the same verbs on the same resources
are merged, so the output is what a reviewer would write by hand, and nothing more.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from ruamel.yaml import YAML

from remediator.actions.base import Action, LiveAction, PolicyRule
from remediator.context.capture import RBAC as CONTEXT_RULES


def merged_rules(
    actions: Iterable[Action], extra: Iterable[PolicyRule] = ()
) -> list[dict[str, list[str]]]:
    rules = [r for a in actions if isinstance(a, LiveAction) for r in a.rbac]
    verbs: dict[tuple[str, str], set[str]] = {}
    for rule in (*rules, *extra):
        for group in rule.api_groups:
            for resource in rule.resources:
                verbs.setdefault((group, resource), set()).update(rule.verbs)
    by_verbs: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for (group, resource), vs in sorted(verbs.items()):
        by_verbs.setdefault((group, tuple(sorted(vs))), []).append(resource)
    return [
        {"apiGroups": [group], "resources": resources, "verbs": list(vs)}
        for (group, vs), resources in sorted(by_verbs.items())
    ]


def manifest(
    actions: Iterable[Action],
    *,
    kind: str,
    name: str,
    namespace: str | None,
    context: bool = False,
) -> str:
    """A Role (namespaced) or ClusterRole manifest as YAML."""
    metadata: dict[str, Any] = {"name": name}
    if kind == "Role" and namespace:
        metadata["namespace"] = namespace
    doc = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": metadata,
        "rules": merged_rules(actions, CONTEXT_RULES if context else ()),
    }
    out = io.StringIO()
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.dump(doc, out)
    return out.getvalue()
