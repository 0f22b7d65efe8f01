"""remediator: Alertmanager-driven auto-remediation for Kubernetes."""

__version__ = "0.1.0"
