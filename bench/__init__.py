"""Benchmarks of dibao, each measured beside a baseline in the same run (see README.md)."""
