"""The ``llm-extract`` command line: extract letters, print the schema, review, stats, cache.

Bad input never shows a traceback: each failing letter gets one line on stderr naming the
file and what is wrong, and the exit code says what happened (:data:`EXIT_CODES`; the README's
table): 0 ok; 1 a letter failed (bad, timed out, crashed its worker) or the output could not be
written during the run (a full disk); 2 the command cannot run as given (bad usage, a bad option,
an unknown backend, a missing model or key, refused credentials, an unusable cache, an output that
is a directory, unwritable, locked by another run, or unreadable for resuming): every error class
with ``stops_batch``; 3 --strict and a result has error flags; 70 a bug.

Start-up is part of the interface (``benchmarks/bench_startup.py``): this module imports typer and
what the command line itself needs; the extraction stages, the cache, rich (progress bars), the
reviewer page and the LLM stack are imported by the command that uses them, and the PDF sandbox's
child is started before the extraction stages are imported, so the two overlap.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, get_args

import typer
from typer.core import TyperCommand, TyperGroup

from .backends import BACKENDS
from .batch import LETTER_TIMEOUT_S, BatchError, expand, extract_many, is_pattern
from .errors import ExtractionError, OutputError, OutputUnusableError, stops_batch
from .options import Mode, Strategy
from .outputs import FORMATS, format_for, open_output, write_file
from .version import __version__

if TYPE_CHECKING:
    from rich.progress import Progress

    from .schema import Determination

EXIT_OK = 0
EXIT_LETTER_FAILED = 1
EXIT_USAGE = 2
EXIT_FLAGGED = 3
EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70
#: What each exit code means (the README's table says the same at length).
EXIT_CODES = {
    EXIT_OK: "every letter extracted",
    EXIT_LETTER_FAILED: "a letter failed, or the output could not be written during the run",
    EXIT_USAGE: "the command cannot run as given: usage, options, configuration, an unusable output",
    EXIT_FLAGGED: "--strict and a result carries an error flag",
    EXIT_INTERNAL: "a bug (LLM_EXTRACT_DEBUG=1 shows the traceback)",
}
HELP_OPTIONS = ["-h", "--help"]
VERSION_OPTION = "--version"
#: Commands whose module is imported only when the command runs (or its help is shown):
#: name -> ("module:function", one line of help for the command list).
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "review": (".review.command:review_command", "Build the reviewer page for results (self-contained HTML, or --serve)."),
}


class _Conventions:
    """The command line's conventions for every command: a boolean flag shows no ``<bool>`` metavar."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params


class Command(_Conventions, TyperCommand):
    """Every command's class (``@app.command(cls=Command)``)."""


