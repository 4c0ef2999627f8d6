"""The documentation stays true: every setting and command is documented, links resolve."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import click

from servicekonto.cli import main
from servicekonto.settings import DEFAULTS_FILE

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def test_every_setting_is_documented():
    text = (DOCS / "configuration.md").read_text()
    keys = tomllib.loads(DEFAULTS_FILE.read_text())
    missing = [key for key in keys if f"`{key}`" not in text]
    assert not missing, f"document these keys in docs/configuration.md: {missing}"


def _commands(group: click.Group, prefix: str = "") -> list[str]:
    found = []
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            found.extend(_commands(command, path + " "))
        else:
            found.append(path)
    return found


def test_every_command_is_documented():
    text = (DOCS / "cli.md").read_text()
    missing = [c for c in _commands(main) if f"servicekonto {c}" not in text]
    assert not missing, f"document these commands in docs/cli.md: {missing}"


def test_readme_starts_with_make_run_and_make_test():
    lines = [line for line in (ROOT / "README.md").read_text().splitlines() if line.strip()]
    commands = [line for line in lines[:6] if line.startswith("make ")]
    assert commands[0].startswith("make run") and commands[1].startswith("make test")


def test_relative_links_resolve():
    for page in [ROOT / "README.md", *DOCS.glob("*.md")]:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"
