"""Ingest: turn whatever the caller has (text, a path, bytes of a .txt or .pdf) into a :class:`Letter`.

The text is kept exactly as extracted (CRLF, form feeds, U+FFFE hyphenation marks and all)
because every offset in the output indexes ``Letter.text``: cleaning it here would make
``text[start:end]`` disagree with the document a reviewer opens. The one exception keeps offsets
intact: a lone surrogate (which no UTF-8 output can hold) becomes U+FFFD, one for one.

Input is hostile until read: a path is read with at most the size limit + 1 byte whatever it
names, and PDF text comes from a sandboxed child process (:mod:`llm_extract.pdftext`).
"""

from __future__ import annotations

import bisect
import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .errors import (
    BinaryInputError,
    EmptyLetterError,
    ImageOnlyPDFError,
    InputTooLargeError,
    LetterIsDirectoryError,
    LetterNotFoundError,
    UnreadableFileError,
    UnreadablePDFError,
    UnsupportedFileTypeError,
)
from .pdftext import PdfLimits, pdf_page_texts

LetterInput = str | bytes | bytearray | os.PathLike

#: Real IMR letters are 3-30 kB of text; anything far beyond is not one letter.
MAX_INPUT_BYTES = 8 * 1024 * 1024
#: A str longer than this, or with a newline, is letter text, never a file name.
MAX_PATH_CHARS = 1024
#: Share of C0 control characters (other than whitespace) that marks a text as binary.
BINARY_CONTROL_RATIO = 0.05
PAGE_BREAK = "\f"
_PATH_SUFFIXES = (".txt", ".pdf", ".text")
#: Bytes read per system call when reading a file (the whole read stops at the size limit + 1).
READ_CHUNK = 1 << 20
_CONTROLS = dict.fromkeys(c for c in range(32) if chr(c) not in "\t\n\r\f\v")
#: Lone UTF-16 surrogates: a Python str may hold them (a lossy ``surrogateescape`` decode, JSON
#: with ``\ud800``), but no UTF-8 output can, so a result quoting one could not be serialised.
_SURROGATE = re.compile("[\ud800-\udfff]")
#: What a lone surrogate becomes: one code point for one, so every offset stays valid.
REPLACEMENT_CHAR = "\ufffd"

@dataclass(frozen=True)
class Letter:
    """An ingested letter: the text every offset refers to, and where its pages start.

    ``replaced`` counts lone surrogates that were replaced by U+FFFD (``first_replaced`` is the
    offset of the first): the pipeline flags them (``invalid_characters``).
    """

    text: str
    pages: list[int] = field(default_factory=lambda: [0])
    sha256: str = ""
    kind: Literal["pdf", "text"] = "text"
    name: str | None = None
    replaced: int = 0
    first_replaced: int | None = None

    @property
    def page_count(self) -> int:
        return len(self.pages)

    def page_of(self, offset: int) -> int:
        """1-based page number holding ``offset``."""
        return bisect.bisect_right(self.pages, offset)


def load(
    letter: LetterInput | Letter, *, max_bytes: int = MAX_INPUT_BYTES, pdf_limits: PdfLimits | None = None
) -> Letter:
    """Read ``letter`` (text, path, or bytes of a .txt/.pdf) into a :class:`Letter`.

    Raises a typed :class:`~llm_extract.errors.ExtractionError` for empty, binary, unreadable,
    image-only, too complex or oversized input. A path is read with at most ``max_bytes`` + 1
    bytes, whatever it names (a FIFO, a device or a growing file: a typed error, never a hang).
    PDFs are read in a sandboxed child process under ``pdf_limits`` (default:
    :meth:`PdfLimits.from_env`; see :mod:`llm_extract.pdftext`).
    """
    if isinstance(letter, Letter):
        return letter
    name: str | None = None
    if isinstance(letter, os.PathLike) or (isinstance(letter, str) and _looks_like_path(letter)):
        name = str(letter)
        data = _read_file(letter, max_bytes, name)
    elif isinstance(letter, str):
        data = letter.encode("utf-8", "surrogatepass")
        if len(data) > max_bytes:
            raise InputTooLargeError(f"{len(data):,} bytes is over the {max_bytes:,}-byte limit")
        return _from_text(letter, hashlib.sha256(data).hexdigest(), None)
    elif isinstance(letter, (bytes, bytearray, memoryview)):
        data = bytes(letter)
        if len(data) > max_bytes:
            raise InputTooLargeError(f"{len(data):,} bytes is over the {max_bytes:,}-byte limit")
    else:
        raise TypeError(f"letter must be str, bytes or a path, not {type(letter).__name__}")

    digest = hashlib.sha256(data).hexdigest()
    if data.lstrip()[:5] == b"%PDF-":
        return _from_pdf(data, digest, name, pdf_limits)
    if name and name.lower().endswith(".pdf"):
        raise UnreadablePDFError("file is named .pdf but is not a PDF", source=name)
    _refuse_unsupported(data, name)
    return _from_text(_decode(data, name), digest, name)


