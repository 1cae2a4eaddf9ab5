"""Shared paths and letters for the tests. Tests use only the repository's own copies."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
LETTERS = ROOT / "evals" / "letters"
PDFS = sorted((LETTERS / "imr-2016-2017").glob("*.pdf"))
SEEDS = sorted((LETTERS / "seeds").glob("*.txt"))
FIXTURES = LETTERS / "fixtures"


@pytest.fixture(scope="session")
def seed_text() -> str:
    return SEEDS[0].read_text(encoding="utf-8")


def pdf(name: str) -> Path:
    return LETTERS / "imr-2016-2017" / f"{name}.pdf"


CHROMIUM = Path("/usr/bin/chromium")


def playwright_or_skip() -> Any:
    """Playwright's sync API for Debian's Chromium, or skip the calling test module; in CI
    (LLM_EXTRACT_REQUIRE_BROWSER set) a missing browser or playwright is a failure instead."""
    if os.environ.get("LLM_EXTRACT_REQUIRE_BROWSER"):
        import playwright.sync_api as sync_api

        assert CHROMIUM.exists(), f"{CHROMIUM} is missing (apt-get install -y chromium)"
        return sync_api
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)", allow_module_level=True)
    return sync_api
