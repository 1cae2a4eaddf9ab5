"""The LLM backend: a language model fills the schema; nothing it says passes unverified.

Four strategies behind one option (the views they use are in :mod:`.views`):

- ``per-item`` (default where the layout parser knows the layout): the parser segments the
  letter and the model reads one item at a time — its heading and its rationale's sentences,
  numbered — and answers the decision word, the conclusion's and the main reason's sentence
  numbers, the decision, the citations and a summary in its own words. Shorter prompts with a
  shared prefix; item names are exact; quotes are the numbered sentences, copied by code.
- ``per-item-brief`` (the local model's default): as per-item, but the citations come from the
  parser's citation grammar and the summary is the numbered sentences (whole sentences, the rules
  backend's :func:`~llm_extract.rules.summarize`): about 25 output tokens per item, which is what a
  1.5B model generating ~9 tokens/s on 2 cores can afford.
- ``whole-letter``: the model reads the whole letter and finds the items itself, copying each
  item's name, decision word and concluding sentence.
- ``whole-letter-brief``: as whole-letter without citations and free text (the local model on
  layouts the parser does not know). Each per-item strategy falls back to its whole-letter twin
  when the parser does not know the layout.

Every answer is validated against the letter inside instructor (re-asked with the reasons);
whatever is still wrong after the last re-ask comes back as error flags, never as an exception and
never silently dropped. The pipeline then cross-checks it against the layout parser
(``crosschecked``: :func:`llm_extract.pipeline.crosschecked`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from typing import Any, get_args

from instructor.core import InstructorRetryException
from instructor.core.hooks import Hooks
from pydantic import BaseModel

from .. import fields, rules
from ..compare import item_pairs
from ..ingest import Letter
from ..layouts import Parsed
from ..normalize import collapse, sentences
from ..options import LLMOptions, ModelOptions, Strategy
from ..schema import (
    CITATION_FIELDS,
    Citation,
    Determination,
    Flag,
    FlagCode,
    Grounding,
    Item,
    Quote,
    SourceInfo,
    Span,
    Usage,
    stated_values,
)
from ..verify import Verifier
from ..version import __version__
from . import prompts
from .client import Endpoint, configure_gate, with_retries
from .views import (
    ACCEPTED_TIERS,
    ItemBrief,
    ItemFill,
    LetterBrief,
    LetterDraft,
    decision_of_word,
    people_of,
    resolved_conclusion,
    summary_problem,
    word_near_item,
)

log = logging.getLogger("llm_extract.llm")

#: The strategies (their one home is the options model's ``Strategy``).
STRATEGIES: tuple[str, ...] = get_args(Strategy)
PER_ITEM = ("per-item", "per-item-brief")
#: What a per-item strategy becomes when the layout parser does not know the letter's layout.
WHOLE_LETTER_TWIN = {"per-item": "whole-letter", "per-item-brief": "whole-letter-brief"}
_FENCED_JSON = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


class LLMBackend:
    """Any OpenAI-compatible endpoint, through instructor on the openai client."""

    name = "openai"
    Options: type[ModelOptions] = LLMOptions
    cacheable = True
    crosschecked = True
    default_strategy = "per-item"

    def endpoint(self, options: ModelOptions) -> Endpoint:
        return Endpoint.from_options(**options.endpoint_fields())

    def prepare_batch(self, options: ModelOptions, jobs: int) -> None:
        """A batch's threads share one rate gate: ``max_in_flight`` requests (default ``jobs``)."""
        configure_gate(options.max_in_flight or jobs)

    def cache_parts(self, letter: Letter, options: ModelOptions) -> dict[str, Any]:
        """What the cache key covers: the options that change an answer (never the API key, nor
        credentials in the base URL), resolved as the run resolves them, and the versions."""
        endpoint = self.endpoint(options)
        return {
            "sha256": letter.sha256,
            "backend": self.name,
            "options": options.cache_fields(),
            "model": endpoint.model,
            "endpoint": endpoint.shown,
            "mode": endpoint.mode,
            "strategy": options.strategy or self.default_strategy,
            "prompt": prompts.prompt_id(),
            "version": __version__,
        }

    def run(self, letter: Letter, parsed: Parsed, options: ModelOptions) -> Determination:
        strategy: str = options.strategy or self.default_strategy
        endpoint = self.endpoint(options)
        session = _Session(endpoint, letter, options.prompts_logged())
        baseline = rules.build(letter, parsed)
        known = parsed.layout != "unknown" and bool(parsed.items)
        if strategy in PER_ITEM and known:
            brief = strategy == "per-item-brief"
            items, case, reviewer, patient = session.per_item(parsed, baseline, brief), *_people(baseline)
        else:
            strategy = WHOLE_LETTER_TWIN.get(strategy, strategy)
            brief = strategy == "whole-letter-brief"
            draft = session.whole_letter(baseline if known else None, brief)
            items = session.items_from(draft, baseline if known else None)
            case, reviewer, patient = people_of(draft) if draft else _people(baseline)
            if draft:
                session.flags += _unstated_people_flags((case, reviewer, patient), baseline if known else None)
            if brief and not known:
                session.flags.append(
                    Flag(
                        code=FlagCode.LAYOUT_UNKNOWN,
                        severity="info",
                        message="the layout parser does not know this layout and the brief whole-letter view "
                        "reads no citations: the citation lists are empty (strategy='whole-letter' asks for them)",
                    )
                )
        session.flags += _summary_flags(items)
        usage = session.usage.model_copy(update={"estimated_cost_usd": endpoint.cost(session.usage)})
        result = Determination(
            case=case,
            reviewer=reviewer,
            patient=patient,
            items=items,
            flags=session.flags,
            source=SourceInfo(
                sha256=letter.sha256,
                name=letter.name,
                kind=letter.kind,
                page_count=letter.page_count,
                characters=len(letter.text),
                layout=parsed.layout,
                backend=self.name,
                model=endpoint.model,
                endpoint=endpoint.shown if endpoint.base_url else None,
                strategy=strategy,
                prompt_version=prompts.prompt_id(),
                extractor_version=__version__,
                usage=usage,
            ),
        )
        return result.model_copy(update={"evidence": _model_evidence(result, session, _parser_evidence(result, baseline))})


