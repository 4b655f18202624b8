"""Test support: the pytest plugin, the isolated stack handle, factories."""
