"""The reviewer page: one self-contained HTML file to inspect flagged results and record verdicts.

``build_review_html`` is a pure function from results (and optionally gold labels and an
evaluation report) to an HTML string: inline CSS and JavaScript, no network, opens from disk.
Every string that came from a letter, a gold file or the extractor reaches the page either
through jinja2's autoescape or as JSON data that the script inserts with ``textContent``: letters
are untrusted text, and a letter containing ``<script>`` shows as text.

The letter text is cut into segments here (Python code-point offsets, the ones every
``start``/``end`` in a :class:`~llm_extract.schema.Determination` uses), so the browser never
has to map offsets onto its UTF-16 strings.

Verdicts are kept in the browser (``localStorage``, keyed by the letter's sha256) and exported as
the JSON list that ``python -m evals.run --verdicts FILE`` reads (see :data:`VERDICT_FIELDS`).
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import http.server
import json
import os
import re
import stat
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import jinja2
import typer
from pydantic import ValidationError

from . import __version__, crosscheck
from .batch import BatchError, expand
from .errors import ExtractionError
from .ingest import MAX_INPUT_BYTES, load
from .outputs import MAX_JSON_DOCUMENT_BYTES, MAX_RECORD_BYTES
from .outputs import _lines as record_lines
from .schema import SCHEMA_VERSION, Citation, Determination, Item

EXIT_BAD_INPUT = 1
EXIT_USAGE = 2
DEFAULT_PORT = 8765
HOST = "127.0.0.1"
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
TIER_RANK = {"none": 0, "fuzzy": 1, "normalized": 2, "exact": 3}
#: A mismatch points at one offset; its highlight runs to the end of that line, at most this long.
MISMATCH_SPAN_CHARS = 160

#: Fields a ``correct`` verdict may set, exactly as ``evals.run.apply_verdicts`` accepts them.
ITEM_FIELDS = (
    "item",
    "decision",
    "original_request",
    "authorized",
    "conclusion",
    "claims_administrator_guideline",
    "maximus_guideline",
)
LETTER_FIELDS = (
    "case.case_number",
    "case.date_assigned",
    "case.date_of_injury",
    "case.decision_date",
    "case.ur_denial_date",
    "case.priority",
    "case.application_received",
    "reviewer.licensure",
    "reviewer.specialties",
    "patient.age",
    "patient.sex",
)
VERDICT_FIELDS = ITEM_FIELDS + LETTER_FIELDS

#: The gold field a flag most likely concerns (the reviewer can pick another).
FLAG_FIELD = {
    "decision_contradicts_rationale": "decision",
    "missing_decision": "decision",
    "decision_inferred": "decision",
    "summary_mismatch": "decision",
    "quote_not_found": "conclusion",
    "quote_fuzzy": "conclusion",
    "no_conclusion": "conclusion",
    "citation_not_found": "maximus_guideline",
    "citation_unparsed": "maximus_guideline",
    "citation_unknown_title": "maximus_guideline",
    "partial_unparsed": "original_request",
    "patient_not_found": "patient.age",
    "header_field_missing": "case.case_number",
    "crosscheck_decision": "decision",
    "crosscheck_citation_source": "maximus_guideline",
    "crosscheck_missing_item": "item",
    "crosscheck_extra_item": "item",
}


# --------------------------------------------------------------------------------------------
# Inputs: results, letters, gold, eval report
# --------------------------------------------------------------------------------------------


class ReviewInputError(Exception):
    """A results, gold or report file that cannot be read: one line, exit code 1."""


@dataclass(frozen=True)
class Rejected:
    """A record of a results file that is not a result this version reads (shown, with the reason)."""

    where: str
    reason: str
    name: str | None = None


#: One record of a results file: a result, a failed letter (what ``extract`` writes for it), or
#: a record the page cannot read.
Entry = Determination | BatchError | Rejected

#: How many rejected records the command lists on stderr (the page shows them all).
MAX_REJECTIONS_SHOWN = 10


def load_results(path: Path) -> list[Entry]:
    """Every record in a JSONL/JSON file, or in the .json/.jsonl files of a directory.

    A record that cannot be read (not JSON, an older schema, ...) becomes a :class:`Rejected`
    with the reason; the rest are kept. Only when nothing in it is a result or a failed letter
    is the input refused (it is then not a results file).
    """
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (".json", ".jsonl"))
        if not files:
            raise ReviewInputError(f"no .json or .jsonl results in {path}")
    elif path.is_file():
        files = [path]
    else:
        raise ReviewInputError(f"results not found: {path}")
    out: list[Entry] = []
    for file in files:
        out += _parse_results_file(file)
    if not out:
        raise ReviewInputError(f"no results in {path}")
    rejected = [e for e in out if isinstance(e, Rejected)]
    if len(rejected) == len(out):
        more = f" (and {len(rejected) - 1} more record(s) like it)" if len(rejected) > 1 else ""
        raise ReviewInputError(f"{rejected[0].where}: {rejected[0].reason}{more}")
    return out


def _parse_results_file(file: Path) -> list[Entry]:
    """The records of one results file, as ``extract`` writes them: JSON Lines, or a JSON array
    with one record per line; or any one JSON document (an object or an array of objects).

    Lines are split on ``\\n`` only (a record's text may hold U+2028, U+2029 or U+0085, which
    ``str.splitlines`` would cut) and read within the batch writer's bounds: a line over
    ``MAX_RECORD_BYTES`` is rejected unread, and a file is parsed whole only up to
    ``MAX_JSON_DOCUMENT_BYTES``; past that, or when it does not parse whole, line by line.
    """
    try:
        with file.open("rb") as handle:
            first = handle.readline(MAX_RECORD_BYTES + 1)
            size = os.fstat(handle.fileno()).st_size
            array = first.strip() == b"["
            if (array or first.strip()[:1] != b"{" or not _is_json(first)) and size <= MAX_JSON_DOCUMENT_BYTES:
                handle.seek(0)
                records = _parse_document(file, handle.read())
                if records is not None:
                    return records
            handle.seek(0)
            entries = []
            for n, (line, length, _whole) in enumerate(record_lines(handle), 1):
                if line is None:
                    entries.append(Rejected(f"{file}:{n}", f"a line of {length:,} bytes, over the record limit: not read"))
                    continue
                if array:  # extract's JSON layout: "[", one record per line ending in ",", "]"
                    line = line.strip().removesuffix(b",")
                    if line in (b"[", b"]"):
                        continue
                if line.strip():
                    entries.append(_entry_from_line(line, f"{file}:{n}"))
            return entries
    except OSError as exc:
        raise ReviewInputError(f"cannot read {file}: {_one_line(exc)}") from None


def _is_json(line: bytes) -> bool:
    try:
        json.loads(line)
    except (ValueError, RecursionError):
        return False
    return True


def _parse_document(file: Path, data: bytes) -> list[Entry] | None:
    """Records of one JSON document, or None when the file is not one (then it is read as lines)."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if isinstance(doc, list):
        return [_entry(record, f"{file}[{i}]") for i, record in enumerate(doc)]
    return [_entry(doc, str(file))]


