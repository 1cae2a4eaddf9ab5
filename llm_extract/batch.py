"""Batch extraction: many letters, concurrently, streaming, one bad letter never stops the rest.

``extract_many`` keeps a bounded window of letters in flight (``jobs`` x ``WINDOW_PER_JOB``), so
memory stays flat however many letters stream through, and yields one outcome per letter: a
:class:`~llm_extract.schema.Determination` or a :class:`BatchError` naming the letter. The rules
backend is CPU-bound and runs in worker processes; LLM backends are I/O-bound and run in
threads that share one rate gate (a cap on requests in flight and a common pause after a 429).
Any ``concurrent.futures.Executor`` can be passed instead, e.g. a Dask or Ray cluster's.
"""

from __future__ import annotations

import glob
import json
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from .errors import ExtractionError
from .schema import Determination

#: Letters submitted ahead per worker: enough to keep workers busy, few enough to stay flat.
WINDOW_PER_JOB = 4
DEFAULT_JOBS = 8
LETTER_SUFFIXES = (".pdf", ".txt")


class BatchError(BaseModel):
    """A letter that could not be extracted, as one JSONL record."""

    model_config = ConfigDict(extra="forbid")

    ok: Literal[False] = False
    letter: str
    error: str
    message: str


Outcome = Determination | BatchError


def _name(letter: Any) -> str:
    if isinstance(letter, (str, os.PathLike)) and not (isinstance(letter, str) and "\n" in letter):
        return str(letter)[:300]
    return f"<{type(letter).__name__} letter>"


def extract_one(letter: Any, backend: str = "rules", options: dict[str, Any] | None = None) -> Outcome:
    """Extract one letter; every failure becomes a BatchError (picklable, for any executor)."""
    from .pipeline import extract

    try:
        return extract(letter, backend=backend, **(options or {}))
    except ExtractionError as exc:
        return BatchError(letter=_name(letter), error=exc.code, message=str(exc))
    except Exception as exc:  # an extractor bug must not stop the batch; it is reported, not hidden
        return BatchError(letter=_name(letter), error="internal", message=f"{type(exc).__name__}: {exc}")


def default_executor(backend: str, jobs: int) -> Executor:
    """Processes for the CPU-bound rules backend, threads for network-bound LLM backends."""
    if backend == "rules":
        return ProcessPoolExecutor(max_workers=jobs)
    return ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="llm-extract")


def extract_many(
    letters: Iterable[Any],
    *,
    backend: str = "rules",
    jobs: int = DEFAULT_JOBS,
    executor: Executor | None = None,
    ordered: bool = True,
    **options: Any,
) -> Iterator[Outcome]:
    """Yield one outcome per letter, in input order (``ordered=True``) or as completed.

    ``executor`` may be any ``concurrent.futures.Executor`` (Dask: ``client.get_executor()``);
    without one, a pool suited to the backend is created and shut down here.
    """
    if jobs < 1:
        raise ValueError("jobs must be at least 1")
    if backend != "rules":
        from .llm.client import configure_gate

        configure_gate(options.pop("max_in_flight", jobs))
    if executor is None and jobs == 1:  # no pool to start for a single worker
        for letter in letters:
            yield extract_one(letter, backend, options)
        return
    own = executor is None
    pool = executor or default_executor(backend, jobs)
    window = max(1, jobs * WINDOW_PER_JOB)
    try:
        source = iter(letters)
        pending: deque[Future] = deque()

        def fill() -> None:
            while len(pending) < window:
                try:
                    letter = next(source)
                except StopIteration:
                    return
                pending.append(pool.submit(extract_one, letter, backend, options))

        fill()
        if ordered:
            while pending:
                outcome = pending.popleft().result()
                fill()
                yield outcome
        else:
            while pending:
                done = next(as_completed(list(pending)))
                pending.remove(done)
                fill()
                yield done.result()
    finally:
        if own:
            pool.shutdown(wait=True, cancel_futures=True)


def expand(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Letter files named by paths, directories (searched recursively) and glob patterns, in order."""
    found: list[Path] = []
    seen: set[Path] = set()
    for raw in inputs:
        text = str(raw)
        if any(ch in text for ch in "*?["):
            candidates = [Path(p) for p in sorted(glob.glob(text, recursive=True))]
        elif Path(text).is_dir():
            candidates = sorted(p for p in Path(text).rglob("*") if p.suffix.lower() in LETTER_SUFFIXES)
        else:
            candidates = [Path(text)]
        for path in candidates:
            if path.is_dir():
                continue
            key = path.resolve()
            if key not in seen:
                seen.add(key)
                found.append(path)
    return found


def done_letters(output: Path) -> set[str]:
    """Letters already in a JSONL output (by source name and sha256), repairing a torn last line."""
    if not output.is_file():
        return set()
    done: set[str] = set()
    good_bytes = 0
    with output.open("rb") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except ValueError:
                break  # a torn line from a crash: everything after it is dropped
            if not line.endswith(b"\n"):
                break
            good_bytes += len(line)
            if record.get("ok") is False:
                continue  # failed letters are retried on resume
            source = record.get("source") or {}
            for key in (source.get("name"), source.get("sha256")):
                if key:
                    done.add(str(key))
    if good_bytes != output.stat().st_size:
        with output.open("r+b") as handle:
            handle.truncate(good_bytes)
    return done


class JsonlWriter:
    """Appends one JSON line per outcome with a single write, flushed to disk as it goes."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def write(self, outcome: Outcome) -> None:
        data = (outcome.model_dump_json() + "\n").encode("utf-8")
        os.write(self.fd, data)

    def close(self) -> None:
        os.fsync(self.fd)
        os.close(self.fd)

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
