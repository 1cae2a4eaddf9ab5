"""``python -m evals.run``: extract every gold letter, score it, write reports, gate the release.

Exit codes: 0 every threshold passed, 1 a threshold failed, 2 bad usage (missing gold directory,
bad baseline or verdicts file, unknown backend, bad option) with a one-line message on stderr,
3 an internal error of the harness itself (one line; ``EVALS_DEBUG=1`` shows the traceback).
The defaults below are what CI gates on when the command runs without options.
"""

from __future__ import annotations

import fnmatch
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, get_args

import typer
from pydantic import BaseModel, ConfigDict, ValidationError
from rich import box
from rich.console import Console
from rich.table import Table

import llm_extract
from evals.gold import GOLD_DIR, LETTERS_DIR, GoldItem, GoldLetter
from evals.make_text_variants import VARIANTS_DIRNAME, variant_path
from evals.metrics import (
    LetterResult,
    flag_summary,
    letter_id,
    score_letter,
    summarize,
)
from evals.report import (
    REPORT_VERSION,
    fmt,
    fmt_ci,
    fmt_counts,
    fmt_metric,
    source_headers,
    source_rows,
    write_all,
)
from llm_extract import BatchError, ExtractionError, InvalidOptionsError, extract_many, load
from llm_extract.compare import ITEM_FIELDS, ITEM_MATCH_THRESHOLD, LETTER_FIELDS, item_pairs
from llm_extract.errors import stops_batch
from llm_extract.options import Strategy
from llm_extract.records import bad_json, read_json
from llm_extract.redact import redact_url

DEFAULT_BACKEND = "rules"
DEFAULT_OUT = Path(__file__).parent / "out"
#: Release gates applied when no option overrides them.
DEFAULT_MIN_ITEM_F1 = 0.95
DEFAULT_MIN_DECISION_ACCURACY = 0.95
DEFAULT_MAX_FABRICATED_QUOTES = 0
#: Every gold letter is a real, readable letter: one that fails to extract is a bug.
DEFAULT_MAX_FAILED_LETTERS = 0
#: Header, reviewer and patient fields are read by grammar; whatever tool produced the text, at
#: most one in a hundred may be wrong (a wrong one is flagged by the structural checks).
DEFAULT_MIN_HEADER_ACCURACY = 0.99
DEFAULT_MIN_REVIEWER_ACCURACY = 0.99
DEFAULT_MIN_PATIENT_ACCURACY = 0.99
#: Every value an extractor states must show where the letter states it.
DEFAULT_MAX_MISSING_EVIDENCE = 0
#: The text source every gold letter has: the letter file itself (a PDF read by pdfium, a .txt as
#: written). Other sources are the directories of ``<letters>/variants/`` (evals/make_text_variants.py).
PRIMARY_SOURCE = "pdfium"
#: The request classifier on matched gold items (issue 15's targets).
DEFAULT_MIN_CATEGORY_ACCURACY = 0.95
DEFAULT_MIN_SUBCATEGORY_ACCURACY = 0.9
DEFAULT_MIN_DRUG_ACCURACY = 0.9
#: Parallel extractions; the rules backend is CPU-bound, so more than the cores buys nothing.
DEFAULT_JOBS = max(1, min(4, os.cpu_count() or 1))
#: A metric moved against the baseline only if it changed by more than this.
COMPARISON_EPSILON = 1e-4
EXIT_OK, EXIT_THRESHOLD, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
PROG = "python -m evals.run"


class UsageError(Exception):
    """Bad usage: reported as one line on stderr, exit code 2."""


# --------------------------------------------------------------------------------------------
# Thresholds
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Threshold:
    """One release gate: ``metric``'s value compared with a limit."""

    name: str
    metric: str
    op: str  # ">=" or "<="
    #: Passes when no letter has data for the metric (a gold subset whose letters have no header
    #: block states no header field, so none can be wrong); otherwise no data fails.
    vacuous_pass: bool = False

    def check(self, value: float | None, limit: float) -> bool:
        if value is None:
            return (
                self.vacuous_pass
            )  # else: a metric that could not be computed cannot show the release is good
        return value >= limit if self.op == ">=" else value <= limit


