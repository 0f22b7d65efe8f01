"""The Alertmanager configuration the README tells people to paste is one Alertmanager
accepts (``amtool check-config``), word for word."""

from __future__ import annotations

import re
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.e2e.alertmanager import AMTOOL_BIN

README = Path(__file__).parents[2] / "README.md"


def snippets() -> list[str]:
    blocks = re.findall(r"^( *)```yaml\n(.*?)^\1```", README.read_text(), re.M | re.S)
    return [textwrap.dedent(body) for _, body in blocks if "webhook_configs" in body]


def as_whole_config(snippet: str) -> dict[str, Any]:
    """A fragment that adds a sub-route gets the root route it hangs from."""
    config: dict[str, Any] = YAML(typ="safe").load(snippet)
    if "receiver" not in config["route"]:
        config["route"]["receiver"] = "on-call"
        config["receivers"].append({"name": "on-call"})
    return config


def test_the_readme_shows_both_snippets():
    assert len(snippets()) == 2


@pytest.mark.parametrize("snippet", snippets(), ids=["helm-walkthrough", "reference"])
def test_the_readmes_webhook_config_passes_amtool(tmp_path, snippet):
    config = as_whole_config(snippet)
    [webhook] = [w for r in config["receivers"] for w in r.get("webhook_configs", [])]
    assert webhook["url"].endswith(":9595/api/v1/alerts")
    assert webhook["http_config"]["authorization"]["credentials_file"]
    path = tmp_path / "alertmanager.yml"
    YAML(typ="safe").dump(config, path)
    amtool = shutil.which(AMTOOL_BIN)
    assert amtool, f"{AMTOOL_BIN} not found: apt-get install prometheus-alertmanager"
    result = subprocess.run(
        [amtool, "check-config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
