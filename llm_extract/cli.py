"""The ``llm-extract`` command line: extract letters, print the schema.

Bad input never shows a traceback: each failing letter gets one line on stderr naming the
file and what is wrong, and the exit code says what happened: 0 ok; 1 a letter failed (bad,
timed out, crashed its worker) or the output could not be written during the run (a full disk);
2 the command cannot run as given (bad usage, an output that is a directory, unwritable, locked
by another run, or unreadable for resuming); 3 --strict and a result has error flags; 70 a bug.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from . import __version__
from . import cache as result_cache
from .batch import LETTER_TIMEOUT_S, BatchError, expand, extract_many, is_pattern
from .errors import ExtractionError, OutputError, OutputUnusableError
from .outputs import FORMATS, format_for, open_output, write_file
from .pipeline import BACKENDS
from .review.command import review_command
from .schema import Determination, json_schema

EXIT_LETTER_FAILED = 1
EXIT_USAGE = 2
EXIT_FLAGGED = 3
EXIT_INTERNAL = 70

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="IMR determination letters to verified JSON."
)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _write(text: str, out: Path | None) -> None:
    """Write to stdout, or atomically to ``out`` (a crash never leaves half a file)."""
    if out is None:
        sys.stdout.write(text)
        return
    write_file(out, text)


#: Errors that would fail every letter the same way: stop the batch at the first one.
FATAL_CODES = {"llm_config", "llm_auth", "llm_request", "unknown_backend", "local_model", "cache"}


@app.command("extract")
def extract_cmd(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Letters: .pdf/.txt files, directories, or glob patterns (a name that exists is never a pattern).",
            show_default=False,
        ),
    ],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help=f"{' or '.join(FORMATS)} (default: from the -o extension; json on standard output).",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write here instead of stdout (resumable, one run at a time)."),
    ] = None,
    backend: Annotated[str, typer.Option(help=f"Extraction backend: {', '.join(BACKENDS)}.")] = "rules",
    jobs: Annotated[
        int, typer.Option(min=1, help="Letters in parallel (processes for rules, threads for LLMs).")
    ] = 1,
    timeout: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="Seconds one letter may take before it is given up as 'timeout' (default: "
            + ", ".join(f"{k} {v:g}" for k, v in LETTER_TIMEOUT_S.items())
            + ").",
            show_default=False,
        ),
    ] = None,
    strict: Annotated[
        bool, typer.Option(help="Exit 3 when any result carries an error flag (resumed ones included).")
    ] = False,
    resume: Annotated[
        bool,
        typer.Option("--resume/--restart", help="With -o: skip letters already in it (same path and sha256)."),
    ] = True,
    lock_wait: Annotated[
        float,
        typer.Option(min=0, help="Seconds to wait for another run writing the same -o (default: refuse at once)."),
    ] = 0.0,
    progress: Annotated[
        bool | None, typer.Option(help="Progress bar (default: when stderr is a terminal).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="LLM model (default $LLM_EXTRACT_MODEL).")] = None,
    base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible endpoint (default $OPENAI_BASE_URL).")
    ] = None,
    mode: Annotated[
        str | None, typer.Option(help="instructor mode: tools, json_schema, json, md_json.")
    ] = None,
    strategy: Annotated[str | None, typer.Option(help="per-item, per-item-brief or whole-letter (default: per-item; per-item-brief for local).")] = None,
    cache: Annotated[
        bool, typer.Option("--cache/--no-cache", help="Use the result cache (LLM backends).")
    ] = True,
    log_prompts: Annotated[
        bool, typer.Option(help="Log rendered prompts at DEBUG (they contain letter text).")
    ] = False,
) -> None:
    """Extract letters into verified Determinations (JSON, or JSON Lines streamed; resumable with -o).

    The API key is read from $OPENAI_API_KEY, never from the command line (it would land in shell history).
    """
    if backend not in BACKENDS:
        err.print(f"error: unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
        raise typer.Exit(EXIT_USAGE)
    options = llm_options(
        backend,
        model=model,
        base_url=base_url,
        mode=mode,
        strategy=strategy,
        cache=cache,
        log_prompts=log_prompts,
    )
    if log_prompts:
        logging.basicConfig(level=logging.WARNING)
        logging.getLogger("llm_extract").setLevel(logging.DEBUG)
    fmt_name = format_for(out, fmt)
    unreadable: list[str] = []
    files = expand(inputs, on_error=unreadable.append)
    for problem in unreadable:
        err.print(f"error: {problem}", markup=False)
    if not files:
        err.print(f"error: no letters (.pdf, .txt) found in: {' '.join(inputs)}", markup=False)
        raise typer.Exit(EXIT_LETTER_FAILED)
    single = len(inputs) == 1 and len(files) == 1 and not is_pattern(inputs[0]) and not os.path.isdir(inputs[0])
    tally = Tally()
    with open_output(out, fmt_name, resume=resume, single=single, lock_wait=lock_wait) as sink:
        for note in sink.notes:
            err.print(f"warning: {note}", markup=False)
        noted = len(sink.notes)
        todo: list[Path] = []
        for path in files:
            prior = sink.done(path)
            if prior is None:
                todo.append(path)
            else:
                tally.skip(prior.flagged)
        show = progress if progress is not None else err.is_terminal
        outcomes = extract_many(todo, backend=backend, jobs=jobs, timeout=timeout, **options)
        try:
            with _progress(show, len(todo)) as bar:
                task = bar.add_task("extracting", total=len(todo)) if bar else None
                for outcome in outcomes:
                    recorded = sink.write(outcome)
                    tally.add(recorded)
                    if isinstance(recorded, BatchError):
                        err.print(f"error: {recorded.message}", markup=False)
                        if recorded.error in FATAL_CODES:
                            raise typer.Exit(EXIT_LETTER_FAILED)
                    if bar is not None and task is not None:
                        bar.advance(task)
        finally:
            outcomes.close()
    for note in sink.notes[noted:]:
        err.print(f"warning: {note}", markup=False)
    if len(files) > 1:
        err.print(tally.summary(), markup=False)
    if tally.failed or unreadable:
        raise typer.Exit(EXIT_LETTER_FAILED)
    if strict and (tally.flagged or tally.skipped_flagged):
        err.print(f"{tally.flagged + tally.skipped_flagged} result(s) carry error flags", markup=False)
        raise typer.Exit(EXIT_FLAGGED)


class Tally:
    """Counts for the end-of-run summary."""

    def __init__(self) -> None:
        self.ok = self.flagged = self.failed = self.tokens = 0
        self.skipped = self.skipped_flagged = 0
        self.cost = 0.0
        self.started = time.monotonic()

    def skip(self, flagged: bool) -> None:
        """A letter already done in the output (its result is not extracted again)."""
        self.skipped += 1
        self.skipped_flagged += flagged

    def add(self, outcome: Determination | BatchError) -> None:
        if isinstance(outcome, BatchError):
            self.failed += 1
            return
        if outcome.ok:
            self.ok += 1
        else:
            self.flagged += 1
        usage = outcome.source.usage
        if usage is not None and not outcome.source.cached:
            self.tokens += usage.prompt_tokens + usage.completion_tokens
            self.cost += usage.estimated_cost_usd or 0.0

    def summary(self) -> str:
        seconds = time.monotonic() - self.started
        done = self.ok + self.flagged + self.failed
        rate = done / seconds if seconds > 0 else 0.0
        parts = [f"{done} letters: {self.ok} ok, {self.flagged} flagged, {self.failed} failed"]
        if self.skipped:
            parts.append(f"{self.skipped} already done ({self.skipped_flagged} flagged)")
        parts.append(f"{self.tokens} tokens, ${self.cost:.4f}")
        parts.append(f"{seconds:.1f} s ({rate:.1f} letters/s)")
        return " · ".join(parts)


@contextlib.contextmanager
def _progress(show: bool, total: int) -> Iterator[Progress | None]:
    if not show or total < 2:
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(show_speed=True),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=False) as bar:
        yield bar


def llm_options(backend: str, **given: object) -> dict[str, object]:
    """Options for ``extract``: LLM options only for LLM backends, and only those given."""
    if backend == "rules":
        extra = [k for k, v in given.items() if v not in (None, False, True)]
        if extra:
            err.print(f"error: --{extra[0].replace('_', '-')} applies to LLM backends, not to rules")
            raise typer.Exit(EXIT_USAGE)
        return {}
    return {k: v for k, v in given.items() if v is not None}


cache_app = typer.Typer(help="Inspect or clear the result cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("stats")
def cache_stats() -> None:
    """Where the cache is, how many results it holds, and its size (a damaged cache says so)."""
    stats = result_cache.cache_stats()
    typer.echo(json.dumps(stats, indent=2))
    if stats.get("problem"):
        err.print(f"warning: the cache is damaged: {stats['problem']}", markup=False)


@cache_app.command("clear")
def cache_clear() -> None:
    """Delete every cached result: removes the cache directory and creates it again (repairs damage)."""
    removed, store = result_cache.clear_cache()
    what = "a damaged cache" if removed is None else f"{removed} cached result(s)"
    typer.echo(f"removed {what} from {store}")


@app.command("schema")
def schema_cmd(
    out: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
) -> None:
    """Print the JSON Schema of a Determination, generated from the pydantic models."""
    _write(json.dumps(json_schema(), indent=2) + "\n", out)


app.command("review")(review_command)


@app.command("serve")
def serve_cmd(
    model: Annotated[
        str | None, typer.Option(help="Local model: qwen2.5-coder-1.5b (default) or gemma3-270m.")
    ] = None,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8080,
    threads: Annotated[int | None, typer.Option(help="CPU threads (default: all cores).")] = None,
) -> None:
    """Run the embedded model's OpenAI-compatible server on 127.0.0.1 for other clients (Ctrl-C stops it)."""
    from .llm.local import DEFAULT_MODEL, LocalServer

    server = LocalServer(
        model or os.environ.get("LLM_EXTRACT_LOCAL_MODEL") or DEFAULT_MODEL, threads=threads, port=port
    ).start()
    err.print(f"serving {server.key} at {server.base_url} (model file {server.path}); Ctrl-C to stop")
    try:
        while server.process is not None and server.process.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@app.command("stats")
