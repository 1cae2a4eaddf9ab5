"""The reviewer page itself: results (and gold, and an evaluation report) to one self-contained
HTML string. :func:`build_review_html` is pure: no files, no network.

Every string that came from a letter, a gold file or the extractor reaches the page either
through jinja2's autoescape or as JSON data that the script inserts with ``textContent``: letters
are untrusted text, and a letter containing ``<script>`` shows as text.

The letter text is cut into segments here (Python code-point offsets, the ones every
``start``/``end`` in a :class:`~llm_extract.schema.Determination` uses), so the browser never has
to map offsets onto its UTF-16 strings. Spans of every kind are marked in it: item headings,
rationales, quotes (the conclusion among them), citations, flags, evaluation mismatches, and the
evidence of every stated value (``Determination.evidence``), which a click on a field shows.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any

from ..batch import BatchError
from ..compare import heading_key
from ..normalize import collapse
from ..schema import CITATION_FIELDS, Determination, Quote, held, stated_values
from ..verify import EVIDENCE_TIERS
from ..version import __version__
from .inputs import Entry, Rejected, entry, file_name
from .verdicts import (
    ITEM_FIELDS,
    VERDICT_FIELDS,
    cite_str,
    comparison,
    flag_field,
    gold_citation,
    gold_headings,
    letter_fields,
    mismatch_field,
    predicted_fields,
    show,
)

if TYPE_CHECKING:
    import jinja2

TEMPLATE = "review.html.j2"
SCRIPT = "review.js"
#: Nothing is fetched, posted or framed; the only script is the page's own, named by its hash.
CSP = (
    "default-src 'none'; script-src {script}; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'"
)

#: Queue order: letters that failed to extract and records the page cannot read come first
#: (nothing of them can be reviewed until they are fixed), then by their worst flag.
SEVERITY_RANK = {"failed": 0, "rejected": 1, "error": 2, "warning": 3, "info": 4, "clean": 5}
#: A mismatch points at one offset; its highlight runs to the end of that line, at most this long.
MISMATCH_SPAN_CHARS = 160
#: How the two guideline lists are labelled in the items table.
CITATION_LABELS = {field: "CA" if field.startswith("claims") else "MAXIMUS" for field in CITATION_FIELDS}

#: A line break after a line of 60+ characters that does not end a sentence, followed by more text, is the PDF's wrapping:
#: the page may show it as a space ("reflow lines"). Display only: the text and offsets are unchanged.
_SOFT_BREAK = re.compile(r"(?<=[^\n\f]{59}[^\s.:;!?])[ \t]*\r?\n(?=[ \t]*[^\s\f])")


def _segments(text: str, spans: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """Cut the text at every span boundary: [[text, [span ids], soft], ...] in order.

    ``soft`` is 1 for a line break the page may reflow into a space; gaps have no ids.
    """
    soft = [{"id": "~", "start": m.start(), "end": m.end()} for m in _SOFT_BREAK.finditer(text)]
    every = list(spans) + soft
    bounds = {0, len(text)}
    for s in every:
        bounds.add(s["start"])
        bounds.add(s["end"])
    cuts = sorted(b for b in bounds if 0 <= b <= len(text))
    starts: dict[int, list[dict[str, Any]]] = {}
    for s in every:
        starts.setdefault(s["start"], []).append(s)
    out: list[list[Any]] = []
    active: list[dict[str, Any]] = []
    for a, b in zip(cuts, cuts[1:]):
        active = [s for s in active if s["end"] > a] + starts.get(a, [])
        if a == b:
            continue
        ids = [s["id"] for s in active if s["end"] > a]
        is_soft = "~" in ids
        if is_soft:
            ids.remove("~")
        if out and not ids and not is_soft and not out[-1][1] and not out[-1][2]:
            out[-1][0] += text[a:b]
        else:
            out.append([text[a:b], ids, int(is_soft)])
    return out


class _Spans:
    """The highlighted spans of one letter, numbered as they are added (none without text)."""

    def __init__(self, text: str | None) -> None:
        self.text = text
        self.all: list[dict[str, Any]] = []

    def add(self, kind: str, start: int | None, end: int | None, **extra: Any) -> str | None:
        size = len(self.text) if self.text is not None else 0
        if self.text is None or start is None or end is None or not 0 <= start < end <= size:
            return None
        sid = f"s{len(self.all)}"
        self.all.append({"id": sid, "kind": kind, "start": start, "end": end, **extra})
        return sid


def _item_data(spans: _Spans, i: int, it: Any) -> dict[str, Any]:
    heading = spans.add("heading", it.heading.start, it.heading.end, item=i) if it.heading else None
    rationale = spans.add("rationale", it.rationale.start, it.rationale.end, item=i) if it.rationale else None
    cites = []
    for field in CITATION_FIELDS:
        for c in getattr(it, field):
            shaped = gold_citation(c)
            cites.append(
                {
                    **shaped,
                    "field": field,
                    "by": CITATION_LABELS[field],
                    "label": cite_str(shaped),
                    "text": collapse(c.text),
                    "match": c.match,
                    "score": c.score,
                    "span": spans.add("cite", c.start, c.end, item=i, tier=c.match),
                }
            )

    def quote(q: Any, role: str) -> dict[str, Any]:
        sid = spans.add("quote", q.start, q.end, item=i, tier=q.match)
        return {"text": collapse(q.text), "match": q.match, "score": q.score, "page": q.page, "span": sid, "role": role}

    quotes = [quote(q, "conclusion" if q is it.conclusion else "support") for q in held(it, Quote)]
    drug = it.drug.model_dump(mode="json") if it.drug is not None else None
    return {
        "index": i,
        "item": it.item,
        "decision": it.decision,
        "original_request": it.original_request,
        "authorized": it.authorized,
        "category": it.category,
        "subcategory": it.subcategory,
        "drug": drug,
        "rationale_summary": it.rationale_summary,
        "heading_span": heading,
        "rationale_span": rationale,
        "target": heading or rationale,
        "citations": cites,
        "quotes": quotes,
        "fields": predicted_fields(it),
    }


def _evidence(spans: _Spans, det: Determination) -> dict[str, str | None]:
    """Every stated value's dotted path -> the span of its evidence, or None: the letter was not
    shown to state it (no evidence, or evidence the verifier did not accept)."""
    out: dict[str, str | None] = {}
    for path, g in det.evidence.items():
        accepted = g.match in EVIDENCE_TIERS
        out[path] = spans.add("evidence", g.start, g.end, path=path, tier=g.match) if accepted else None
    for path, _value in stated_values(det):
        out.setdefault(path, None)
    return out


def _letter_data(
    n: int,
    det: Determination,
    text: str | None,
    notice: str | None,
    gold: Mapping[str, Any] | None,
    mismatches: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    spans = _Spans(text)
    items = [_item_data(spans, i, it) for i, it in enumerate(det.items)]
    evidence = _evidence(spans, det)
    compared = comparison(gold, det) if gold is not None else None
    gold_heading = gold_headings(gold, compared)
    targets = _flag_targets(spans, det, items, gold_heading) + _mismatch_targets(
        spans, det, items, gold, compared, mismatches
    )
    _unique_ids(targets)
    counts = {s: sum(1 for f in det.flags if f.severity == s) for s in ("error", "warning", "info")}
    severity = next((s for s in ("error", "warning", "info") if counts[s]), "clean")
    name = det.source.name or f"(text {det.source.sha256[:12]})"
    verdict_letter = (gold or {}).get("letter") or _letters_relative(det.source.name) or name
    return {
        "key": str(n),
        "name": name,
        "file": file_name(det.source.name) or name,
        "sha256": det.source.sha256,
        "verdict_letter": verdict_letter,
        "case_number": det.case.case_number,
        "layout": det.source.layout,
        "backend": det.source.backend,
        "model": det.source.model,
        "pages": det.source.page_count,
        "characters": det.source.characters,
        "severity": severity,
        "counts": {**counts, "mismatch": len(mismatches)},
        "decisions": sorted({it.decision or "none" for it in det.items}),
        "codes": sorted({f.code.value for f in det.flags}),
        "notice": notice,
        "has_text": text is not None,
        "segments": _segments(text, spans.all) if text is not None else [],
        "spans": {s["id"]: {k: v for k, v in s.items() if k != "id"} for s in spans.all},
        "items": items,
        "evidence": evidence,
        "diagnoses": [d.name for d in det.diagnoses],
        "targets": targets,
        "gold": compared,
        "letter_fields": letter_fields(det),
        "problem": None,
    }


def _flag_targets(
    spans: _Spans, det: Determination, items: list[dict[str, Any]], gold_heading: Mapping[int, str]
) -> list[dict[str, Any]]:
    """A review target per flag: its span, or its item's rationale (or heading) when it has none."""
    targets = []
    for k, f in enumerate(det.flags):
        sid = spans.add("flag", f.start, f.end, item=f.item, severity=f.severity)
        fallback = None
        if sid is None and f.item is not None and 0 <= f.item < len(items):
            fallback = items[f.item]["rationale_span"] or items[f.item]["heading_span"]
        named = f.item is not None and 0 <= f.item < len(det.items)
        targets.append(
            {
                "id": f"flag:{f.code.value}:{_or_dash(f.item)}:{_or_dash(f.start)}",
                "type": "flag",
                "index": k,
                "code": f.code.value,
                "severity": f.severity,
                "message": f.message,
                "item_index": f.item,
                "verdict_item": gold_heading.get(f.item, det.items[f.item].item) if named else None,
                "field": flag_field(f.code),
                "span": sid or fallback,
                "span_exact": sid is not None,
            }
        )
    return targets


