"""Hostile inputs, generated: super-linear shapes at any size, and tiny PDF bombs.

Shared by ``tests/test_adversarial.py`` (do the shapes finish, do the bombs end in a typed
error) and ``benchmarks/bench_adversarial.py`` (how does time grow with size). Everything is
built here from the repository's own letters and a few lines of raw PDF syntax; nothing is
downloaded, nothing is stored.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LETTERS = ROOT / "evals" / "letters"
SEED = sorted((LETTERS / "seeds").glob("*.txt"))[0].read_text(encoding="utf-8")
MAXIMUS = (LETTERS / "fixtures" / "maximus-2015-single.txt").read_text(encoding="utf-8")
MPR = (LETTERS / "fixtures" / "mpr-2013-upheld.txt").read_text(encoding="utf-8")

#: Label prefixes the parsers search for, each left without the text that completes it.
LABEL_PREFIXES = [
    "licensed to practice in ",
    "Board Certified in ",
    "subspecialty in ",
    "Regarding the request for ",
    "(updated ",
    "8 C.C.R.(",
    "Page(s) ",
    "page(s): ",
    "was the original request ",
    "The original request ",
    "The Claims Administrator authorized ",
    "Decision based on ",
    "Non-MTUS Citation ",
    "MTUS Chronic Pain Medical Treatment Guidelines ",
    "Official Disability Guidelines ",
    "ACOEM ",
    ", which is ",
    "Section(s): ",
    "State(s) of Licensure ",
    "Certification(s)/Specialty ",
    "IMR ISSUES, ",
    "Claims Administrator ",
    "MAXIMUS guideline ",
    "Decision rationale ",
    "Medical Treatment Guideline(s) Used by the Claims Administrator (UR) ",
    "is not medically ",
    "37-year-old ",
    "Date Assigned: ",
]


def fill(unit: str, size: int) -> str:
    """``unit`` repeated to about ``size`` characters."""
    return unit * max(1, size // max(1, len(unit)))


def _after(base: str, label: str, filler: str) -> str:
    """``base`` with ``filler`` inserted right after the first ``label``."""
    at = base.index(label) + len(label)
    return base[:at] + filler + base[at:]


def _before(base: str, label: str, filler: str) -> str:
    at = base.index(label)
    return base[:at] + filler + base[at:]


def _heading_start(base: str) -> int:
    """Offset of the seed letter's first item heading (the line before its first label)."""
    label = base.index("Claims Administrator guideline:")
    return base.rindex("\n", 0, base.rindex(":", 0, label - 5)) + 1


