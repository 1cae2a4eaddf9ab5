"""The output model: the single source of truth for what an extraction is.

The JSON Schema (``llm-extract schema``) and any model-facing schema are generated from
these classes, never written by hand. Every ``start``/``end`` pair indexes
``llm_extract.load(letter).text``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from enum import Enum
from functools import cache
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .taxonomy import categories, is_valid, subcategories

#: The output's version, in every result's ``source.schema_version``. 2.0 (this release) added
#: ``evidence``, ``Item.conclusion`` (quotes are supporting quotes only), ``Item.sections``, the
#: request category, subcategory, drug and ``diagnoses``, all defaulted: a 1.0 result still validates
#: where its values do, and the reviewer page lists one that does not with its version.
SCHEMA_VERSION = "2.0"
_T = TypeVar("_T")
#: Oldest age the output model can hold; a plausible injured worker's age range is a check (checks.py).
MAX_AGE = 130
#: Years a letter's dates may have; outside them a date is a misread (``value_out_of_range``).
DATE_MIN_YEAR = 1900
DATE_MAX_YEAR = 2100

Decision = Literal["upheld", "overturned", "partial"]
GuidelineSource = Literal["MTUS", "ODG", "ACOEM", "other"]
#: The item fields a letter's sections fill, one label each (``Item.sections``).
SectionField = Literal["claims_administrator_guideline", "maximus_guideline", "rationale"]
MatchTier = Literal["exact", "normalized", "fuzzy", "none"]
Severity = Literal["error", "warning", "info"]
Sex = Literal["male", "female"]
#: The DWC request taxonomy (``data/dwc_request_categories.tsv``), so the JSON Schema lists the values.
Category = Literal[categories()]  # type: ignore[valid-type]
Subcategory = Literal[subcategories()]  # type: ignore[valid-type]


class FlagCode(str, Enum):
    """Why something in a result deserves a human look. Stable: reports group by these."""

    NO_ITEMS = "no_items"
    TRUNCATED = "truncated"
    MISSING_RATIONALE = "missing_rationale"
    MISSING_DECISION = "missing_decision"
    MISSING_SECTION = "missing_section"
    NO_CONCLUSION = "no_conclusion"
    DECISION_CONTRADICTS_RATIONALE = "decision_contradicts_rationale"
    QUOTE_NOT_FOUND = "quote_not_found"
    QUOTE_FUZZY = "quote_fuzzy"
    CITATION_NOT_FOUND = "citation_not_found"
    CITATION_UNPARSED = "citation_unparsed"
    CITATION_UNKNOWN_TITLE = "citation_unknown_title"
    PARTIAL_UNPARSED = "partial_unparsed"
    LONG_HEADING = "long_heading"
    UNEXPECTED_TEXT = "unexpected_text"
    HEADER_FIELD_MISSING = "header_field_missing"
    PATIENT_NOT_FOUND = "patient_not_found"
    LAYOUT_UNKNOWN = "layout_unknown"
    DECISION_INFERRED = "decision_inferred"
    SUMMARY_MISMATCH = "summary_mismatch"
    CROSSCHECK_MISSING_ITEM = "crosscheck_missing_item"
    CROSSCHECK_EXTRA_ITEM = "crosscheck_extra_item"
    CROSSCHECK_DECISION = "crosscheck_decision"
    CROSSCHECK_CITATION_SOURCE = "crosscheck_citation_source"
    CROSSCHECK_UNAVAILABLE = "crosscheck_unavailable"
    LLM_REASK_EXHAUSTED = "llm_reask_exhausted"
    LLM_INVALID_OUTPUT = "llm_invalid_output"
    EVIDENCE_MISSING = "evidence_missing"
    CASE_NUMBER_INVALID = "case_number_invalid"
    DATES_OUT_OF_ORDER = "dates_out_of_order"
    AGE_OUT_OF_RANGE = "age_out_of_range"
    AGE_INCONSISTENT = "age_inconsistent"
    SEX_INCONSISTENT = "sex_inconsistent"
    CATEGORY_UNKNOWN = "category_unknown"
    DRUG_UNKNOWN = "drug_unknown"
    VALUE_OUT_OF_RANGE = "value_out_of_range"
    INVALID_CHARACTERS = "invalid_characters"
    SUMMARY_CONTRADICTS_DECISION = "summary_contradicts_decision"
    ITEM_NAME_MISSING = "item_name_missing"
    DUPLICATE_ITEM = "duplicate_item"
    DUPLICATE_PAGE = "duplicate_page"


class Stated:
    """Field marker: the value is read from the letter, so ``Determination.evidence`` must say where.

    The verifier flags a stated value without evidence (``evidence_missing``); list fields need
    evidence per entry (``reviewer.licensure.0``). Mark a field with ``Annotated[T, STATED]``.
    """

    def __repr__(self) -> str:
        return "STATED"


STATED = Stated()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Span(_Strict):
    """A half-open character range of the letter text."""

    start: int = Field(ge=0)
    end: int = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Span:
        if self.end < self.start:
            raise ValueError(f"span end {self.end} is before start {self.start}")
        return self


class Grounding(_Strict):
    """Where a verbatim string was found in the letter, and how sure the verifier is."""

    text: str
    start: int | None = Field(default=None, ge=0)
    end: int | None = Field(default=None, ge=0)
    page: int | None = Field(default=None, ge=1, description="1-based page of start.")
    match: MatchTier = "none"
    score: float = Field(
        default=0.0, ge=0, le=100, description="100 for exact/normalized; rapidfuzz score for fuzzy."
    )


class Quote(Grounding):
    """A verbatim sentence of the letter that supports the item's decision."""