THRESHOLDS = {
    "min_item_f1": Threshold("min_item_f1", "items", ">="),
    "min_decision_accuracy": Threshold("min_decision_accuracy", "decisions", ">="),
    "max_fabricated_quotes": Threshold("max_fabricated_quotes", "fabricated_quotes", "<="),
    "max_failed_letters": Threshold("max_failed_letters", "failed_letters", "<="),
    "min_citation_source_f1": Threshold("min_citation_source_f1", "citation_sources", ">="),
    "min_citation_title_f1": Threshold("min_citation_title_f1", "citation_titles", ">="),
    "min_citation_pages_f1": Threshold("min_citation_pages_f1", "citation_pages", ">="),
    "min_conclusion_grounding": Threshold("min_conclusion_grounding", "conclusion_grounding", ">="),
    "min_header_accuracy": Threshold("min_header_accuracy", "header", ">=", vacuous_pass=True),
    "min_reviewer_accuracy": Threshold("min_reviewer_accuracy", "reviewer", ">=", vacuous_pass=True),
    "min_patient_accuracy": Threshold("min_patient_accuracy", "patient", ">=", vacuous_pass=True),
    "max_missing_evidence": Threshold("max_missing_evidence", "evidence_missing", "<="),
    "min_category_accuracy": Threshold("min_category_accuracy", "category", ">=", vacuous_pass=True),
    "min_subcategory_accuracy": Threshold("min_subcategory_accuracy", "subcategory", ">=", vacuous_pass=True),
    "min_drug_accuracy": Threshold("min_drug_accuracy", "drug", ">=", vacuous_pass=True),
}


def check_thresholds(summary: dict[str, dict[str, Any]], limits: dict[str, float | None]) -> dict[str, Any]:
    """Every threshold that is set, with the value it saw and whether it passed."""
    out = {}
    for name, limit in limits.items():
        if limit is None:
            continue
        t = THRESHOLDS[name]
        value = summary[t.metric]["value"]
        out[name] = {
            "metric": t.metric,
            "op": t.op,
            "limit": limit,
            "value": value,
            "passed": t.check(value, limit),
        }
    return out


# --------------------------------------------------------------------------------------------
# Gold and verdicts
# --------------------------------------------------------------------------------------------


def load_gold_dir(directory: Path, only: list[str] | None = None) -> list[GoldLetter]:
    """Like :func:`evals.gold.load_gold`, but a bad file is a usage error naming the file.

    ``only``: glob patterns over gold file names (``CM17-*``, ``seed-*``) selecting a subset.
    """
    if not directory.is_dir():
        raise UsageError(f"gold directory not found: {directory}")
    files = sorted(directory.glob("*.json"))
    if only:
        files = [f for f in files if any(fnmatch.fnmatch(f.stem, pattern) for pattern in only)]
    if not files:
        raise UsageError(f"no gold files (*.json) in {directory}" + (f" matching {only}" if only else ""))
    golds = []
    for path in files:
        data = read_json(path, "gold file", UsageError)
        try:
            golds.append(GoldLetter.model_validate(data))
        except ValidationError as exc:
            bad_json(path, "gold file", UsageError, _one_line(exc))
    return sorted(golds, key=lambda g: g.letter)


class Verdict(BaseModel):
    """A reviewer's judgement of one mismatch; ``correct`` means the extractor's value is right."""

    model_config = ConfigDict(extra="allow")

    letter: str
    item: str | None = None
    field: str
    value: Any = None
    verdict: str


def load_verdicts(path: Path) -> list[Verdict]:
    data = read_json(path, "verdicts file", UsageError)
    if not isinstance(data, list):
        bad_json(path, "verdicts file", UsageError, "expected a JSON list of verdicts")
    verdicts = []
    for n, entry in enumerate(data):
        try:
            verdicts.append(Verdict.model_validate(entry))
        except ValidationError as exc:
            bad_json(path, "verdicts file", UsageError, f"entry {n}: {_one_line(exc)}")
    return verdicts


def _find_gold(golds: dict[str, GoldLetter], name: str) -> str:
    if name in golds:
        return name
    hits = [key for key in golds if letter_id(key) == name or Path(key).name == name]
    if len(hits) != 1:
        raise UsageError(
            f"verdict names letter {name!r}, which is {'ambiguous' if hits else 'not in the gold set'}"
        )
    return hits[0]


