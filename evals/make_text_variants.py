"""Write every gold PDF letter's text as other common tools extract it: evaluation data.

Users feed ``extract()`` text that some other tool pulled out of a PDF, and each tool lays the
same page out differently (the header block's labels and values in separate columns, label and
value on one line with wide gaps, lines broken elsewhere, hyphens dropped). The evaluation
(``python -m evals.run``) scores every metric on each of these texts as well as on the PDFs
themselves (pdfium), so a parser that only reads one tool's layout fails the release gate.

Run once, commit the output (``evals/letters/variants/<source>/<letter>.txt`` and
``manifest.json``); the tools are generation-time only, never runtime dependencies::

    apt-get install poppler-utils                 # pdftotext
    pip install -e ".[variants]"                  # pdfminer.six, pypdf (+ cryptography), PyMuPDF
    python -m evals.make_text_variants            # all sources, every gold PDF
    python -m evals.make_text_variants --source pypdf --check   # exit 1 if the committed files differ

The letters are AES-encrypted with an empty user password; every tool is given that password.
Pages are joined with a form feed, as pdftotext and pdfminer do themselves (``load()`` reads a
form feed as a page break, so evidence pages stay right). Each file is written exactly as the tool
returned it (UTF-8, no newline translation).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from evals.gold import GOLD_DIR, LETTERS_DIR, load_gold

VARIANTS_DIRNAME = "variants"
VARIANTS_DIR = LETTERS_DIR / VARIANTS_DIRNAME
MANIFEST = VARIANTS_DIR / "manifest.json"
PAGE_BREAK = "\f"
#: The letters' user password (they are encrypted only against editing).
PASSWORD = ""
#: Seconds one pdftotext call may take before the letter counts as unreadable.
PDFTOTEXT_TIMEOUT = 60


def _pdftotext(path: Path, *extra: str) -> str:
    exe = shutil.which("pdftotext")
    if exe is None:
        raise SystemExit("pdftotext not found: apt-get install poppler-utils")
    done = subprocess.run(
        [exe, "-enc", "UTF-8", "-upw", PASSWORD, *extra, str(path), "-"],
        capture_output=True,
        check=True,
        timeout=PDFTOTEXT_TIMEOUT,
    )
    return done.stdout.decode("utf-8")


def pdftotext(path: Path) -> str:
    """poppler's pdftotext, default (reading-order) mode: the most common tool."""
    return _pdftotext(path)


def pdftotext_layout(path: Path) -> str:
    """``pdftotext -layout``: the physical layout kept with spaces (columns side by side)."""
    return _pdftotext(path, "-layout")


def pdfminer(path: Path) -> str:
    """pdfminer.six ``extract_text`` with its default layout analysis (it ends pages with a form feed)."""
    from pdfminer.high_level import extract_text

    return extract_text(str(path), password=PASSWORD)


def pypdf(path: Path) -> str:
    """pypdf ``page.extract_text()`` per page, joined with form feeds."""
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    if reader.is_encrypted:
        reader.decrypt(PASSWORD)
    return PAGE_BREAK.join(page.extract_text() for page in reader.pages)


def pymupdf(path: Path) -> str:
    """PyMuPDF ``page.get_text()`` per page, joined with form feeds (its documented recipe)."""
    import pymupdf as fitz

    with fitz.open(str(path)) as doc:
        if doc.needs_pass:
            doc.authenticate(PASSWORD)
        return PAGE_BREAK.join(page.get_text() for page in doc)


#: Source name (the directory under ``variants/``) -> extractor, and the tool it reports.
SOURCES: dict[str, tuple[Callable[[Path], str], str]] = {
    "pdftotext": (pdftotext, "poppler-utils"),
    "pdftotext-layout": (pdftotext_layout, "poppler-utils"),
    "pdfminer": (pdfminer, "pdfminer.six"),
    "pypdf": (pypdf, "pypdf"),
    "pymupdf": (pymupdf, "pymupdf"),
}


def tool_version(tool: str) -> str:
    if tool == "poppler-utils":
        exe = shutil.which("pdftotext")
        if exe is None:
            return "missing"
        done = subprocess.run([exe, "-v"], capture_output=True, text=True, check=False)
        first = (done.stderr or done.stdout).splitlines()
        return first[0] if first else "unknown"
    try:
        return metadata.version(tool)
    except metadata.PackageNotFoundError:
        return "missing"


def gold_pdfs(gold_dir: Path = GOLD_DIR, letters_dir: Path = LETTERS_DIR) -> list[Path]:
    """Every gold letter that is a PDF, in gold order."""
    return [letters_dir / g.letter for g in load_gold(gold_dir) if g.letter.lower().endswith(".pdf")]


def variant_path(source: str, letter: str, variants_dir: Path = VARIANTS_DIR) -> Path:
    """Where source ``source``'s text of gold letter ``letter`` (a path under letters/) lives."""
    return variants_dir / source / (Path(letter).stem + ".txt")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m evals.make_text_variants", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--source", action="append", choices=sorted(SOURCES), help="only these (repeatable)")
    parser.add_argument("--out", type=Path, default=VARIANTS_DIR, help="variants directory")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if any file would change")
    args = parser.parse_args(argv)
    sources = args.source or list(SOURCES)
    pdfs = gold_pdfs()
    changed: list[str] = []
    manifest_path = args.out / MANIFEST.name
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else {}
    manifest.setdefault("sources", {})
    manifest["letters"] = {p.stem: hashlib.sha256(p.read_bytes()).hexdigest() for p in pdfs}
    for source in sources:
        extractor, tool = SOURCES[source]
        for pdf in pdfs:
            text = extractor(pdf)
            target = variant_path(source, pdf.name, args.out)
            data = text.encode("utf-8")
            if target.is_file() and target.read_bytes() == data:
                continue
            changed.append(str(target))
            if not args.check:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        manifest["sources"][source] = {"tool": tool, "version": tool_version(tool), "letters": len(pdfs)}
    if args.check:
        for name in changed:
            print(f"would change: {name}")
        return 1 if changed else 0
    manifest["sources"] = dict(sorted(manifest["sources"].items()))
    args.out.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    print(f"{len(changed)} files written for {len(sources)} sources x {len(pdfs)} letters into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
