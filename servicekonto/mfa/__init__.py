"""Second factors: TOTP (RFC 6238) and encryption of their secrets at rest.

Used by operator logins (``servicekonto.portals``); built to be reused for citizens.
"""
