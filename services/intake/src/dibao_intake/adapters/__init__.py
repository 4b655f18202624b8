"""What intake talks to: its database (repositories), the document store, the contracts."""
