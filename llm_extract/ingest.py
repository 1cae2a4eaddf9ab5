"""Ingest: turn whatever the caller has (text, a path, bytes of a .txt or .pdf) into a :class:`Letter`.

The text is kept exactly as extracted (CRLF, form feeds, U+FFFE hyphenation marks and all)
because every offset in the output indexes ``Letter.text``: cleaning it here would make
``text[start:end]`` disagree with the document a reviewer opens.
"""

from __future__ import annotations

import bisect
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .errors import (
    BinaryInputError,
    EmptyLetterError,
    ImageOnlyPDFError,
    InputTooLargeError,
    LetterNotFoundError,
    UnreadablePDFError,
)

LetterInput = str | bytes | bytearray | os.PathLike

#: Real IMR letters are 3-30 kB of text; anything far beyond is not one letter.
MAX_INPUT_BYTES = 8 * 1024 * 1024
#: A determination letter is a handful of pages; a huge PDF is something else.
MAX_PDF_PAGES = 500
#: A str longer than this, or with a newline, is letter text, never a file name.
MAX_PATH_CHARS = 1024
#: Share of C0 control characters (other than whitespace) that marks a text as binary.
BINARY_CONTROL_RATIO = 0.05
PAGE_BREAK = "\f"
_PATH_SUFFIXES = (".txt", ".pdf", ".text")


@dataclass(frozen=True)
class Letter:
    """An ingested letter: the text every offset refers to, and where its pages start."""

    text: str
    pages: list[int] = field(default_factory=lambda: [0])
    sha256: str = ""
    kind: Literal["pdf", "text"] = "text"
    name: str | None = None

    @property
    def page_count(self) -> int:
        return len(self.pages)

    def page_of(self, offset: int) -> int:
        """1-based page number holding ``offset``."""
        return bisect.bisect_right(self.pages, offset)


def load(letter: LetterInput | Letter, *, max_bytes: int = MAX_INPUT_BYTES) -> Letter:
    """Read ``letter`` (text, path, or bytes of a .txt/.pdf) into a :class:`Letter`.

    Raises a typed :class:`~llm_extract.errors.ExtractionError` for empty, binary,
    unreadable, image-only or oversized input.
    """
    if isinstance(letter, Letter):
        return letter
    name: str | None = None
    if isinstance(letter, os.PathLike) or (isinstance(letter, str) and _looks_like_path(letter)):
        path = Path(letter)
        name = str(path)
        if not path.is_file():
            raise LetterNotFoundError("no such file", source=name)
        size = path.stat().st_size
        if size > max_bytes:
            raise InputTooLargeError(f"{size:,} bytes is over the {max_bytes:,}-byte limit", source=name)
        data = path.read_bytes()
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
        return _from_pdf(data, digest, name)
    if name and name.lower().endswith(".pdf"):
        raise UnreadablePDFError("file is named .pdf but is not a PDF", source=name)
    return _from_text(_decode(data, name), digest, name)


def _looks_like_path(value: str) -> bool:
    """A short one-line string that names an existing file, or ends like a letter file name."""
    if not value or len(value) > MAX_PATH_CHARS or "\n" in value or "\r" in value or "\0" in value:
        return False
    try:
        if Path(value).is_file():
            return True
    except OSError:
        return False
    return value.strip().lower().endswith(_PATH_SUFFIXES)


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
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\n\r\f\v")
    if controls > BINARY_CONTROL_RATIO * len(text):
        raise BinaryInputError("the input looks binary (too many control characters)", source=name)
    return text


def _from_text(text: str, digest: str, name: str | None) -> Letter:
    if not text.strip():
        raise EmptyLetterError("the input is empty or whitespace only", source=name)
    pages = [0]
    pos = text.find(PAGE_BREAK)
    while pos != -1:
        pages.append(pos + 1)
        pos = text.find(PAGE_BREAK, pos + 1)
    return Letter(text=text, pages=pages, sha256=digest, kind="text", name=name)


def _from_pdf(data: bytes, digest: str, name: str | None) -> Letter:
    import pypdfium2 as pdfium  # imported lazily: text-only users never pay for it

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as err:
        raise UnreadablePDFError(f"the PDF cannot be opened ({err})", source=name) from err
    try:
        if len(pdf) == 0:
            raise UnreadablePDFError("the PDF has no pages", source=name)
        if len(pdf) > MAX_PDF_PAGES:
            raise InputTooLargeError(f"{len(pdf)} pages is over the {MAX_PDF_PAGES}-page limit", source=name)
        texts = []
        for index in range(len(pdf)):
            page = pdf[index]
            try:
                textpage = page.get_textpage()
                texts.append(textpage.get_text_range())
                textpage.close()
            except pdfium.PdfiumError as err:
                raise UnreadablePDFError(f"page {index + 1} cannot be read ({err})", source=name) from err
            finally:
                page.close()
    finally:
        pdf.close()
    if not any(t.strip() for t in texts):
        raise ImageOnlyPDFError("the PDF has no text layer (scanned image?); run OCR first", source=name)
    pages, offset = [], 0
    for t in texts:
        pages.append(offset)
        offset += len(t) + len(PAGE_BREAK)
    return Letter(text=PAGE_BREAK.join(texts), pages=pages, sha256=digest, kind="pdf", name=name)