def _entry_from_line(line: bytes, where: str) -> Entry:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError too
        return Rejected(where, f"not JSON ({_one_line(exc) or type(exc).__name__})")
    return _entry(record, where)


def _entry(record: Any, where: str) -> Entry:
    """One record as a result, a failed letter or a rejection with its reason."""
    if not isinstance(record, dict):
        return Rejected(where, f"not a result (a JSON {type(record).__name__}, not an object)")
    source = record.get("source") if isinstance(record.get("source"), dict) else {}
    name = source.get("name") if isinstance(source.get("name"), str) else None
    if record.get("ok") is False:  # a failed letter, as extract writes it
        known = {k: v for k, v in record.items() if k in BatchError.model_fields}
        try:
            return BatchError.model_validate(known)
        except ValidationError as exc:
            letter = record.get("letter") if isinstance(record.get("letter"), str) else None
            return Rejected(where, f"not a failed-letter record ({_first_error(exc)})", letter)
    try:
        return Determination.model_validate(record)
    except ValidationError as exc:
        version = source.get("schema_version")
        older = (
            f"schema {version}, this version reads {SCHEMA_VERSION}: "
            if isinstance(version, str) and version != SCHEMA_VERSION
            else ""
        )
        return Rejected(where, f"not a Determination ({older}{_first_error(exc)})", name)


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return _one_line(exc)
    loc = ".".join(str(x) for x in errors[0]["loc"])
    more = f"; {len(errors) - 1} more" if len(errors) > 1 else ""
    return f"{loc or 'document'}: {errors[0]['msg']}{more}"