def apply_verdicts(golds: Sequence[GoldLetter], verdicts: Sequence[Verdict]) -> tuple[list[GoldLetter], int]:
    """Fold every ``correct`` verdict into a copy of the gold (in memory only); returns the count used.

    The fields are :data:`llm_extract.compare.ITEM_FIELDS` and ``LETTER_FIELDS`` (the reviewer
    page offers the same). Item fields (``decision``, ``original_request``, ``authorized``,
    ``conclusion``, the two guideline lists, ``category``, ``subcategory``, ``drug``, or ``item``
    to rename) name the gold item by its heading, paired as the evaluation pairs items
    (:func:`~llm_extract.compare.align_items`). ``field: "item"`` with ``value: null`` removes that
    gold item; with ``item: null`` and a gold-item object as ``value`` it adds one. Letter fields
    are ``case.<name>``, ``reviewer.<name>``, ``patient.<name>``.
    """
    by_letter = {g.letter: g.model_dump() for g in golds}
    models = {g.letter: g for g in golds}
    applied = 0
    for n, v in enumerate(verdicts):
        if v.verdict.strip().casefold() != "correct":
            continue
        key = _find_gold(models, v.letter)
        data = by_letter[key]
        where = f"verdict {n} ({v.letter}, {v.field})"
        if v.field in LETTER_FIELDS:
            section, name = v.field.split(".", 1)
            data[section][name] = v.value
        elif v.field in ITEM_FIELDS:
            items = data["items"]
            if v.item is None:
                if v.field != "item" or not isinstance(v.value, dict):
                    raise UsageError(
                        f"{where}: needs 'item' (the gold heading), or field 'item' with an item object"
                    )
                items.append(v.value)
            else:
                # the gold item the verdict names, paired as the evaluation pairs items
                index = item_pairs([v.item], [it["item"] for it in items]).get(0)
                if index is None:
                    raise UsageError(f"{where}: no gold item {v.item!r} in {key}")
                if v.field == "item" and v.value is None:
                    del items[index]
                else:
                    items[index][v.field] = v.value
        else:
            raise UsageError(f"{where}: unknown field {v.field!r}")
        applied += 1
    out = []
    for key, data in by_letter.items():
        try:
            for item in data["items"]:
                GoldItem.model_validate(item)
            out.append(GoldLetter.model_validate(data))
        except ValidationError as exc:
            raise UsageError(f"verdicts make the gold of {key} invalid: {_one_line(exc)}") from None
    return sorted(out, key=lambda g: g.letter), applied


# --------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------

def available_sources(letters_dir: Path) -> list[str]:
    """``pdfium`` (the letters themselves), then every directory of ``<letters>/variants/``."""
    root = letters_dir / VARIANTS_DIRNAME
    found = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return [PRIMARY_SOURCE, *found]


def select_sources(letters_dir: Path, wanted: list[str] | None) -> list[str]:
    """The sources to evaluate, primary first; an unknown name is a usage error."""
    available = available_sources(letters_dir)
    if not wanted:
        return available
    unknown = [w for w in wanted if w not in available]
    if unknown:
        raise UsageError(f"unknown text source {unknown[0]!r}; available: {', '.join(available)}")
    return [a for a in available if a in wanted]


def source_letters(
    golds: Sequence[GoldLetter], letters_dir: Path, source: str
) -> list[tuple[GoldLetter, Path]]:
    """The gold letters a source has text for, with that text's path.

    A variant source covers every gold letter that is a PDF; a missing file is a usage error
    (the variants are stale: ``python -m evals.make_text_variants`` regenerates them).
    """
    if source == PRIMARY_SOURCE:
        return [(g, letters_dir / g.letter) for g in golds]
    pairs = []
    for g in golds:
        if not g.letter.lower().endswith(".pdf"):
            continue
        path = variant_path(source, g.letter, letters_dir / VARIANTS_DIRNAME)
        if not path.is_file():
            raise UsageError(
                f"text source {source!r} has no {path} for gold letter {g.letter} "
                "(regenerate with: python -m evals.make_text_variants)"
            )
        pairs.append((g, path))
    return pairs


