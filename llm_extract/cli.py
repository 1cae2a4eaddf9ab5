"""The ``llm-extract`` command line: extract letters, print the schema.

Bad input never shows a traceback: each failing letter gets one line on stderr naming the
file and what is wrong, and the exit code says what happened (0 ok, 1 a letter failed,
2 bad usage, 3 --strict and a result has error flags, 70 an internal error).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from enum import Enum
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
from .batch import BatchError, JsonlWriter, done_letters, expand, extract_many
from .cache import ResultCache
from .errors import ExtractionError
from .pipeline import BACKENDS
from .review import review_command
from .schema import Determination, json_schema

EXIT_LETTER_FAILED = 1
EXIT_USAGE = 2
EXIT_FLAGGED = 3
EXIT_INTERNAL = 70

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="IMR determination letters to verified JSON."
)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class OutputFormat(str, Enum):
    json = "json"
    jsonl = "jsonl"


def _write(text: str, out: Path | None) -> None:
    """Write to stdout, or atomically to ``out`` (a crash never leaves half a file)."""
    if out is None:
        sys.stdout.write(text)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


#: Errors that would fail every letter the same way: stop the batch at the first one.
FATAL_CODES = {"llm_config", "llm_auth", "llm_request", "unknown_backend", "local_model"}


@app.command("extract")
def extract_cmd(
    inputs: Annotated[
        list[str],
        typer.Argument(help="Letters: .pdf/.txt files, directories, or glob patterns.", show_default=False),
    ],
    fmt: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="json (one object, or an array) or jsonl.")
    ] = (OutputFormat.json),
    out: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    backend: Annotated[str, typer.Option(help=f"Extraction backend: {', '.join(BACKENDS)}.")] = "rules",
    jobs: Annotated[
        int, typer.Option(min=1, help="Letters in parallel (processes for rules, threads for LLMs).")
    ] = 1,
    strict: Annotated[bool, typer.Option(help="Exit 3 when any result carries an error flag.")] = False,
    resume: Annotated[
        bool, typer.Option("--resume/--restart", help="With -o FILE.jsonl: skip letters already in it.")
    ] = True,
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
    """Extract letters into verified Determinations (JSON, or JSONL streamed and resumable).

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
    files = expand(inputs)
    if not files:
        err.print(f"error: no letters (.pdf, .txt) found in: {' '.join(inputs)}")
        raise typer.Exit(EXIT_LETTER_FAILED)
    streaming = fmt is OutputFormat.jsonl
    skipped = 0
    if streaming and out is not None and resume:
        done = done_letters(out)
        todo = [p for p in files if str(p) not in done and _sha256_of(p) not in done]
        skipped, files = len(files) - len(todo), todo
    elif streaming and out is not None:
        out.unlink(missing_ok=True)
    tally = Tally()
    show = progress if progress is not None else err.is_terminal
    outcomes = extract_many(files, backend=backend, jobs=jobs, **options)
    results: list[dict] = []
    writer = JsonlWriter(out) if streaming and out is not None else None
    try:
        with _progress(show, len(files)) as bar:
            task = bar.add_task("extracting", total=len(files)) if bar else None
            for outcome in outcomes:
                tally.add(outcome)
                if isinstance(outcome, BatchError):
                    err.print(f"error: {outcome.message}", markup=False)
                    if outcome.error in FATAL_CODES:
                        raise typer.Exit(EXIT_LETTER_FAILED)
                if writer is not None:
                    writer.write(outcome)
                elif streaming:
                    sys.stdout.write(outcome.model_dump_json() + "\n")
                elif isinstance(outcome, Determination):
                    results.append(outcome.model_dump(mode="json"))
                if bar is not None and task is not None:
                    bar.advance(task)
    finally:
        if writer is not None:
            writer.close()
    if not streaming and results:
        single = len(inputs) == 1 and len(files) == 1 and not any(ch in inputs[0] for ch in "*?[")
        body = results[0] if single and not Path(inputs[0]).is_dir() else results
        _write(json.dumps(body, ensure_ascii=False, indent=2) + "\n", out)
    if len(files) + skipped > 1:
        err.print(tally.summary(skipped), markup=False)
    if tally.failed:
        raise typer.Exit(EXIT_LETTER_FAILED)
    if strict and tally.flagged:
        err.print(f"{tally.flagged} result(s) carry error flags")
        raise typer.Exit(EXIT_FLAGGED)


def _sha256_of(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


class Tally:
    """Counts for the end-of-run summary."""

    def __init__(self) -> None:
        self.ok = self.flagged = self.failed = self.tokens = 0
        self.cost = 0.0
        self.started = time.monotonic()

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

    def summary(self, skipped: int) -> str:
        seconds = time.monotonic() - self.started
        done = self.ok + self.flagged + self.failed
        rate = done / seconds if seconds > 0 else 0.0
        parts = [f"{done} letters: {self.ok} ok, {self.flagged} flagged, {self.failed} failed"]
        if skipped:
            parts.append(f"{skipped} already done")
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
    """Where the cache is, how many results it holds, and its size."""
    store = ResultCache()
    stats = store.stats()
    store.close()
    typer.echo(json.dumps(stats, indent=2))


@cache_app.command("clear")
def cache_clear() -> None:
    """Delete every cached result."""
    store = ResultCache()
    removed = store.clear()
    store.close()
    typer.echo(f"removed {removed} cached result(s) from {store.directory}")


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


@app.command("version")
def version_cmd() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    """Console entry point: typer's usage errors exit 2; nothing else ever prints a traceback."""
    if not os.environ.get("LLM_EXTRACT_DEBUG"):
        # instructor logs each failed attempt at ERROR; the CLI reports the outcome in one line instead.
        logging.getLogger("instructor").setLevel(logging.CRITICAL)
    try:
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except ExtractionError as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(EXIT_LETTER_FAILED)
    except Exception as exc:  # usage errors (click's, possibly vendored by typer) and anything unexpected
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        if os.environ.get("LLM_EXTRACT_DEBUG"):
            raise
        err.print(
            f"internal error: {type(exc).__name__}: {exc} (set LLM_EXTRACT_DEBUG=1 for a traceback)",
            markup=False,
        )
        sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":
    main()
