"""The remediation pipeline: match → plan → guard → execute, each stage recorded."""
