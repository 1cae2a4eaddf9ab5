"""The LLM backend: a language model fills the schema; nothing it says passes unverified.

Three strategies behind one option:

- ``per-item`` (default where the layout parser knows the layout): the parser segments the
  letter and the model fills decision, citations, summary and quotes for one item at a time.
  Shorter prompts with a shared prefix: faster on small models, and item names are exact.
- ``per-item-brief`` (the local model's default): as per-item, but the citations come from the
  parser's citation grammar and the model fills only decision, summary and quotes. About a third
  of the output tokens, which is what a 1.5B model generating ~9 tokens/s on 2 cores can afford.
- ``whole-letter``: the model reads the whole letter and finds the items itself (also used when
  the parser does not know the layout).

Every answer is validated against the letter inside instructor (re-asked with the reasons);
whatever is still wrong after the last re-ask comes back as error flags, never as an exception and
never silently dropped. The pipeline then cross-checks it against the layout parser
(``crosschecked``: :func:`llm_extract.pipeline.crosschecked`).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from instructor.core import InstructorRetryException
from pydantic import BaseModel

from .. import rules
from ..compare import item_pairs
from ..ingest import Letter
from ..layout import Parsed
from ..normalize import collapse
from ..options import LLMOptions, ModelOptions
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
from .views import ItemBrief, ItemFill, LetterDraft

log = logging.getLogger("llm_extract.llm")

PER_ITEM = ("per-item", "per-item-brief")
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
        strategy = options.strategy or self.default_strategy
        endpoint = self.endpoint(options)
        session = _Session(endpoint, letter, options.prompts_logged())
        baseline = rules.build(letter, parsed)
        known = parsed.layout != "unknown" and bool(parsed.items)
        if strategy in PER_ITEM and known:
            brief = strategy == "per-item-brief"
            items, case, reviewer, patient = session.per_item(parsed, baseline, brief), *_people(baseline)
        else:
            strategy = "whole-letter"
            draft = session.whole_letter(baseline if known else None)
            items = session.items_from(draft, baseline if known else None)
            case, reviewer, patient = (
                (draft.case, draft.reviewer, draft.patient) if draft else _people(baseline)
            )
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
        return result.model_copy(update={"evidence": _parser_evidence(result, baseline)})


def _parser_evidence(result: Determination, baseline: Determination) -> dict[str, Grounding]:
    """The layout parser's evidence for every value the model's answer shares with the parser.

    Items are paired by heading (the cross-check's rule), so ``items.1`` of the answer takes the
    evidence of the parser's item it is. A value the model states differently (another decision,
    another date) gets none, and the verifier flags it ``evidence_missing``: the model's own
    evidence is not asked for yet.
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


def _conclusion_and_quotes(answered: list[str]) -> dict[str, Any]:
    """``Item.conclusion`` and ``Item.quotes`` from the model's quotes: the views ask for the
    conclusion first (``views.QUOTES_DESCRIPTION``), the rest support it."""
    quotes = [Quote(text=text) for text in answered]
    return {"conclusion": quotes[0] if quotes else None, "quotes": quotes[1:]}


def _people(baseline: Determination) -> tuple[Any, Any, Any]:
    return baseline.case, baseline.reviewer, baseline.patient


