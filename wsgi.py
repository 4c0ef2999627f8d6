"""WSGI entry point: ``gunicorn wsgi:app`` (settings from SERVICEKONTO_CONFIG / SERVICEKONTO_*)."""

from servicekonto import create_app

app = create_app()