def stats_cmd(
    results: Annotated[
        Path, typer.Argument(help="A results file: .jsonl, .json, .csv or .parquet.", show_default=False)
    ],
    by: Annotated[
        list[str] | None,
        typer.Option(
            "--by",
            help="Break down by this field (repeat for several): category, subcategory, drug_class, "
            "guideline_source, reviewer_specialty, decision_year, or any table column.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the numbers as JSON.")] = False,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write a self-contained HTML report with charts here.")
    ] = None,
    min_items: Annotated[int, typer.Option(min=1, help="Leave out groups with fewer items.")] = 1,
) -> None:
    """Letters, items and overturn rates (Wilson 95% intervals), overall and by group."""
    from .stats import DEFAULT_BY, known_fields, render_html, render_text, summarize
    from .tables import read_results

    rows = read_results(results)
    try:
        summary = summarize(rows, by or DEFAULT_BY, min_items)
    except KeyError as exc:
        err.print(f"error: unknown --by field {exc.args[0]!r}; choose from: {', '.join(known_fields())}")
        raise typer.Exit(EXIT_USAGE) from None
    if html is not None:
        _write(render_html(summary, source=results.name), html)
    sys.stdout.write(json.dumps(summary, indent=2) + "\n" if as_json else render_text(summary))


@app.command("version")
def version_cmd() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    """Console entry point: typer's usage errors exit 2; nothing else ever prints a traceback."""
    if not os.environ.get("LLM_EXTRACT_DEBUG"):
        # instructor logs each failed attempt at ERROR; the CLI reports the outcome in one line instead.
        logging.getLogger("instructor").setLevel(logging.CRITICAL)
    code = _run()
    try:  # flushed here, not at interpreter exit, so a closed pipe or a full disk is one line too
        sys.stdout.flush()
    except OSError as exc:
        _silence_stdout()
        err.print(f"error: cannot write to standard output: {exc.strerror or exc}", markup=False)
        code = code or EXIT_LETTER_FAILED
    sys.exit(code)


