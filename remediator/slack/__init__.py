"""Slack: the Web API client and the Block Kit messages on-call sees."""
