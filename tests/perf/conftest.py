"""The live-server Provider harness of the OIDC flow tests."""

from tests.oidc.conftest import provider  # noqa: F401
