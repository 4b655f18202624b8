"""Clock fixtures: a frozen clock that tests can move."""
