"""dibao audit service: the append-only, tamper-evident log of every event and data read."""
