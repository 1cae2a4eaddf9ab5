"""Model-facing schemas, generated from the output models, and the validators that verify them.

The model fills a *view* of :mod:`llm_extract.schema`: the same fields, descriptions and types,
minus what only the verifier may set (offsets, pages, match tiers, scores). The views are built
with ``pydantic.create_model`` from the output models' own ``FieldInfo``, so the two can never
drift apart.

Each view carries a validator that runs when instructor hands it a validation context (the letter,
its layout parse, the verifier): fabricated or paraphrased quotes, citation pages the letter does
not contain, items that are not in the letter and decisions that contradict the letter's heading
raise, and instructor re-asks the model with those reasons.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, create_model, model_validator
from pydantic.fields import FieldInfo

from ..compare import item_pairs, page_in_letter
from ..normalize import collapse
from ..schema import CITATION_FIELDS, Case, Citation, Item, Patient, Quote, Reviewer

#: Fields only the verifier sets.
VERIFIER_FIELDS = {"start", "end", "page", "match", "score"}
#: Quotes must be found at least this well to pass (fuzzy matches are re-asked).
ACCEPTED_TIERS = {"exact", "normalized"}
#: Problems listed in one re-ask message.
MAX_PROBLEMS = 12
#: Bounded output: these limits are in the JSON Schema the model fills, so a grammar-constrained
#: local model cannot run on (generation is the slow part on CPU: ~9 tokens/s on 2 cores), and a
#: hosted model that exceeds them is re-asked. The prompts state the same limits in words.
SUMMARY_MAX_CHARS = 200
MAX_QUOTES = 2


class ModelFacing(BaseModel):
    """Base of every view: strict, and verified against the letter when a context is given."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _verify_against_letter(self, info: ValidationInfo) -> ModelFacing:
        context = info.context
        if not context or "verifier" not in context:
            return self  # parsing without a letter (e.g. re-reading a cached or final answer)
        problems = problems_of(self, context)
        if problems:
            shown = problems[:MAX_PROBLEMS]
            more = f" (and {len(problems) - len(shown)} more)" if len(problems) > len(shown) else ""
            raise ValueError("the answer does not match the letter: " + "; ".join(shown) + more)
        return self


def view(
    model: type[BaseModel],
    name: str,
    *,
    drop: set[str] = frozenset(),
    retype: dict[str, Any] | None = None,
    bound: dict[str, dict[str, int]] | None = None,
    top: bool = False,
) -> type[BaseModel]:
    """A model-facing copy of ``model``: same fields and descriptions, minus ``drop``.

    ``bound`` adds length limits (``max_length``) to fields, on top of their own ``FieldInfo``.
    """
    retype, bound = retype or {}, bound or {}
    fields: dict[str, Any] = {}
    for field_name, info in model.model_fields.items():
        if field_name in drop:
            continue
        annotation = retype.get(field_name, info.annotation)
        if field_name in bound:
            info = FieldInfo.merge_field_infos(info, Field(**bound[field_name]))
        fields[field_name] = (annotation, info)
    base = ModelFacing if top else _Part
    return create_model(name, __base__=base, __doc__=model.__doc__, **fields)  # type: ignore[call-overload]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