def run_extractions(
    letters: Sequence[tuple[GoldLetter, Path]],
    backend: str,
    options: dict[str, Any],
    jobs: int,
) -> list[LetterResult]:
    """Extract every (gold letter, text path), in order, through :func:`llm_extract.extract_many`
    (its worker pools, time budgets and failure records). Each letter is read here once (its text
    is scored) and handed to the batch as read; one that cannot be read is handed over by path,
    so its failure record carries the same typed error as any other.

    A bad option or an unknown backend is a usage error before any letter; so is a first letter
    whose error class stops a batch (no model, no key, refused credentials: :func:`stops_batch`),
    rather than every gold letter failing the same way.
    """
    texts: dict[int, str] = {}

    def read() -> Iterator[Any]:
        for index, (_, path) in enumerate(letters):
            try:
                letter = load(path)
            except ExtractionError:
                yield str(path)  # the batch records the same typed error
                continue
            texts[index] = letter.text
            yield letter

    try:
        outcomes = extract_many(read(), backend=backend, jobs=jobs, **options)
    except InvalidOptionsError as exc:  # before any letter
        raise UsageError(f"bad option for backend {backend!r}: {exc}") from None
    except ExtractionError as exc:  # UnknownBackendError
        raise UsageError(str(exc)) from None
    results = []
    try:
        for index, ((gold, _), outcome) in enumerate(zip(letters, outcomes, strict=True)):
            if isinstance(outcome, BatchError):
                if index == 0 and stops_batch(outcome.error):
                    raise UsageError(f"backend {backend!r} is not usable: {outcome.message}")
                results.append(
                    LetterResult(gold=gold, prediction=None, text=texts.get(index, ""), error=outcome.message,
                                 error_kind=outcome.error)
                )
            else:
                results.append(LetterResult(gold=gold, prediction=outcome, text=texts[index]))
    finally:
        outcomes.close()
    return results


def extract_options(
    backend: str, model: str | None, base_url: str | None, no_cache: bool, strategy: str | None = None
) -> dict[str, Any]:
    """Only what was given: the rules backend takes no options at all."""
    options: dict[str, Any] = {}
    if model is not None:
        options["model"] = model
    if base_url is not None:
        options["base_url"] = base_url
    if strategy is not None:
        options["strategy"] = strategy
    if no_cache and backend != "rules":
        options["cache"] = False
    return options


# --------------------------------------------------------------------------------------------
# Baseline comparison
# --------------------------------------------------------------------------------------------


def load_baseline(path: Path) -> dict[str, Any]:
    data = read_json(path, "baseline file", UsageError)
    ok = (
        isinstance(data, dict)
        and isinstance(data.get("summary"), dict)
        and all(isinstance(v, dict) for v in data["summary"].values())
        and isinstance(data.get("per_letter"), list)
        and all(isinstance(r, dict) and "letter" in r and "mismatches" in r for r in data["per_letter"])
    )
    if not ok:
        bad_json(path, "baseline file", UsageError, f"not a report.json of {PROG} (needs summary and per_letter)")
    return data


def _compare_metrics(summary: dict[str, Any], old_summary: dict[str, Any]) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    for metric, entry in summary.items():
        old = old_summary.get(metric, {}).get("value")
        new = entry["value"]
        if old is None or new is None:
            change, delta = ("same" if old is None and new is None else "n/a"), 0.0
        else:
            delta = new - old
            if abs(delta) <= COMPARISON_EPSILON:
                change = "same"
            else:
                change = "improved" if (delta > 0) == entry["higher_is_better"] else "regressed"
        metrics[metric] = {"baseline": old, "current": new, "delta": round(delta, 6), "change": change}
    return metrics


def _baseline_source(baseline: dict[str, Any], source: str) -> dict[str, Any] | None:
    """A baseline's part for one text source: the top level for its primary source (a report
    without sources is all pdfium), else its ``sources`` entry."""
    if source == baseline.get("primary_source", PRIMARY_SOURCE):
        return baseline
    entry = baseline.get("sources", {}).get(source) if isinstance(baseline.get("sources"), dict) else None
    return entry if isinstance(entry, dict) and isinstance(entry.get("summary"), dict) else None


