"""Runbook templates: sandboxed Jinja2 where an undefined variable is an error.

Templates are compiled once at load time (syntax errors are lint errors) and rendered
per alert. Alert label values are data, never templates: rendered output is not
rendered again, so a label such as ``{{ 7*7 }}`` stays literal text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from remediator.errors import PlanError
from remediator.models.events import BlockReason

MAX_RENDERED = 4096
_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)

# A compiled parameter tree: templates where the source had them, plain values elsewhere.
Compiled = Any


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text


def compile_text(source: str) -> Template | str:
    """Compile ``source`` if it holds template syntax; raises jinja2.TemplateSyntaxError."""
    return _ENV.from_string(source) if is_template(source) else source


def compile_value(value: Any) -> Compiled:
    if isinstance(value, str):
        return compile_text(value)
    if isinstance(value, dict):
        return {k: compile_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [compile_value(v) for v in value]
    return value


def render_text(template: Template | str, context: Mapping[str, Any], where: str) -> str:
    if isinstance(template, str):
        return template
    try:
        text = template.render(context)
    except TemplateError as exc:
        raise PlanError(BlockReason.TEMPLATE_ERROR, f"{where}: {exc.message or exc}") from exc
    if len(text) > MAX_RENDERED:
        raise PlanError(
            BlockReason.TEMPLATE_ERROR, f"{where}: rendered text is over {MAX_RENDERED} characters"
        )
    return text


def render_value(compiled: Compiled, context: Mapping[str, Any], where: str) -> Any:
    if isinstance(compiled, Template | str):
        return render_text(compiled, context, where)
    if isinstance(compiled, dict):
        return {k: render_value(v, context, f"{where}.{k}") for k, v in compiled.items()}
    if isinstance(compiled, list):
        return [render_value(v, context, f"{where}[{i}]") for i, v in enumerate(compiled)]
    return compiled
