"""The PDF sandbox's child process: reads PDFs from stdin, writes their page texts to stdout.

pdfium is C++ fed untrusted bytes: a 1-3 kB "PDF bomb" (self-referencing or fanned-out form
XObjects, a doubly compressed content stream) makes it allocate gigabytes, spin for minutes or
abort the process. So it never runs in the caller's process: :mod:`llm_extract.pdftext` starts
this script as a child, and the child puts every job under ``RLIMIT_AS`` (address space) and
``RLIMIT_CPU`` (CPU seconds) before touching the PDF. A bomb then ends *this* process (SIGABRT,
SIGSEGV, SIGXCPU), and the parent turns that into a typed error and starts a fresh child.

It imports only the standard library and pypdfium2 (never the ``llm_extract`` package, whose
import is far heavier), and it is run as ``python -c <bootstrap> <this file>``.

Protocol (all integers big-endian). A request is ``!II`` (length of a JSON header, length of
the PDF) followed by both; the header holds the limits (``memory``, ``cpu``, ``max_pages``,
``max_chars``). Replies are frames ``!cI`` (kind, payload length) + payload:

- ``N`` the page count (ASCII digits), then one ``P`` per page (its text, UTF-8 with
  ``surrogatepass``), then ``D``;
- or, at any point, ``E`` with a JSON ``{"kind": ..., "message": ...}``: ``open`` (not a PDF
  pdfium can open), ``no_pages``, ``too_many_pages``, ``page`` (a page cannot be read),
  ``complex`` (its text is over ``max_chars``, or Python ran out of memory).

The child exits when its stdin closes, so it never outlives the parent.
"""

from __future__ import annotations

import json
import os
import struct
import sys

REQUEST = struct.Struct("!II")
FRAME = struct.Struct("!cI")


def _read_exact(fd: int, size: int) -> bytes | None:
    """``size`` bytes from ``fd``, or None at end of file (the parent went away)."""
    chunks, remaining = [], size
    while remaining:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _send(fd: int, kind: bytes, payload: bytes = b"") -> None:
    data = memoryview(FRAME.pack(kind, len(payload)) + payload)
    while data:
        data = data[os.write(fd, data) :]


def _error(fd: int, kind: str, message: str) -> None:
    _send(fd, b"E", json.dumps({"kind": kind, "message": message}).encode())


def _limit(memory: int, cpu: float) -> None:
    """Cap this process for one job: address space, and CPU seconds from now on."""
    import resource

    if memory > 0:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        soft = memory if hard == resource.RLIM_INFINITY else min(memory, hard)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    if cpu > 0:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        soft = int(usage.ru_utime + usage.ru_stime + cpu) + 1
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _unlimit() -> None:
    """Lift the address-space cap between jobs, so reading the next request never trips it."""
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (hard, hard))


def _job(pdfium, data: bytes, header: dict, out: int) -> None:  # noqa: ANN001 (pypdfium2 module)
    max_pages, max_chars = int(header["max_pages"]), int(header["max_chars"])
    try:
        pdf = pdfium.PdfDocument(data)
    except Exception as err:  # PdfiumError, and whatever else a hostile file provokes
        _error(out, "open", f"the PDF cannot be opened ({err})")
        return
    try:
        count = len(pdf)
        if count == 0:
            _error(out, "no_pages", "the PDF has no pages")
            return
        if count > max_pages:
            _error(out, "too_many_pages", f"{count} pages is over the {max_pages}-page limit")
            return
        _send(out, b"N", str(count).encode())
        total = 0
        for index in range(count):
            try:
                page = pdf[index]
                try:
                    textpage = page.get_textpage()
                    try:
                        chars = textpage.count_chars()
                        if total + chars > max_chars:
                            _error(out, "complex", f"its text layer is over {max_chars:,} characters")
                            return
                        text = textpage.get_text_range()
                    finally:
                        textpage.close()
                finally:
                    page.close()
            except MemoryError:
                _error(out, "complex", f"page {index + 1} needs more memory than the limit allows")
                return
            except Exception as err:  # PdfiumError, pypdfium2's own asserts on odd text ranges
                _error(out, "page", f"page {index + 1} cannot be read ({type(err).__name__}: {err})")
                return
            total += len(text)
            _send(out, b"P", text.encode("utf-8", "surrogatepass"))
        _send(out, b"D")
    finally:
        pdf.close()


def main() -> None:
    import resource
    import signal

    # No core files from bombs; Ctrl-C belongs to the parent (it closes our stdin).
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import pypdfium2 as pdfium

    inp, out = sys.stdin.fileno(), sys.stdout.fileno()
    while True:
        head = _read_exact(inp, REQUEST.size)
        if head is None:
            return
        header_len, data_len = REQUEST.unpack(head)
        header_bytes = _read_exact(inp, header_len)
        data = _read_exact(inp, data_len)
        if header_bytes is None or data is None:
            return
        header = json.loads(header_bytes)
        _limit(int(header["memory"]), float(header["cpu"]))
        try:
            _job(pdfium, data, header, out)
        except MemoryError:
            _error(out, "complex", "the PDF needs more memory than the limit allows")
        finally:
            del data
            _unlimit()


if __name__ in ("__main__", "__pdfworker__"):
    main()
