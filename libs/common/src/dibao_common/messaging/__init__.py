"""Events over Kafka: CloudEvents envelope, transactional outbox and relay, inbox, DLQ."""

from dibao_common.messaging.consumer import ConsumerRunner, Handler
from dibao_common.messaging.dlq import dlq_topic_for
from dibao_common.messaging.envelope import (
    Envelope,
    EventRegistry,
    InvalidEnvelopeError,
    PoisonEventError,
    UndecodablePayload,
    UnknownEventType,
    ce_type_of,
    topic_of,
)
from dibao_common.messaging.inbox import record_once
from dibao_common.messaging.outbox import OutgoingEvent, enqueue, enqueue_many
from dibao_common.messaging.relay import OutboxRelay

__all__ = [
    "ConsumerRunner",
    "Envelope",
    "EventRegistry",
    "Handler",
    "InvalidEnvelopeError",
    "OutboxRelay",
    "OutgoingEvent",
    "PoisonEventError",
    "UndecodablePayload",
    "UnknownEventType",
    "ce_type_of",
    "dlq_topic_for",
    "enqueue",
    "enqueue_many",
    "record_once",
    "topic_of",
]