def _looks_like_path(value: str) -> bool:
    """A short one-line string that names an existing file, or ends like a letter file name."""
    if not value or len(value) > MAX_PATH_CHARS or "\n" in value or "\r" in value or "\0" in value:
        return False
    try:
        if Path(value).is_file() or Path(value).is_dir():  # a directory: named as such by _read_file
            return True
    except (OSError, ValueError):  # ValueError: a lone surrogate cannot name a file
        return False
    return value.strip().lower().endswith(_PATH_SUFFIXES)


def _read_file(path: str | os.PathLike, max_bytes: int, name: str) -> bytes:
    """At most ``max_bytes`` bytes of a regular file; a typed error for anything else.

    Opened non-blocking, so a FIFO without a writer cannot hang the open, and checked with
    ``fstat`` on the open descriptor (no race with a rename). The size is checked before and
    during the read: /proc files report size 0 and files can grow while they are read.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except (FileNotFoundError, NotADirectoryError):
        raise LetterNotFoundError("no such file", source=name) from None
    except (OSError, ValueError) as err:  # permission denied, a name the OS cannot encode, ...
        raise UnreadableFileError(f"cannot open the file ({_reason(err)})", source=name) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise LetterIsDirectoryError(
                "is a directory, not a letter file: extract() and load() read one letter; extract_many() "
                "takes many (llm_extract.batch.expand() lists a directory's letters; the CLI searches it)",
                source=name,
            )
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFileError(f"not a regular file (a {_file_kind(info.st_mode)})", source=name)
        if info.st_size > max_bytes:
            raise InputTooLargeError(f"{info.st_size:,} bytes is over the {max_bytes:,}-byte limit", source=name)
        os.set_blocking(fd, True)
        chunks, total = [], 0
        while total <= max_bytes:
            chunk = os.read(fd, min(READ_CHUNK, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:
            raise InputTooLargeError(f"the file holds over {max_bytes:,} bytes (the limit)", source=name)
        return b"".join(chunks)
    except OSError as err:
        raise UnreadableFileError(f"cannot read the file ({_reason(err)})", source=name) from None
    finally:
        os.close(fd)


def _reason(err: Exception) -> str:
    return err.strerror if isinstance(err, OSError) and err.strerror else type(err).__name__


def _file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISDIR, "directory"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
    ):
        if test(mode):
            return kind
    return "special file"


#: Documents and images people send instead of a letter's PDF or text, by the extension ``filetype``
#: gives them (or the file name's): what to call them in the error.
UNSUPPORTED_DOCUMENTS = {
    "docx": "a Word document",
    "doc": "a Word 97-2003 document",
    "odt": "an OpenDocument text",
    "rtf": "an RTF document",
    "xlsx": "an Excel workbook",
    "xls": "an Excel 97-2003 workbook",
    "ods": "an OpenDocument spreadsheet",
    "pptx": "a PowerPoint presentation",
    "ppt": "a PowerPoint 97-2003 presentation",
    "odp": "an OpenDocument presentation",
    "epub": "an EPUB book",
}
#: The OLE2 compound-file signature of Office 97-2003 files (``filetype`` needs more of the file).
_OLE2 = bytes.fromhex("D0CF11E0A1B11AE1")
#: Bytes ``filetype`` looks at (it reads no further).
SNIFF_BYTES = 8192


def _refuse_unsupported(data: bytes, name: str | None) -> None:
    """An :class:`UnsupportedFileTypeError` naming the type of a document or image that is not a
    letter's PDF or text (a .docx, .doc, RTF, a PNG or TIFF scan, ...). Only binary content is
    named by its signature (RTF, the one text format, by its own), so letter text never is."""
    head = data[:SNIFF_BYTES]
    binary = b"\0" in head
    if not binary and head.isascii() and not head.lstrip().startswith(b"{\\rtf"):
        return  # ASCII text (most letters): no signature to look for
    import filetype  # only for input that may not be a letter's text

    kind = filetype.guess(head)
    ext = kind.extension if kind is not None else None
    if not binary and ext not in UNSUPPORTED_DOCUMENTS and not (kind is not None and kind.mime.startswith("image/")):
        return  # text that happens to start like some other format (an .exe's "MZ"): a letter's text
    if ext is None and head.startswith(_OLE2):
        suffix = Path(name).suffix.lower().lstrip(".") if name else ""
        ext = suffix if suffix in ("doc", "xls", "ppt") else "doc"
    if ext is None:
        return  # binary of no known type: _decode says so
    if ext in UNSUPPORTED_DOCUMENTS:
        what, advice = f"{UNSUPPORTED_DOCUMENTS[ext]} (.{ext})", "save it as PDF or plain text first"
    elif kind is not None and kind.mime.startswith("image/"):
        what, advice = f"a {ext.upper()} image (.{ext})", "a scan: OCR it into a PDF with a text layer or text first"
    else:
        what, advice = f"a {kind.mime if kind else ext} file (.{ext})", "not a letter's PDF or text"
    raise UnsupportedFileTypeError(
        f"unsupported file type: the input is {what}; llm_extract reads PDF and plain-text letters ({advice})",
        source=name,
    )


def _decode(data: bytes, name: str | None) -> str:
    if not data.strip():
        raise EmptyLetterError("the input is empty or whitespace only", source=name)
    if b"\0" in data:
        raise BinaryInputError("the input is binary (it contains NUL bytes), not letter text", source=name)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Letters saved on Windows arrive as cp1252 (curly quotes, NBSP); it maps all but 5 bytes.
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError as err:
            raise BinaryInputError("the input is neither UTF-8 nor Windows-1252 text", source=name) from err
    controls = len(text) - len(text.translate(_CONTROLS))
    if controls > BINARY_CONTROL_RATIO * len(text):
        raise BinaryInputError("the input looks binary (too many control characters)", source=name)
    return text


def _letter(text: str, pages: list[int], digest: str, kind: Literal["pdf", "text"], name: str | None) -> Letter:
    """The Letter, with lone surrogates replaced one for one (offsets unchanged) and counted."""
    replaced, first = 0, None
    if not text.isascii():
        hit = _SURROGATE.search(text)
        if hit:
            first = hit.start()
            text, replaced = _SURROGATE.subn(REPLACEMENT_CHAR, text)
    return Letter(text=text, pages=pages, sha256=digest, kind=kind, name=name, replaced=replaced, first_replaced=first)


def _from_text(text: str, digest: str, name: str | None) -> Letter:
    if not text.strip():
        raise EmptyLetterError("the input is empty or whitespace only", source=name)
    pages = [0]
    pos = text.find(PAGE_BREAK)
    while pos != -1:
        pages.append(pos + 1)
        pos = text.find(PAGE_BREAK, pos + 1)
    return _letter(text, pages, digest, "text", name)


def _from_pdf(data: bytes, digest: str, name: str | None, limits: PdfLimits | None) -> Letter:
    texts = pdf_page_texts(data, name=name, limits=limits)
    if not any(t.strip() for t in texts):
        raise ImageOnlyPDFError("the PDF has no text layer (scanned image?); run OCR first", source=name)
    pages, offset = [], 0
    for t in texts:
        pages.append(offset)
        offset += len(t) + len(PAGE_BREAK)
    return _letter(PAGE_BREAK.join(texts), pages, digest, "pdf", name)
