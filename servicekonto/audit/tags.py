"""Audit tags: ``source:subject:action``. Add new ones here, never reuse or rename old ones."""

from __future__ import annotations

import enum


class AuditTag(enum.StrEnum):
    # Citizen accounts
    ACCOUNT_REGISTRATION_CREATED = "account:registration:created"
    ACCOUNT_REGISTRATION_DUPLICATE = "account:registration:duplicate"
    ACCOUNT_EMAIL_VERIFIED = "account:email:verified"
    ACCOUNT_LOGIN_SUCCESS = "account:login:success"
    ACCOUNT_LOGIN_FAILURE = "account:login:failure"
    ACCOUNT_LOGIN_LOCKED = "account:login:locked"
    ACCOUNT_LOGOUT = "account:logout:success"
    ACCOUNT_PASSWORD_CHANGED = "account:password:changed"
    ACCOUNT_PASSWORD_REHASHED = "account:password:rehashed"
    ACCOUNT_PASSWORD_RESET_REQUESTED = "account:password_reset:requested"
    ACCOUNT_PASSWORD_RESET_COMPLETED = "account:password_reset:completed"
    ACCOUNT_EMAIL_CHANGE_REQUESTED = "account:email_change:requested"
    ACCOUNT_EMAIL_CHANGED = "account:email:changed"
    ACCOUNT_USER_CREATED = "account:user:created"
    ACCOUNT_USER_DISABLED = "account:user:disabled"
    ACCOUNT_USER_ENABLED = "account:user:enabled"
    ACCOUNT_PROFILE_UPDATED = "account:profile:updated"
