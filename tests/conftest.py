"""Shared paths and letters for the tests. Tests use only the repository's own copies."""

from __future__ import annotations

from pathlib import Path

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
