"""Observability: request context, redacted structured logs, metrics, health and doctor checks."""