def _run() -> int:
    try:
        code = app(standalone_mode=False)
        return code if isinstance(code, int) else 0
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        err.print("aborted")
        return 130
    except ExtractionError as exc:
        err.print(f"error: {exc}", markup=False)
        return EXIT_LETTER_FAILED
    except OutputUnusableError as exc:  # before any letter was extracted: the command must change
        err.print(f"error: {exc}", markup=False)
        return EXIT_USAGE
    except OutputError as exc:
        err.print(f"error: {exc}", markup=False)
        return EXIT_LETTER_FAILED
    except OSError as exc:  # the environment (a pipe closed, a disk full, a permission), not a bug
        if isinstance(exc, BrokenPipeError):
            _silence_stdout()
        where = f"{exc.filename}: " if exc.filename else ""
        err.print(f"error: {where}{exc.strerror or exc}", markup=False)
        return EXIT_LETTER_FAILED
    except Exception as exc:  # usage errors (click's, possibly vendored by typer) and anything unexpected
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            return exc.exit_code
        if os.environ.get("LLM_EXTRACT_DEBUG"):
            raise
        err.print(
            f"internal error: {type(exc).__name__}: {exc} (set LLM_EXTRACT_DEBUG=1 for a traceback)",
            markup=False,
        )
        return EXIT_INTERNAL


def _silence_stdout() -> None:
    """Point standard output at /dev/null so the interpreter's last flush cannot fail again."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


if __name__ == "__main__":
    main()
