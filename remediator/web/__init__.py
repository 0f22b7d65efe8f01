"""HTTP interface: the Alertmanager webhook, the incident API, health and metrics."""
