"""Citizen accounts: registration, verification, login, passwords and e-mail changes."""
