"""Data files shipped with the intake service (the division table)."""