def every_whitespace_run_inflated(size: int) -> str:
    runs = SEED.count(" ") + SEED.count("\n")
    pad = " " * max(1, size // max(1, runs))
    return SEED.replace(" ", " " + pad).replace("\n", "\n" + pad)


def long_whitespace_runs_in_labels(size: int) -> str:
    spots = ["Claims ", "MAXIMUS ", "Decision ", "Page(s):", "IMR ISSUES,", "Treatment ", "State(s) of "]
    run = fill(" \t \n", size // len(spots))
    text = SEED
    for spot in spots:
        text = text.replace(spot, spot + run, 1)
    return text


def repeated_label_prefixes(size: int) -> str:
    unit = " x ".join(LABEL_PREFIXES) + " x "
    return _after(SEED, "MAXIMUS guideline:", fill(unit, size))


def number_only_lines(size: int) -> str:
    return _after(SEED, "Decision rationale:", "\n" + fill("12\n- 3 -\n7\n", size))


def open_quote_before_sentences(size: int) -> str:
    return _after(SEED, "Decision rationale:", ' "' + fill("The request is not medically necessary. ", size))


def blank_lines_before_heading(size: int) -> str:
    at = _heading_start(SEED)
    return SEED[:at] + fill("\n \r\n\n", size) + SEED[at:]


def many_items(size: int) -> str:
    start = _heading_start(SEED)
    end = SEED.index("\n", SEED.index("Decision rationale:"))
    item = SEED[start:end] + " The request is not medically necessary.\n"
    return SEED[:start] + fill(item, size) + SEED[start:]


def page_breaks_and_furniture(size: int) -> str:
    return _after(SEED, "Decision rationale:", fill("records reviewed\n- 3 -\n\fPage 2 of 9\nCM16-0230651\n", size))


def one_long_line(size: int) -> str:
    body = " ".join(SEED.split())
    return fill(body + " ", size)


def punctuation_runs(size: int) -> str:
    unit = "." * 200 + ")" * 200 + '"' * 200 + "?" * 100 + "-" * 200 + " A"
    return _after(SEED, "Decision rationale:", fill(unit, size))


def many_citations(size: int) -> str:
    unit = (
        "Decision based on MTUS Chronic Pain Medical Treatment Guidelines, and Low Back Complaints, "
        "Decision based on Non-MTUS Citation ODG and the ACOEM; ODG Pain (updated 1/1/15), page 8 of 9. "
    )
    return _after(SEED, "MAXIMUS guideline:", fill(unit, size))


def partial_heading(size: int) -> str:
    pad = fill(" \n", size // 3)
    heading = (
        f"Physical therapy x 12{pad}was the original request.{pad}Physical therapy x 6 was authorized by"
        f" the Claims Administrator.{pad}The remaining IMR eligible portion of the original request, "
        "Physical therapy x 6, is:  Upheld\n"
    )
    at = _heading_start(SEED)
    end = SEED.index("Claims Administrator guideline:")
    return SEED[:at] + heading + SEED[end:]


def long_item_heading(size: int) -> str:
    """One item whose heading is a single huge line of treatment words, asides and drug names."""
    at = _heading_start(SEED)
    end = SEED.index("Claims Administrator guideline:")
    heading = fill("(PT) physical therapy massage Norco 10mg #60 x 2 ", size) + ":  Upheld\n"
    return SEED[:at] + heading + SEED[end:]


def maximus_repeated_items(size: int) -> str:
    unit = "1) Regarding the request for physical therapy and \n"
    summary = "1) MAXIMUS Federal Services, Inc. has determined the request for x " * 20
    return _after(MAXIMUS, "IMR DECISION(S) AND RATIONALE(S)", "\n" + summary + fill(unit, size))


def mpr_shuffled_sections(size: int) -> str:
    unit = "MEDICAL REVIEWER QUALIFICATIONS: is licensed to practice in  RATIONALE FOR WHY x "
    return _after(MPR, "ISSUE AT DISPUTE:", fill(unit, size))


def label_soup(size: int) -> str:
    rng = random.Random(12)
    words = [*LABEL_PREFIXES, "Upheld", ":", "\n", "\f", ". ", '"', "\r\n", "   ", "Page 2 of 3", "12"]
    parts, total = [], 0
    while total < size:
        word = rng.choice(words)
        parts.append(word)
        total += len(word)
    return "Independent Medical Review IMR ISSUES, DECISIONS AND RATIONALES " + "".join(parts)


#: Shape name -> generator(size in characters) -> letter text.
SHAPES: dict[str, Callable[[int], str]] = {
    "every whitespace run inflated": every_whitespace_run_inflated,
    "long whitespace runs in labels": long_whitespace_runs_in_labels,
    "repeated label prefixes": repeated_label_prefixes,
    "number-only lines": number_only_lines,
    "open quote before sentences": open_quote_before_sentences,
    "blank lines before a heading": blank_lines_before_heading,
    "many items": many_items,
    "page breaks and furniture": page_breaks_and_furniture,
    "one long line": one_long_line,
    "punctuation runs": punctuation_runs,
    "many citations": many_citations,
    "partial heading with long runs": partial_heading,
    "one huge item heading": long_item_heading,
    "maximus: repeated item prefixes": maximus_repeated_items,
    "mpr: repeated section labels": mpr_shuffled_sections,
    "label soup": label_soup,
}


# --------------------------------------------------------------------------- PDF bombs


def build_pdf(objects: list[bytes]) -> bytes:
    """A PDF from object bodies (object 1 is the catalog), with a correct xref table."""
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _stream(data: bytes, extra: bytes = b"") -> bytes:
    return b"<< /Length %d %s >>\nstream\n" % (len(data), extra) + data + b"\nendstream"


_FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def _one_page(content: bytes, xobjects: bytes = b"", extra: list[bytes] | None = None) -> bytes:
    """Objects 1-5: catalog, pages, page (font F1, XObjects), its content, the font; then ``extra``."""
    page = (
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> /XObject << " + xobjects + b" >> >> >>"
    )
    return build_pdf(
        [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>", page, content, _FONT]
        + (extra or [])
    )


def text_pdf(text: str) -> bytes:
    """A small, valid one-page PDF showing ``text`` (ASCII, one line per line)."""
    lines = b" T* ".join(b"(" + line.encode("latin-1").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(
        b")", b"\\)"
    ) + b") Tj" for line in text.splitlines())
    return _one_page(_stream(b"BT /F1 10 Tf 12 TL 40 760 Td " + lines + b" ET"))


def _form(body: bytes, resources: bytes) -> bytes:
    return _stream(body, b"/Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources " + resources)


def self_referencing_forms() -> bytes:
    """A form XObject that draws itself (twice) and some text: unbounded recursion."""
    form = _form(b"/X Do /X Do BT /F1 12 Tf (loop) Tj ET", b"<< /Font << /F1 5 0 R >> /XObject << /X 6 0 R >> >>")
    return _one_page(_stream(b"/X Do"), b"/X 6 0 R", [form])


def form_fan_out(depth: int = 12, width: int = 10) -> bytes:
    """Forms that each draw the next one ``width`` times: width**depth text objects from 3 kB."""
    forms = []
    for level in range(depth):
        number = 6 + level
        if level == depth - 1:
            forms.append(_form(b"BT /F1 12 Tf 10 10 Td (IMR text) Tj ET", b"<< /Font << /F1 5 0 R >> >>"))
        else:
            forms.append(_form(b" ".join([b"/X Do"] * width), b"<< /XObject << /X %d 0 R >> >>" % (number + 1)))
    return _one_page(_stream(b"/X Do"), b"/X 6 0 R", forms)


def compressed_text_bomb(megabytes: int = 50) -> bytes:
    """A content stream of ``megabytes`` MB of text-showing operators, deflated twice: ~3 kB."""
    unit = b"(AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA) Tj\n"
    raw = b"BT /F1 1 Tf " + unit * (megabytes * 1024 * 1024 // len(unit)) + b"ET"
    twice = zlib.compress(zlib.compress(raw, 9), 9)
    return _one_page(_stream(twice, b"/Filter [/FlateDecode /FlateDecode]"))


def broken_page_tree() -> bytes:
    """A page tree whose kid is not a page (it points back at the Pages node)."""
    return build_pdf(
        [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >>", b"<< /Type /Foo >>"]
    )


#: Bomb name -> builder() -> PDF bytes.
PDF_BOMBS: dict[str, Callable[[], bytes]] = {
    "self-referencing forms": self_referencing_forms,
    "form fan-out": form_fan_out,
    "compressed-text bomb": compressed_text_bomb,
}
