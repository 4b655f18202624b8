"""Auth fixtures: a test signing key, a token factory, test secrets."""
