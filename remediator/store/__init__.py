"""Durable state: alert instances, incidents, timeline events, work items, executions."""
