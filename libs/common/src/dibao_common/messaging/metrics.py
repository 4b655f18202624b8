"""Prometheus metrics of the messaging kit, on the default registry that ``/metrics`` serves."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

OUTBOX_BACKLOG = Gauge(
    "dibao_outbox_backlog",
    "Outbox rows committed but not yet published",
    ["relay"],
)
OUTBOX_OLDEST_PENDING_AGE = Gauge(
    "dibao_outbox_oldest_pending_age_seconds",
    "Age of the oldest unpublished outbox row (0 when none)",
    ["relay"],
)
OUTBOX_PUBLISHED = Counter(
    "dibao_outbox_published_total",
    "Outbox rows published to Kafka (acknowledged, then deleted from the outbox)",
    ["relay"],
)
OUTBOX_PUBLISH_ERRORS = Counter(
    "dibao_outbox_publish_errors_total",
    "Outbox rows whose publication failed (they stay pending and are retried)",
    ["relay"],
)
OUTBOX_PUBLISH_LATENCY = Histogram(
    "dibao_outbox_publish_latency_seconds",
    "From the outbox row's commit transaction to the broker's acknowledgement",
    ["relay"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
OUTBOX_BATCH_SECONDS = Histogram(
    "dibao_outbox_batch_seconds",
    "Time of one relay batch: claim, send, await acknowledgements, delete",
    ["relay"],
)

CONSUMER_EVENTS = Counter(
    "dibao_consumer_events_total",
    "Consumed events by outcome: processed, duplicate, retried, dead_lettered, batch_redone",
    ["consumer", "outcome"],
)
CONSUMER_HANDLE_SECONDS = Histogram(
    "dibao_consumer_handle_seconds",
    "Time to apply one event: handler and inbox row in one transaction",
    ["consumer"],
)
CONSUMER_LAG = Gauge(
    "dibao_consumer_lag",
    "Records of a partition after the last one this consumer handled",
    ["consumer", "topic", "partition"],
)
DLQ_SIZE = Gauge(
    "dibao_dlq_size",
    "Records in a dead-letter topic (its end offsets minus its start offsets), as the"
    " consumer that dead-letters there last measured it",
    # By consumer too: consumers of one process sharing a topic label would overwrite each
    # other's figure, the last to refresh (or the last still able to) winning.
    ["consumer", "topic"],
)