class LetterFileError(ReviewInputError):
    """A letter file that is not read (not a regular file, over the size limit, unopenable)."""


class LetterFiles:
    """The letter files the user named: the only files the page reads, each only when its sha256
    equals the result's ``source.sha256``. A result's ``source.name`` only says which of them to
    try first; it never names a file to open (a results file may say ``/etc/passwd``)."""

    def __init__(self, paths: Iterable[Path] = ()) -> None:
        self.paths = list(dict.fromkeys(paths))
        self.by_name: dict[str, list[Path]] = {}
        for path in self.paths:
            self.by_name.setdefault(path.name, []).append(path)
        self._digests: dict[Path, str | None] = {}
        self._by_sha: dict[str, Path] = {}
        self._unhashed = list(self.paths)

    def _digest(self, path: Path) -> str | None:
        if path not in self._digests:
            try:
                digest = hashlib.sha256(read_letter_bytes(path)).hexdigest()
            except LetterFileError:
                digest = None
            self._digests[path] = digest
            if digest is not None:
                self._by_sha.setdefault(digest, path)
        return self._digests[path]

    def find(self, sha256: str, name: str | None) -> Path | None:
        """The given file with this sha256: same-named files first, then every other (hashed once)."""
        for path in self.by_name.get(_file_name(name), []):
            if self._digest(path) == sha256:
                return path
        if sha256 in self._by_sha:
            return self._by_sha[sha256]
        while self._unhashed:
            path = self._unhashed.pop()
            if self._digest(path) == sha256:
                return path
        return None

    def text_for(self, det: Determination) -> tuple[str | None, str | None]:
        """(letter text, notice): the text of the given letter whose sha256 matches, else why not."""
        name = det.source.name or f"the letter with sha256 {det.source.sha256[:12]}…"
        if not self.paths:
            return None, (
                "No letter files were given, so the text is not shown: pass the letters too "
                "(llm-extract review RESULTS LETTER... or --letters DIR)."
            )
        path = self.find(det.source.sha256, det.source.name)
        if path is None:
            same_name = self.by_name.get(_file_name(det.source.name), [])
            unreadable = [p for p in same_name if self._digests.get(p) is None]
            if unreadable:
                try:
                    read_letter_bytes(unreadable[0])
                except LetterFileError as exc:
                    return None, f"{exc}. The result is shown without the text."
            if same_name:
                return None, (
                    f"{same_name[0]} is not the letter this result was extracted from (its sha256 differs): "
                    "the result is shown without the text."
                )
            return None, f"{name} is not among the letters given: the result is shown without the text."
        try:
            data = read_letter_bytes(path)
            letter = load(data)
        except LetterFileError as exc:
            return None, f"{exc}. The result is shown without the text."
        except ExtractionError as exc:
            return None, f"The letter {path} cannot be read: {exc}. The result is shown without the text."
        if letter.sha256 != det.source.sha256:  # the file changed while we read it
            return None, f"{path} changed while it was read: the result is shown without the text."
        return letter.text, None


