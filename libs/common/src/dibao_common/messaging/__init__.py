"""Events over Kafka: CloudEvents envelope, transactional outbox and relay, inbox, DLQ."""
