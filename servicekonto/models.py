"""Imports every model module so that Base.metadata knows all tables (Alembic, tests)."""

from servicekonto.accounts.models import EmailToken, User
from servicekonto.audit.models import AuditChainHead, AuditEvent
from servicekonto.sessions.models import WebSession

__all__ = ["AuditChainHead", "AuditEvent", "EmailToken", "User", "WebSession"]

try:  # the provider's tables, when the oidc package defines them
    import oidc.models  # noqa: F401
except ModuleNotFoundError as exc:  # pragma: no cover - only before oidc/models.py exists
    if exc.name != "oidc.models":
        raise
