"""Smoke test of the webhook rows benchmark: ``pytest bench/test_webhook_rows.py``.

Not part of the default suite (``testpaths`` is ``tests``). Both writers store every
request (each asserts that its three alerts were new) and the report has a ratio.
"""

from __future__ import annotations

import pytest
import webhook_rows


def test_a_small_run_measures_both_writers(capsys: pytest.CaptureFixture[str]):
    seen = webhook_rows.main(["--requests", "40", "--batch", "8", "--rounds", "2"])
    assert set(seen) == {"by hand", "remediator"}
    assert all(len(values) == 2 and min(values) > 0 for values in seen.values())
    printed = capsys.readouterr().out
    assert "40 requests of 3 new alerts x 2 rounds, 8 requests per commit" in printed
    assert "both stored: 240 incidents, 240 alerts, 240 events, 240 jobs" in printed
    assert "ratio remediator / by hand:" in printed


def test_counts_must_be_positive(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit):
        webhook_rows.parse_args(["--batch", "0"])
    assert "must be at least 1" in capsys.readouterr().err
