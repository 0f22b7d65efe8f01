"""Smoke test of the history benchmark: ``pytest bench/test_history.py``.

Not part of the default suite (``testpaths`` is ``tests``). The harness runs end to end
on small stores and reports every query with a ratio.
"""

from __future__ import annotations

import json
from pathlib import Path

import history
import pytest


def test_a_small_run_reports_every_query(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "history.json"
    assert (
        history.main(["--short", "50", "--long", "500", "--rounds", "2", "--json", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    timings = json.loads(out.read_text())
    assert set(timings) == {"50", "500"}
    for name, values in timings["500"].items():
        assert len(values) == 2
        assert all(v > 0 for v in values)
        assert name in printed
    assert "store history: 50 incidents (baseline) against 500 (subject)" in printed


def test_the_sizes_must_grow(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit):
        history.parse_args(["--short", "500", "--long", "50"])
    assert "need 0 < --short < --long" in capsys.readouterr().err
