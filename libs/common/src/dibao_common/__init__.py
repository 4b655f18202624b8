"""The dibao shared kit. No domain code lives here, and it never imports a service."""
