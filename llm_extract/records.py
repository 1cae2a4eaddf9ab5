"""Results files read back, record by record: the one reader of what ``extract`` writes.

``extract`` writes JSON Lines, or JSON (``[``, one record per line ending in ``,``, ``]``; or,
for one letter, one pretty-printed object). :func:`read_records` reads all of them, and any one
JSON document (an object or an array), for every reader of results: the reviewer page
(:mod:`llm_extract.review`), ``tables.read_results`` (``llm-extract stats``) and the batch
writer's resume scan (:func:`record_lines`). The rules that make it safe on any file:

- lines are split on ``\\n`` only: a record's text may hold U+2028, U+2029 or U+0085, which
  ``str.splitlines`` would cut, shifting every offset after them;
- memory stays bounded: a line over :data:`MAX_RECORD_BYTES` is skipped unread, and a file is
  parsed whole only up to :data:`MAX_JSON_DOCUMENT_BYTES` (past that, line by line);
- a record that cannot be read is reported (:class:`Unreadable`, with where and why) and the rest
  are kept; a last line with no newline that does not parse is marked torn (a run that died
  mid-write), which readers may skip.

:func:`read_json` reads the small JSON files the toolkit's users hand back to it (gold files, an
evaluation report, verdicts) with one error line naming the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

#: A record longer than this is not one of ours (a Determination is tens of kB): kept, never parsed.
MAX_RECORD_BYTES = 64 * 1024 * 1024
#: A .json file not in the one-record-per-line layout ``extract`` writes is parsed whole, up to this.
MAX_JSON_DOCUMENT_BYTES = 512 * 1024 * 1024
_SKIP_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Record:
    """One parsed record (any JSON value: the caller decides what a result must be) and where it is."""

    value: Any
    where: str


@dataclass(frozen=True)
class Unreadable:
    """A record that is not JSON, or too long to read; ``torn``: the file's last line, with no
    newline (what a run that died mid-write leaves)."""

    where: str
    reason: str
    torn: bool = False


def record_lines(handle: BinaryIO) -> Iterator[tuple[bytes | None, int, bool]]:
    """Each line as (its bytes, or None past MAX_RECORD_BYTES; its size; whether a newline ends it).

    Memory stays bounded whatever the file holds: an over-long line is skipped, not read whole.
    """
    while True:
        line = handle.readline(MAX_RECORD_BYTES + 1)
        if not line:
            return
        if line.endswith(b"\n") or len(line) <= MAX_RECORD_BYTES:
            yield line, len(line), line.endswith(b"\n")
            continue
        size, chunk = len(line), line
        while chunk and not chunk.endswith(b"\n"):
            chunk = handle.readline(_SKIP_CHUNK)
            size += len(chunk)
        yield None, size, chunk.endswith(b"\n")


def read_records(file: Path) -> Iterator[Record | Unreadable]:
    """Every record of one results file, in order. Raises ``OSError`` if the file cannot be read.

    JSON Lines is read line by line; a file whose first line is not a whole JSON object (extract's
    JSON layout, a pretty-printed document) is parsed whole when it is small enough, else read
    line by line too (extract's JSON layout: the ``[`` and ``]`` lines skipped, the ``,`` dropped).
    """
    with file.open("rb") as handle:
        first = handle.readline(MAX_RECORD_BYTES + 1)
        size = os.fstat(handle.fileno()).st_size
        array = first.strip() == b"["
        if (array or first.strip()[:1] != b"{" or _parse(first)[1]) and size <= MAX_JSON_DOCUMENT_BYTES:
            handle.seek(0)
            document, problem = _parse(handle.read())
            if problem is None:
                yield from _document_records(file, document)
                return
        handle.seek(0)
        for n, (line, length, whole) in enumerate(record_lines(handle), 1):
            where = f"{file}:{n}"
            if line is None:
                yield Unreadable(where, f"a line of {length:,} bytes, over the record limit: not read")
                continue
            if array:
                line = line.strip().removesuffix(b",")
                if line in (b"[", b"]"):
                    continue
            if not line.strip():
                continue
            value, problem = _parse(line)
            if problem is None:
                yield Record(value, where)
            else:
                yield Unreadable(where, f"not JSON ({problem})", torn=not whole)


def _parse(data: bytes) -> tuple[Any, str | None]:
    """``(value, None)`` for JSON bytes, ``(None, why not)`` for anything else (deep nesting included)."""
    try:
        return json.loads(data), None
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError too
        return None, " ".join(str(exc).split()) or type(exc).__name__


def _document_records(file: Path, document: Any) -> Iterator[Record]:
    if isinstance(document, list):
        yield from (Record(value, f"{file}[{i}]") for i, value in enumerate(document))
    else:
        yield Record(document, str(file))


def read_json(path: Path, what: str, error: type[Exception]) -> Any:
    """A small JSON file the user named (a gold file, a report, verdicts), read whole; ``error``
    with one line ("bad {what} {path}: why") when it cannot be read or is not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError: ValueErrors
        bad_json(path, what, error, " ".join(str(exc).split()) or type(exc).__name__)


def bad_json(path: Path, what: str, error: type[Exception], why: str) -> NoReturn:
    """Raise ``error`` saying that ``path`` is not a usable ``what`` and why, in one line."""
    raise error(f"bad {what} {path}: {why}") from None
