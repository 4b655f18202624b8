"""The HTTP API: thin routers over the use cases, schemas apart from the ORM."""