def compare(report: dict[str, Any], baseline: dict[str, Any], name: str) -> dict[str, Any]:
    """What improved and what regressed against ``baseline``, per metric and per letter.

    The top level compares the primary source (metrics and letters); ``sources`` compares the
    metrics of every other text source the baseline also has.
    """
    primary = report.get("primary_source", PRIMARY_SOURCE)
    old = _baseline_source(baseline, primary) or baseline
    metrics = _compare_metrics(report["summary"], old["summary"])
    before = {r["letter"]: r["mismatches"] for r in old.get("per_letter", [])}
    now = {r["letter"]: r["mismatches"] for r in report["per_letter"]}
    letters: dict[str, list[Any]] = {"improved": [], "regressed": [], "added": [], "removed": []}
    for letter, count in now.items():
        if letter not in before:
            letters["added"].append(letter)
        elif count != before[letter]:
            verdict = "improved" if count < before[letter] else "regressed"
            letters[verdict].append({"letter": letter, "baseline": before[letter], "current": count})
    letters["removed"] = sorted(set(before) - set(now))
    sources = {}
    for source, entry in report.get("sources", {}).items():
        old_entry = _baseline_source(baseline, source)
        if source == primary or old_entry is None:
            continue
        changes = _compare_metrics(entry["summary"], old_entry["summary"])
        sources[source] = {
            "improved": [m for m, v in changes.items() if v["change"] == "improved"],
            "regressed": [m for m, v in changes.items() if v["change"] == "regressed"],
            "metrics": changes,
        }
    return {
        "baseline": name,
        "epsilon": COMPARISON_EPSILON,
        "improved": [m for m, v in metrics.items() if v["change"] == "improved"],
        "regressed": [m for m, v in metrics.items() if v["change"] == "regressed"],
        "metrics": metrics,
        "letters": letters,
        "sources": sources,
    }


def all_regressions(comparison: dict[str, Any]) -> list[str]:
    """Every regressed metric, other sources' as ``source:metric``."""
    return comparison["regressed"] + [
        f"{source}:{metric}"
        for source, entry in comparison["sources"].items()
        for metric in entry["regressed"]
    ]


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


def source_report(results: Sequence[LetterResult], limits: dict[str, float | None]) -> dict[str, Any]:
    """Every metric, threshold and mismatch of one text source."""
    scores = [score_letter(r) for r in results]
    summary = summarize(scores)
    thresholds = check_thresholds(summary, limits)
    return {
        "letters": {
            "total": len(results),
            "extracted": sum(r.prediction is not None for r in results),
            "failed": [r.gold.letter for r in results if r.prediction is None],
            "gold_items": sum(len(r.gold.items) for r in results),
            "predicted_items": sum(len(r.prediction.items) for r in results if r.prediction is not None),
            "item_match_threshold": ITEM_MATCH_THRESHOLD,
        },
        "summary": summary,
        "per_letter": [s.row for s in scores],
        "mismatches": [m for s in scores for m in s.mismatches],
        "flags": flag_summary(scores, results),
        "thresholds": thresholds,
        "passed": all(t["passed"] for t in thresholds.values()),
    }


def build_report(
    results: dict[str, Sequence[LetterResult]],
    backend: str,
    options: dict[str, Any],
    limits: dict[str, float | None],
) -> dict[str, Any]:
    """The whole report as plain JSON-able data, keys in a stable order.

    ``results`` maps each text source to its letters, primary source first. The top-level
    ``letters``/``summary``/``per_letter``/``mismatches``/``flags``/``thresholds`` are the primary
    source's (as in reports without sources); ``sources`` holds the same for every source, and
    ``passed`` requires every source to pass every threshold.
    """
    sources = {name: source_report(rs, limits) for name, rs in results.items()}
    primary = next(iter(sources))
    main = sources[primary]
    return {
        "version": REPORT_VERSION,
        "backend": backend,
        "options": options,
        "primary_source": primary,
        "letters": main["letters"],
        "summary": main["summary"],
        "per_letter": main["per_letter"],
        "mismatches": main["mismatches"],
        "flags": main["flags"],
        "thresholds": main["thresholds"],
        "sources": sources,
        "passed": all(src["passed"] for src in sources.values()),
    }


