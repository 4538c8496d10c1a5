"""Prometheus metrics of the process (served at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ALERTS_RECEIVED = Counter("opsbot_alerts_received_total", "Alerts received", ["source"])
WEBHOOKS = Counter("opsbot_webhooks_total", "Webhook deliveries", ["source", "outcome"])
INCIDENTS = Gauge("opsbot_incidents", "Incidents by status", ["status"])
QUEUE_DEPTH = Gauge("opsbot_outbox_pending", "Outbound items waiting for delivery")
OUTBOX_LAG = Gauge("opsbot_outbox_lag_seconds", "How long the oldest due outbound item has waited")
OUTBOX_LAST_SUCCESS = Gauge(
    "opsbot_outbox_last_success_timestamp_seconds", "When the outbox last delivered an item"
)
OUTBOX_RESTARTS = Counter(
    "opsbot_outbox_worker_restarts_total", "Outbox worker restarts after an unexpected error"
)
DELIVERY_FAILURES = Counter(
    "opsbot_delivery_failures_total", "Failed delivery attempts of outbound items", ["kind"]
)
DEAD_LETTERS = Counter("opsbot_dead_letters_total", "Outbound items given up on", ["kind"])
DIAGNOSES = Counter("opsbot_diagnoses_total", "Diagnoses by the layer that answered", ["source"])
REQUEST_LATENCY = Histogram(
    "opsbot_http_request_seconds",
    "HTTP request latency",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