class _Session:
    """One letter's conversation state: client, verifier, usage and flags."""

    def __init__(self, endpoint: Endpoint, letter: Letter, log_prompts: bool) -> None:
        self.endpoint = endpoint
        self.letter = letter
        self.verifier = Verifier(letter.text)
        self.usage = Usage()
        self.flags: list[Flag] = []
        self.log_prompts = log_prompts
        self.client = endpoint.client()
        self.client.on("completion:response", self._count)
        self.system = prompts.system_prompt()

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
        # instructor renders message content as Jinja whenever a validation context is given, so the
        # messages only *name* context variables: the letter is never template source.
        messages = [
            {"role": "system", "content": "{{ _system_prompt }}"},
            {"role": "user", "content": "{{ _user_prompt }}"},
        ]
        context = {**context, "_system_prompt": self.system, "_user_prompt": user}
        if self.log_prompts:
            log.debug("prompt (%s):\n%s\n---\n%s", model.__name__, self.system, user)
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
            )

        try:
            return with_retries(call, self.endpoint)
        except InstructorRetryException as exc:
            reason = " ".join(str(exc.__cause__ or exc).split())[:400]
            last = _last_answer(exc, model)
            if last is None:
                self.flags.append(
                    Flag(
                        code=FlagCode.LLM_INVALID_OUTPUT,
                        severity="error",
                        item=item,
                        message=f"no valid answer after {exc.n_attempts} attempt(s): {reason}",
                    )
                )
            else:
                self.flags.append(
                    Flag(
                        code=FlagCode.LLM_REASK_EXHAUSTED,
                        severity="error",
                        item=item,
                        message=f"answer still wrong after {exc.n_attempts} attempt(s): {reason}",
                    )
                )
            return last

    def per_item(self, parsed: Parsed, baseline: Determination, brief: bool = False) -> list[Item]:
        """One request per parsed item; ``brief`` keeps the parser's citations and asks for the rest."""
        text = self.letter.text
        view = ItemBrief if brief else ItemFill
        asked = set(view.model_fields)
        items = []
        for index, (block, known) in enumerate(zip(parsed.items, baseline.items)):
            end = block.rationale[1] if block.rationale else block.heading[1]
            context = {
                "verifier": self.verifier,
                "text": text,
                "decision": block.decision,
                "where": f"item {index + 1} ({known.item[:60]!r})",
            }
            # brief still shows the whole block: measured, cutting the citation sections out of the
            # prompt saved ~4 s per item but the 1.5B model then misread far more decisions.
            prompt = prompts.item_prompt(
                known.item, text[block.block_start : end], self.letter.sha256, citations=not brief
            )
            fill = self.ask(view, prompt, context, index)
            answer = fill.model_dump() if fill is not None else dict.fromkeys(asked)
            update: dict[str, Any] = {
                "decision": answer["decision"],
                "rationale_summary": answer["rationale_summary"],
                **_conclusion_and_quotes([q["text"] for q in answer["quotes"] or []]),
            }
            for field in CITATION_FIELDS:
                if field in asked:  # otherwise the parser's citations stand
                    update[field] = [Citation(**c) for c in answer[field] or []]
            items.append(known.model_copy(update=update))
        return items

    def whole_letter(self, baseline: Determination | None) -> BaseModel | None:
        expected = [(i.item, i.decision) for i in baseline.items] if baseline else None
        context = {"verifier": self.verifier, "text": self.letter.text, "expected": expected}
        return self.ask(
            LetterDraft, prompts.letter_prompt(self.letter.text, self.letter.sha256), context, None
        )

    def items_from(self, draft: BaseModel | None, baseline: Determination | None) -> list[Item]:
        if draft is None:
            return []
        drafted = draft.items  # type: ignore[attr-defined]
        # the parser's item each drafted item is (the cross-check's pairing rule), for its rationale span
        paired = item_pairs([d.item for d in drafted], [i.item for i in baseline.items]) if baseline else {}
        items = []
        for index, d in enumerate(drafted):
            found = self.verifier.locate(d.item)
            heading = Span(start=found.start, end=found.end) if found.start is not None else None
            known = baseline.items[paired[index]] if baseline and index in paired else None
            items.append(
                Item(
                    item=collapse(d.item),
                    decision=d.decision,
                    original_request=d.original_request,
                    authorized=d.authorized,
                    heading=heading,
                    **{field: [Citation(**c.model_dump()) for c in getattr(d, field)] for field in CITATION_FIELDS},
                    rationale_summary=d.rationale_summary,
                    rationale=known.rationale if known else None,
                    **_conclusion_and_quotes([q.text for q in d.quotes]),
                )
            )
        return items


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
