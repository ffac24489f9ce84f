"""An installed edge serves the console from its package: every file under
``edge/console/static/`` is named by ``pyproject.toml``'s package data, and is what the console
serves (nothing read from elsewhere)."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

from edge.console import load_assets

ROOT = Path(__file__).resolve().parents[3]
STATIC = ROOT / "edge" / "console" / "static"


def test_every_static_file_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["edge.console"]
    files = [p.relative_to(STATIC.parent).as_posix() for p in STATIC.rglob("*") if p.is_file()]
    assert files
    missing = [f for f in files if not any(fnmatch.fnmatchcase(f, pat) for pat in patterns)]
    assert missing == []


def test_the_console_serves_exactly_the_static_files() -> None:
    files = {p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*") if p.is_file()}
    assert set(load_assets()) == files


def test_no_asset_writes_html_from_a_string() -> None:
    # The CSP's Trusted Types would refuse it at run time; this finds it before.
    for script in STATIC.rglob("*.js"):
        text = script.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in text, f"{script.name} uses {sink}"
    for sheet in STATIC.rglob("*.css"):
        assert "@import" not in sheet.read_text() and "http" not in sheet.read_text()