class Citation(Grounding):
    """One guideline the claims administrator or the expert reviewer relied on."""

    source: GuidelineSource
    title: str | None = None
    year: int | None = None
    topic: str | None = None
    pages: list[str] = Field(default_factory=list)


class Ingredient(_Strict):
    """One active ingredient of a combination product or a compounded cream."""

    name: Annotated[str, STATED] = Field(description="Generic name, lower case.")
    strength: Annotated[str | None, STATED] = Field(default=None, description='As written, e.g. "20%".')
    as_written: str


class Drug(_Strict):
    """What a pharmaceutical item asks for, read from its name."""

    name: Annotated[str | None, STATED] = Field(
        description='Generic name, lower case; a combination\'s ingredients joined by "/" in alphabetical '
        'order ("acetaminophen/hydrocodone" for Norco); null when the name could not be resolved.'
    )
    as_written: Annotated[str, STATED] = Field(description='The drug name as the letter writes it ("Norco").')
    strength: Annotated[str | None, STATED] = Field(default=None, description='As written, e.g. "10/325mg", "5%".')
    form: Annotated[str | None, STATED] = Field(
        default=None, description="tablet, capsule, cream, gel, patch, ... (stated, or implied by the product)"
    )
    quantity: Annotated[int | None, STATED] = Field(
        default=None, ge=0, description='Units dispensed: "#60", "QTY: 90", "x 60".'
    )
    amount: Annotated[str | None, STATED] = Field(
        default=None, description='Package size as written, e.g. "240g", "500ml".'
    )
    refills: Annotated[int | None, STATED] = Field(default=None, ge=0)
    supply_days: Annotated[int | None, STATED] = Field(default=None, ge=0, description="Days of supply, where stated.")
    ingredients: list[Ingredient] = Field(
        default_factory=list, description="Active ingredients of a combination or compounded product."
    )


