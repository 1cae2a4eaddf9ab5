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


def save_screenshot(page: Any, name: str) -> None:
    """``artifacts/<name>`` always; ``docs/<name>`` (the README's picture) only when
    UPDATE_DOCS_SCREENSHOT is set, so the docs change on purpose."""
    targets = [ROOT / "artifacts" / name]
    if os.environ.get("UPDATE_DOCS_SCREENSHOT"):
        targets.append(ROOT / "docs" / name)
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(target))
        assert target.stat().st_size > 10_000


#: ``llm-extract review`` options that show the repository's letters and gold beside results.
REPO_LETTERS_AND_GOLD = ("--letters", str(LETTERS), "--gold", str(ROOT / "evals" / "gold"))


def invoke_review(args: list[str]) -> Any:
    """``llm-extract review ...`` in-process (typer's runner); ``args`` start with "review"."""
    import typer
    from typer.testing import CliRunner

    from llm_extract.review import review_command

    app = typer.Typer()
    app.command("review")(review_command)
    app.command("noop")(lambda: None)  # two commands keep "review" a sub-command
    return CliRunner().invoke(app, args)
