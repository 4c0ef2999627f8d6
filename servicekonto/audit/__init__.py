"""Audit log: append-only, hash-chained record of everything that matters."""

from servicekonto.audit.service import record, seal, verify
from servicekonto.audit.tags import AuditTag

__all__ = ["AuditTag", "record", "seal", "verify"]
