"""Batch outputs: one writer per format, chosen by the file's extension, resumable and crash-safe.

Every format has the same life cycle, so a new one (CSV, Parquet) is one class and one
:func:`register` call:

- **open** (the constructor): refuse a directory or an unwritable place; take the output's lock (a
  sibling ``.NAME.lock``) so two runs can never interleave records; read back the records already
  there, repairing only a torn *last* line (a blank or malformed line elsewhere is kept and reported
  in :attr:`Output.notes`);
- **resume**: :meth:`Output.done` says whether a letter is done: its path *and* its sha256 match the
  last record for that path, and that record is a result (a failed letter is tried again);
- **write** one outcome at a time, whole records only (a failed write is undone);
- **close**: leave exactly one record per letter, the newest. Superseded records (an edited letter
  extracted again, a failure retried) are dropped by writing a new file and ``os.replace``-ing the
  old one, never by rewriting in place, so a crash at any moment leaves either file whole.

JSON Lines is appended to as it goes. Formats that cannot be appended to (a JSON array; later CSV
with its header, Parquet) subclass :class:`RebuiltOutput`: records go to a journal (a sibling JSON
Lines file) and the file is rebuilt from its old records and the journal at close; a run that died
leaves the journal, and the next run folds it in.

Standard output, a device or a FIFO (``-o /dev/stdout``) is streamed to: no lock, nothing to resume.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar

from .batch import INTERNAL, BatchError, Outcome, file_sha256
from .errors import OutputError, OutputLockedError, OutputUnusableError, OutputWriteError
from .records import MAX_JSON_DOCUMENT_BYTES, MAX_RECORD_BYTES, record_lines

if TYPE_CHECKING:
    pass

#: Problems listed one by one in ``notes``; the rest are counted.
MAX_NOTES = 10
#: New output files are private: results quote medical letters.
FILE_MODE = 0o600


@dataclass(frozen=True)
class Prior:
    """What an output already holds for one letter: its last record."""

    sha256: str | None
    extracted: bool  # a Determination, not a failed letter's record
    flagged: bool  # a Determination carrying an error flag (counted by --strict)


@lru_cache(maxsize=1)
def _flags_adapter() -> Any:
    from pydantic import TypeAdapter

    from .schema import Flag  # the output model only where records are read (startup: cli.py)

    return TypeAdapter(list[Flag])


def record_name(record: Any) -> str | None:
    """The letter a record belongs to: its path as given (a failure record's ``letter``)."""
    if not isinstance(record, dict):
        return None
    if record.get("ok") is False:
        name = record.get("letter")
    else:
        source = record.get("source")
        name = source.get("name") if isinstance(source, dict) else None
    return name if isinstance(name, str) else None


def record_identity(record: Any) -> tuple[str | None, Prior | None]:
    """The letter a record belongs to and what it says, or (None, None) for what is not a record."""
    name = record_name(record)
    if name is None:
        return None, None
    if record.get("ok") is False:
        sha, extracted, flagged = record.get("sha256"), False, False
    else:
        sha = record["source"].get("sha256")
        try:
            flags = _flags_adapter().validate_python(record.get("flags") or [])
        except ValueError:  # a damaged record: its letter is extracted again, and the record replaced
            extracted, flagged = False, False
        else:
            # Determination.ok is the one home of "an error flag"; asked of the flags alone (cheap).
            from .schema import Determination

            extracted, flagged = True, not Determination.ok.fget(SimpleNamespace(flags=flags))
    return name, Prior(sha if isinstance(sha, str) else None, extracted, flagged)


def outcome_identity(outcome: Outcome) -> tuple[str | None, Prior]:
    if isinstance(outcome, BatchError):
        return outcome.letter, Prior(outcome.sha256, False, False)
    return outcome.source.name, Prior(outcome.source.sha256, True, not outcome.ok)


def serialize(outcome: Outcome) -> tuple[bytes, Outcome]:
    """One record's JSON, and the outcome it records: a result that cannot be serialized (a bug
    upstream) becomes its letter's failure record rather than a crash or a half-written line."""
    try:
        return outcome.model_dump_json().encode("utf-8"), outcome
    except (ValueError, UnicodeError) as exc:
        name, prior = outcome_identity(outcome)
        failed = BatchError(
            letter=name or "<letter>",
            sha256=prior.sha256,
            error=INTERNAL,
            message=f"{name}: the result could not be written ({type(exc).__name__}: {exc})",
        )
        return failed.model_dump_json().encode("utf-8"), failed


def _parse(line: bytes) -> dict | None:
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def write_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` in one step: a new file (mode :data:`FILE_MODE`, since what is
    written may quote letters) moved over the old one, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Output(ABC):
    """One output file (or stream) of a batch; use as a context manager, or call :meth:`close`."""

    #: ``--format`` name, and the file extensions that select it.
    format: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]]

    def __init__(
        self, path: Path | None, *, resume: bool = True, single: bool = False, lock_wait: float = 0.0
    ) -> None:
        self.path = _target(path)
        self.shown = str(path) if path is not None else "<stdout>"
        self.single = single
        self._notes: list[str] = []
        self._unlisted = 0
        self._last: dict[str, tuple[int, Prior]] = {}
        self._count = 0  # records in sequence: the file's, then this run's
        self._superseded = 0
        self._lock: Any = None
        self._closed = False
        self.streaming = self.path is None or (self.path.exists() and not self.path.is_file())
        if self.streaming:
            self._open_stream()
            return
        self._prepare()
        self._acquire(lock_wait)
        try:
            self._open(resume)
        except BaseException:
            self._release()
            raise

    # -- what a format implements -------------------------------------------------------------

    @abstractmethod
    def _open(self, resume: bool) -> None:
        """Read back the records already there (when resuming) and get ready to write."""

    @abstractmethod
    def _append(self, data: bytes) -> None:
        """Store one serialized record durably enough that a crash of this process keeps it."""

    @abstractmethod
    def _finish(self) -> None:
        """Leave one record per letter in the file (atomically) and release what was opened."""

    @abstractmethod
    def _open_stream(self) -> None: ...

    @abstractmethod
    def _stream(self, data: bytes, outcome: Outcome) -> None: ...

    @abstractmethod
    def _end_stream(self) -> None: ...

    # -- the life cycle ----------------------------------------------------------------------

    def latest(self, name: str) -> Prior | None:
        """What the newest record for the letter named ``name`` says, if there is one."""
        entry = self._last.get(name)
        return entry[1] if entry is not None else None

    def done(self, letter: str | os.PathLike) -> Prior | None:
        """The record that makes ``letter`` done, if any: the newest record for its path is a result
        (not a failure) for a file with the same sha256. The file is hashed only when that is in question."""
        prior = self.latest(str(letter))
        if prior is None or not prior.extracted or not prior.sha256:
            return None
        return prior if file_sha256(Path(letter)) == prior.sha256 else None

    def write(self, outcome: Outcome) -> Outcome:
        """Write one outcome; returns what was recorded (a failure record if it could not be serialized)."""
        data, recorded = serialize(outcome)
        if self.streaming:
            self._stream(data, recorded)
        else:
            self._append(data + b"\n")
            self._index(*outcome_identity(recorded))
        return recorded

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self.streaming:
                self._end_stream()
            else:
                self._finish()
        finally:
            self._release()

    def __enter__(self) -> Output:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
            return
        with contextlib.suppress(OutputError, OSError):  # the error in flight is the one to report
            self.close()

    # -- shared machinery --------------------------------------------------------------------

    @property
    def notes(self) -> list[str]:
        """What opening or closing found and did: lines kept as they were, a torn line removed."""
        more = [f"{self.shown}: and {self._unlisted} more such lines, kept"] if self._unlisted else []
        return self._notes + more

    def _note(self, text: str) -> None:
        if len(self._notes) < MAX_NOTES:
            self._notes.append(f"{self.shown}: {text}")
        else:
            self._unlisted += 1

    def _index(self, name: str | None, prior: Prior | None) -> None:
        """Give the next record its sequence number; a later record for the same letter supersedes."""
        if name is not None and prior is not None:
            if name in self._last:
                self._superseded += 1
            self._last[name] = (self._count, prior)
        self._count += 1

    def _kept(self, seq: int, record: dict | None) -> bool:
        """Whether record number ``seq`` stays: the newest for its letter, or not a letter's record."""
        name = record_name(record)
        return name is None or self._last.get(name, (seq, None))[0] == seq

    def _prepare(self) -> None:
        assert self.path is not None
        parent = self.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputUnusableError(f"cannot create the directory {parent}: {_why(exc)}") from exc
        if not parent.is_dir():
            raise OutputUnusableError(f"cannot write {self.shown}: {parent} is not a directory")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise OutputUnusableError(f"cannot write {self.shown}: the directory {parent} is not writable")
        if self.path.exists() and not os.access(self.path, os.R_OK | os.W_OK):
            raise OutputUnusableError(f"cannot write {self.shown}: permission denied")

    def _sibling(self, role: str) -> Path:
        assert self.path is not None
        return self.path.with_name(f".{self.path.name}.{role}")

    def _acquire(self, wait: float) -> None:
        from filelock import FileLock, Timeout

        lock_path = self._sibling("lock")
        self._lock = FileLock(str(lock_path), timeout=wait, thread_local=False)  # closed from any thread
        try:
            self._lock.acquire()
        except Timeout:
            self._lock = None
            raise OutputLockedError(
                f"{self.shown} is being written by another run (lock {lock_path}); "
                "let it finish, or wait for it with --lock-wait SECONDS"
            ) from None
        except OSError as exc:
            self._lock = None
            raise OutputUnusableError(f"cannot lock {self.shown} ({lock_path}: {_why(exc)})") from exc

    def _release(self) -> None:
        if self._lock is not None:
            with contextlib.suppress(OSError):
                self._lock.release()
            self._lock = None

    def _replace(self, write: Any) -> None:
        """Write a new file with ``write(handle)`` and move it over the output in one step."""
        assert self.path is not None
        try:
            mode = stat.S_IMODE(self.path.stat().st_mode)
        except OSError:
            mode = FILE_MODE
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(self.path.parent)


class _LinesFile:
    """A JSON Lines file this module appends to: the output itself (.jsonl) or a journal."""

    def __init__(self, path: Path, shown: str, owner: Output, *, truncate: bool) -> None:
        self.path, self.shown, self.owner = path, shown, owner
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if truncate else 0)
        try:
            self.fd = os.open(path, flags, FILE_MODE)
        except OSError as exc:
            raise OutputUnusableError(f"cannot write {shown}: {_why(exc)}") from exc
        self.size = os.fstat(self.fd).st_size
        self.records = 0  # appended by this run
        self.overlong = 0

    def scan(self) -> None:
        """Index every record; repair a torn last line (the only line a crash can tear)."""
        offset = 0
        try:
            with self.path.open("rb") as handle:
                for number, (line, size, whole) in enumerate(record_lines(handle), start=1):
                    record = _parse(line) if line is not None else None
                    if not whole:  # the last line, its newline missing
                        if record is None:
                            self._truncate(offset, f"removed a torn last line ({size:,} bytes) left by an interrupted run")
                            return
                        self.append(b"\n", record=False)  # a whole record that only lacks its newline
                    elif line is None:
                        self.overlong += 1
                        self.owner._note(f"line {number} is over {MAX_RECORD_BYTES:,} bytes; kept, not read")
                    elif not line.strip():
                        self.owner._note(f"line {number} is blank; kept")
                    elif record is None:
                        self.owner._note(f"line {number} is not a JSON record; kept")
                    self.owner._index(*record_identity(record))
                    offset += size
        except OSError as exc:
            raise OutputUnusableError(f"cannot read {self.shown}: {_why(exc)}") from exc

    def _truncate(self, size: int, note: str) -> None:
        try:
            os.ftruncate(self.fd, size)
        except OSError as exc:
            raise OutputUnusableError(f"cannot repair {self.shown}: {_why(exc)}") from exc
        self.size = size
        self.owner._note(note)

    def append(self, data: bytes, *, record: bool = True) -> None:
        try:
            _write_all(self.fd, data)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.size)  # no half record stays behind
            raise OutputWriteError(f"cannot write {self.shown}: {_why(exc)}") from exc
        self.size += len(data)
        self.records += record

    def close(self) -> None:
        try:
            os.fsync(self.fd)
        except OSError as exc:
            raise OutputWriteError(f"cannot write {self.shown}: {_why(exc)}") from exc
        finally:
            os.close(self.fd)

    def records_in_order(self) -> Iterator[tuple[bytes | None, dict | None]]:
        """Every line (its bytes, or None when over-long) with its record, in file order."""
        with self.path.open("rb") as handle:
            for line, _size, _whole in record_lines(handle):
                yield line, (_parse(line) if line is not None else None)


class JsonlOutput(Output):
    """JSON Lines: one record per line, appended with a single write as each letter finishes."""

    format = "jsonl"
    suffixes = (".jsonl", ".ndjson")

    def _open(self, resume: bool) -> None:
        assert self.path is not None
        self._file = _LinesFile(self.path, self.shown, self, truncate=not resume)
        if resume:
            try:
                self._file.scan()
            except BaseException:
                os.close(self._file.fd)
                raise

    def _append(self, data: bytes) -> None:
        self._file.append(data)

    def _finish(self) -> None:
        self._file.close()
        if self._superseded:
            self._compact()

    def _compact(self) -> None:
        def write(handle: BinaryIO) -> None:
            for seq, (line, record) in enumerate(self._file.records_in_order()):
                if line is not None and self._kept(seq, record):
                    handle.write(line)

        if self._file.overlong:  # never parsed, so never copied: the file is left as it is
            self._note("superseded records kept, because the file has over-long lines")
            return
        try:
            self._replace(write)
        except OSError as exc:
            raise OutputWriteError(
                f"cannot rewrite {self.shown} without its superseded records ({_why(exc)}); "
                "every record is in it, and the next run drops the older ones"
            ) from exc

    def _open_stream(self) -> None:
        self._target = _open_stream_target(self.path, self.shown)

    def _stream(self, data: bytes, outcome: Outcome) -> None:
        _stream_write(self._target, data + b"\n", self.shown)

    def _end_stream(self) -> None:
        _close_stream_target(self._target, self.path, self.shown)


class RebuiltOutput(Output):
    """A format rebuilt at close from the records it held and the run's journal (JSON, CSV, Parquet).

    A new format sets ``format`` and ``suffixes``, implements :meth:`read_records` and
    :meth:`write_records` (records are the dicts of ``Outcome.model_dump(mode="json")``), and is
    passed to :func:`register`. Locking, resume, the journal and atomic replacement are done here.
    Only a format that sets ``streamable`` (and the ``_stream_*`` methods) can go to standard output.
    """

    streamable: ClassVar[bool] = False

    @abstractmethod
    def read_records(self, handle: BinaryIO, size: int) -> Iterator[dict]:
        """The records of an existing file, in order; OutputUnusableError if it cannot be read."""

    @abstractmethod
    def write_records(self, records: Iterable[dict], count: int, handle: BinaryIO) -> None:
        """Write ``count`` records as a whole file of this format."""

    def _open(self, resume: bool) -> None:
        assert self.path is not None
        self._restart = not resume
        journal = self._sibling("journal.jsonl")
        self._main = 0
        if resume and self.path.exists():
            for record in self._read_main():
                self._index(*record_identity(record))
            self._main = self._count
        # A journal left by a run that died is folded in (resuming) or dropped (--restart).
        self._journal = _LinesFile(journal, str(journal), self, truncate=not resume)
        self._recovered = 0
        if resume:
            try:
                before = self._count
                self._journal.scan()
                self._recovered = self._count - before
            except BaseException:
                os.close(self._journal.fd)
                raise

    def _read_main(self) -> Iterator[dict]:
        assert self.path is not None
        try:
            with self.path.open("rb") as handle:
                yield from self.read_records(handle, os.fstat(handle.fileno()).st_size)
        except OSError as exc:
            raise OutputUnusableError(f"cannot read {self.shown}: {_why(exc)}") from exc

    def _append(self, data: bytes) -> None:
        self._journal.append(data)

    def _finish(self) -> None:
        assert self.path is not None
        self._journal.close()
        changed = self._journal.records or self._recovered or self._superseded
        if changed or (self._restart and self.path.exists()):
            count = self._count - self._superseded
            try:
                self._replace(lambda handle: self.write_records(self._final_records(), count, handle))
            except OSError as exc:
                raise OutputWriteError(
                    f"cannot write {self.shown} ({_why(exc)}); this run's records are kept in "
                    f"{self._journal.shown} and the next run adds them"
                ) from exc
        self._journal.path.unlink(missing_ok=True)

    def _final_records(self) -> Iterator[dict]:
        seq = 0
        if not self._restart and self.path is not None and self.path.exists():
            for record in self._read_main():
                if self._kept(seq, record):
                    yield record
                seq += 1
        seq = self._main
        for _line, record in self._journal.records_in_order():
            if record is not None and self._kept(seq, record):
                yield record
            seq += 1

    def _open_stream(self) -> None:
        if not self.streamable:
            raise OutputUnusableError(f"{self.format} cannot be streamed to {self.shown}; write it to a file")
        self._target = _open_stream_target(self.path, self.shown)
        self._streamed = 0
        self._held: Outcome | None = None

    def _stream(self, data: bytes, outcome: Outcome) -> None:
        if self.single and self._streamed == 0 and self._held is None:
            self._held = outcome  # one letter: written alone at the end
            return
        if self._held is not None:
            held, self._held = self._held, None
            self._stream(serialize(held)[0], held)
        self._stream_record(data, self._streamed)
        self._streamed += 1

    def _end_stream(self) -> None:
        try:
            if self._held is not None:
                self._stream_single(self._held)
            else:
                self._stream_end(self._streamed)
        finally:
            _close_stream_target(self._target, self.path, self.shown)

    def _stream_record(self, data: bytes, index: int) -> None:
        raise NotImplementedError(f"{self.format} cannot be streamed; write it to a file")

    def _stream_single(self, outcome: Outcome) -> None:
        raise NotImplementedError(f"{self.format} cannot be streamed; write it to a file")

    def _stream_end(self, count: int) -> None:
        raise NotImplementedError(f"{self.format} cannot be streamed; write it to a file")


class JsonOutput(RebuiltOutput):
    """A JSON array of records, one per line; one letter's Determination alone when one letter was named.

    Read back line by line when in that layout (memory stays flat); any other valid JSON array or
    object up to MAX_JSON_DOCUMENT_BYTES is parsed whole; anything else is refused, never overwritten.
    """

    format = "json"
    suffixes = (".json",)
    streamable = True

    def read_records(self, handle: BinaryIO, size: int) -> Iterator[dict]:
        if self._in_layout(handle):
            handle.seek(0)
            handle.readline()
            for line, _size, _whole in record_lines(handle):
                if line == b"]\n":
                    return
                record = _parse(line.rstrip(b"\n").removesuffix(b",")) if line is not None else None
                if record is None:
                    raise OutputUnusableError(
                        f"{self.shown} has a damaged record; use --restart to replace it, or another output"
                    )
                yield record
            return
        if size > MAX_JSON_DOCUMENT_BYTES:
            raise OutputUnusableError(
                f"{self.shown} is not in the layout llm-extract writes and is too large to read whole; "
                "use --restart to replace it, or another output"
            )
        handle.seek(0)
        yield from self._read_whole(handle.read())

    @staticmethod
    def _in_layout(handle: BinaryIO) -> bool:
        """Whether the file is in this module's layout: '[', one object per line, ']' (checked by shape)."""
        if handle.readline(16) != b"[\n":
            return False
        ended = False
        for line, _size, whole in record_lines(handle):
            if ended or line is None or not whole:
                return False
            if line == b"]\n":
                ended = True
            elif not (line.startswith(b"{") and line.endswith((b"}\n", b"},\n"))):
                return False
        return ended

    def _read_whole(self, data: bytes) -> list[dict]:
        if not data.strip():
            return []
        try:
            value = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise OutputUnusableError(
                f"{self.shown} is not valid JSON ({exc}); use --restart to replace it, or another output"
            ) from None
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, dict) for v in values):
            raise OutputUnusableError(
                f"{self.shown} is not a JSON array of records; use --restart to replace it, or another output"
            )
        return values

    def write_records(self, records: Iterable[dict], count: int, handle: BinaryIO) -> None:
        it = iter(records)
        if self.single and count == 1:
            only = next(it)
            if only.get("ok") is not False:
                handle.write(_pretty(only))
                return
            it = iter([only])
        handle.write(b"[\n")
        wrote = False
        for record in it:
            handle.write((b",\n" if wrote else b"") + json.dumps(record, ensure_ascii=False).encode("utf-8"))
            wrote = True
        handle.write(b"\n]\n" if wrote else b"]\n")

    def _stream_record(self, data: bytes, index: int) -> None:
        _stream_write(self._target, (b",\n" if index else b"[\n") + data, self.shown)

    def _stream_single(self, outcome: Outcome) -> None:
        if not isinstance(outcome, BatchError):  # a failed single letter: its error is on stderr only
            _stream_write(self._target, _pretty(json.loads(serialize(outcome)[0])), self.shown)

    def _stream_end(self, count: int) -> None:
        _stream_write(self._target, b"\n]\n" if count else b"[]\n", self.shown)


def _target(path: Path | None) -> Path | None:
    """The file to write: a symlink's target (so replacing the file keeps the link), but a device
    or FIFO as named (``/dev/stdout`` resolves to a name that cannot be opened)."""
    if path is None:
        return None
    if path.is_dir():
        raise OutputUnusableError(f"{path} is a directory; the output must be a file")
    if path.exists() and not path.is_file():
        return path
    return Path(os.path.realpath(path))


def _pretty(record: dict) -> bytes:
    return (json.dumps(record, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _open_stream_target(path: Path | None, shown: str) -> BinaryIO:
    if path is None:
        return sys.stdout.buffer
    try:
        return path.open("ab")
    except OSError as exc:
        raise OutputUnusableError(f"cannot write {shown}: {_why(exc)}") from exc


def _stream_write(target: BinaryIO, data: bytes, shown: str) -> None:
    try:
        target.write(data)
        target.flush()
    except OSError as exc:
        raise OutputWriteError(f"cannot write {shown}: {_why(exc)}") from exc


def _close_stream_target(target: BinaryIO, path: Path | None, shown: str) -> None:
    if path is None:
        return
    try:
        target.close()
    except OSError as exc:
        raise OutputWriteError(f"cannot write {shown}: {_why(exc)}") from exc


#: Output formats by ``--format`` name; a file's extension picks one through SUFFIXES.
FORMATS: dict[str, type[Output]] = {}
SUFFIXES: dict[str, str] = {}


def register(cls: type[Output]) -> type[Output]:
    """Make a format available to ``--format`` and to the extensions it claims."""
    FORMATS[cls.format] = cls
    for suffix in cls.suffixes:
        SUFFIXES[suffix] = cls.format
    return cls


class TableOutput(RebuiltOutput):
    """One row per item (``llm_extract.tables``): CSV or Parquet, rebuilt at close like JSON.

    Read back, a file's rows are grouped into one record per letter that carries its rows as they
    are (``ROWS``), its identity and, for a flagged letter, an error flag named by one of its codes,
    so resume and ``--strict`` see the same letters as in JSON Lines.
    """

    ROWS: ClassVar[str] = "__rows__"

    @abstractmethod
    def read_rows(self, handle: BinaryIO) -> list[dict]:
        """The rows of an existing file of this format."""

    @abstractmethod
    def write_rows(self, rows: Iterable[dict], handle: BinaryIO) -> None:
        """A whole file of ``rows`` in this format."""

    def read_records(self, handle: BinaryIO, size: int) -> Iterator[dict]:
        from .errors import ResultsFileError
        from .tables import rows_by_letter

        try:
            rows = self.read_rows(handle)
        except ResultsFileError as exc:
            raise OutputUnusableError(f"{exc}; use --restart to replace it, or another output") from None
        for group in rows_by_letter(rows):
            first = group[0]
            if first.get("error"):
                yield {"ok": False, "letter": first["file"], "sha256": first["sha256"], self.ROWS: group}
                continue
            codes = [c for row in group for c in (row.get("letter_flags") or []) + (row.get("flags") or [])]
            flags = [] if first.get("ok") or not codes else [
                {"code": codes[0], "severity": "error", "message": "error-flagged (read back from the table)"}
            ]
            source = {"name": first["file"], "sha256": first["sha256"]}
            yield {"source": source, "flags": flags, self.ROWS: group}

    def write_records(self, records: Iterable[dict], count: int, handle: BinaryIO) -> None:
        from .tables import letter_rows

        self.write_rows((row for r in records for row in (r[self.ROWS] if self.ROWS in r else letter_rows(r))), handle)


class CsvOutput(TableOutput):
    """CSV, one row per item, one line per row (``llm_extract.tables.COLUMNS``)."""

    format = "csv"
    suffixes = (".csv",)

    def read_rows(self, handle: BinaryIO) -> list[dict]:
        from .tables import read_csv

        return read_csv(handle)

    def write_rows(self, rows: Iterable[dict], handle: BinaryIO) -> None:
        from .tables import write_csv

        write_csv(rows, handle)


class ParquetOutput(TableOutput):
    """Parquet through pyarrow (an optional extra: ``pip install 'llm_extract[parquet]'``)."""

    format = "parquet"
    suffixes = (".parquet",)

    def _open(self, resume: bool) -> None:
        from .errors import MissingExtraError
        from .tables import arrow_schema

        try:
            arrow_schema()  # before any letter is extracted: say what to install, in one line
        except MissingExtraError as exc:
            raise OutputUnusableError(str(exc)) from None
        super()._open(resume)

    def read_rows(self, handle: BinaryIO) -> list[dict]:
        from .tables import read_parquet

        return read_parquet(handle)

    def write_rows(self, rows: Iterable[dict], handle: BinaryIO) -> None:
        from .tables import write_parquet

        write_parquet(rows, handle)


register(JsonlOutput)
register(JsonOutput)
register(CsvOutput)
register(ParquetOutput)

#: Standard output's format when --format is not given.
STDOUT_FORMAT = "json"


def format_for(path: Path | None, requested: str | None) -> str:
    """``requested`` if given, else the one the output's extension names (JSON for standard output)."""
    if requested is not None:
        if requested not in FORMATS:
            raise OutputUnusableError(f"unknown format {requested!r}; choose one of: {', '.join(FORMATS)}")
        return requested
    if path is None:
        return STDOUT_FORMAT
    if path.is_dir():
        raise OutputUnusableError(f"{path} is a directory; the output must be a file")
    suffix = path.suffix.lower()
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    if path.exists() and not path.is_file() and not path.is_dir():  # /dev/stdout, a FIFO
        return STDOUT_FORMAT
    known = ", ".join(SUFFIXES)
    raise OutputUnusableError(
        f"cannot tell the format of {path} from its extension ({known}); pass --format {'|'.join(FORMATS)}"
    )


def open_output(
    path: Path | None, fmt: str, *, resume: bool = True, single: bool = False, lock_wait: float = 0.0
) -> Output:
    """Open ``path`` (None: standard output) for a batch's records in format ``fmt``."""
    return FORMATS[fmt](path, resume=resume, single=single, lock_wait=lock_wait)
