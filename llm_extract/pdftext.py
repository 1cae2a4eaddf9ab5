"""PDF text extraction in a sandbox: a child process under memory and CPU limits.

pdfium runs in :mod:`llm_extract.pdfworker`, a child process that caps its own address space
(``RLIMIT_AS``) and CPU time (``RLIMIT_CPU``) for every PDF; this side adds a wall-clock limit
and kills the child when it is exceeded. A PDF that breaks a limit or crashes pdfium (SIGABRT,
SIGSEGV) ends in :class:`~llm_extract.errors.PDFTooComplexError`, the caller's process never
notices anything else, and the next PDF gets a fresh child.

Children are persistent: starting one costs ~0.1 s, reading a real letter ~5 ms, so each
process keeps a small pool of idle children (one per thread that needs one at the same time)
and reuses them. The pool is safe from threads (each job holds its child exclusively), and a
forked process (a ``ProcessPoolExecutor`` worker) drops the children it inherited and starts its
own. Children exit when the parent does (their stdin closes).

Limits (named constants; environment variables override them, ``load(..., pdf_limits=...)``
overrides both per call):

- ``PDF_MEMORY_LIMIT_BYTES`` (1 GiB; ``LLM_EXTRACT_PDF_MEMORY_MB``): address space per PDF.
  Real letters need ~30 MB.
- ``PDF_TIME_LIMIT_S`` (10 s; ``LLM_EXTRACT_PDF_TIMEOUT_S``): CPU seconds per PDF; the wall
  clock gets ``PDF_WALL_FACTOR`` times as long, for a busy machine. Real letters need ~5 ms.
- ``MAX_PDF_PAGES`` (500) and ``MAX_PDF_TEXT_CHARS`` (8 Mi characters, the text input limit):
  a letter is a few pages of text, not a book.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import InputTooLargeError, PDFTooComplexError, UnreadablePDFError
from .pdfworker import FRAME, REQUEST

log = logging.getLogger(__name__)

#: Address space one PDF may use (the child's ``RLIMIT_AS``).
PDF_MEMORY_LIMIT_BYTES = 1 << 30
#: CPU seconds one PDF may use (the child's ``RLIMIT_CPU``).
PDF_TIME_LIMIT_S = 10.0
#: The wall clock allows this many times the CPU limit (a loaded machine shares its cores).
PDF_WALL_FACTOR = 3.0
#: A determination letter is a handful of pages; a huge PDF is something else.
MAX_PDF_PAGES = 500
#: Characters of text a PDF may expand to (a compressed-text bomb is tiny on disk).
MAX_PDF_TEXT_CHARS = 8 * 1024 * 1024
MEMORY_ENV = "LLM_EXTRACT_PDF_MEMORY_MB"
TIMEOUT_ENV = "LLM_EXTRACT_PDF_TIMEOUT_S"
#: Idle children kept per process, and jobs after which a child is replaced (pdfium's heap
#: only grows; a fresh child keeps memory flat over any number of letters).
MAX_IDLE_WORKERS = 4
MAX_JOBS_PER_WORKER = 1000
#: Seconds a new child may take to start and import pypdfium2 (on top of the job's wall limit).
STARTUP_GRACE_S = 30.0
#: Largest value a limit may take (``setrlimit`` takes 64-bit values; beyond this is "no limit").
MAX_LIMIT = 1 << 62

_WORKER_SCRIPT = str(Path(__file__).with_name("pdfworker.py"))
#: Runs the worker file without importing the llm_extract package (and without the current
#: directory on sys.path, so nothing there can shadow pypdfium2).
_BOOTSTRAP = (
    "import runpy, sys; sys.path[:] = [p for p in sys.path if p]; "
    "runpy.run_path(sys.argv[1], run_name='__pdfworker__')"
)


@dataclass(frozen=True)
class PdfLimits:
    """What one PDF may cost. ``from_env()`` reads the environment over the defaults."""

    memory_bytes: int = PDF_MEMORY_LIMIT_BYTES
    cpu_seconds: float = PDF_TIME_LIMIT_S
    max_pages: int = MAX_PDF_PAGES
    max_chars: int = MAX_PDF_TEXT_CHARS

    @property
    def wall_seconds(self) -> float:
        return self.cpu_seconds * PDF_WALL_FACTOR

    @classmethod
    def from_env(cls) -> PdfLimits:
        memory = _env_number(MEMORY_ENV)
        cpu = _env_number(TIMEOUT_ENV)
        return cls(
            memory_bytes=min(int(memory * 1024 * 1024), MAX_LIMIT) if memory else PDF_MEMORY_LIMIT_BYTES,
            cpu_seconds=min(cpu, MAX_LIMIT) if cpu else PDF_TIME_LIMIT_S,
        )

    def describe(self) -> str:
        return f"limits: {self.memory_bytes / 2**20:,.0f} MiB, {self.cpu_seconds:g} s CPU"


def _env_number(name: str) -> float | None:
    raw = os.environ.get(name)
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        log.warning("ignoring %s=%r: not a positive number", name, raw)
        return None
    return value


class _Broken(Exception):
    """The child died or stopped answering; ``reason`` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Worker:
    """One sandbox child and the pipes to it. Used by one thread at a time."""

    def __init__(self) -> None:
        self.owner = os.getpid()
        self.jobs = 0
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _BOOTSTRAP, _WORKER_SCRIPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,  # a failing child's traceback is worth seeing; pdfium itself is quiet
            start_new_session=True,  # Ctrl-C in a terminal goes to the parent, not the sandbox
            close_fds=True,
        )
        self.fresh = True
        self._out = self.proc.stdin.fileno()  # type: ignore[union-attr]
        self._in = self.proc.stdout.fileno()  # type: ignore[union-attr]
        os.set_blocking(self._out, False)
        # poll, not select: select() fails for descriptors past 1024 (a busy batch process)
        self._writable = select.poll()
        self._writable.register(self._out, select.POLLOUT)
        self._readable = select.poll()
        self._readable.register(self._in, select.POLLIN)
        self._buffer = bytearray()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def run(self, data: bytes, limits: PdfLimits, deadline: float) -> list[str]:
        """Page texts of ``data``; raises a typed ExtractionError, or _Broken if the child failed."""
        self.jobs += 1
        header = json.dumps(
            {
                "memory": limits.memory_bytes,
                "cpu": limits.cpu_seconds,
                "max_pages": limits.max_pages,
                "max_chars": limits.max_chars,
            }
        ).encode()
        if self.fresh:  # the first job also waits for the interpreter to start
            deadline += STARTUP_GRACE_S
            self.fresh = False
        self._write(REQUEST.pack(len(header), len(data)) + header, deadline)
        self._write(data, deadline)
        pages: list[str] = []
        count = None
        # the largest frame an honest child sends: one page of text at 4 UTF-8 bytes per character
        most = limits.max_chars * 4 + 4096
        while True:
            kind, payload = self._frame(deadline, most)
            try:
                if kind == b"N":
                    count = int(payload)
                elif kind == b"P":
                    pages.append(payload.decode("utf-8", "surrogatepass"))
                elif kind == b"D":
                    if count is None or len(pages) != count:
                        raise _Broken("the sandbox answered out of order")
                    return pages
                elif kind == b"E":
                    error = json.loads(payload)
                    if not isinstance(error, dict):
                        raise TypeError(error)
                else:
                    raise _Broken(f"the sandbox sent an unknown frame {kind!r}")
            except (ValueError, TypeError):  # a garbled frame: the child is not to be trusted again
                raise _Broken("the sandbox sent a garbled reply") from None
            if kind == b"E":
                raise _child_error(error, limits)

    def _write(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Broken("timeout")
            if not self._writable.poll(remaining * 1000):
                continue
            try:
                view = view[os.write(self._out, view) :]
            except BlockingIOError:
                continue
            except OSError as err:  # EPIPE: the child is gone
                raise _Broken(f"the sandbox stopped reading ({err.strerror})") from None

    def _read(self, size: int, deadline: float) -> bytes:
        while len(self._buffer) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Broken("timeout")
            if not self._readable.poll(remaining * 1000):
                continue
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise _Broken("exit")
            self._buffer += chunk
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def _frame(self, deadline: float, most: int) -> tuple[bytes, bytes]:
        kind, size = FRAME.unpack(self._read(FRAME.size, deadline))
        if size > most:
            raise _Broken(f"the sandbox announced a {size:,}-byte frame")
        return kind, self._read(size, deadline)

    def kill(self) -> int | None:
        """Stop the child for good; return its exit status (negative: the signal that ended it)."""
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.kill()
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        self.close()
        return code

    def close(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def _reason(err: OSError) -> str:
    return err.strerror or type(err).__name__


def _exit_reason(code: int | None) -> str:
    """How the child ended, in words for the error message."""
    if code is None:
        return "did not exit"
    if code == -signal.SIGXCPU:
        return "ran out of CPU time"
    if code < 0:
        try:
            return f"crashed ({signal.Signals(-code).name})"
        except ValueError:
            return f"crashed (signal {-code})"
    return f"exited with status {code}"


def _child_error(error: dict, limits: PdfLimits) -> UnreadablePDFError | InputTooLargeError:
    """The typed error for a failure the child reported (it survived, so it is reused)."""
    kind, message = error.get("kind"), str(error.get("message"))
    if kind == "complex":
        return PDFTooComplexError(f"the PDF is too complex to read: {message} ({limits.describe()})")
    if kind == "too_many_pages":
        return InputTooLargeError(message)
    return UnreadablePDFError(message)


_pool: list[_Worker] = []
_lock = threading.Lock()


def _acquire() -> _Worker:
    with _lock:
        while _pool:
            worker = _pool.pop()
            if worker.owner == os.getpid() and worker.alive():
                return worker
            worker.close()
    return _Worker()


def _release(worker: _Worker) -> None:
    with _lock:
        if worker.jobs < MAX_JOBS_PER_WORKER and len(_pool) < MAX_IDLE_WORKERS and worker.alive():
            _pool.append(worker)
            return
    worker.close()  # its stdin closes, so it exits; the OS reaps it with our process or below
    try:
        worker.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        worker.kill()


def prestart() -> None:
    """Start one sandbox child now, idle in the pool, unless one is there already.

    For a caller that knows a PDF is coming and has other work first: the child's start-up
    (an interpreter and pypdfium2, ~0.1 s) then overlaps that work, e.g. the command line's imports
    of the extraction stages. Failing to start is not an error here: the PDF's own read reports it.
    """
    with _lock:
        if any(worker.owner == os.getpid() and worker.alive() for worker in _pool):
            return
    try:
        worker = _Worker()
    except OSError:
        return
    _release(worker)


def _forget_after_fork() -> None:
    """In a forked child: drop (never use) the parent's workers; close our copies of their pipes."""
    global _lock
    _lock = threading.Lock()
    for worker in _pool:
        worker.close()
    _pool.clear()


def shutdown() -> None:
    """Stop every idle child (at exit, or to reclaim memory)."""
    with _lock:
        workers = list(_pool)
        _pool.clear()
    for worker in workers:
        if worker.owner == os.getpid():
            worker.close()
            try:
                worker.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                worker.kill()


os.register_at_fork(after_in_child=_forget_after_fork)
atexit.register(shutdown)


def pdf_page_texts(data: bytes, *, name: str | None = None, limits: PdfLimits | None = None) -> list[str]:
    """The text of each page of the PDF ``data``, read in the sandbox.

    Raises :class:`UnreadablePDFError` (not a PDF pdfium can open, an unreadable page),
    :class:`PDFTooComplexError` (a limit was hit or pdfium crashed) or
    :class:`InputTooLargeError` (over ``max_pages``).
    """
    limits = limits or PdfLimits.from_env()
    try:
        worker = _acquire()
    except OSError as err:  # no processes or descriptors left: the machine's state, not the PDF's
        raise UnreadablePDFError(f"the PDF sandbox could not start ({_reason(err)})", source=name) from None
    deadline = time.monotonic() + limits.wall_seconds
    try:
        pages = worker.run(data, limits, deadline)
    except _Broken as broken:
        code = worker.kill()
        if broken.reason == "timeout":
            raise PDFTooComplexError(
                f"reading the PDF took longer than {limits.wall_seconds:g} s ({limits.describe()})", source=name
            ) from None
        how = _exit_reason(code)
        if code is not None and code > 0:  # a Python error in the child, not a signal: our fault
            raise UnreadablePDFError(
                f"the PDF sandbox {how} ({broken.reason}); see its message above", source=name
            ) from None
        raise PDFTooComplexError(
            f"the PDF engine {how} while reading this PDF: a PDF bomb or a malformed file ({limits.describe()})",
            source=name,
        ) from None
    except (UnreadablePDFError, InputTooLargeError) as err:
        _release(worker)
        raise type(err)(str(err), source=name) from None
    except BaseException:  # KeyboardInterrupt mid-job: the child's state is unknown
        worker.kill()
        raise
    _release(worker)
    return pages