def _mismatch_targets(
    spans: _Spans,
    det: Determination,
    items: list[dict[str, Any]],
    gold: Mapping[str, Any] | None,
    compared: Mapping[str, Any] | None,
    mismatches: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """A review target per mismatch of the evaluation report, at its offset or its item."""
    text = spans.text
    pred_by_heading = {heading_key(it.item): i for i, it in enumerate(det.items)}
    gold_items = (gold or {}).get("items") or []
    gold_to_pred = {int(g): p for g, p in (compared or {}).get("pairs", {}).items()}
    targets = []
    for m in mismatches:
        kind, field = str(m.get("kind", "")), str(m.get("field", ""))
        heading = m.get("item")
        index = None
        if heading is not None:
            index = next(
                (gold_to_pred[gi] for gi, g in enumerate(gold_items)
                 if heading_key(g.get("item")) == heading_key(heading) and gi in gold_to_pred),
                pred_by_heading.get(heading_key(heading)),
            )
        offset = m.get("offset")
        sid = None
        if isinstance(offset, int) and text is not None and 0 <= offset < len(text):
            line_end = text.find("\n", offset)
            end = min(len(text), offset + MISMATCH_SPAN_CHARS, line_end if line_end > offset else len(text))
            sid = spans.add("mismatch", offset, max(end, offset + 1))
        if sid is None and index is not None:
            sid = items[index]["target"]
        targets.append(
            {
                "id": f"mismatch:{kind}:{field}:{collapse(heading) if heading else '-'}",
                "type": "mismatch",
                "kind": kind,
                "severity": "mismatch",
                "message": f"{field}: gold {show(m.get('gold')) or '(none)'} · predicted {show(m.get('predicted')) or '(none)'}",
                "gold": m.get("gold"),
                "predicted": m.get("predicted"),
                "context": m.get("context") or "",
                "item_index": index,
                "verdict_item": None if kind == "extra_item" else heading,
                "field": mismatch_field(kind, field),
                "span": sid,
                "span_exact": isinstance(offset, int),
            }
        )
    return targets


def _or_dash(value: int | None) -> str:
    return "-" if value is None else str(value)


def _unique_ids(targets: list[dict[str, Any]]) -> None:
    """A verdict is stored under its target's id: a second target with the same id gets ``#2``."""
    seen: dict[str, int] = {}
    for t in targets:
        seen[t["id"]] = seen.get(t["id"], 0) + 1
        if seen[t["id"]] > 1:
            t["id"] = f"{t['id']}#{seen[t['id']]}"


def _letters_relative(name: str | None) -> str | None:
    """``evals/letters/x/y.pdf`` -> ``x/y.pdf`` (how gold files and verdicts name letters)."""
    if not name:
        return None
    norm = name.replace("\\", "/")
    marker = "evals/letters/"
    return norm.split(marker, 1)[1] if marker in norm else None


def _by_file_name(records: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {}
    for r in records:
        out.setdefault(file_name(str(r.get("letter", ""))), []).append(r)
    return out


def _as_dict(obj: Any) -> dict[str, Any]:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    return dict(obj)


def _problem_data(n: int, problem: BatchError | Rejected) -> dict[str, Any]:
    """A queue entry for a failed letter or an unreadable record: its error instead of a letter."""
    if isinstance(problem, BatchError):
        kind, code, message, where = "failed", problem.error, problem.message, problem.letter
        name = problem.letter
        sha = getattr(problem, "sha256", None) or ""
        notice = f"This letter could not be extracted ({code}): {message}"
    else:
        kind, code, message, where = "rejected", "record", problem.reason, problem.where
        name = problem.name or problem.where
        sha = ""
        notice = f"This record of the results cannot be read ({problem.where}): {problem.reason}"
    return {
        "key": str(n),
        "name": name,
        "file": file_name(name) or name,
        "sha256": sha,
        "verdict_letter": name,
        "case_number": None,
        "layout": None,
        "backend": None,
        "model": None,
        "pages": None,
        "characters": None,
        "severity": kind,
        "counts": {"error": 0, "warning": 0, "info": 0, "mismatch": 0},
        "decisions": [],
        "codes": [f"{kind}:{code}"],
        "notice": notice,
        "has_text": False,
        "segments": [],
        "spans": {},
        "items": [],
        "evidence": {},
        "diagnoses": [],
        "targets": [],
        "gold": None,
        "letter_fields": {},
        "problem": {"kind": kind, "code": code, "message": message, "where": where},
    }


def _as_entry(record: Entry | Mapping[str, Any], n: int) -> Entry:
    if isinstance(record, (Determination, BatchError, Rejected)):
        return record
    return entry(dict(record), f"result {n + 1}")


def build_review_data(
    results: Sequence[Entry | Mapping[str, Any]],
    letters_text: Sequence[str | None] | Mapping[str, str | None],
    gold: Sequence[Any] | None = None,
    eval_report: Mapping[str, Any] | None = None,
    notices: Sequence[str | None] | None = None,
) -> dict[str, Any]:
    """The page's data. ``results`` are Determinations, failed letters (:class:`BatchError`) or
    :class:`Rejected` records (or their JSON as dicts); ``letters_text`` is parallel to ``results``
    or keyed by sha256 (None: not available, and ``notices`` may say why)."""
    entries = [_as_entry(r, n) for n, r in enumerate(results)]
    golds = _by_file_name(_as_dict(g) for g in (gold or []))
    mismatches = _by_file_name((eval_report or {}).get("mismatches") or [])
    letters = []
    for n, det in enumerate(entries):
        if not isinstance(det, Determination):
            letters.append(_problem_data(n, det))
            continue
        if isinstance(letters_text, Mapping):
            text = letters_text.get(det.source.sha256)
        else:
            text = letters_text[n] if n < len(letters_text) else None
        notice = notices[n] if notices is not None and n < len(notices) else None
        if text is None and notice is None:
            notice = f"Letter not found: {det.source.name or '(no file name)'}. Its items and flags are shown without the text."
        fname = file_name(det.source.name)
        g = golds.get(fname, [None])[0] if fname else None
        letters.append(_letter_data(n, det, text, notice, g, mismatches.get(fname, []) if fname else []))
    letters.sort(
        key=lambda d: (
            SEVERITY_RANK[d["severity"]],
            -d["counts"]["error"],
            -d["counts"]["warning"],
            -d["counts"]["mismatch"],
            -d["counts"]["info"],
            d["file"],
        )
    )
    summary = {s: sum(1 for d in letters if d["severity"] == s) for s in SEVERITY_RANK}
    report_info = None
    if eval_report:
        report_info = {
            "backend": eval_report.get("backend"),
            "passed": eval_report.get("passed"),
            "mismatches": len(eval_report.get("mismatches") or []),
            "letters": (eval_report.get("letters") or {}).get("total"),
        }
    return {
        "version": __version__,
        "generated": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "letters": letters,
        "summary": summary,
        "has_gold": gold is not None,
        "report": report_info,
        "verdict_fields": list(VERDICT_FIELDS),
        "item_fields": list(ITEM_FIELDS),
    }


def _json_for_script(data: Any) -> str:
    """JSON safe inside <script>: no '<', '>' or '&' survives, so '</script>' cannot end the block."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


@functools.lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    import jinja2  # only when a page is rendered: the command line starts without it

    source = resources.files("llm_extract").joinpath("templates", TEMPLATE).read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(source)


@functools.lru_cache(maxsize=1)
def page_script() -> tuple[str, str]:
    """The page's script and its CSP source (``'sha256-...'``): the only script the page may run."""
    source = resources.files("llm_extract").joinpath("templates", SCRIPT).read_text(encoding="utf-8")
    script = "\n" + source.replace("\r\n", "\n").replace("\r", "\n")  # what the browser hashes
    if "</script" in script.lower():
        raise RuntimeError(f"{SCRIPT} must not contain '</script'")
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    return script, f"'sha256-{digest}'"


def content_security_policy(*, served: bool = False) -> str:
    """The page's Content-Security-Policy: nothing from anywhere, its own script (by hash) and
    inline styles only. Served over HTTP it also may not be framed (a <meta> cannot say that)."""
    policy = CSP.format(script=page_script()[1])
    return policy + "; frame-ancestors 'none'" if served else policy


def build_review_html(*args: Any, title: str = "llm_extract review", **kwargs: Any) -> str:
    """The reviewer page as one self-contained HTML string (pure: no files, no network), titled
    ``title``; every other argument is :func:`build_review_data`'s."""
    data = build_review_data(*args, **kwargs)
    return _template().render(
        data=data,
        data_json=_json_for_script(data),
        title=title,
        script=page_script()[0],
        csp=content_security_policy(),
    )