# --------------------------------------------------------------------------------------------
# Console
# --------------------------------------------------------------------------------------------


def summary_table(report: dict[str, Any]) -> Table:
    letters = report["letters"]
    table = Table(
        title=f"llm_extract eval: backend {report['backend']}, {letters['total']} letters, "
        f"{letters['gold_items']} gold items",
        title_justify="left",
    )
    for header, justify in (("metric", "left"), ("value", "right"), ("95% CI", "right"), ("counts", "right")):
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    for name, e in report["summary"].items():
        table.add_row(name, fmt_metric(e), fmt_ci(e), fmt_counts(e))
    return table


def sources_table(report: dict[str, Any]) -> Table:
    table = Table(
        title="per text source (every threshold applies to each)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for header in source_headers(short=True):
        table.add_column(header, justify="left" if header in ("source", "result") else "right", no_wrap=True)
    for row in source_rows(report):
        table.add_row(*row)
    return table


def print_console(console: Console, report: dict[str, Any], out: str, seconds: float) -> None:
    console.print(summary_table(report))
    console.print(f"thresholds ({report.get('primary_source', PRIMARY_SOURCE)}):")
    for name, t in report["thresholds"].items():
        mark = "[green]pass[/green]" if t["passed"] else "[bold red]FAIL[/bold red]"
        console.print(
            f"  {mark} {name}: {t['metric']} = {fmt(t['value'])} (needs {t['op']} {fmt(t['limit'])})"
        )
    if len(report["sources"]) > 1:
        console.print(sources_table(report))
        for source, entry in report["sources"].items():
            for name, t in entry["thresholds"].items():
                if not t["passed"] and source != report["primary_source"]:
                    console.print(
                        f"  [bold red]FAIL[/bold red] {source} {name}: {t['metric']} = {fmt(t['value'])} "
                        f"(needs {t['op']} {fmt(t['limit'])})"
                    )
    comparison = report.get("comparison")
    if comparison:
        console.print(f"Against baseline {comparison['baseline']}:")
        for verdict, style in (("regressed", "red"), ("improved", "green")):
            names = comparison[verdict]
            shown = ", ".join(
                f"{m} {fmt(comparison['metrics'][m]['baseline'])}->{fmt(comparison['metrics'][m]['current'])}"
                for m in names
            )
            console.print(f"  [{style}]{verdict} metrics ({len(names)})[/{style}]: {shown or 'none'}")
            rows = comparison["letters"][verdict]
            shown = ", ".join(f"{letter_id(r['letter'])} {r['baseline']}->{r['current']}" for r in rows)
            console.print(f"  [{style}]{verdict} letters ({len(rows)})[/{style}]: {shown or 'none'}")
        for source, entry in comparison["sources"].items():
            if entry["regressed"] or entry["improved"]:
                console.print(
                    f"  {source}: regressed {', '.join(entry['regressed']) or 'none'}; "
                    f"improved {', '.join(entry['improved']) or 'none'}"
                )
    failed = report["letters"]["failed"]
    if failed:
        console.print(f"[red]failed letters ({len(failed)})[/red]: {', '.join(letter_id(x) for x in failed)}")
    with_mm = sum(1 for r in report["per_letter"] if r["mismatches"])
    console.print(
        f"{len(report['mismatches'])} mismatches in {with_mm} letters; {seconds:.1f} s; reports in {out}/"
    )
    verdict = "[bold green]PASSED[/bold green]" if report["passed"] else "[bold red]FAILED[/bold red]"
    console.print(verdict)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)