def read_letter_bytes(path: Path, limit: int = MAX_INPUT_BYTES) -> bytes:
    """A letter file's bytes, read only if it is a regular file within ingest's size limit.

    Opened non-blocking and checked after opening, so a FIFO or a device never hangs the page.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise LetterFileError(f"The letter {path} cannot be opened: {_one_line(exc)}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise LetterFileError(f"The letter {path} is not a regular file: not read")
        if info.st_size > limit:
            raise LetterFileError(
                f"The letter {path} is {info.st_size:,} bytes, over the {limit:,}-byte limit: not read"
            )
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise LetterFileError(f"The letter {path} is over the {limit:,}-byte limit: not read")
    return data


def letter_paths(
    inputs: Iterable[str | Path],
    directories: Iterable[Path] = (),
    on_error: Callable[[str], None] | None = None,
) -> list[Path]:
    """The letter files named on the command line (files, directories, globs) and in ``--letters``;
    a subdirectory that cannot be read is reported through ``on_error``."""
    for directory in directories:
        if not directory.is_dir():
            raise ReviewInputError(f"letters directory not found: {directory}")
    given = [str(p) for p in inputs] + [str(d) for d in directories]
    paths = expand(given, on_error)
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise ReviewInputError(f"letter not found: {missing[0]}")
    return paths


def load_gold_dir(directory: Path) -> list[dict[str, Any]]:
    """Gold files (``evals/gold/*.json``) as plain dicts; matched to results by letter file name."""
    if not directory.is_dir():
        raise ReviewInputError(f"gold directory not found: {directory}")
    golds = []
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ReviewInputError(f"bad gold file {path}: {_one_line(exc)}") from None
        if not isinstance(data, dict) or not isinstance(data.get("letter"), str):
            raise ReviewInputError(f"bad gold file {path}: expected an object with a 'letter' path")
        golds.append(data)
    if not golds:
        raise ReviewInputError(f"no gold files (*.json) in {directory}")
    return golds


def load_eval_report(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReviewInputError(f"bad eval report {path}: {_one_line(exc)}") from None
    if not isinstance(data, dict):
        raise ReviewInputError(f"bad eval report {path}: expected a JSON object (report.json)")
    return data


# --------------------------------------------------------------------------------------------
# Page data
# --------------------------------------------------------------------------------------------


def _file_name(path: str | None) -> str:
    return (path or "").replace("\\", "/").rsplit("/", 1)[-1]


def _collapse(text: str | None) -> str:
    return " ".join((text or "").split())


def _key(text: str | None) -> str:
    return _collapse(text).casefold()


def _gold_citation(c: Citation) -> dict[str, Any]:
    return {"source": c.source, "title": c.title, "year": c.year, "topic": c.topic, "pages": list(c.pages)}


def _conclusion(item: Item) -> str | None:
    """The predicted conclusion: the last quote, as the rules backend puts it last."""
    return _collapse(item.quotes[-1].text) if item.quotes else None


def _pred_fields(item: Item) -> dict[str, Any]:
    """The item's values in gold shape: what a ``correct`` verdict starts from."""
    return {
        "item": item.item,
        "decision": item.decision,
        "original_request": item.original_request,
        "authorized": item.authorized,
        "conclusion": _conclusion(item),
        "claims_administrator_guideline": [_gold_citation(c) for c in item.claims_administrator_guideline],
        "maximus_guideline": [_gold_citation(c) for c in item.maximus_guideline],
    }


def _letter_fields(det: Determination) -> dict[str, Any]:
    data = det.model_dump(mode="json")
    return {f: data[f.split(".")[0]][f.split(".")[1]] for f in LETTER_FIELDS}


def align_items(gold_items: Sequence[str], pred_items: Sequence[str]) -> dict[int, int]:
    """gold index -> predicted index, by the same rule as the evaluation report and the cross-check."""
    return {gi: pi for gi, pi, _score in crosscheck.align_items(gold_items, pred_items)}


def _cite_str(c: Mapping[str, Any]) -> str:
    parts = [c.get("source") or "", c.get("title") or ""]
    if c.get("year"):
        parts.append(str(c["year"]))
    if c.get("topic"):
        parts.append(f"— {c['topic']}")
    if c.get("pages"):
        parts.append("p. " + ", ".join(c["pages"]))
    return " ".join(p for p in parts if p)


def _show(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "; ".join(_cite_str(v) if isinstance(v, dict) else str(v) for v in value)
    return _collapse(str(value))


def _same(field: str, gold: Any, pred: Any) -> bool:
    if field.endswith("guideline"):

        def keys(cs: Any) -> list[tuple[str, str]]:
            return sorted((c.get("source") or "", _key(c.get("title"))) for c in cs or [])

        return keys(gold) == keys(pred)
    if field == "conclusion":
        return gold is None or pred is None or _key(gold) == _key(pred)
    if isinstance(gold, list) or isinstance(pred, list):
        return [_key(str(x)) for x in gold or []] == [_key(str(x)) for x in pred or []]
    if gold is None or pred is None:
        return gold is None and pred is None
    return _key(str(gold)) == _key(str(pred))


def _comparison(gold: Mapping[str, Any], det: Determination) -> dict[str, Any]:
    """Gold vs predicted, field by field, items aligned by heading."""
    letter_rows = []
    pred_letter = _letter_fields(det)
    for f in LETTER_FIELDS:
        section, name = f.split(".")
        gv = (gold.get(section) or {}).get(name)
        pv = pred_letter[f]
        if gv is None and pv in (None, []):
            continue
        letter_rows.append({"field": f, "gold": _show(gv), "pred": _show(pv), "diff": not _same(f, gv, pv)})
    gold_items = gold.get("items") or []
    pairs = align_items([g.get("item", "") for g in gold_items], [p.item for p in det.items])
    items = []
    for gi, g in enumerate(gold_items):
        pi = pairs.get(gi)
        pred = _pred_fields(det.items[pi]) if pi is not None else None
        rows = []
        for f in ITEM_FIELDS:
            gv = g.get(f)
            pv = pred.get(f) if pred else None
            if f == "conclusion" and pred is not None:
                # grounded when the gold conclusion is one of the quotes (or inside one)
                quotes = [_key(q.text) for q in det.items[pi].quotes]
                hit = gv is None or any(_key(gv) in q or q in _key(gv) for q in quotes if q)
                rows.append({"field": f, "gold": _show(gv), "pred": _show(pv), "diff": not hit})
                continue
            if gv in (None, []) and pv in (None, []):
                continue
            rows.append(
                {
                    "field": f,
                    "gold": _show(gv),
                    "pred": _show(pv),
                    "diff": pred is None or not _same(f, gv, pv),
                }
            )
        items.append(
            {
                "gold_index": gi,
                "pred_index": pi,
                "heading": g.get("item", ""),
                "rows": rows,
                "missing": pi is None,
            }
        )
    matched = set(pairs.values())
    extra = [{"pred_index": pi, "heading": p.item} for pi, p in enumerate(det.items) if pi not in matched]
    return {
        "letter": gold.get("letter"),
        "labeller": gold.get("labeller"),
        "notes": gold.get("notes") or "",
        "letter_rows": letter_rows,
        "items": items,
        "extra": extra,
        "pairs": {str(g): p for g, p in pairs.items()},
    }


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


def _valid_span(start: int | None, end: int | None, size: int) -> bool:
    return start is not None and end is not None and 0 <= start < end <= size


def _letter_data(
    n: int,
    det: Determination,
    text: str | None,
    notice: str | None,
    gold: Mapping[str, Any] | None,
    mismatches: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    size = len(text) if text is not None else 0
    spans: list[dict[str, Any]] = []

    def span(kind: str, start: int | None, end: int | None, **extra: Any) -> str | None:
        if text is None or not _valid_span(start, end, size):
            return None
        sid = f"s{len(spans)}"
        spans.append({"id": sid, "kind": kind, "start": start, "end": end, **extra})
        return sid

    items = []
    for i, it in enumerate(det.items):
        heading = span("heading", it.heading.start, it.heading.end, item=i) if it.heading else None
        rationale = span("rationale", it.rationale.start, it.rationale.end, item=i) if it.rationale else None
        cites = []
        for fname, label in (("claims_administrator_guideline", "CA"), ("maximus_guideline", "MAXIMUS")):
            for c in getattr(it, fname):
                sid = span("cite", c.start, c.end, item=i, tier=c.match)
                cites.append(
                    {
                        **_gold_citation(c),
                        "field": fname,
                        "by": label,
                        "label": _cite_str(_gold_citation(c)),
                        "text": _collapse(c.text),
                        "match": c.match,
                        "score": c.score,
                        "span": sid,
                    }
                )
        quotes = []
        for q in it.quotes:
            sid = span("quote", q.start, q.end, item=i, tier=q.match)
            quotes.append(
                {"text": _collapse(q.text), "match": q.match, "score": q.score, "page": q.page, "span": sid}
            )
        items.append(
            {
                "index": i,
                "item": it.item,
                "decision": it.decision,
                "original_request": it.original_request,
                "authorized": it.authorized,
                "rationale_summary": it.rationale_summary,
                "heading_span": heading,
                "rationale_span": rationale,
                "target": heading or rationale,
                "citations": cites,
                "quotes": quotes,
                "fields": _pred_fields(it),
            }
        )

    comparison = _comparison(gold, det) if gold is not None else None
    gold_heading = {}  # predicted index -> gold heading (what a verdict names)
    if comparison is not None:
        for g_index, p_index in comparison["pairs"].items():
            gold_heading[p_index] = (gold.get("items") or [])[int(g_index)].get("item")

    def item_name(index: int | None) -> str | None:
        if index is None or not 0 <= index < len(det.items):
            return None
        return gold_heading.get(index, det.items[index].item)

    targets = []
    seen: dict[str, int] = {}

    def target_id(base: str) -> str:
        seen[base] = seen.get(base, 0) + 1
        return base if seen[base] == 1 else f"{base}#{seen[base]}"

    for k, f in enumerate(det.flags):
        sid = span("flag", f.start, f.end, item=f.item, severity=f.severity)
        fallback = None
        if sid is None and f.item is not None and 0 <= f.item < len(items):
            fallback = items[f.item]["rationale_span"] or items[f.item]["heading_span"]
        targets.append(
            {
                "id": target_id(
                    f"flag:{f.code.value}:{f.item if f.item is not None else '-'}:{f.start if f.start is not None else '-'}"
                ),
                "type": "flag",
                "index": k,
                "code": f.code.value,
                "severity": f.severity,
                "message": f.message,
                "item_index": f.item,
                "verdict_item": item_name(f.item),
                "field": FLAG_FIELD.get(f.code.value, "item"),
                "span": sid or fallback,
                "span_exact": sid is not None,
            }
        )
    pred_by_heading = {_key(it.item): i for i, it in enumerate(det.items)}
    gold_items = (gold or {}).get("items") or []
    gold_to_pred = {int(g): p for g, p in (comparison or {}).get("pairs", {}).items()}
    for m in mismatches:
        kind, field = str(m.get("kind", "")), str(m.get("field", ""))
        heading = m.get("item")
        index = None
        if heading is not None:
            for gi, g in enumerate(gold_items):
                if _key(g.get("item")) == _key(heading) and gi in gold_to_pred:
                    index = gold_to_pred[gi]
                    break
            if index is None:
                index = pred_by_heading.get(_key(heading))
        offset = m.get("offset")
        sid = None
        if isinstance(offset, int) and text is not None and 0 <= offset < size:
            line_end = text.find("\n", offset)
            end = min(size, offset + MISMATCH_SPAN_CHARS, line_end if line_end > offset else size)
            sid = span("mismatch", offset, max(end, offset + 1))
        if sid is None and index is not None:
            sid = items[index]["target"]
        targets.append(
            {
                "id": target_id(f"mismatch:{kind}:{field}:{_collapse(heading) if heading else '-'}"),
                "type": "mismatch",
                "kind": kind,
                "severity": "mismatch",
                "message": f"{field}: gold {_show(m.get('gold')) or '(none)'} · predicted {_show(m.get('predicted')) or '(none)'}",
                "gold": m.get("gold"),
                "predicted": m.get("predicted"),
                "context": m.get("context") or "",
                "item_index": index,
                "verdict_item": None if kind == "extra_item" else (heading if heading is not None else None),
                "field": _verdict_field(kind, field),
                "span": sid,
                "span_exact": isinstance(offset, int),
            }
        )

    counts = {s: sum(1 for f in det.flags if f.severity == s) for s in ("error", "warning", "info")}
    severity = next((s for s in ("error", "warning", "info") if counts[s]), "clean")
    name = det.source.name or f"(text {det.source.sha256[:12]})"
    verdict_letter = (gold or {}).get("letter") or _letters_relative(det.source.name) or name
    return {
        "key": str(n),
        "name": name,
        "file": _file_name(det.source.name) or name,
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
        "segments": _segments(text, spans) if text is not None else [],
        "spans": {s["id"]: {k: v for k, v in s.items() if k != "id"} for s in spans},
        "items": items,
        "targets": targets,
        "gold": comparison,
        "letter_fields": _letter_fields(det),
        "problem": None,
    }


def _verdict_field(kind: str, field: str) -> str:
    """The gold field a mismatch's ``correct`` verdict sets (``evals.run.apply_verdicts`` names)."""
    if field in VERDICT_FIELDS:
        return field
    head = field.split(".")[0]
    if head in ("claims_administrator_guideline", "maximus_guideline"):
        return head
    if kind in ("conclusion", "fabricated_quote") or field == "quotes":
        return "conclusion"
    return "item"


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
        out.setdefault(_file_name(str(r.get("letter", ""))), []).append(r)
    return out


def _as_dict(obj: Any) -> dict[str, Any]:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    return dict(obj)


def _problem_data(n: int, entry: BatchError | Rejected) -> dict[str, Any]:
    """A queue entry for a failed letter or an unreadable record: its error instead of a letter."""
    if isinstance(entry, BatchError):
        kind, code, message, where = "failed", entry.error, entry.message, entry.letter
        name = entry.letter
        sha = getattr(entry, "sha256", None) or ""
        notice = f"This letter could not be extracted ({code}): {message}"
    else:
        kind, code, message, where = "rejected", "record", entry.reason, entry.where
        name = entry.name or entry.where
        sha = ""
        notice = f"This record of the results cannot be read ({entry.where}): {entry.reason}"
    return {
        "key": str(n),
        "name": name,
        "file": _file_name(name) or name,
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
        "targets": [],
        "gold": None,
        "letter_fields": {},
        "problem": {"kind": kind, "code": code, "message": message, "where": where},
    }


def _as_entry(record: Entry | Mapping[str, Any], n: int) -> Entry:
    if isinstance(record, (Determination, BatchError, Rejected)):
        return record
    return _entry(dict(record), f"result {n + 1}")


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
        fname = _file_name(det.source.name)
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


def build_review_html(
    results: Sequence[Entry | Mapping[str, Any]],
    letters_text: Sequence[str | None] | Mapping[str, str | None],
    gold: Sequence[Any] | None = None,
    eval_report: Mapping[str, Any] | None = None,
    *,
    notices: Sequence[str | None] | None = None,
    title: str = "llm_extract review",
) -> str:
    """The reviewer page as one self-contained HTML string (pure: no files, no network)."""
    data = build_review_data(results, letters_text, gold, eval_report, notices)
    return _template().render(
        data=data,
        data_json=_json_for_script(data),
        title=title,
        script=page_script()[0],
        csp=content_security_policy(),
    )


# --------------------------------------------------------------------------------------------
# Files, server, command
# --------------------------------------------------------------------------------------------


def build_page(
    results: Path,
    gold: Path | None = None,
    eval_report: Path | None = None,
    letters: Sequence[Path] = (),
) -> tuple[str, list[Rejected]]:
    """Read the inputs from disk and build the page, with the records it could not read.

    Letter text comes only from ``letters`` (the files the user named), each only when its
    sha256 matches the result's. Raises :class:`ReviewInputError` on bad input.
    """
    entries = load_results(results)
    golds = load_gold_dir(gold) if gold is not None else None
    report = load_eval_report(eval_report) if eval_report is not None else None
    files = LetterFiles(letters)
    texts: list[str | None] = []
    notices: list[str | None] = []
    for entry in entries:
        text, notice = files.text_for(entry) if isinstance(entry, Determination) else (None, None)
        texts.append(text)
        notices.append(notice)
    html = build_review_html(entries, texts, golds, report, notices=notices, title=f"Review: {results.name}")
    return html, [e for e in entries if isinstance(e, Rejected)]


#: Headers on every response of ``--serve``: the page is self-contained, so nothing may load
#: into it, frame it, sniff it into another type or keep it in a cache.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class _Handler(http.server.BaseHTTPRequestHandler):
    build: Callable[[], str]
    #: ``Host`` values this server answers: its own address. Anything else is a DNS-rebinding
    #: page (a hostile name resolved to 127.0.0.1) or a misdirected request, and gets 403.
    allowed_hosts: frozenset[str] = frozenset()

    def end_headers(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.send_header("Content-Security-Policy", content_security_policy(served=True))
        super().end_headers()

    def _host_allowed(self) -> bool:
        hosts = self.headers.get_all("Host") or []
        return len(hosts) == 1 and hosts[0].strip().lower() in type(self).allowed_hosts

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if not self._host_allowed():
            self.send_error(403, "Forbidden", "This server answers only to its own address (Host header).")
            return
        if self.path.split("?")[0] not in ("/", "/index.html", "/review.html"):
            self.send_error(404)
            return
        try:
            body = type(self).build().encode("utf-8")
        except ReviewInputError as exc:
            self.send_error(500, explain=str(exc))
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        sys.stderr.write(f"review: {self.address_string()} {format % args}\n")


def allowed_hosts(port: int) -> frozenset[str]:
    """The ``Host`` header values of a page served on 127.0.0.1:``port``."""
    hosts = {f"{HOST}:{port}", f"localhost:{port}"}
    if port == 80:
        hosts |= {HOST, "localhost"}
    return frozenset(hosts)


def make_server(build: Callable[[], str], port: int = DEFAULT_PORT) -> http.server.ThreadingHTTPServer:
    """An HTTP server on 127.0.0.1 only that rebuilds the page on every request (fresh results)
    and answers only requests addressed to it (``Host``: 127.0.0.1:PORT or localhost:PORT)."""
    handler = type("ReviewHandler", (_Handler,), {"build": staticmethod(build)})
    server = http.server.ThreadingHTTPServer((HOST, port), handler)
    handler.allowed_hosts = allowed_hosts(server.server_address[1])
    return server


def serve(build: Callable[[], str] | str, port: int = DEFAULT_PORT) -> None:
    """Serve the page on http://127.0.0.1:PORT/ until interrupted. ``build`` is the HTML or a builder."""
    builder = (lambda: build) if isinstance(build, str) else build
    server = make_server(builder, port)
    typer.echo(f"Serving the review page on http://{HOST}:{server.server_address[1]}/ (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    return typer.Exit(code)


def review_command(
    results: Annotated[
        Path,
        typer.Argument(
            help="Results: a JSONL/JSON file of what extract wrote, or a directory of .json/.jsonl.",
            show_default=False,
        ),
    ],
    letter_files: Annotated[
        list[str] | None,
        typer.Argument(
            help="The letters the results came from (files, directories, glob patterns). A letter's text "
            "is shown only from these, and only when its sha256 matches the result's.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option("--output", "-o", help="Write the HTML page here.")] = None,
    gold: Annotated[
        Path | None, typer.Option(help="Gold directory (evals/gold): show gold vs predicted.")
    ] = None,
    eval_report: Annotated[
        Path | None, typer.Option("--eval-report", help="report.json of python -m evals.run: its mismatches.")
    ] = None,
    letters: Annotated[
        list[Path] | None,
        typer.Option(help="A directory of letters (searched recursively, matched by sha256); repeatable."),
    ] = None,
    serve_: Annotated[
        bool, typer.Option("--serve", help="Serve the page on 127.0.0.1 instead of writing a file.")
    ] = False,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port for --serve.")] = DEFAULT_PORT,
) -> None:
    """Build the reviewer page: flagged and failed results, highlights in the letter, verdicts to export."""
    if not serve_ and out is None:
        raise _fail("give -o/--output FILE for the HTML page, or --serve", EXIT_USAGE)

    def warn(message: str) -> None:
        typer.echo(f"warning: {message}", err=True)

    def build_with_rejections(on_error: Callable[[str], None] | None = None) -> tuple[str, list[Rejected]]:
        # the letters are listed again on each build: --serve shows letters added since it started
        paths = letter_paths(letter_files or [], letters or [], on_error)
        return build_page(results, gold, eval_report, paths)

    try:
        html, rejected = build_with_rejections(warn)
    except ReviewInputError as exc:
        raise _fail(str(exc)) from None
    for entry in rejected[:MAX_REJECTIONS_SHOWN]:
        typer.echo(f"warning: {entry.where}: {entry.reason} (shown in the queue, not reviewable)", err=True)
    if len(rejected) > MAX_REJECTIONS_SHOWN:
        typer.echo(f"warning: ... and {len(rejected) - MAX_REJECTIONS_SHOWN} more unreadable record(s)", err=True)
    if serve_:
        try:
            serve(lambda: build_with_rejections()[0], port)
        except OSError as exc:
            raise _fail(f"cannot serve on {HOST}:{port}: {exc}") from None
        return
    assert out is not None
    try:
        _write_atomic(out, html)
    except OSError as exc:
        raise _fail(f"cannot write {out}: {_one_line(exc)}") from None
    typer.echo(f"wrote {out}", err=True)


def _write_atomic(path: Path, text: str) -> None:
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