def _parser_evidence(result: Determination, baseline: Determination) -> dict[str, Grounding]:
    """The layout parser's evidence for every value the model's answer shares with the parser.

    Items are paired by heading (the cross-check's rule), so ``items.1`` of the answer takes the
    evidence of the parser's item it is. A value the model states differently (another decision,
    another date) gets none here: :func:`_model_evidence` looks for the model's own.
    """
    index = item_pairs([i.item for i in result.items], [i.item for i in baseline.items])
    parser_values = dict(stated_values(baseline))
    carried = {}
    for path, value in stated_values(result):
        parts = path.split(".")
        if parts[0] == "items":
            if int(parts[1]) not in index:
                continue
            parts[1] = str(index[int(parts[1])])
        source = ".".join(parts)
        if source in baseline.evidence and parser_values.get(source) == value:
            carried[path] = baseline.evidence[source]
    return carried


def _model_evidence(result: Determination, session: _Session, known: dict[str, Grounding]) -> dict[str, Grounding]:
    """``known`` (the parser's evidence) plus where the letter states each other value of the model's.

    Strings the model copied (items, partial-authorisation parts, case number, priority, reviewer
    entries) are located as they are; a date where the letter writes that date; the patient where an
    "N-year-old <sex>" phrase states that value; a decision at the model's copied decision word after
    the item's name (or, where the heading states none, at its concluding sentence if that concludes
    the same). A value the letter does not support gets nothing, and the verifier flags it
    ``evidence_missing``: evidence is found, never assumed.
    """
    text, verifier = session.letter.text, session.verifier
    evidence = dict(known)
    dates: dict[dt.date, Grounding] = {}
    for m in fields.DATE_VALUE.finditer(text):
        value = fields.parse_date(m)
        if value is not None and value not in dates:
            dates[value] = Grounding(text=m.group(0), start=m.start(), end=m.end())
    people = fields.patient_mentions(text, 0)

    def at(span: tuple[int, int] | None) -> Grounding | None:
        return Grounding(text=text[span[0] : span[1]], start=span[0], end=span[1]) if span else None

    def copied(value: str) -> Grounding | None:
        found = verifier.locate(value)
        return at((found.start, found.end)) if found.tier in ACCEPTED_TIERS and found.start is not None else None

    for path, value in stated_values(result):
        if path in evidence:
            continue
        parts = path.split(".")
        found: Grounding | None = None
        if isinstance(value, dt.date):
            found = dates.get(value)
        elif parts[0] == "patient":
            pair = 0 if parts[1] == "age" else 1
            found = next((at(p[pair].span) for p in people if p[pair].value == value), None)
        elif parts[0] == "items" and parts[2] == "decision":
            found = _decision_evidence(session, result.items[int(parts[1])], int(parts[1]), at)
        elif isinstance(value, str) and parts[0] in ("items", "case", "reviewer"):
            found = copied(value) if parts[-1] not in ("category", "subcategory") else None
        if found is not None:
            evidence[path] = found
    return evidence


