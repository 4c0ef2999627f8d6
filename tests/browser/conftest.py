"""The browser suite: the provider and both demo portals over real HTTP, driven by headless
Chromium (Playwright with the Debian ``/usr/bin/chromium``), checked with axe-core.

The provider is served as ``http://localhost:<port>`` (WebAuthn needs a host name, not an IP),
the demo portals stay on ``http://127.0.0.1:<port>`` (another site, as in production). Mail goes
through the real SMTP mailbox. Outside CI the suite skips with a reason when Chromium, Playwright
or axe-core (``make setup`` runs ``npm ci`` here) is missing; with ``CI=true`` it fails instead.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.conftest import IN_CI
from tests.demo.conftest import citizen, portals  # noqa: F401  (fixtures reused as they are)
from tests.support.live_server import LiveServer

CHROMIUM = Path("/usr/bin/chromium")
AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
VIEWPORT = {"width": 1280, "height": 800}
#: Browser locale per UI language (Accept-Language decides the page language).
LOCALES = {"de": "de-DE", "en": "en-GB"}
#: axe impacts that fail a test.
FAILING_IMPACTS = ("serious", "critical")

try:
    from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
except ImportError:  # pragma: no cover - reported by the requirements fixture
    sync_playwright = None


def _missing() -> str | None:
    if sync_playwright is None:
        return "Playwright is not installed (pip install -e '.[test]')"
    if not CHROMIUM.exists():
        return f"Chromium is missing at {CHROMIUM} (scripts/install-system-packages.sh)"
    if not AXE.exists():
        return f"axe-core is missing at {AXE} (make setup runs npm ci in tests/browser)"
    return None


@pytest.fixture(scope="session")
def _requirements() -> None:
    reason = _missing()
    if reason:
        if IN_CI:
            pytest.fail(f"browser tests cannot run: {reason}")
        pytest.skip(reason)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Cheap Argon2 parameters: the pages are under test here, not the hash's cost."""
    return {"argon2_memory_kib": 1024, "argon2_time_cost": 1}


@pytest.fixture
def live_server(app: Flask) -> Iterator[LiveServer]:
    """The provider over real HTTP as ``http://localhost:<port>`` (issuer set to that URL)."""
    server = LiveServer(app)
    server.url = f"http://localhost:{server.port}"
    app.config["SERVICEKONTO"]["issuer"] = server.url
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="package")
def chromium(_requirements: None) -> Iterator[Browser]:
    """One headless Chromium for the browser suite (each test gets a fresh context); closed,
    with Playwright's event loop, before the rest of the test run goes on."""
    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
    yield browser
    browser.close()
    playwright.stop()


@functools.cache
def axe_source() -> str:
    return AXE.read_text(encoding="utf-8")


def new_context(chromium: Browser, language: str = "de", **options: Any) -> BrowserContext:
    """A fresh browser profile asking for ``language``; axe-core is loaded into every page
    as an init script (faster than evaluating it per check; pages have no JS of their own)."""
    context = chromium.new_context(viewport=VIEWPORT, locale=LOCALES[language],
                                   timezone_id="Europe/Berlin", **options)
    context.set_default_timeout(10_000)
    context.add_init_script(script=axe_source())
    return context


@pytest.fixture
def context(chromium: Browser) -> Iterator[BrowserContext]:
    """A fresh German browser profile (no cookies) per test."""
    ctx = new_context(chromium)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


# -- axe-core ----------------------------------------------------------------------------------

def axe_violations(page: Page) -> list[dict[str, Any]]:
    """Run axe-core on the page; its serious and critical violations.

    axe is evaluated through the DevTools protocol (init script, or here for a page that has
    none), so the page's Content-Security-Policy (``script-src 'self'``) stays in force.
    """
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(axe_source())
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [v for v in result["violations"] if v["impact"] in FAILING_IMPACTS]


def describe(url: str, violations: list[dict[str, Any]]) -> str:
    lines = [f"{url}:"]
    for v in violations:
        lines.append(f"  [{v['impact']}] {v['id']}: {v['help']} ({v['helpUrl']})")
        for node in v["nodes"][:5]:
            lines.append(f"      {json.dumps(node['target'])}")
    return "\n".join(lines)


def assert_accessible(page: Page) -> None:
    """Fail on any serious or critical axe violation, printing rule, impact, targets, help."""
    violations = axe_violations(page)
    assert not violations, "axe-core violations\n" + describe(page.url, violations)


def reflow_overflow(page: Page, width: int = 320) -> int:
    """How many CSS pixels the page is wider than a 320 px viewport (WCAG 1.4.10 reflow:
    content readable without scrolling sideways); 0 when it reflows."""
    page.set_viewport_size({"width": width, "height": 640})
    try:
        return max(0, page.evaluate("document.documentElement.scrollWidth") - width)
    finally:
        page.set_viewport_size(VIEWPORT)


# -- screenshots -------------------------------------------------------------------------------

def screenshot(page: Page, name: str) -> None:
    """Save ``<name>.png`` into $SCREENSHOTS_DIR when set (``make screenshots``)."""
    folder = os.environ.get("SCREENSHOTS_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))
