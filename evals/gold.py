"""The gold-label model: one hand-labelled JSON file per letter in ``evals/gold/``.

Kept separate from :mod:`llm_extract.schema` on purpose: gold labels are what a
person read in the letter, with no offsets and no extractor-only fields, so a
change to the extractor's output model can never silently change what "right"
means. ``evals/GUIDE.md`` says how every field is labelled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llm_extract.taxonomy import load_taxonomy

GOLD_DIR = Path(__file__).parent / "gold"
LETTERS_DIR = Path(__file__).parent / "letters"

Decision = Literal["upheld", "overturned", "partial"]
Source = Literal["MTUS", "ODG", "ACOEM", "other"]

PHARMACEUTICALS = "Pharmaceuticals"
#: Compounded topicals list their ingredients in alphabetical order (GUIDE.md), so the order is checked.
TOPICAL_COMPOUNDS = "Topical Compounds"
DRUG_SEPARATOR = "/"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GoldCitation(_Strict):
    source: Source
    title: str | None = None
    year: int | None = None
    topic: str | None = None
    pages: list[str] = Field(default_factory=list)


class GoldItem(_Strict):
    item: str
    decision: Decision
    original_request: str | None = None
    authorized: str | None = None
    claims_administrator_guideline: list[GoldCitation] = Field(default_factory=list)
    maximus_guideline: list[GoldCitation] = Field(default_factory=list)
    conclusion: str | None = Field(
        default=None,
        description="The rationale's sentence that states the conclusion, verbatim.",
    )
    # Optional so that files labelled before issue 15 still validate; tests/test_gold.py requires
    # them (as keys, possibly null) on every item of every file in evals/gold/.
    category: str | None = Field(
        default=None, description="DWC request category (evals/GUIDE.md); null only when nothing fits."
    )
    subcategory: str | None = Field(
        default=None, description="DWC subcategory; for Pharmaceuticals the drug class."
    )
    drug: str | None = Field(
        default=None,
        description=(
            "Pharmaceuticals only: generic name(s), lower case, ingredients joined with '/' "
            "('hydrocodone/acetaminophen' for Norco); null when the letter names no drug."
        ),
    )

    @model_validator(mode="after")
    def _check_request_labels(self) -> GoldItem:
        """The pair must be a row of the DWC taxonomy, and ``drug`` well formed and only on drugs.

        Checked here rather than in a test so that a bad label fails wherever gold is loaded
        (the evaluation harness included), not only under pytest.
        """
        pair = (self.category, self.subcategory)
        if pair != (None, None) and pair not in set(load_taxonomy()):
            raise ValueError(f"{pair!r} is not a (category, subcategory) row of the DWC taxonomy")
        if self.drug is None:
            return self
        if self.category != PHARMACEUTICALS:
            raise ValueError(f"drug {self.drug!r} on a {self.category!r} item: only Pharmaceuticals have one")
        parts = self.drug.split(DRUG_SEPARATOR)
        if self.drug != self.drug.lower() or any(not p or p != p.strip() for p in parts):
            raise ValueError(f"drug {self.drug!r}: lower case, non-empty names, no spaces around '/'")
        if len(set(parts)) != len(parts):
            raise ValueError(f"drug {self.drug!r}: an ingredient is listed twice")
        if self.subcategory == TOPICAL_COMPOUNDS and parts != sorted(parts):
            raise ValueError(f"drug {self.drug!r}: a compound's ingredients go in alphabetical order")
        return self


class GoldCase(_Strict):
    case_number: str | None = None
    date_assigned: str | None = None
    date_of_injury: str | None = None
    decision_date: str | None = None
    ur_denial_date: str | None = None
    priority: str | None = None
    application_received: str | None = None


class GoldReviewer(_Strict):
    licensure: list[str] = Field(default_factory=list)
    specialties: list[str] = Field(default_factory=list)


class GoldPatient(_Strict):
    age: int | None = None
    sex: Literal["male", "female"] | None = None


class GoldLetter(_Strict):
    letter: str = Field(description="Path of the letter relative to evals/letters/.")
    labeller: str
    case: GoldCase = Field(default_factory=GoldCase)
    reviewer: GoldReviewer = Field(default_factory=GoldReviewer)
    patient: GoldPatient = Field(default_factory=GoldPatient)
    items: list[GoldItem]
    notes: str = ""


def load_gold(directory: Path = GOLD_DIR) -> list[GoldLetter]:
    """Every gold file in ``directory``, validated, sorted by letter path."""
    golds = [
        GoldLetter.model_validate(json.loads(p.read_text(encoding="utf-8")))
        for p in sorted(directory.glob("*.json"))
    ]
    return sorted(golds, key=lambda g: g.letter)
