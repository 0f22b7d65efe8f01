"""Load ``runbooks/*.yaml`` into a validated, compiled, indexed set.

Every problem is reported as ``file:line: field: message`` and the whole directory is
checked before anything is returned, so an author sees all mistakes in one lint run
and a half-valid set can never be installed.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from jinja2 import Template, TemplateSyntaxError
from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from remediator.actions.registry import Registry
from remediator.errors import RunbookError
from remediator.models.runbook import Runbook, Step
from remediator.runbooks.index import AlertnameIndex
from remediator.runbooks.matchers import Matcher, MatcherError, parse_matcher
from remediator.runbooks.templating import Compiled, compile_text, compile_value, is_template

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class CompiledStep:
    action: str
    params: Compiled
    where: str  # e.g. "steps[0]", used in error messages


@dataclass(frozen=True)
class LoadedRunbook:
    spec: Runbook
    path: Path
    matchers: tuple[Matcher, ...]
    approval_when: tuple[Matcher, ...]
    kind: Template | str
    namespace: Template | str
    name: Template | str
    steps: tuple[CompiledStep, ...]
    escalate: tuple[CompiledStep, ...]
    name_line: int = 1

    @property
    def ident(self) -> str:
        return f"{self.spec.name}@{self.spec.version}"


@dataclass(frozen=True)
class RunbookSet:
    """An immutable, validated set of runbooks; swapped whole on reload."""

    runbooks: tuple[LoadedRunbook, ...]
    index: AlertnameIndex[LoadedRunbook]
    directory: Path
    commit: str | None

    def match(self, labels: Mapping[str, str]) -> list[LoadedRunbook]:
        return self.index.match(labels)

    def named(self, name: str) -> LoadedRunbook | None:
        return next((r for r in self.runbooks if r.spec.name == name), None)


class _Problems:
    """Collects ``file:line: field: message`` lines against one parsed YAML document."""

    def __init__(self, path: Path, tree: Any) -> None:
        self.path = path
        self.tree = tree
        self.lines: list[str] = []

    def add(self, loc: Loc, message: str) -> None:
        field = ".".join(str(p) for p in loc) or "(top level)"
        self.lines.append(f"{self.path}:{_line_of(self.tree, loc)}: {field}: {message}")


def _line_of(tree: Any, loc: Loc) -> int:
    """1-based line of the deepest node of ``loc`` that exists in the YAML tree."""
    line, node = 1, tree
    for part in loc:
        lc = getattr(node, "lc", None)
        try:
            if isinstance(node, dict) and part in node:
                line = lc.key(part)[0] + 1 if lc else line
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                line = lc.item(part)[0] + 1 if lc else line
            else:
                break
        except (KeyError, IndexError, TypeError):
            break
        node = node[part]
    return line


def _plain(value: Any) -> Any:
    """ruamel's round-trip nodes as plain Python values for pydantic."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    for kind in (int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


def load_file(path: Path, actions: Registry) -> LoadedRunbook:
    """Parse and validate one runbook file; raises RunbookError naming file and line."""
    try:
        tree = YAML(typ="rt").load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise RunbookError([f"{path}:1: cannot read: {exc}"]) from exc
    except (RecursionError, ValueError, TypeError) as exc:
        # The parser's own limits (absurd nesting, odd scalars): still just a bad file.
        raise RunbookError([f"{path}:1: not valid YAML: {type(exc).__name__}: {exc}"]) from exc
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        what = (
            " ".join(
                str(part)
                for part in (getattr(exc, "context", None), getattr(exc, "problem", None))
                if part
            )
            or type(exc).__name__
        )
        raise RunbookError([f"{path}:{line}: not valid YAML: {what}"]) from exc
    problems = _Problems(path, tree)
    if not isinstance(tree, dict):
        problems.add((), "a runbook file must be a YAML mapping")
        raise RunbookError(problems.lines)
    try:
        spec = Runbook.model_validate(_plain(tree))
    except ValidationError as exc:
        for err in exc.errors():
            problems.add(tuple(err["loc"]), err["msg"])
        raise RunbookError(problems.lines) from None
    loaded = _compile(spec, path, actions, problems)
    if problems.lines or loaded is None:
        raise RunbookError(problems.lines)
    return replace(loaded, name_line=_line_of(tree, ("name",)))


def _compile(
    spec: Runbook, path: Path, actions: Registry, problems: _Problems
) -> LoadedRunbook | None:
    matchers = _matchers(spec.match, ("match",), problems)
    approval_when = _matchers(spec.approval.when, ("approval", "when"), problems)
    target = {
        field: _template(getattr(spec.target, field), ("target", field), problems)
        for field in ("kind", "namespace", "name")
    }
    steps = _steps(spec.steps, "steps", spec, actions, problems)
    escalate = _steps(spec.escalate, "escalate", spec, actions, problems)
    if problems.lines:
        return None
    return LoadedRunbook(
        spec=spec,
        path=path,
        matchers=matchers,
        approval_when=approval_when,
        kind=target["kind"],
        namespace=target["namespace"],
        name=target["name"],
        steps=steps,
        escalate=escalate,
    )


