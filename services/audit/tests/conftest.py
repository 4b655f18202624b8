"""Fixtures of the audit tests (they live in ``dibao_audit.testing`` so tests can type them)."""

from dibao_audit.testing import audit_db, audit_stack

__all__ = ["audit_db", "audit_stack"]
