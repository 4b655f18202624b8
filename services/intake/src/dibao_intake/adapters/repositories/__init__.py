"""All of intake's SQL: one module per group of tables; functions take the caller's session."""
