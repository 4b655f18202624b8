"""intake's tests: a package, so that its app (``intake_app``) is package-scoped."""
