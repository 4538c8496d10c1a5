"""Observability clients: logs, metrics, deploys, error tracker, health checks."""