@app.command()
def run(
    backend: Annotated[
        str, typer.Option(help="Extractor backend: rules, openai or local.")
    ] = DEFAULT_BACKEND,
    model: Annotated[
        str | None, typer.Option(help="Model name, passed to extract() only when given.")
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="API base URL, passed to extract() only when given.")
    ] = None,
    gold: Annotated[
        Path, typer.Option(help="Directory of gold JSON files.", show_default="evals/gold")
    ] = GOLD_DIR,
    letters: Annotated[
        Path,
        typer.Option(
            help="Directory the gold files' 'letter' paths are relative to.", show_default="evals/letters"
        ),
    ] = LETTERS_DIR,
    baseline: Annotated[Path | None, typer.Option(help="A previous report.json to compare with.")] = None,
    out: Annotated[
        Path,
        typer.Option(help="Directory for report.json, report.md and report.html.", show_default="evals/out"),
    ] = DEFAULT_OUT,
    verdicts: Annotated[
        Path | None,
        typer.Option(help="JSON list of reviewer verdicts folded into the gold (evals/README.md)."),
    ] = None,
    jobs: Annotated[int, typer.Option(min=1, help="Letters extracted in parallel.")] = DEFAULT_JOBS,
    strategy: Annotated[
        str | None,
        typer.Option(
            help=f"LLM strategy: {', '.join(get_args(Strategy))} (the backend's default if not given)."
        ),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Pass cache=False to non-rules backends.")
    ] = False,
    min_item_f1: Annotated[
        float | None, typer.Option(help="Gate: item F1 at least this.")
    ] = DEFAULT_MIN_ITEM_F1,
    min_decision_accuracy: Annotated[
        float | None, typer.Option(help="Gate: end-to-end decision accuracy at least this.")
    ] = DEFAULT_MIN_DECISION_ACCURACY,
    max_fabricated_quotes: Annotated[
        int | None, typer.Option(min=0, help="Gate: quotes vouched for but not in the letter, at most this.")
    ] = DEFAULT_MAX_FABRICATED_QUOTES,
    max_failed_letters: Annotated[
        int | None, typer.Option(min=0, help="Gate: letters that failed to extract, at most this.")
    ] = DEFAULT_MAX_FAILED_LETTERS,
    min_citation_source_f1: Annotated[float | None, typer.Option(help="Gate: citation source F1.")] = None,
    min_citation_title_f1: Annotated[float | None, typer.Option(help="Gate: citation title F1.")] = None,
    min_citation_pages_f1: Annotated[float | None, typer.Option(help="Gate: citation pages F1.")] = None,
    min_conclusion_grounding: Annotated[
        float | None, typer.Option(help="Gate: conclusion grounding.")
    ] = None,
    min_header_accuracy: Annotated[
        float | None, typer.Option(help="Gate: header field accuracy (all fields pooled).")
    ] = DEFAULT_MIN_HEADER_ACCURACY,
    min_reviewer_accuracy: Annotated[
        float | None, typer.Option(help="Gate: reviewer licensure and specialties accuracy.")
    ] = DEFAULT_MIN_REVIEWER_ACCURACY,
    min_patient_accuracy: Annotated[
        float | None, typer.Option(help="Gate: patient age and sex accuracy.")
    ] = DEFAULT_MIN_PATIENT_ACCURACY,
    max_missing_evidence: Annotated[
        int | None,
        typer.Option(min=0, help="Gate: stated values without evidence in the letter, at most this."),
    ] = DEFAULT_MAX_MISSING_EVIDENCE,
    min_category_accuracy: Annotated[
        float | None, typer.Option(help="Gate: DWC request category accuracy (matched items).")
    ] = DEFAULT_MIN_CATEGORY_ACCURACY,
    min_subcategory_accuracy: Annotated[
        float | None, typer.Option(help="Gate: DWC subcategory / drug class accuracy (matched items).")
    ] = DEFAULT_MIN_SUBCATEGORY_ACCURACY,
    min_drug_accuracy: Annotated[
        float | None, typer.Option(help="Gate: drug generic-name accuracy (matched pharmaceutical items).")
    ] = DEFAULT_MIN_DRUG_ACCURACY,
    fail_on_regression: Annotated[
        bool, typer.Option(help="With --baseline: any regressed metric fails the run.")
    ] = False,
    only: Annotated[
        list[str] | None, typer.Option(help="Only gold files whose name matches this glob (repeatable).")
    ] = None,
    source: Annotated[
        list[str] | None,
        typer.Option(
            help="Only this text source (repeatable): pdfium (the letters themselves) or a directory of "
            "<letters>/variants/. Default: all."
        ),
    ] = None,
) -> int:
    """Evaluate an extractor backend on the gold set and gate on the thresholds."""
    started = time.perf_counter()
    golds = load_gold_dir(gold, only)
    if not letters.is_dir():
        raise UsageError(f"letters directory not found: {letters}")
    base = load_baseline(baseline) if baseline is not None else None
    applied = 0
    if verdicts is not None:
        golds, applied = apply_verdicts(golds, load_verdicts(verdicts))
    options = extract_options(backend, model, base_url, no_cache, strategy)
    plan = {name: source_letters(golds, letters, name) for name in select_sources(letters, source)}
    for name, pairs in list(plan.items()):
        if not pairs:  # a variant source has text for PDF gold letters only
            if source:
                raise UsageError(f"text source {name!r} has none of the selected gold letters")
            del plan[name]
    flat = [pair for pairs in plan.values() for pair in pairs]
    extracted = run_extractions(flat, backend, options, jobs)
    results: dict[str, list[LetterResult]] = {}
    cursor = 0
    for name, pairs in plan.items():
        results[name] = extracted[cursor : cursor + len(pairs)]
        cursor += len(pairs)
    limits = {
        "min_item_f1": min_item_f1,
        "min_decision_accuracy": min_decision_accuracy,
        "max_fabricated_quotes": max_fabricated_quotes,
        "max_failed_letters": max_failed_letters,
        "min_citation_source_f1": min_citation_source_f1,
        "min_citation_title_f1": min_citation_title_f1,
        "min_citation_pages_f1": min_citation_pages_f1,
        "min_conclusion_grounding": min_conclusion_grounding,
        "min_header_accuracy": min_header_accuracy,
        "min_reviewer_accuracy": min_reviewer_accuracy,
        "min_patient_accuracy": min_patient_accuracy,
        "max_missing_evidence": max_missing_evidence,
        "min_category_accuracy": min_category_accuracy,
        "min_subcategory_accuracy": min_subcategory_accuracy,
        "min_drug_accuracy": min_drug_accuracy,
    }
    report_options = {
        "extract": {k: redact_url(v) if k == "base_url" else v for k, v in options.items()},
        "gold": _display(gold),
        "letters": _display(letters),
        "verdicts": _display(verdicts) if verdicts is not None else None,
        "verdicts_applied": applied,
        "sources": list(plan),
        "extractor_version": llm_extract.__version__,
    }
    report = build_report(results, backend, report_options, limits)
    if base is not None:
        report["comparison"] = compare(report, base, _display(baseline))
        if fail_on_regression:
            regressed = all_regressions(report["comparison"])
            report["thresholds"]["no_regressions"] = {
                "metric": "comparison",
                "op": "<=",
                "limit": 0,
                "value": len(regressed),
                "passed": not regressed,
            }
            report["passed"] = report["passed"] and not regressed
    try:
        write_all(report, out)
    except OSError as exc:
        raise UsageError(f"cannot write reports to {out}: {_one_line(exc)}") from None
    console = Console(width=None if sys.stdout.isatty() else 110, highlight=False)
    print_console(console, report, _display(out), time.perf_counter() - started)
    return EXIT_OK if report["passed"] else EXIT_THRESHOLD


def _display(path: Path | None) -> str:
    """A path relative to the working directory when it is under it (reports stay portable)."""
    if path is None:
        return ""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _is_cli_error(exc: BaseException) -> bool:
    """A click/typer usage error (typer vendors its own click, so match by shape, not by class)."""
    return callable(getattr(exc, "format_message", None)) and isinstance(getattr(exc, "exit_code", None), int)


def _error(message: str) -> None:
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code; usage errors are one line on stderr, never a traceback."""
    command = typer.main.get_command(app)
    try:
        result = command.main(
            args=list(argv) if argv is not None else None, prog_name=PROG, standalone_mode=False
        )
    except UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except (KeyboardInterrupt, typer.Abort):
        _error("interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - a harness bug: one line, traceback only on request
        if _is_cli_error(exc):  # bad option, bad value, missing argument (typer's own click errors)
            _error(exc.format_message())  # type: ignore[attr-defined]
            return EXIT_USAGE
        if os.environ.get("EVALS_DEBUG"):
            raise
        _error(
            f"internal error: {type(exc).__name__}: {_one_line(exc)} (set EVALS_DEBUG=1 for the traceback)"
        )
        return EXIT_INTERNAL
    return result if isinstance(result, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
