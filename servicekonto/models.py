"""Imports every model module so that Base.metadata knows all tables (Alembic, tests)."""

from servicekonto.accounts.models import EmailToken, User
from servicekonto.audit.models import AuditChainHead, AuditEvent
from servicekonto.consent.models import Consent
from servicekonto.mfa.models import RecoveryCode, TotpFactor
from servicekonto.passkeys.models import Passkey
from servicekonto.portals.models import (
    DataAccessRequest,
    InitialAccessToken,
    Operator,
    Organisation,
)
from servicekonto.sessions.models import WebSession

__all__ = [
    "AuditChainHead", "AuditEvent", "Consent", "DataAccessRequest", "EmailToken",
    "InitialAccessToken", "Operator", "Organisation", "Passkey", "RecoveryCode", "TotpFactor",
    "User", "WebSession",
]

import oidc.models  # noqa: E402,F401 - the provider's tables