def _matchers(texts: Sequence[str], loc: Loc, problems: _Problems) -> tuple[Matcher, ...]:
    parsed = []
    for i, text in enumerate(texts):
        try:
            parsed.append(parse_matcher(text))
        except MatcherError as exc:
            problems.add((*loc, i), str(exc))
    return tuple(parsed)


def _template(source: str, loc: Loc, problems: _Problems) -> Template | str:
    try:
        return compile_text(source)
    except TemplateSyntaxError as exc:
        problems.add(loc, f"template syntax error: {exc.message}")
        return source


def _steps(
    steps: Sequence[Step], field: str, spec: Runbook, actions: Registry, problems: _Problems
) -> tuple[CompiledStep, ...]:
    compiled = []
    kind_checked: set[str] = set()
    for i, step in enumerate(steps):
        loc: Loc = (field, i)
        action = actions.get(step.action)
        if action is None:
            known = ", ".join(sorted(actions))
            problems.add((*loc, "action"), f"unknown action {step.action!r} (known: {known})")
            continue
        kind = spec.target.kind
        if action.kinds and kind not in action.kinds and not is_template(kind):
            if step.action not in kind_checked:
                allowed = ", ".join(sorted(action.kinds))
                problems.add(("target", "kind"), f"{step.action} acts on {allowed}, not {kind}")
            kind_checked.add(step.action)
        _check_params(step, action.params_model, loc, problems)
        try:
            params = compile_value(step.params)
        except TemplateSyntaxError as exc:
            problems.add((*loc, "params"), f"template syntax error: {exc.message}")
            continue
        compiled.append(CompiledStep(step.action, params, f"{field}[{i}]"))
    return tuple(compiled)


def _check_params(step: Step, model: Any, loc: Loc, problems: _Problems) -> None:
    """Catch what can be caught before rendering: unknown, missing and mistyped params."""
    fields = model.model_fields
    before = len(problems.lines)
    for key in step.params:
        if key not in fields:
            problems.add(
                (*loc, "params", key),
                f"unknown parameter for {step.action} "
                f"(known: {', '.join(sorted(fields)) or 'none'})",
            )
    for name, info in fields.items():
        if info.is_required() and name not in step.params:
            problems.add((*loc, "params"), f"missing required parameter {name!r}")
    if len(problems.lines) > before or any(_has_template(v) for v in step.params.values()):
        return
    try:
        model.model_validate(step.params)
    except ValidationError as exc:
        for err in exc.errors():
            problems.add((*loc, "params", *err["loc"]), err["msg"])


def _has_template(value: Any) -> bool:
    if isinstance(value, str):
        return is_template(value)
    if isinstance(value, dict):
        return any(_has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_template(v) for v in value)
    return False


def runbook_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def load_dir(directory: Path, actions: Registry) -> RunbookSet:
    """Load every runbook in ``directory``; raises RunbookError listing all problems."""
    if not directory.is_dir():
        raise RunbookError([f"{directory}: runbook directory does not exist"])
    problems: list[str] = []
    loaded: list[LoadedRunbook] = []
    seen: dict[str, Path] = {}
    for path in runbook_files(directory):
        try:
            runbook = load_file(path, actions)
        except RunbookError as exc:
            problems.extend(exc.problems)
            continue
        other = seen.get(runbook.spec.name)
        if other is not None:
            problems.append(
                f"{path}:{runbook.name_line}: name: {runbook.spec.name!r} "
                f"is also defined in {other}"
            )
            continue
        seen[runbook.spec.name] = path
        loaded.append(runbook)
    if problems:
        raise RunbookError(problems)
    index = AlertnameIndex((r, r.matchers) for r in loaded)
    return RunbookSet(tuple(loaded), index, directory, git_commit(directory))


def git_commit(directory: Path) -> str | None:
    """HEAD of the Git checkout holding ``directory`` (``-dirty`` if it has edits), if any."""
    try:
        head = _git(directory, "rev-parse", "HEAD")
        dirty = _git(directory, "status", "--porcelain", "--", ".")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if dirty else head


def git_dir(directory: Path) -> Path | None:
    """The Git directory of the checkout holding ``directory``, if it is in one."""
    try:
        return Path(_git(directory, "rev-parse", "--absolute-git-dir"))
    except (OSError, subprocess.SubprocessError):
        return None


def _git(directory: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(directory), *args],
        capture_output=True,
        text=True,
        timeout=5,
        check=True,
    ).stdout.strip()