def _decision_evidence(session: _Session, item: Item, index: int, at: Any) -> Grounding | None:
    """The model's decision word after the item's name, or its concluding sentence (no word)."""
    word = session.decision_words.get(index, "")
    if word.strip():
        if decision_of_word(word) != item.decision:
            return None
        near = word_near_item(word, item.item, session.verifier.folded.text)
        return at(session.verifier.folded.span(*near)) if near else None
    quote = item.conclusion
    if quote is not None and quote.start is not None and rules.stance(quote.text) == item.decision:
        return at((quote.start, quote.end))
    return None


#: The letter-level groups read outside the items, in Determination's field order.
PEOPLE = ("case", "reviewer", "patient")


def _people(answer: Any) -> tuple[Any, ...]:
    """Case, reviewer and patient of a Determination (a whole-letter draft's are converted by
    :func:`~llm_extract.llm.views.people_of`, which parses its copied dates)."""
    return tuple(getattr(answer, group) for group in PEOPLE)


def _unstated_people_flags(people: tuple[Any, Any, Any], baseline: Determination | None) -> list[Flag]:
    """Header, reviewer and patient values the model left null, flagged as the parser flags its own.

    Why: on a layout the parser does not know, the model is the only reader of these fields, and a
    null it leaves is indistinguishable from "the letter does not say" unless it is flagged. Where
    the parser knows the layout, only the values it read and the model dropped are flagged (a letter
    that states no UR denial date is not a problem).
    """
    read = _people(baseline) if baseline is not None else (None, None, None)
    missing = []
    for group, model_part, parser_part in zip(PEOPLE, people, read):
        for name, value in model_part:
            parsed = getattr(parser_part, name) if parser_part is not None else None
            if value in (None, []) and (baseline is None or parsed not in (None, [])):
                missing.append(f"{group}.{name}")
    flags = []
    header = [path for path in missing if not path.startswith("patient.")]
    if header:
        flags.append(
            Flag(
                code=FlagCode.HEADER_FIELD_MISSING,
                severity="warning",
                message="the model stated no value for " + ", ".join(header)
                + ("" if baseline else " (the layout parser does not know this layout: nothing else read them)"),
            )
        )
    if "patient.age" in missing and "patient.sex" in missing:
        flags.append(
            Flag(code=FlagCode.PATIENT_NOT_FOUND, severity="info", message="the model stated no patient age or sex")
        )
    return flags


def _summary_flags(items: list[Item]) -> list[Flag]:
    """A summary whose stance contradicts its item's decision (the rules backend's polarity rule)."""
    flags = []
    for index, item in enumerate(items):
        problem = summary_problem(item.rationale_summary, item.decision, f"item {index + 1} ({item.item[:60]!r})")
        if problem:
            flags.append(
                Flag(code=FlagCode.SUMMARY_CONTRADICTS_DECISION, severity="error", item=index, message=problem)
            )
    return flags


