"""Batch extraction: many letters, concurrently, streaming; one bad letter never stops the rest.

``extract_many`` keeps a bounded window of letters in flight (``jobs`` x ``WINDOW_PER_JOB``), so
memory stays flat however many letters stream through, and yields one outcome per letter: a
:class:`~llm_extract.schema.Determination` or a :class:`BatchError` naming the letter.

Every letter has a time budget (``timeout``; :data:`LETTER_TIMEOUT_S` by backend). What enforcing
it means depends on where the letter runs:

- the rules backend is CPU-bound and runs in worker processes (``pebble``'s pool, even for one
  job): a letter over budget has its worker killed, a worker that dies (SIGKILL, SIGABRT, a
  segfault, ``os._exit``) is replaced, and that letter alone gets a ``timeout`` or
  ``worker_crashed`` record;
- a batch of *one* rules letter (``llm-extract extract letter.pdf``) starts no pool: it is read
  here (ingest; PDF text comes from the sandbox child anyway) and parsed in a child forked from
  this process, which has every module loaded already. Same guarantees (killed at the budget, a
  death is retried once and then recorded), for the cost of a fork (~ms) instead of a pool's start;
- LLM backends are I/O-bound and run in threads sharing one rate gate. A thread cannot be killed:
  a letter over budget is reported as ``timeout``, its slot goes to the next letter, and its late
  result is discarded; the request timeout (``request_timeout``) bounds the abandoned thread;
- any ``concurrent.futures.Executor`` (``executor=``, e.g. Dask's) runs each letter under the same
  thread-based budget on its workers; a worker the executor loses gives a ``worker_crashed`` record.
"""

from __future__ import annotations

import glob
import hashlib
import itertools
import math
import os
import pickle
import select
import signal
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import BrokenExecutor, CancelledError, Executor, Future, as_completed
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from .errors import ExtractionError
from .options import BackendOptions

if TYPE_CHECKING:
    from .schema import Determination

#: Letters submitted ahead per worker: enough to keep workers busy, few enough to stay flat.
WINDOW_PER_JOB = 4
DEFAULT_JOBS = 8
LETTER_SUFFIXES = (".pdf", ".txt")
#: Seconds one letter may take, by backend: far beyond a normal letter (rules ≈ 10 ms, a hosted
#: LLM tens of seconds, the embedded model ≈ 20-90 s per item on 2 cores), so only a stuck or
#: hostile letter meets it. Other backends get DEFAULT_LLM_LETTER_TIMEOUT_S.
LETTER_TIMEOUT_S: dict[str, float] = {"rules": 120.0, "openai": 900.0, "local": 3600.0}
DEFAULT_LLM_LETTER_TIMEOUT_S = 900.0
#: A pool that broke as a whole (not through one letter) is restarted and its letters retried this often.
POOL_RETRIES = 1
#: Runs a letter gets after its worker died before it is recorded ``worker_crashed``: the pool may
#: blame a letter whose result was still in flight when its worker died on the *next* letter (or the
#: OOM killer may have picked the worker at random), so a letter is convicted only by a second death.
CRASH_RETRIES = 1
_HASH_CHUNK = 1024 * 1024
_GLOB_CHARS = "*?["

#: BatchError codes of the batch itself; a letter's own failure carries its ExtractionError's code.
TIMEOUT = "timeout"
WORKER_CRASHED = "worker_crashed"
EXECUTOR_ERROR = "executor_error"
IO_ERROR = "io_error"
INTERNAL = "internal"


class BatchError(BaseModel):
    """A letter that could not be extracted, as one record of a batch's output.

    ``sha256`` is the letter file's (None when it could not be read), so a resumed run can tell
    the same file from an edited one; ``error`` is a stable code (an ExtractionError's, or
    ``timeout``, ``worker_crashed``, ``executor_error``, ``io_error``, ``internal``).
    """

    model_config = ConfigDict(extra="forbid")

    ok: Literal[False] = False
    letter: str = Field(description="The letter's name: its path as given.")
    sha256: str | None = Field(default=None, description="sha256 of the letter's bytes, when readable.")
    error: str
    message: str


#: What a batch yields per letter (the output model is imported where results are made, not here).
Outcome = Union["Determination", BatchError]  # noqa: UP007 (a forward reference: no runtime import)


