"""Use cases: each runs in the caller's transaction (one request, one transaction) and never
commits; rules come from ``domain``, SQL from ``adapters.repositories``."""
