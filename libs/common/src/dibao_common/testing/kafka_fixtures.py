"""Kafka fixtures: a fresh real topic per test, producers and consumers."""
