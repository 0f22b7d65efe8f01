"""Tools for runbook authors: lint, explain, unit-test and the JSON Schema."""