class Group(_Conventions, TyperGroup):
    """The command groups: the conventions, and :data:`LAZY_COMMANDS` loaded on first use."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *(name for name in LAZY_COMMANDS if name not in self.commands)]

    def get_command(self, ctx: Any, name: str) -> Any:
        if name in LAZY_COMMANDS and name not in self.commands:
            target, short = LAZY_COMMANDS[name]
            module, _, function = target.partition(":")
            single = typer.Typer()
            single.command(name, cls=Command, short_help=short)(getattr(import_module(module, __package__), function))
            self.commands[name] = typer.main.get_command(single)
        return super().get_command(ctx, name)


app = typer.Typer(
    cls=Group,
    add_completion=False,
    no_args_is_help=True,
    help="IMR determination letters to verified JSON.",
    context_settings={"help_option_names": HELP_OPTIONS},
)


class _Stderr:
    """One line per message on standard error; rich is imported only for a progress bar."""

    def print(self, text: str, markup: bool = False) -> None:
        sys.stderr.write(f"{text}\n")
        sys.stderr.flush()

    @property
    def is_terminal(self) -> bool:
        try:
            return sys.stderr.isatty()
        except (AttributeError, ValueError):
            return False


err = _Stderr()


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            VERSION_OPTION,
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit (also after a command: llm-extract extract --version).",
        ),
    ] = False,
) -> None:
    """IMR determination letters to verified JSON."""


def asks_version(argv: list[str]) -> bool:
    """``--version`` anywhere before a ``--`` (an eager option for every command, as ``-h`` is)."""
    return VERSION_OPTION in (argv[: argv.index("--")] if "--" in argv else argv)


def _write(text: str, out: Path | None) -> None:
    """Write to stdout, or atomically to ``out`` (a crash never leaves half a file)."""
    if out is None:
        sys.stdout.write(text)
        return
    write_file(out, text)


@app.command("extract", cls=Command)
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
    mode: Annotated[str | None, typer.Option(help=f"instructor mode: {', '.join(get_args(Mode))}.")] = None,
    strategy: Annotated[
        str | None,
        typer.Option(help=f"{', '.join(get_args(Strategy))} (default: per-item; per-item-brief for local)."),
    ] = None,
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
    given = {
        name: value
        for name, value in (("model", model), ("base_url", base_url), ("mode", mode), ("strategy", strategy))
        if value is not None
    }
    if backend != "rules":  # the rules backend is never cached and has no prompts: the flags are moot
        given.update({"cache": False} if not cache else {}, **({"log_prompts": True} if log_prompts else {}))
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
    if any(path.suffix.lower() == ".pdf" for path in files[:1]):
        from .pdftext import prestart

        prestart()  # the sandbox child boots while the extraction stages are imported
    from .pipeline import backend_options

    backend_options(backend, **given)  # a bad option is exit 2 before any output is opened
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
        outcomes = extract_many(todo, backend=backend, jobs=jobs, timeout=timeout, **given)
        try:
            with _progress(show, len(todo)) as bar:
                task = bar.add_task("extracting", total=len(todo)) if bar else None
                for outcome in outcomes:
                    recorded = sink.write(outcome)
                    tally.add(recorded)
                    if isinstance(recorded, BatchError):
                        err.print(f"error: {recorded.message}", markup=False)
                        if stops_batch(recorded.error):  # every letter would fail so: the command must change
                            raise typer.Exit(EXIT_USAGE)
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

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(show_speed=True),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        yield bar


cache_app = typer.Typer(cls=Group, help="Inspect or clear the result cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("stats", cls=Command)
def cache_stats() -> None:
    """Where the cache is, how many results it holds, and its size (a damaged cache says so)."""
    from .cache import cache_stats

    stats = cache_stats()
    typer.echo(json.dumps(stats, indent=2))
    if stats.get("problem"):
        err.print(f"warning: the cache is damaged: {stats['problem']}", markup=False)


@cache_app.command("clear", cls=Command)
def cache_clear() -> None:
    """Delete every cached result: removes the cache directory and creates it again (repairs damage)."""
    from .cache import clear_cache

    removed, store = clear_cache()
    what = "a damaged cache" if removed is None else f"{removed} cached result(s)"
    typer.echo(f"removed {what} from {store}")


@app.command("schema", cls=Command)
def schema_cmd(
    out: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
) -> None:
    """Print the JSON Schema of a Determination, generated from the pydantic models."""
    from .schema import json_schema

    _write(json.dumps(json_schema(), indent=2) + "\n", out)


@app.command("serve", cls=Command)
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


@app.command("stats", cls=Command)
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


@app.command("version", cls=Command)
def version_cmd() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    """Console entry point: typer's usage errors exit 2; nothing else ever prints a traceback."""
    if not os.environ.get("LLM_EXTRACT_DEBUG"):
        # instructor logs each failed attempt at ERROR; the CLI reports the outcome in one line instead.
        logging.getLogger("instructor").setLevel(logging.CRITICAL)
    if asks_version(sys.argv[1:]):
        typer.echo(__version__)
        code = EXIT_OK
    else:
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
    except ExtractionError as exc:  # a bad option or configuration (stops_batch): the command must change
        err.print(f"error: {exc}", markup=False)
        return EXIT_USAGE if exc.stops_batch else EXIT_LETTER_FAILED
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
