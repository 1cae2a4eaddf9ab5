"""Ingestion: every input form, exact text and offsets, and a typed error for every bad input."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from conftest import PDFS, SEEDS, pdf

import llm_extract
from llm_extract import (
    BinaryInputError,
    EmptyLetterError,
    ExtractionError,
    ImageOnlyPDFError,
    InputTooLargeError,
    LetterNotFoundError,
    NotAnIMRLetterError,
    UnreadablePDFError,
    extract,
    load,
)


def test_text_path_bytes_and_str_path_agree() -> None:
    path = SEEDS[0]
    by_path, by_str = load(path), load(str(path))
    by_bytes, by_text = load(path.read_bytes()), load(path.read_text(encoding="utf-8"))
    assert by_path.text == by_str.text == by_bytes.text == by_text.text
    assert by_path.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert by_path.kind == "text" and by_path.pages == [0]


def test_crlf_is_kept_verbatim() -> None:
    text = SEEDS[0].read_text(encoding="utf-8").replace("\n", "\r\n")
    assert load(text).text == text
    assert load(text.encode()).text == text


def test_pdf_pages_are_joined_with_form_feeds_and_offsets_point_at_pages() -> None:
    path = pdf("CM16-0230651")
    letter = load(path)
    doc = pdfium.PdfDocument(str(path))
    pages = [doc[i].get_textpage().get_text_range() for i in range(len(doc))]
    assert letter.text == "\f".join(pages)
    assert letter.kind == "pdf" and letter.page_count == len(pages) > 1
    for number, start in enumerate(letter.pages, 1):
        assert letter.page_of(start) == number
        assert letter.text[start:].startswith(pages[number - 1][:20])
    assert load(path.read_bytes()).text == letter.text


def test_every_real_pdf_opens_despite_aes_encryption() -> None:
    for path in PDFS:
        assert "IMR" in load(path).text, path.name


@pytest.mark.parametrize("data", ["", "   \n\t  ", b"", b" \r\n "])
def test_empty_and_blank_input(data: str | bytes) -> None:
    with pytest.raises(EmptyLetterError):
        load(data)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "blank.txt"
    path.write_text("  \n\n ")
    with pytest.raises(EmptyLetterError, match="blank.txt"):
        extract(path)


def test_binary_input() -> None:
    with pytest.raises(BinaryInputError):
        load(b"\x00\x01\x02binary\x00junk" * 10)
    with pytest.raises(BinaryInputError):
        load(bytes(range(1, 32)) * 40)


def test_cp1252_text_is_decoded() -> None:
    text = SEEDS[0].read_text(encoding="utf-8").replace("MTUS recommends", "MTUS \u201crecommends\u201d")
    assert load(text.encode("cp1252")).text == text


def test_not_an_imr_letter() -> None:
    with pytest.raises(NotAnIMRLetterError, match="IMR"):
        extract("Dear customer,\nYour order #1234 has shipped. Thank you for shopping with us.\n" * 5)


def test_image_only_pdf(tmp_path: Path) -> None:
    doc = pdfium.PdfDocument.new()
    doc.new_page(612, 792)
    path = tmp_path / "scan.pdf"
    doc.save(str(path))
    with pytest.raises(ImageOnlyPDFError, match="OCR"):
        extract(path)


def test_corrupt_pdf(tmp_path: Path) -> None:
    data = pdf("CM16-0230651").read_bytes()
    path = tmp_path / "broken.pdf"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(UnreadablePDFError):
        extract(path)
    with pytest.raises(UnreadablePDFError):
        extract(b"%PDF-1.7\n garbage garbage")


def test_too_large(tmp_path: Path) -> None:
    with pytest.raises(InputTooLargeError):
        load("x" * 2000, max_bytes=1000)
    big = tmp_path / "big.txt"
    big.write_bytes(b"a" * (llm_extract.ingest.MAX_INPUT_BYTES + 1))
    with pytest.raises(InputTooLargeError, match="limit"):
        extract(big)


def test_missing_file() -> None:
    with pytest.raises(LetterNotFoundError):
        extract(Path("/nonexistent/letter.pdf"))
    with pytest.raises(LetterNotFoundError):
        extract("missing-letter.txt")


def test_every_error_is_an_extraction_error_with_one_line() -> None:
    for bad in ("", b"\x00\x00\x00 binary", "just some words that are not an IMR letter at all"):
        with pytest.raises(ExtractionError) as info:
            extract(bad)
        assert "\n" not in str(info.value) and str(info.value)
