"""What the reviewer page reads: results files, the letters they came from, gold files, an
evaluation report. Every reader here is bounded and refuses with one line
(:class:`ReviewInputError`), never a traceback.

Results come through :func:`llm_extract.records.read_records`, the one reader of results files
(JSON Lines or JSON, record by record, bounded lines, split on ``\\n`` only). Letter text comes
only from files the user named, and only when the file's sha256 is the result's.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..batch import BatchError, expand
from ..errors import ExtractionError
from ..ingest import MAX_INPUT_BYTES, load
from ..records import Record, bad_json, read_json, read_records
from ..schema import SCHEMA_VERSION, Determination


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


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def file_name(path: str | None) -> str:
    """The last part of a path as a result or gold file names it (either slash)."""
    return (path or "").replace("\\", "/").rsplit("/", 1)[-1]


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


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
        try:
            out += [
                entry(r.value, r.where) if isinstance(r, Record) else Rejected(r.where, r.reason)
                for r in read_records(file)
            ]
        except OSError as exc:
            raise ReviewInputError(f"cannot read {file}: {one_line(exc)}") from None
    if not out:
        raise ReviewInputError(f"no results in {path}")
    rejected = [e for e in out if isinstance(e, Rejected)]
    if len(rejected) == len(out):
        more = f" (and {len(rejected) - 1} more record(s) like it)" if len(rejected) > 1 else ""
        raise ReviewInputError(f"{rejected[0].where}: {rejected[0].reason}{more}")
    return out


def entry(record: Any, where: str) -> Entry:
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
        return one_line(exc)
    loc = ".".join(str(x) for x in errors[0]["loc"])
    more = f"; {len(errors) - 1} more" if len(errors) > 1 else ""
    return f"{loc or 'document'}: {errors[0]['msg']}{more}"


# --------------------------------------------------------------------------------------------
# Letters
# --------------------------------------------------------------------------------------------


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
        for path in self.by_name.get(file_name(name), []):
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
            same_name = self.by_name.get(file_name(det.source.name), [])
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
        raise LetterFileError(f"The letter {path} cannot be opened: {one_line(exc)}") from None
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


# --------------------------------------------------------------------------------------------
# Gold and the evaluation report
# --------------------------------------------------------------------------------------------


def load_gold_dir(directory: Path) -> list[dict[str, Any]]:
    """Gold files (``evals/gold/*.json``) as plain dicts; matched to results by letter file name."""
    if not directory.is_dir():
        raise ReviewInputError(f"gold directory not found: {directory}")
    golds = []
    for path in sorted(directory.glob("*.json")):
        data = read_json(path, "gold file", ReviewInputError)
        if not isinstance(data, dict) or not isinstance(data.get("letter"), str):
            bad_json(path, "gold file", ReviewInputError, "expected an object with a 'letter' path")
        golds.append(data)
    if not golds:
        raise ReviewInputError(f"no gold files (*.json) in {directory}")
    return golds


def load_eval_report(path: Path) -> dict[str, Any]:
    data = read_json(path, "eval report", ReviewInputError)
    if not isinstance(data, dict):
        bad_json(path, "eval report", ReviewInputError, "expected a JSON object (report.json)")
    return data
