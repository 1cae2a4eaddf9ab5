"""The ``llm-extract`` command line: extract letters, print the schema.

Bad input never shows a traceback: each failing letter gets one line on stderr naming the
file and what is wrong, and the exit code says what happened (0 ok, 1 a letter failed,
2 bad usage, 3 --strict and a result has error flags, 70 an internal error).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from . import __version__
from .cache import ResultCache
from .errors import ExtractionError, LLMError
from .pipeline import BACKENDS, extract
from .review import review_command
from .schema import json_schema

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


@app.command("extract")
def extract_cmd(
    files: Annotated[list[Path], typer.Argument(help="Letters: .pdf or .txt files.", show_default=False)],
    fmt: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="json (one object, or an array) or jsonl.")
    ] = (OutputFormat.json),
    out: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    backend: Annotated[str, typer.Option(help=f"Extraction backend: {', '.join(BACKENDS)}.")] = "rules",
    strict: Annotated[bool, typer.Option(help="Exit 3 when any result carries an error flag.")] = False,
    model: Annotated[str | None, typer.Option(help="LLM model (default $LLM_EXTRACT_MODEL).")] = None,
    base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible endpoint (default $OPENAI_BASE_URL).")
    ] = None,
    mode: Annotated[
        str | None, typer.Option(help="instructor mode: tools, json_schema, json, md_json.")
    ] = None,
    strategy: Annotated[str | None, typer.Option(help="per-item (default) or whole-letter.")] = None,
    cache: Annotated[
        bool, typer.Option("--cache/--no-cache", help="Use the result cache (LLM backends).")
    ] = True,
    log_prompts: Annotated[
        bool, typer.Option(help="Log rendered prompts at DEBUG (they contain letter text).")
    ] = False,
) -> None:
    """Extract each letter into a verified Determination (JSON).

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
    results, failed, flagged = [], 0, 0
    for path in files:
        try:
            result = extract(path, backend=backend, **options)
        except LLMError as exc:
            err.print(f"error: {exc}", markup=False)
            raise typer.Exit(EXIT_LETTER_FAILED) from None
        except ExtractionError as exc:
            failed += 1
            err.print(f"error: {exc}", markup=False)
            continue
        if not result.ok:
            flagged += 1
        results.append(result.model_dump(mode="json"))
    if fmt is OutputFormat.jsonl:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results)
    elif len(files) == 1:
        text = json.dumps(results[0], ensure_ascii=False, indent=2) + "\n" if results else ""
    else:
        text = json.dumps(results, ensure_ascii=False, indent=2) + "\n"
    if text:
        _write(text, out)
    if failed:
        raise typer.Exit(EXIT_LETTER_FAILED)
    if strict and flagged:
        err.print(f"{flagged} result(s) carry error flags")
        raise typer.Exit(EXIT_FLAGGED)


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
