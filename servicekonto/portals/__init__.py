"""Portal operators and administrators: organisations, self-service, approvals."""