CitationDraft = view(Citation, "CitationDraft", drop=VERIFIER_FIELDS)
QuoteDraft = view(Quote, "QuoteDraft", drop=VERIFIER_FIELDS)
_NESTED = {
    **dict.fromkeys(CITATION_FIELDS, list[CitationDraft]),  # type: ignore[valid-type]
    "quotes": list[QuoteDraft],  # type: ignore[valid-type]
}
#: The model answers the conclusion as its first quote; the backend moves it to ``Item.conclusion``.
QUOTES_DESCRIPTION = "Verbatim sentences of the rationale that support the decision, the conclusion first."
_BOUNDS = {
    "rationale_summary": {"max_length": SUMMARY_MAX_CHARS},
    "quotes": {"max_length": MAX_QUOTES, "description": QUOTES_DESCRIPTION},
}
#: Filled by the enrichment stage (``classify.py``) for every backend, so the model never writes them.
ENRICHED_FIELDS = {"category", "subcategory", "drug"}
#: Filled by the backend from the answer (the conclusion is the first quote), never asked for.
ANSWER_FIELDS = {"conclusion"}
ItemDraft = view(
    Item, "ItemDraft", drop={"heading", "rationale"} | ENRICHED_FIELDS | ANSWER_FIELDS, retype=_NESTED, bound=_BOUNDS
)
#: Per-item strategy: the layout parser names the item; the model fills the rest.
_PER_ITEM_DROP = {"item", "heading", "rationale", "original_request", "authorized"} | ENRICHED_FIELDS | ANSWER_FIELDS
ItemFill = view(Item, "ItemFill", drop=_PER_ITEM_DROP, retype=_NESTED, bound=_BOUNDS, top=True)
#: Per-item-brief strategy: the parser also supplies the citations (its deterministic citation
#: grammar); the model fills only decision, summary and quotes. A third of ItemFill's output tokens,
#: which is what makes a 1.5B model on 2 cores usable.
ItemBrief = view(
    Item,
    "ItemBrief",
    drop=_PER_ITEM_DROP | set(CITATION_FIELDS),
    retype=_NESTED,
    bound=_BOUNDS,
    top=True,
)
#: Whole-letter strategy: the model finds the items too.
LetterDraft = create_model(
    "LetterDraft",
    __base__=ModelFacing,
    __doc__="Every disputed item of an IMR letter, plus its header, reviewer and patient.",
    case=(Case, Field(default_factory=Case)),
    reviewer=(Reviewer, Field(default_factory=Reviewer)),
    patient=(Patient, Field(default_factory=Patient)),
    items=(list[ItemDraft], Field(description="Every disputed item, in letter order.")),  # type: ignore[valid-type]
)


def _quote_problems(quotes: list[Any], verifier: Any, where: str) -> list[str]:
    out = []
    for quote in quotes:
        found = verifier.locate(quote.text)
        if found.tier not in ACCEPTED_TIERS:
            out.append(
                f"{where}: quote {collapse(quote.text)[:100]!r} is not verbatim in the letter "
                "(copy whole sentences exactly)"
            )
    return out


def _citation_problems(citations: list[Any], verifier: Any, text: str, where: str) -> list[str]:
    out = []
    for cit in citations:
        if verifier.locate(cit.text).tier == "none":
            out.append(f"{where}: citation text {collapse(cit.text)[:100]!r} is not in the letter")
        for page in cit.pages:
            if not page_in_letter(page, text):
                out.append(f"{where}: page {page!r} does not appear in the letter")
    return out


def problems_of(draft: BaseModel, context: dict[str, Any]) -> list[str]:
    """Every way ``draft`` disagrees with the letter, as sentences the model can act on."""
    verifier, text = context["verifier"], context["text"]
    expected = context.get("expected")  # [(name, decision)] from the layout parser, if it knows the layout
    problems: list[str] = []
    if isinstance(draft, (ItemFill, ItemBrief)):
        where = context.get("where", "item")
        want = context.get("decision")
        if want and draft.decision != want:
            problems.append(f"{where}: the letter's heading says {want!r}, not {draft.decision!r}")
        problems += _quote_problems(draft.quotes, verifier, where)
        for field in CITATION_FIELDS:
            problems += _citation_problems(getattr(draft, field, []), verifier, text, f"{where} {field}")
        return problems
    items = draft.items  # type: ignore[attr-defined]
    # the parser's item each answer item is (the cross-check's and the evaluation's pairing rule)
    paired = item_pairs([i.item for i in items], [name for name, _ in expected]) if expected else {}
    for index, item in enumerate(items):
        where = f"item {index + 1} ({collapse(item.item)[:60]!r})"
        if verifier.locate(item.item).tier == "none":
            problems.append(
                f"{where}: this item is not in the letter; copy item names from the decisions section"
            )
        want = expected[paired[index]][1] if index in paired else None
        if want and item.decision != want:
            problems.append(f"{where}: the letter's heading says {want!r}, not {item.decision!r}")
        problems += _quote_problems(item.quotes, verifier, where)
        for field in CITATION_FIELDS:
            problems += _citation_problems(getattr(item, field), verifier, text, f"{where} {field}")
    return problems
