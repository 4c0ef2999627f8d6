"""The citizen's account console (``/account/...``): profile, connected portals and consent
withdrawal, disclosure log, sign-in history and sessions, data export and account deletion.

``views.bp`` is the blueprint ``console``; the rules live in ``services`` (session passed in).
See docs/account-console.md.
"""