class Item(_Strict):
    """One disputed item/service and its decision."""

    item: Annotated[str, STATED] = Field(
        description="Heading text as written, whitespace collapsed, no colon or decision."
    )
    decision: Annotated[Decision | None, STATED] = Field(
        description=(
            "As the letter states it for this item (the word after the item in its heading, or its decision "
            'line): "Upheld" -> upheld, "Overturned" -> overturned; partial only if the letter says "partially".'
        )
    )
    original_request: Annotated[str | None, STATED] = None
    authorized: Annotated[str | None, STATED] = None
    heading: Span | None = Field(default=None, description="Offsets of the item text in the letter.")
    claims_administrator_guideline: list[Citation] = Field(default_factory=list)
    maximus_guideline: list[Citation] = Field(default_factory=list)
    rationale_summary: str | None = Field(
        default=None, description="Why the reviewer decided as they did, in one short sentence."
    )
    rationale: Span | None = None
    sections: dict[SectionField, Span] = Field(
        default_factory=dict,
        description="Where the layout found each of this item's section labels, keyed by the field the section "
        "fills (claims_administrator_guideline, maximus_guideline, rationale): kept so the evaluation report and "
        "readers point at them without re-finding labels.",
    )
    conclusion: Quote | None = Field(
        default=None,
        description="The rationale's sentence that states the conclusion (whether the request is medically "
        "necessary), verbatim; null when the rationale states none.",
    )
    quotes: list[Quote] = Field(
        default_factory=list,
        description="Other verbatim sentences of the rationale that support the decision (not the conclusion).",
    )
    category: Annotated[Category | None, STATED] = Field(
        default=None, description="DWC request category (the DWC's own taxonomy); null when nothing fits."
    )
    subcategory: Annotated[Subcategory | None, STATED] = Field(
        default=None, description="DWC request subcategory; for Pharmaceuticals the drug class."
    )
    drug: Drug | None = Field(default=None, description="For pharmaceutical items: the drug requested.")

    @model_validator(mode="after")
    def _in_taxonomy(self) -> Item:
        if not is_valid(self.category, self.subcategory):
            raise ValueError(f"({self.category!r}, {self.subcategory!r}) is not a DWC category/subcategory pair")
        return self


class Flag(_Strict):
    code: FlagCode
    severity: Severity
    message: str
    item: int | None = Field(default=None, ge=0, description="Index into items, if the flag concerns one.")
    start: int | None = Field(default=None, ge=0)
    end: int | None = Field(default=None, ge=0)


class Case(_Strict):
    """The letter's header: its IMR case number and dates (null where the letter states none)."""

    case_number: Annotated[str | None, STATED] = Field(
        default=None, description='The IMR case number, e.g. "CM16-0229336".'
    )
    date_assigned: Annotated[dt.date | None, STATED] = Field(
        default=None, description="When the case was assigned to the reviewer."
    )
    date_of_injury: Annotated[dt.date | None, STATED] = Field(default=None, description="The date of injury.")
    decision_date: Annotated[dt.date | None, STATED] = Field(
        default=None, description="The date of this determination (the IMR decision)."
    )
    ur_denial_date: Annotated[dt.date | None, STATED] = Field(
        default=None, description="The date of the utilization review (UR) denial."
    )
    priority: Annotated[str | None, STATED] = Field(default=None, description='"Standard" or "Expedited", as written.')
    application_received: Annotated[dt.date | None, STATED] = Field(
        default=None, description="When the IMR application was received."
    )

    @field_validator("date_assigned", "date_of_injury", "decision_date", "ur_denial_date", "application_received")
    @classmethod
    def _plausible_year(cls, value: dt.date | None) -> dt.date | None:
        """A real date in year 201 or 9999 is a misread, not a letter's date (rules: null + flag)."""
        if value is not None and not DATE_MIN_YEAR <= value.year <= DATE_MAX_YEAR:
            raise ValueError(f"year {value.year} is outside {DATE_MIN_YEAR}-{DATE_MAX_YEAR}")
        return value


class Reviewer(_Strict):
    """The expert reviewer's credentials as the letter states them."""

    licensure: Annotated[list[str], STATED] = Field(
        default_factory=list, description='The state(s) the reviewer is licensed in, e.g. ["California"].'
    )
    specialties: Annotated[list[str], STATED] = Field(
        default_factory=list,
        description='The reviewer\'s certifications or specialties, one per entry, e.g. ["Orthopedic Surgery"].',
    )


class Patient(_Strict):
    """The injured worker as the case summary describes them ("a 59 year old male")."""

    age: Annotated[int | None, STATED] = Field(default=None, ge=0, le=MAX_AGE, description="Age in years.")
    sex: Annotated[Sex | None, STATED] = Field(default=None, description='"male" or "female".')


class Diagnosis(_Strict):
    """A diagnosis the case summary states; where it is written is ``evidence["diagnoses.<i>"]``."""

    name: str = Field(description="The phrase as written, whitespace collapsed.")
    body_regions: list[str] = Field(
        default_factory=list, description='Body regions it names, normalised ("right knee", "lumbar spine").'
    )


