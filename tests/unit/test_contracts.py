"""The import-linter contracts cover the whole package, including modules added later."""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

import remediator

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"


def top_level_modules() -> set[str]:
    return {f"remediator.{m.name}" for m in pkgutil.iter_modules(remediator.__path__)}


def contract(name_start: str) -> dict:
    contracts = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]
    [found] = [c for c in contracts if c["name"].startswith(name_start)]
    return found


def test_every_module_but_kube_is_forbidden_the_kubernetes_client():
    sources = set(contract("Only remediator.kube")["source_modules"])
    assert sources == top_level_modules() - {"remediator.kube"}


def test_every_module_with_code_has_a_layer():
    layers = contract("Layers")["layers"]
    named = {part.strip() for layer in layers for part in layer.replace(":", "|").split("|")}
    # The entry point and the app's typed keys sit outside the layering on purpose.
    assert top_level_modules() - named == {"remediator.__main__", "remediator.keys"}
