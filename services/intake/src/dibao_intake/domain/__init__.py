"""The pure rules of intake: no database, no HTTP, no clock; plain typed functions."""
