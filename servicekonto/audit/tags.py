"""Audit tags: ``source:subject:action``. Add new ones here, never reuse or rename old ones."""

from __future__ import annotations

import enum


class AuditTag(enum.StrEnum):
    # Citizen accounts
    ACCOUNT_REGISTRATION_CREATED = "account:registration:created"
    ACCOUNT_REGISTRATION_DUPLICATE = "account:registration:duplicate"
    ACCOUNT_EMAIL_VERIFIED = "account:email:verified"
    ACCOUNT_VERIFICATION_RESENT = "account:verification:resent"
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
    ACCOUNT_SESSIONS_ENDED = "account:sessions:ended"
    ACCOUNT_COMPROMISE_REPORTED = "account:compromise:reported"
    ACCOUNT_DELETED = "account:user:deleted"

    # Citizen second factors (servicekonto/mfa); details never hold secrets or codes. A wrong
    # code is an ACCOUNT_LOGIN_FAILURE with reason "wrong_second_factor" (sign-in history).
    ACCOUNT_LOGIN_PASSWORD_VERIFIED = "account:login:password_verified"  # second factor next
    ACCOUNT_STEP_UP = "account:login:stepped_up"
    ACCOUNT_TOTP_ENROLLED = "account:totp:enrolled"
    ACCOUNT_TOTP_REMOVED = "account:totp:removed"
    ACCOUNT_RECOVERY_CODES_CREATED = "account:recovery_codes:created"
    ACCOUNT_RECOVERY_CODE_USED = "account:recovery_code:used"
    ACCOUNT_SECOND_FACTORS_RESET = "account:second_factors:reset"  # by an administrator (CLI)

    # Consent store
    CONSENT_GRANTED = "consent:grant:granted"
    CONSENT_REFUSED = "consent:grant:refused"
    CONSENT_WITHDRAWN = "consent:grant:withdrawn"

    # OpenID Connect provider (claim *names* only in details, never values)
    OIDC_AUTHORIZATION_DENIED = "oidc:authorization:denied"
    OIDC_CODE_ISSUED = "oidc:code:issued"
    OIDC_CODE_REPLAYED = "oidc:code:replayed"
    OIDC_TOKEN_ISSUED = "oidc:token:issued"
    OIDC_TOKEN_REFRESHED = "oidc:token:refreshed"
    OIDC_REFRESH_TOKEN_REUSED = "oidc:refresh_token:reused"
    OIDC_TOKEN_REVOKED = "oidc:token:revoked"
    OIDC_CLAIMS_RELEASED = "oidc:claims:released"  # details: {"via": "id_token"|"userinfo", ...}
    OIDC_LOGOUT = "oidc:logout:rp_initiated"
    OIDC_BACKCHANNEL_LOGOUT_DELIVERED = "oidc:backchannel_logout:delivered"
    OIDC_BACKCHANNEL_LOGOUT_FAILED = "oidc:backchannel_logout:failed"

    # Citizen passkeys (WebAuthn second factor, servicekonto/passkeys); details carry the
    # passkey's row id and, for failures, a reason code (never key material)
    PASSKEY_REGISTERED = "account:passkey:registered"
    PASSKEY_RENAMED = "account:passkey:renamed"
    PASSKEY_REMOVED = "account:passkey:removed"
    PASSKEY_USED = "account:passkey:used"
    PASSKEY_FAILED = "account:passkey:failed"  # details: {"reason": ..., "during": ...}

    # Portals (clients) and signing keys
    CLIENT_CREATED = "client:client:created"
    CLIENT_UPDATED = "client:client:updated"
    CLIENT_SUSPENDED = "client:client:suspended"
    CLIENT_SECRET_ROTATED = "client:secret:rotated"
    CLIENT_REGISTERED = "client:client:registered"  # RFC 7591 / self-service
    CLIENT_APPROVED = "client:client:approved"
    CLIENT_DELETED = "client:client:deleted"
    INITIAL_TOKEN_ISSUED = "client:initial_token:issued"
    INITIAL_TOKEN_REVOKED = "client:initial_token:revoked"
    KEY_CREATED = "keys:signing_key:created"
    KEY_RETIRED = "keys:signing_key:retired"

    # Operators, organisations and data-access requests (servicekonto/portals)
    ORGANISATION_CREATED = "operator:organisation:created"
    OPERATOR_CREATED = "operator:operator:created"
    OPERATOR_DISABLED = "operator:operator:disabled"
    OPERATOR_LOGIN_SUCCESS = "operator:login:success"
    OPERATOR_LOGIN_FAILURE = "operator:login:failure"
    OPERATOR_LOGIN_LOCKED = "operator:login:locked"
    OPERATOR_LOGOUT = "operator:logout:success"
    OPERATOR_TOTP_ENROLLED = "operator:totp:enrolled"
    OPERATOR_TOTP_RESET = "operator:totp:reset"
    DATA_ACCESS_REQUESTED = "operator:data_access:requested"
    DATA_ACCESS_APPROVED = "operator:data_access:approved"
    DATA_ACCESS_REJECTED = "operator:data_access:rejected"
