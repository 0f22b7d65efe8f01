"""Metrics and logs: how operators see what the server is doing."""