def _name(letter: Any) -> str:
    if isinstance(letter, (str, os.PathLike)) and not (isinstance(letter, str) and "\n" in letter):
        return str(letter)[:300]
    name = getattr(letter, "name", None)  # an ingested Letter
    if isinstance(name, str):
        return name[:300]
    return f"<{type(letter).__name__} letter>"


def file_sha256(path: Path) -> str | None:
    """sha256 of a regular file's bytes, read in chunks; None for anything else or when unreadable.

    Opened non-blocking and checked to be a regular file, so a FIFO never hangs it.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except (OSError, ValueError):
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        digest = hashlib.sha256()
        while chunk := os.read(fd, _HASH_CHUNK):
            digest.update(chunk)
        return digest.hexdigest()
    except OSError:
        return None
    finally:
        os.close(fd)


def letter_sha256(letter: Any) -> str | None:
    """The sha256 ingest gives a letter (of the file's bytes, or of the text), without parsing it."""
    from .ingest import Letter, _looks_like_path

    if isinstance(letter, Letter):
        return letter.sha256 or None
    if isinstance(letter, (bytes, bytearray, memoryview)):
        return hashlib.sha256(bytes(letter)).hexdigest()
    if isinstance(letter, os.PathLike) or (isinstance(letter, str) and _looks_like_path(letter)):
        return file_sha256(Path(letter))
    if isinstance(letter, str):
        return hashlib.sha256(letter.encode("utf-8", "surrogatepass")).hexdigest()
    return None


def failure(letter: Any, code: str, message: str) -> BatchError:
    """A letter's failure record, with the letter's name and (when readable) sha256."""
    return BatchError(letter=_name(letter), sha256=letter_sha256(letter), error=code, message=message)


def extract_one(letter: Any, backend: str = "rules", options: BackendOptions | None = None) -> Outcome:
    """Extract one letter; every failure becomes a BatchError (picklable, for any executor)."""
    from .pipeline import extract

    return guarded(letter, lambda: extract(letter, backend=backend, options=options))


def guarded(letter: Any, work: Callable[[], Outcome]) -> Outcome:
    """``work()``, with every failure as ``letter``'s BatchError: one bad letter never stops a batch."""
    try:
        return work()
    except ExtractionError as exc:
        return failure(letter, exc.code, str(exc))
    except OSError as exc:  # the environment (permissions, I/O), not the letter's content
        return failure(letter, IO_ERROR, f"{_name(letter)}: {exc.strerror or exc}")
    except (Exception, SystemExit) as exc:  # an extractor bug must not stop the batch; reported, not hidden
        return failure(letter, INTERNAL, f"{_name(letter)}: {type(exc).__name__}: {exc}")


def letter_timeout(backend: str, timeout: float | None = None) -> float:
    """The per-letter budget in seconds: ``timeout`` if given, else the backend's default."""
    if timeout is None:
        return LETTER_TIMEOUT_S.get(backend, DEFAULT_LLM_LETTER_TIMEOUT_S)
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def extract_within(letter: Any, backend: str, options: BackendOptions, budget: float) -> Outcome:
    """``extract_one`` on a thread of its own, given up after ``budget`` seconds.

    For where a letter cannot be killed (threads, another executor's workers): the letter is
    reported as timed out and the thread left to finish on its own; its result is discarded.
    """
    box: list[Outcome] = []
    worker = threading.Thread(
        target=lambda: box.append(extract_one(letter, backend, options)), name="llm-extract-letter", daemon=True
    )
    worker.start()
    worker.join(budget)
    if box:
        return box[0]
    return timed_out(letter, budget, "its late result will be discarded")


def timed_out(letter: Any, budget: float, after: str) -> BatchError:
    """A letter's ``timeout`` record; ``after`` says what became of the work."""
    return failure(
        letter, TIMEOUT, f"{_name(letter)}: no result within {budget:g} s, the per-letter time budget "
        f"(--timeout, timeout=); {after}"
    )


def crashed(letter: Any, exitcode: int | None, what: str, after: str = "") -> BatchError:
    """A letter's ``worker_crashed`` record: ``what`` died running it, twice (see CRASH_RETRIES)."""
    return failure(
        letter,
        WORKER_CRASHED,
        f"{_name(letter)}: {what} died ({_exit_reason(exitcode)}) while extracting this letter, "
        f"also on a second try in a fresh one{after}",
    )


class _ProcessRunner:
    """The rules backend's worker processes: killed on timeout, replaced when they die."""

    def __init__(self, jobs: int, budget: float) -> None:
        self.jobs, self.budget = jobs, budget
        self.pool = self._new_pool()

    def _new_pool(self) -> Any:
        from pebble import ProcessPool

        return ProcessPool(max_workers=self.jobs)

    def submit(self, letter: Any, backend: str, options: BackendOptions) -> Future:
        if not self.pool.active:  # broken as a whole (e.g. a worker died between letters): start afresh
            self.pool.stop()
            self.pool.join()
            self.pool = self._new_pool()
        return self.pool.schedule(extract_one, args=(letter, backend, options), timeout=self.budget)

    @staticmethod
    def died(exc: BaseException) -> bool:
        """Whether ``exc`` says the worker process died (not that the letter ran out of time)."""
        from pebble import ProcessExpired

        return isinstance(exc, ProcessExpired)

    def settle(self, letter: Any, exc: BaseException) -> BatchError | None:
        from pebble import ProcessExpired

        if isinstance(exc, (TimeoutError, FutureTimeout)):
            return timed_out(letter, self.budget, "its worker was stopped and replaced")
        if isinstance(exc, ProcessExpired):
            return crashed(letter, exc.exitcode, "the worker process", "; it was replaced")
        return None

    def close(self, finished: bool) -> None:
        if finished:
            self.pool.close()
        else:
            self.pool.stop()
        self.pool.join()


class ChildDied(Exception):
    """The forked child running a letter died (its ``exitcode``: negative is the signal)."""

    def __init__(self, exitcode: int | None) -> None:
        super().__init__(_exit_reason(exitcode))
        self.exitcode = exitcode


#: Exit status of a forked child whose result could not be sent (a bug, not the letter's content).
_CHILD_FAILED = 70
_READ_CHUNK = 1 << 20


class _ForkRunner:
    """A batch of one rules letter: read here, parsed in a child forked from this process.

    No pool, no fresh interpreter: the fork shares every module already loaded and costs a few
    milliseconds, where starting a pool costs ~0.1-0.3 s. The guarantees of the process pool hold:
    the child is killed at the budget (``timeout``), a child that dies is replaced by a new fork
    once and then recorded (``worker_crashed``), and the caller's process never runs the parser.
    Ingest stays here: its reads are bounded and PDF text comes from the sandbox child
    (:mod:`llm_extract.pdftext`), whose warm worker this process keeps (a fork would drop it).
    """

    def __init__(self, budget: float) -> None:
        self.budget = budget

    def submit(self, letter: Any, backend: str, options: BackendOptions) -> Future:
        from .ingest import load

        future: Future = Future()
        loaded = guarded(letter, lambda: load(letter))
        try:
            outcome = loaded if isinstance(loaded, BatchError) else self._forked(loaded, backend, options)
        except (TimeoutError, ChildDied, OSError) as exc:  # OSError: no fork (no processes left)
            future.set_exception(exc)
        else:
            future.set_result(outcome)
        return future

    def _forked(self, letter: Any, backend: str, options: BackendOptions) -> Outcome:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: run the letter, send the outcome, leave without cleanup
            code = _CHILD_FAILED
            try:
                os.close(read_end)
                data = memoryview(pickle.dumps(extract_one(letter, backend, options), pickle.HIGHEST_PROTOCOL))
                while data:
                    data = data[os.write(write_end, data) :]
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        try:
            data = self._collect(read_end, pid)
        finally:
            os.close(read_end)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code != 0 or not data:
            raise ChildDied(code)
        return pickle.loads(data)  # noqa: S301 (our own child's pickle)

    def _collect(self, fd: int, pid: int) -> bytes:
        """Everything the child sends until it closes the pipe; killed at the budget."""
        deadline = time.monotonic() + self.budget
        readable = select.poll()
        readable.register(fd, select.POLLIN)
        chunks = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not readable.poll(remaining * 1000):
                if time.monotonic() < deadline:
                    continue
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise TimeoutError(self.budget)
            chunk = os.read(fd, _READ_CHUNK)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    @staticmethod
    def died(exc: BaseException) -> bool:
        return isinstance(exc, ChildDied)

    def settle(self, letter: Any, exc: BaseException) -> BatchError | None:
        if isinstance(exc, TimeoutError):
            return timed_out(letter, self.budget, "its process was stopped")
        if isinstance(exc, ChildDied):
            return crashed(letter, exc.exitcode, "the process")
        if isinstance(exc, OSError):
            return failure(letter, IO_ERROR, f"{_name(letter)}: cannot start a process ({exc.strerror or exc})")
        return None

    def close(self, finished: bool) -> None:
        pass


class _ThreadRunner:
    """LLM backends: each letter on a daemon thread, at most ``jobs`` at once, each under its budget.

    A thread per letter rather than a fixed pool, so that a letter given up on frees its slot at
    once and never holds up the interpreter's exit.
    """

    def __init__(self, jobs: int, budget: float) -> None:
        self.budget = budget
        self.slots = threading.Semaphore(jobs)

    def submit(self, letter: Any, backend: str, options: BackendOptions) -> Future:
        future: Future = Future()

        def run() -> None:
            with self.slots:
                if future.set_running_or_notify_cancel():
                    future.set_result(extract_within(letter, backend, options, self.budget))

        threading.Thread(target=run, name="llm-extract-slot", daemon=True).start()
        return future

    def settle(self, letter: Any, exc: BaseException) -> BatchError | None:
        return None

    def close(self, finished: bool) -> None:
        pass


class _ExecutorRunner:
    """A caller's executor (Dask, Ray, a ProcessPoolExecutor): its workers run each letter under the budget."""

    def __init__(self, executor: Executor, budget: float) -> None:
        self.executor, self.budget = executor, budget

    def submit(self, letter: Any, backend: str, options: BackendOptions) -> Future:
        try:
            return self.executor.submit(extract_within, letter, backend, options, self.budget)
        except Exception as exc:  # shut down or broken: this letter's record says so, the batch goes on
            future: Future = Future()
            future.set_exception(exc)
            return future

    def settle(self, letter: Any, exc: BaseException) -> BatchError | None:
        return None

    def close(self, finished: bool) -> None:
        pass  # the caller owns the executor


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


def _settle(runner: Any, letter: Any, future: Future, resubmit: Callable[[], Future]) -> Outcome:
    """The future's outcome; what went wrong around the letter (not in it) becomes its record."""
    retries, crash_retries = POOL_RETRIES, CRASH_RETRIES
    died = getattr(runner, "died", None)
    while True:
        try:
            return future.result()
        except (KeyboardInterrupt, GeneratorExit):
            raise
        except BaseException as exc:
            if died is not None and died(exc) and crash_retries > 0:
                crash_retries -= 1  # one death may be another letter's: a fresh worker tries it again
                future = resubmit()
                continue
            known = runner.settle(letter, exc)
            if known is not None:
                return known
            if isinstance(exc, BrokenExecutor) and isinstance(runner, _ProcessRunner) and retries > 0:
                retries -= 1  # the pool broke as a whole: this letter never ran, so it runs again
                future = resubmit()
                continue
            if isinstance(exc, BrokenExecutor):
                code, what = WORKER_CRASHED, "the worker running it was lost"
            elif isinstance(exc, CancelledError):
                code, what = EXECUTOR_ERROR, "the executor cancelled it"
            else:
                code, what = EXECUTOR_ERROR, "the executor could not run it"
            return failure(letter, code, f"{_name(letter)}: {what} ({type(exc).__name__}: {exc})")


def extract_many(
    letters: Iterable[Any],
    *,
    backend: str = "rules",
    jobs: int = DEFAULT_JOBS,
    executor: Executor | None = None,
    ordered: bool = True,
    timeout: float | None = None,
    request_timeout: float | None = None,
    options: BackendOptions | None = None,
    **given: Any,
) -> Iterator[Outcome]:
    """Yield one outcome per letter, in input order (``ordered=True``) or as completed.

    ``timeout`` is each letter's budget in seconds (default :data:`LETTER_TIMEOUT_S` for the
    backend); ``request_timeout`` is an LLM backend's per-request timeout (``extract``'s
    ``timeout``). ``executor`` may be any ``concurrent.futures.Executor`` (Dask:
    ``client.get_executor()``); without one, a pool suited to the backend is created and shut
    down here (none for a single rules letter: see the module docstring).

    The backend and its options (keywords or ``options=``, as for ``extract``) are checked here,
    before any letter: :class:`~llm_extract.errors.InvalidOptionsError` or
    :class:`~llm_extract.errors.UnknownBackendError` is raised by the call itself.
    """
    from .pipeline import backend_options

    if jobs < 1:
        raise ValueError("jobs must be at least 1")
    budget = letter_timeout(backend, timeout)
    if request_timeout is not None:
        if options is not None:
            given = {**options.given(), **given}
            options = None
        given["timeout"] = request_timeout
    chosen, opts = backend_options(backend, options, **given)
    chosen.prepare_batch(opts, jobs)
    source = iter(letters)
    head = list(itertools.islice(source, 2))  # one letter alone needs no pool
    return _stream(itertools.chain(head, source), len(head), backend, opts, jobs, executor, ordered, budget)


def _runner(backend: str, jobs: int, executor: Executor | None, budget: float, letters: int) -> Any:
    import multiprocessing

    if executor is not None:
        return _ExecutorRunner(executor, budget)
    if backend != "rules":
        return _ThreadRunner(jobs, budget)
    if multiprocessing.current_process().daemon:  # a daemonic worker may not start processes
        return _ThreadRunner(1, budget)
    return _ForkRunner(budget) if letters == 1 else _ProcessRunner(jobs, budget)


def _stream(
    source: Iterator[Any],
    known: int,
    backend: str,
    options: BackendOptions,
    jobs: int,
    executor: Executor | None,
    ordered: bool,
    budget: float,
) -> Iterator[Outcome]:
    if known == 0:
        return
    runner = _runner(backend, jobs, executor, budget, known)
    window = max(1, jobs * WINDOW_PER_JOB)
    pending: deque[tuple[Any, Future]] = deque()

    def submit(letter: Any) -> Future:
        return runner.submit(letter, backend, options)

    def fill() -> None:
        while len(pending) < window:
            try:
                letter = next(source)
            except StopIteration:
                return
            pending.append((letter, submit(letter)))

    finished = False
    try:
        fill()
        while pending:
            if ordered:
                letter, future = pending.popleft()
            else:
                done = next(as_completed([f for _, f in pending]))
                index = next(i for i, (_, f) in enumerate(pending) if f is done)
                letter, future = pending[index]
                del pending[index]
            outcome = _settle(runner, letter, future, lambda letter=letter: submit(letter))
            fill()
            yield outcome
        finished = True
    finally:
        for _letter, future in pending:  # the caller stopped early: letters not yet started never start
            future.cancel()
        runner.close(finished)


def is_pattern(text: str) -> bool:
    """A glob pattern: it has *, ? or [ and no file or directory has that very name (``a[1].txt``)."""
    return any(ch in text for ch in _GLOB_CHARS) and not os.path.lexists(text)


def expand(
    inputs: Iterable[str | os.PathLike], on_error: Callable[[str], None] | None = None
) -> list[Path]:
    """Letter files named by paths, directories (searched recursively) and glob patterns, in order.

    A directory that cannot be read is reported through ``on_error`` (one line), never skipped silently.
    """
    found: list[Path] = []
    seen: set[Path] = set()
    for raw in inputs:
        text = str(raw)
        if is_pattern(text):
            candidates = [Path(p) for p in sorted(glob.glob(text, recursive=True)) if not os.path.isdir(p)]
        elif os.path.isdir(text):
            candidates = _walk(Path(text), on_error)
        else:
            candidates = [Path(text)]
        for path in candidates:
            try:
                key = path.resolve()
            except (OSError, RuntimeError):  # a symlink loop: still the letter the user named
                key = path.absolute()
            if key not in seen:
                seen.add(key)
                found.append(path)
    return found


def _walk(root: Path, on_error: Callable[[str], None] | None) -> list[Path]:
    def report(exc: OSError) -> None:
        if on_error is not None:
            on_error(f"cannot read the directory {exc.filename}: {exc.strerror or exc}")

    found = [
        Path(folder) / name
        for folder, _dirs, files in os.walk(root, onerror=report)
        for name in files
        if Path(name).suffix.lower() in LETTER_SUFFIXES
    ]
    return sorted(found)
