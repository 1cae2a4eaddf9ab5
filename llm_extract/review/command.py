"""``llm-extract review``: read the files, build the page, write it (0600) or serve it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated

import typer

from ..outputs import write_file
from ..schema import Determination
from .inputs import (
    LetterFiles,
    Rejected,
    ReviewInputError,
    letter_paths,
    load_eval_report,
    load_gold_dir,
    load_results,
    one_line,
)
from .page import build_review_html
from .server import DEFAULT_PORT, HOST, serve

EXIT_BAD_INPUT = 1
EXIT_USAGE = 2
#: How many rejected records the command lists on stderr (the page shows them all).
MAX_REJECTIONS_SHOWN = 10


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
        write_file(out, html)  # private: the page quotes the letters
    except OSError as exc:
        raise _fail(f"cannot write {out}: {one_line(exc)}") from None
    typer.echo(f"wrote {out}", err=True)