class _Session:
    """One letter's conversation state: client, verifier, usage and flags."""

    def __init__(self, endpoint: Endpoint, letter: Letter, log_prompts: bool) -> None:
        self.endpoint = endpoint
        self.letter = letter
        self.verifier = Verifier(letter.text)
        self.usage = Usage()
        self.flags: list[Flag] = []
        self.log_prompts = log_prompts
        self.client = endpoint.client()  # shared by every letter on this endpoint: one connection pool
        self.hooks = Hooks()  # this letter's usage, counted per call (the client is shared across threads)
        self.decision_words: dict[int, str] = {}  # item index -> the decision word the model copied
        self.hooks.on("completion:response", self._count)

    def _count(self, response: Any) -> None:
        usage = getattr(response, "usage", None)
        self.usage.requests += 1
        if usage is not None:
            self.usage.prompt_tokens += usage.prompt_tokens or 0
            self.usage.completion_tokens += usage.completion_tokens or 0

    def ask(
        self, model: type[BaseModel], user: str, context: dict[str, Any], item: int | None
    ) -> BaseModel | None:
        """One structured answer, validated against the letter and re-asked; flagged if it never passes."""
        system = prompts.system_prompt(model)
        # instructor renders message content as Jinja whenever a validation context is given, so the
        # messages only *name* context variables: the letter is never template source.
        messages = [
            {"role": "system", "content": "{{ _system_prompt }}"},
            {"role": "user", "content": "{{ _user_prompt }}"},
        ]
        context = {**context, "_system_prompt": system, "_user_prompt": user}
        if self.log_prompts:
            log.debug("prompt (%s):\n%s\n---\n%s", model.__name__, system, user)
        log.info("asking %s for %s (item %s)", self.endpoint.model, model.__name__, item)

        def call() -> BaseModel:
            return self.client.chat.completions.create(
                model=self.endpoint.model,
                messages=messages,
                response_model=model,
                max_retries=self.endpoint.max_reasks,
                context=context,
                max_tokens=self.endpoint.max_tokens,
                temperature=self.endpoint.temperature,
                hooks=self.hooks,
            )

        try:
            return with_retries(call, self.endpoint)
        except InstructorRetryException as exc:
            reason = " ".join(str(exc.__cause__ or exc).split())[:400]
            last = _last_answer(exc, model)
            code, outcome = (
                (FlagCode.LLM_INVALID_OUTPUT, "no valid answer")
                if last is None
                else (FlagCode.LLM_REASK_EXHAUSTED, "answer still wrong")
            )
            self.flags.append(
                Flag(code=code, severity="error", item=item, message=f"{outcome} after {exc.n_attempts} attempt(s): {reason}")
            )
            return last

    def per_item(self, parsed: Parsed, baseline: Determination, brief: bool = False) -> list[Item]:
        """One request per parsed item; ``brief`` keeps the parser's citations and asks for the rest."""
        text = self.letter.text
        view = ItemBrief if brief else ItemFill
        items = []
        for index, (block, known) in enumerate(zip(parsed.items, baseline.items)):
            spans = sentences(text, *block.rationale) if block.rationale else ()
            # The heading proper: the item's name through its decision word (a partial authorisation's
            # history before it is the parser's to read, and only distracted the model).
            heading = collapse(text[block.heading[0] : (block.decision_span or block.heading)[1]])
            context = {
                "verifier": self.verifier,
                "text": text,
                "decision": block.decision,
                "heading": heading,
                "sentences": spans,
                "where": f"item {index + 1} ({known.item[:60]!r})",
            }
            # The heading and the rationale's sentences, numbered: the model copies the decision word
            # and points at sentences. The brief view leaves the citation sections out (the parser
            # reads them), which is most of the prompt's saving.
            sections = None if brief else tuple(_section(text, span) for span in (block.ca, block.mx))
            prompt = prompts.item_prompt(
                heading,
                [collapse(text[s:e]) for s, e in spans],
                self.letter.sha256,
                worded=block.decision_span is not None,
                citations=sections,  # type: ignore[arg-type]
            )
            fill = self.ask(view, prompt, context, index)
            if fill is not None:
                self.decision_words[index] = fill.decision_word  # type: ignore[attr-defined]
            items.append(self._filled(known, fill, spans, brief))
        return items

    def _filled(self, known: Item, fill: BaseModel | None, spans: tuple[tuple[int, int], ...], brief: bool) -> Item:
        """The parser's item with the model's answer: its decision, ``Item.conclusion`` (the sentence it
        numbered as the conclusion), ``Item.quotes`` (the main reason's sentence) and the summary
        (out-of-range numbers are dropped; the validator flagged them)."""
        text = self.letter.text
        if fill is None:  # no valid answer: flagged llm_invalid_output; nothing of the model's is kept
            cleared: dict[str, Any] = {"decision": None, "rationale_summary": None, "conclusion": None, "quotes": []}
            return known.model_copy(update=cleared if brief else {**cleared, **dict.fromkeys(CITATION_FIELDS, [])})

        def sentence(number: int) -> tuple[int, int] | None:
            return spans[number - 1] if 1 <= number <= len(spans) else None

        conclusion, reason = sentence(fill.conclusion_sentence), sentence(fill.reason_sentence)  # type: ignore[attr-defined]
        update: dict[str, Any] = {
            "decision": fill.decision,  # type: ignore[attr-defined]
            "conclusion": Quote(text=text[conclusion[0] : conclusion[1]], start=conclusion[0], end=conclusion[1])
            if conclusion
            else None,
            "quotes": [Quote(text=text[reason[0] : reason[1]], start=reason[0], end=reason[1])]
            if reason and reason != conclusion
            else [],
            "rationale_summary": (
                rules.summarize(text, spans, conclusion, reason) if brief else fill.rationale_summary  # type: ignore[attr-defined]
            ),
        }
        if not brief:
            for field in CITATION_FIELDS:
                update[field] = [Citation(**c.model_dump()) for c in getattr(fill, field)]
        return known.model_copy(update=update)

    def whole_letter(self, baseline: Determination | None, brief: bool = False) -> BaseModel | None:
        expected = [(i.item, i.decision) for i in baseline.items] if baseline else None
        context = {"verifier": self.verifier, "text": self.letter.text, "expected": expected}
        return self.ask(
            LetterBrief if brief else LetterDraft,
            prompts.letter_prompt(self.letter.text, self.letter.sha256),
            context,
            None,
        )

    def items_from(self, draft: BaseModel | None, baseline: Determination | None) -> list[Item]:
        if draft is None:
            return []
        text = self.letter.text
        drafted = draft.items  # type: ignore[attr-defined]
        # the parser's item each drafted item is (the cross-check's pairing rule), for its rationale span
        paired = item_pairs([d.item for d in drafted], [i.item for i in baseline.items]) if baseline else {}
        items = []
        for index, d in enumerate(drafted):
            self.decision_words[index] = d.decision_word
            found = self.verifier.locate(d.item)
            heading = Span(start=found.start, end=found.end) if found.start is not None else None
            known = baseline.items[paired[index]] if baseline and index in paired else None
            copied = resolved_conclusion(d.conclusion, d.decision, text, self.verifier)
            concluding = collapse(copied)
            supporting = [q.text for q in getattr(d, "quotes", []) if q.text.strip() and collapse(q.text) != concluding]
            summary = getattr(d, "rationale_summary", None)
            if summary is None:  # the brief view: the concluding sentence, whole, where the letter has it
                at = self.verifier.locate(copied)
                if at.start is not None and at.tier != "none":
                    summary = rules.summarize(text, [(at.start, at.end)], (at.start, at.end), None)
            cited = {
                field: [Citation(**c.model_dump()) for c in getattr(d, field)]
                if hasattr(d, field)
                else (getattr(known, field) if known else [])
                for field in CITATION_FIELDS
            }
            items.append(
                Item(
                    item=collapse(d.item),
                    decision=d.decision,
                    original_request=d.original_request,
                    authorized=d.authorized,
                    heading=heading,
                    rationale_summary=summary,
                    rationale=known.rationale if known else None,
                    sections=known.sections if known else {},
                    conclusion=Quote(text=copied) if concluding else None,
                    quotes=[Quote(text=q) for q in dict.fromkeys(supporting)],
                    **cited,
                )
            )
        return items


def _section(text: str, span: tuple[int, int] | None) -> str:
    return collapse(text[span[0] : span[1]]) if span else ""


def _last_answer(exc: InstructorRetryException, model: type[BaseModel]) -> BaseModel | None:
    """The final (invalid) answer, parsed without the letter so it can be returned flagged."""
    completion = getattr(exc, "last_completion", None)
    if completion is None or not getattr(completion, "choices", None):
        return None
    message = completion.choices[0].message
    raw = None
    if getattr(message, "tool_calls", None):
        raw = message.tool_calls[0].function.arguments
    elif message.content:
        raw = message.content
        fenced = _FENCED_JSON.search(raw)
        if fenced:
            raw = fenced.group(1)
    if not raw:
        return None
    try:
        return model.model_validate(json.loads(raw))
    except (ValueError, TypeError):
        return None
