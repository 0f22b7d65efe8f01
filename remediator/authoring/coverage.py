"""``remediator lint --rules DIR RUNBOOKS``: do the alerting rules and the runbooks fit?

Three checks, one ``file:line: subject: message`` line per problem:

1. Every alerting rule meant for remediation is matched by some runbook. A rule is meant
   for remediation when its ``labels:`` set ``remediation: "true"`` (the same label an
   Alertmanager route uses to send those alerts to remediator); other rules (alerts
   about remediator itself, alerts for people) are not checked.
2. Every runbook is reached by some remediation rule.
3. Every ``labels.X`` a runbook's templates (target and step/escalate parameters) need is
   set by every remediation rule that reaches it, and every ``annotations.X`` is one of
   the rule's annotations. A use wrapped in ``| default(...)`` (or tested with
   ``is defined``, or ``labels.get(...)``) is optional and not checked. Likewise every
   label an ``approval.when`` matcher reads: a ``when`` on a label the alert lacks would
   quietly decide whether a person is asked.

Which labels an alert carries. The rule's own ``labels:`` give exact values (and
``alertname`` is the rule's name). The labels its expression yields are read from the
promtool unit tests in DIR (any ``*.yaml`` with ``rule_files:`` and ``tests:``, usually
``DIR/tests/``): the ``exp_labels`` of every ``exp_alerts`` entry for that alert name
whose rule file is the rule's and whose values agree with the rule's ``labels:``. promtool
compares those label sets exactly, so the names are the real ones for the tested inputs;
a label present in every such entry is *always* set, one present in some of them only
*sometimes*. Parsing PromQL for ``by (...)`` clauses would guess; the tests know. A
remediation rule without such a test is itself a problem (nothing says what it yields).

Matching without a real alert. A runbook matcher on a label the rule fixes is evaluated
exactly. A matcher on a label the expression yields sees an unknown value, which is never
empty (Prometheus drops empty labels), and is assumed satisfiable unless no non-empty
value can satisfy it: ``="..."`` and ``=~"..."`` match unless they ask for ``""``,
``!=`` always may, and ``!~`` may unless its regex is ``.*`` or ``.+``. A label the rule
never sets is absent, which Alertmanager matchers read as ``""``. So a rule reaches a
runbook when some alert it could fire satisfies every matcher: typos in alert names,
labels nobody sets and ``=~".+"`` guards are caught; a regex on a yielded value is not
second-guessed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from remediator.models.runbook import Runbook
from remediator.runbooks.loader import LoadedRunbook, RunbookSet
from remediator.runbooks.matchers import Matcher, MatchType
from remediator.runbooks.templating import is_template

REMEDIATION_LABEL = "remediation"
REMEDIATION_VALUE = "true"
TEMPLATE_VARIABLES = ("labels", "annotations")

_MATCH_EVERYTHING = frozenset({".*", ".+", "(?s).*", "(?s).+"})
_OPTIONAL_FILTERS = frozenset({"default", "d"})
_OPTIONAL_TESTS = frozenset({"defined", "undefined"})
_PARSER = ImmutableSandboxedEnvironment()

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class AlertRule:
    """One alerting rule, with what its alerts are known to carry."""

    name: str
    path: Path
    line: int
    remediation: bool
    fixed: Mapping[str, str]  # alertname and the rule's literal labels: exact values
    always: frozenset[str]  # labels every tested alert carried (or templated rule labels)
    sometimes: frozenset[str]  # labels only some tested alerts carried
    annotations: frozenset[str]
    tested: bool

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def sets(self, label: str) -> bool:
        """Whether every alert of this rule carries ``label``."""
        return label in self.fixed or label in self.always

    def may_satisfy(self, matcher: Matcher) -> bool:
        """Whether some alert of this rule could satisfy ``matcher`` (see module doc)."""
        name = matcher.name
        if name in self.fixed:
            return matcher.matches({name: self.fixed[name]})
        if name in self.always:
            return _some_value_may_match(matcher)
        absent = matcher.matches({})
        if name in self.sometimes:
            return absent or _some_value_may_match(matcher)
        return absent

    def reaches(self, runbook: LoadedRunbook) -> bool:
        return all(self.may_satisfy(m) for m in runbook.matchers)


@dataclass(frozen=True)
class TemplateUse:
    """``labels.X`` or ``annotations.X`` required by the template at ``loc``."""

    variable: str  # "labels" or "annotations"
    key: str
    loc: Loc  # e.g. ("target", "name") or ("steps", 0, "params", "message")

    def __str__(self) -> str:
        return f"{self.variable}.{self.key}"


@dataclass(frozen=True)
class CoverageReport:
    problems: tuple[str, ...]
    rules: tuple[AlertRule, ...]  # every alerting rule found
    runbooks: int

    @property
    def remediation_rules(self) -> tuple[AlertRule, ...]:
        return tuple(r for r in self.rules if r.remediation)


def check_coverage(rules_dir: Path, runbooks: RunbookSet) -> CoverageReport:
    """The three checks of the module docstring, for ``rules_dir`` against ``runbooks``."""
    rules, problems = load_rules(rules_dir)
    problems.extend(coverage_problems(rules, runbooks.runbooks, rules_dir))
    return CoverageReport(tuple(problems), tuple(rules), len(runbooks.runbooks))


def coverage_problems(
    rules: Sequence[AlertRule], runbooks: Sequence[LoadedRunbook], rules_dir: Path
) -> list[str]:
    problems: list[str] = []
    remediation = [r for r in rules if r.remediation]
    for rule in remediation:
        if not rule.tested:
            problems.append(
                f"{rule.where}: {rule.name}: no promtool test in {rules_dir} shows the labels "
                "it fires with (add an alert_rule_test with exp_alerts for it)"
            )
        if not any(rule.reaches(runbook) for runbook in runbooks):
            problems.append(f"{rule.where}: {rule.name}: not matched by any runbook")
    for runbook in runbooks:
        reaching = [rule for rule in remediation if rule.reaches(runbook)]
        name = runbook.spec.name
        if not reaching:
            problems.append(
                f"{runbook.path}:{runbook.name_line}: runbook {name}: "
                f"not reached by any remediation rule in {rules_dir}"
            )
            continue
        lines = _FieldLines(runbook)
        tested = [rule for rule in reaching if rule.tested]  # untested: already reported
        for use in template_uses(runbook.spec):
            for rule in tested:
                missing = _missing(use, rule)
                if missing:
                    problems.append(
                        f"{runbook.path}:{lines.line(use.loc)}: runbook {name}: uses {use}, "
                        f"{missing} {rule.name} ({rule.where})"
                    )
        if not runbook.spec.approval.required:
            continue
        for index, matcher in enumerate(runbook.approval_when):
            for rule in tested:
                if not rule.sets(matcher.name):
                    loc = ("approval", "when", index)
                    problems.append(
                        f"{runbook.path}:{lines.line(loc)}: runbook {name}: approval.when "
                        f"{matcher} reads label {matcher.name}, not always set by rule "
                        f"{rule.name} ({rule.where})"
                    )
    return problems


def _missing(use: TemplateUse, rule: AlertRule) -> str | None:
    if use.variable == "annotations":
        return None if use.key in rule.annotations else "not an annotation of rule"
    if rule.sets(use.key):
        return None
    if use.key in rule.sometimes:
        return "set only by some tested alerts of rule"
    return "not set by rule"


def _some_value_may_match(matcher: Matcher) -> bool:
    """Whether a matcher may hold for a label with an unknown, non-empty value."""
    if matcher.op in (MatchType.EQUAL, MatchType.REGEX):
        return matcher.value != ""
    if matcher.op is MatchType.NOT_REGEX:
        return matcher.value not in _MATCH_EVERYTHING
    return True


# --- rule and promtool test files ----------------------------------------------------------


@dataclass(frozen=True)
class _RawRule:
    name: str
    path: Path
    line: int
    labels: Mapping[str, str]
    annotations: frozenset[str]


def load_rules(directory: Path) -> tuple[list[AlertRule], list[str]]:
    """Every alerting rule in ``directory``'s rule files, with the labels its tests show.

    Rule files (``groups:``) and promtool test files (``rule_files:``/``tests:``) are
    told apart by content, anywhere under ``directory``. Returns the rules and the
    problems met (unreadable files, files that are neither).
    """
    if not directory.is_dir():
        return [], [f"{directory}: rules directory does not exist"]
    problems: list[str] = []
    raw: list[_RawRule] = []
    examples: dict[tuple[Path, str], list[dict[str, str]]] = {}
    for path in sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml")):
        if not path.is_file():
            continue
        tree = _read_yaml(path, problems)
        if tree is None:
            continue
        if isinstance(tree, dict) and "groups" in tree:
            raw.extend(_rules_of(path, tree, problems))
        elif isinstance(tree, dict) and ("rule_files" in tree or "tests" in tree):
            for key, labels in _examples_of(path, tree):
                examples.setdefault(key, []).append(labels)
        else:
            problems.append(
                f"{path}:1: neither a rule file (groups:) nor a promtool test file "
                "(rule_files:, tests:)"
            )
    rules = [_with_labels(r, examples.get((r.path.resolve(), r.name), [])) for r in raw]
    return rules, problems


def _read_yaml(path: Path, problems: list[str]) -> Any:
    try:
        return YAML(typ="rt").load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}:1: cannot read: {exc}")
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problems.append(f"{path}:{line}: not valid YAML: {getattr(exc, 'problem', None) or exc}")
    except (RecursionError, ValueError, TypeError) as exc:
        problems.append(f"{path}:1: not valid YAML: {type(exc).__name__}: {exc}")
    return None


def _rules_of(path: Path, tree: Mapping[str, Any], problems: list[str]) -> Iterator[_RawRule]:
    groups = tree.get("groups")
    if not isinstance(groups, list):
        problems.append(f"{path}:{_key_line(tree, 'groups')}: groups: must be a list")
        return
    for group in groups:
        rules = group.get("rules") if isinstance(group, dict) else None
        if not isinstance(rules, list):
            continue  # promtool check rules reports malformed groups
        for index, rule in enumerate(rules):
            if not isinstance(rule, dict) or "alert" not in rule:
                continue  # recording rules yield no alerts
            labels = rule.get("labels") or {}
            annotations = rule.get("annotations") or {}
            yield _RawRule(
                name=str(rule["alert"]),
                path=path,
                line=_item_line(rules, index),
                labels={str(k): str(v) for k, v in labels.items()}
                if isinstance(labels, dict)
                else {},
                annotations=frozenset(str(k) for k in annotations)
                if isinstance(annotations, dict)
                else frozenset(),
            )


def _examples_of(
    path: Path, tree: Mapping[str, Any]
) -> Iterator[tuple[tuple[Path, str], dict[str, str]]]:
    """``((rule file, alertname), exp_labels)`` for every expected alert of a test file."""
    rule_files = [
        match.resolve()
        for pattern in _strings(tree.get("rule_files"))
        for match in _glob(path.parent, pattern)
    ]
    for test in _dicts(tree.get("tests")):
        for case in _dicts(test.get("alert_rule_test")):
            alertname = case.get("alertname")
            if not isinstance(alertname, str):
                continue
            for expected in _dicts(case.get("exp_alerts")):
                labels = expected.get("exp_labels") or {}
                if not isinstance(labels, dict):
                    continue
                shown = {str(k): str(v) for k, v in labels.items() if str(k) != "alertname"}
                for rule_file in rule_files:
                    yield (rule_file, alertname), shown


def _glob(base: Path, pattern: str) -> list[Path]:
    """Files matching ``pattern`` (relative to ``base`` or absolute), as promtool finds them."""
    full = Path(os.path.normpath(base / pattern))
    relative = full.relative_to(full.anchor)
    if not relative.parts:
        return []
    return sorted(p for p in Path(full.anchor).glob(str(relative)) if p.is_file())


def _with_labels(rule: _RawRule, examples: Sequence[Mapping[str, str]]) -> AlertRule:
    literal = {k: v for k, v in rule.labels.items() if not is_template(v)}
    templated = frozenset(k for k, v in rule.labels.items() if is_template(v))
    mine = [e for e in examples if all(e.get(k) == v for k, v in literal.items())]
    names = [frozenset(e).difference(literal) for e in mine]
    always = frozenset.intersection(*names) if names else frozenset()
    everywhere = frozenset().union(*names) if names else frozenset()
    return AlertRule(
        name=rule.name,
        path=rule.path,
        line=rule.line,
        remediation=literal.get(REMEDIATION_LABEL) == REMEDIATION_VALUE,
        fixed={"alertname": rule.name, **literal},
        always=always | templated,
        sometimes=everywhere - always - templated,
        annotations=rule.annotations,
        tested=bool(mine),
    )


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _dicts(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _item_line(seq: Any, index: int) -> int:
    try:
        return int(seq.lc.item(index)[0]) + 1
    except (AttributeError, KeyError, IndexError, TypeError):
        return 1


def _key_line(mapping: Any, key: str) -> int:
    try:
        return int(mapping.lc.key(key)[0]) + 1
    except (AttributeError, KeyError, IndexError, TypeError):
        return 1


# --- template uses -------------------------------------------------------------------------


def template_uses(runbook: Runbook) -> list[TemplateUse]:
    """The ``labels.X``/``annotations.X`` a runbook's templates cannot do without.

    Looked up in the templates' syntax trees: attribute (``labels.deployment``) and
    constant-subscript (``labels['deployment']``) access on the variables ``labels`` and
    ``annotations``, except where ``| default(...)``, ``is defined`` or a method call
    (``labels.get('x')``) make the value optional.
    """
    found: list[TemplateUse] = []
    for field in ("kind", "namespace", "name"):
        found.extend(_uses(getattr(runbook.target, field), ("target", field)))
    for section in ("steps", "escalate"):
        for index, step in enumerate(getattr(runbook, section)):
            found.extend(_uses(step.params, (section, index, "params")))
    return list(dict.fromkeys(found))


def _uses(value: Any, loc: Loc) -> Iterator[TemplateUse]:
    if isinstance(value, str):
        if not is_template(value):
            return
        try:
            tree = _PARSER.parse(value)
        except TemplateSyntaxError:
            return  # the loader reports it
        for variable, key in _required(tree, None):
            yield TemplateUse(variable, key, loc)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _uses(item, (*loc, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _uses(item, (*loc, index))


def _required(node: nodes.Node, parent: nodes.Node | None) -> Iterator[tuple[str, str]]:
    lookup = _lookup(node)
    if lookup is not None and not _optional(node, parent):
        yield lookup
    for child in node.iter_child_nodes():
        yield from _required(child, node)


def _lookup(node: nodes.Node) -> tuple[str, str] | None:
    if isinstance(node, nodes.Getattr):
        base, key = node.node, node.attr
    elif (
        isinstance(node, nodes.Getitem)
        and isinstance(node.arg, nodes.Const)
        and isinstance(node.arg.value, str)
    ):
        base, key = node.node, node.arg.value
    else:
        return None
    if isinstance(base, nodes.Name) and base.name in TEMPLATE_VARIABLES:
        return base.name, key
    return None


def _optional(node: nodes.Node, parent: nodes.Node | None) -> bool:
    if isinstance(parent, nodes.Filter):
        return parent.node is node and parent.name in _OPTIONAL_FILTERS
    if isinstance(parent, nodes.Test):
        return parent.node is node and parent.name in _OPTIONAL_TESTS
    if isinstance(parent, nodes.Call):
        return parent.node is node  # labels.get(...): a method, not a label
    return False


class _FieldLines:
    """Lines of a runbook file's fields, read only when a problem needs one."""

    def __init__(self, runbook: LoadedRunbook) -> None:
        self._runbook = runbook
        self._tree: Any = None
        self._read = False

    def line(self, loc: Iterable[str | int]) -> int:
        if not self._read:
            self._read = True
            try:
                self._tree = YAML(typ="rt").load(self._runbook.path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, YAMLError, ValueError, TypeError):
                self._tree = None
        line, node = self._runbook.name_line, self._tree
        for part in loc:
            if isinstance(node, dict) and isinstance(part, str) and part in node:
                line, node = _key_line(node, part), node[part]
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                line, node = _item_line(node, part), node[part]
            else:
                break
        return line