class Usage(_Strict):
    """Token use summed over retries and re-asks (LLM backends)."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated_cost_usd: float | None = None


class SourceInfo(_Strict):
    sha256: str
    name: str | None = None
    kind: Literal["pdf", "text"] = "text"
    page_count: int = Field(ge=1)
    characters: int = Field(ge=0)
    layout: str = Field(description="Detected layout family: imr-issues, maximus-2015, mpr-2013 or unknown.")
    backend: str
    model: str | None = None
    endpoint: str | None = Field(default=None, description="Base URL of the LLM endpoint (never the key).")
    strategy: str | None = Field(
        default=None, description="LLM prompting strategy: whole-letter or per-item."
    )
    prompt_version: str | None = None
    cached: bool = False
    schema_version: str = SCHEMA_VERSION
    extractor_version: str = ""
    usage: Usage | None = None


class Determination(_Strict):
    """One IMR determination letter, extracted and verified."""

    case: Case = Field(default_factory=Case)
    reviewer: Reviewer = Field(default_factory=Reviewer)
    patient: Patient = Field(default_factory=Patient)
    items: list[Item] = Field(default_factory=list)
    evidence: dict[str, Grounding] = Field(
        default_factory=dict,
        description=(
            "Where the letter states each extracted value: the value's dotted path (case.date_assigned, "
            "reviewer.licensure.0, patient.age, items.2.decision, items.0.category, ...) -> the verbatim "
            "text it was read from, with offsets, page and match tier."
        ),
    )
    diagnoses: Annotated[list[Diagnosis], STATED] = Field(
        default_factory=list, description="Diagnoses the case summary states."
    )
    flags: list[Flag] = Field(default_factory=list)
    source: SourceInfo

    @property
    def ok(self) -> bool:
        """True when no flag is an error: the result can be trusted without a human look."""
        return not any(f.severity == "error" for f in self.flags)

    def flags_for(self, item: int) -> list[Flag]:
        return [f for f in self.flags if f.item == item]


def fields_of(model: type[BaseModel], kind: type) -> tuple[str, ...]:
    """Names of ``model``'s fields that hold a ``kind`` (alone, optional or in a list), in order.

    How code finds citations or quotes by type instead of listing field names by hand.
    """
    return tuple(name for name, info in model.model_fields.items() if _holds(info.annotation, kind))


def _holds(annotation: Any, kind: type) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, kind):
        return True
    return any(_holds(arg, kind) for arg in get_args(annotation))


def held(model: BaseModel, kind: type[_T]) -> list[_T]:
    """Every ``kind`` that ``model``'s own fields hold (alone or listed), in field order: an item's
    quotes are ``held(item, Quote)`` (its conclusion, then its supporting quotes)."""
    out: list[_T] = []
    for name in fields_of(type(model), kind):
        value = getattr(model, name)
        out += [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, kind)]
    return out


#: The item's guideline lists (claims administrator's, MAXIMUS's), found by type.
CITATION_FIELDS = fields_of(Item, Citation)
#: Short names of the guideline lists (``claims_administrator``, ``maximus``): table columns, metric names.
CITATION_SIDES = {field.removesuffix("_guideline"): field for field in CITATION_FIELDS}


@cache
def _field_roles(cls: type[BaseModel]) -> tuple[tuple[str, bool], ...]:
    """(field name, stated?) for each field of ``cls``; computed once per class."""
    return tuple(
        (name, any(isinstance(m, Stated) for m in info.metadata)) for name, info in cls.model_fields.items()
    )


def stated_values(model: BaseModel, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, value) of every non-null value of ``model`` that is read from the letter.

    Walks nested models and lists (``items.2.decision``, ``reviewer.licensure.0``); a
    :class:`Grounding` carries its own evidence and is not walked. The paths are the keys of
    ``Determination.evidence``.
    """
    for name, stated in _field_roles(type(model)):
        value = getattr(model, name)
        path = prefix + name
        if stated:
            if isinstance(value, list):
                yield from ((f"{path}.{i}", v) for i, v in enumerate(value) if v is not None)
            elif value is not None:
                yield path, value
        elif isinstance(value, BaseModel) and not isinstance(value, Grounding):
            yield from stated_values(value, path + ".")
        elif isinstance(value, list):
            for i, entry in enumerate(value):
                if isinstance(entry, BaseModel) and not isinstance(entry, Grounding):
                    yield from stated_values(entry, f"{path}.{i}.")


def json_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`Determination`, generated from the models."""
    schema = Determination.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://llm-extract/determination/{SCHEMA_VERSION}"
    return schema
