"""Actions: what a runbook step can do, each a plugin with typed parameters."""
