"""Database fixtures: a session per test rolled back at the end."""
