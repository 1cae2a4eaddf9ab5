"""Rules backend throughput and verifier cost, measured side by side in one run.

    python benchmarks/bench_rules.py [--repeat N]

Prints, for the 158 real PDFs in evals/letters/imr-2016-2017 on one core:
- letters/s for pdfium text extraction alone (the floor) and for PDF -> verified Determination;
- the verifier's cost relative to a plain ``str.find`` pass over the same quotes, citations and
  evidence, and what the structural checks add;
- seconds to extract a 3 MB letter (linear-time check), against the same work on a 0.3 MB letter.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pypdfium2 as pdfium

from llm_extract import Verifier, extract, load, verify
from llm_extract.checks import check

ROOT = Path(__file__).resolve().parent.parent
PDFS = sorted((ROOT / "evals" / "letters" / "imr-2016-2017").glob("*.pdf"))


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def pdfium_only() -> None:
    for path in PDFS:
        doc = pdfium.PdfDocument(str(path))
        "\f".join(doc[i].get_textpage().get_text_range() for i in range(len(doc)))
        doc.close()


def full_pipeline() -> None:
    for path in PDFS:
        extract(path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = len(PDFS)

    floor = best_of(args.repeat, pdfium_only)
    full = best_of(args.repeat, full_pipeline)
    print(f"letters: {n} real PDFs, 1 process")
    print(f"pdfium text only        : {n / floor:8.1f} letters/s")
    print(f"PDF -> verified result  : {n / full:8.1f} letters/s   ({full / floor:.2f}x the pdfium floor)")

    letters = [load(p) for p in PDFS]
    results = [extract(letter) for letter in letters]
    pairs = [
        (
            letter,
            [
                g.text
                for item in r.items
                for g in (*item.quotes, *item.claims_administrator_guideline, *item.maximus_guideline)
            ]
            + [g.text for g in r.evidence.values()],
        )
        for letter, r in zip(letters, results)
    ]
    count = sum(len(q) for _, q in pairs)

    def plain_find() -> None:
        for letter, quotes in pairs:
            for q in quotes:
                letter.text.find(q)

    def verifier() -> None:
        for letter, result in zip(letters, results):
            verify(result, letter)

    def verifier_locate_only() -> None:
        for letter, quotes in pairs:
            v = Verifier(letter.text)
            for q in quotes:
                v.locate(q)

    def structural_checks() -> None:
        for letter, result in zip(letters, results):
            check(result, letter.text)

    t_find = best_of(args.repeat * 3, plain_find)
    t_checks = best_of(args.repeat * 3, structural_checks)
    t_locate = best_of(args.repeat * 3, verifier_locate_only)
    t_verify = best_of(args.repeat * 3, verifier)
    print(f"strings verified        : {count}")
    print(f"str.find pass           : {t_find * 1e3:8.2f} ms")
    print(f"verifier locate()       : {t_locate * 1e3:8.2f} ms   ({t_locate / t_find:.2f}x str.find)")
    print(
        f"verify(Determination)   : {t_verify * 1e3:8.2f} ms   ({t_verify / t_find:.2f}x str.find, incl. pydantic copies"
        " and the structural checks)"
    )
    print(f"  of which checks       : {t_checks * 1e3:8.2f} ms   ({t_checks / len(letters) * 1e3:.2f} ms a letter)")

    base = letters[0].text
    small = base * max(1, 300_000 // len(base))
    large = base * max(1, 3_000_000 // len(base))
    t_small = best_of(1, lambda: extract(small))
    t_large = best_of(1, lambda: extract(large))
    print(f"0.3 MB letter           : {t_small:8.2f} s")
    print(
        f"3 MB letter             : {t_large:8.2f} s   ({t_large / t_small:.1f}x for {len(large) / len(small):.1f}x the text)"
    )
    fake = "The MRI showed a complete rotator cuff tear requiring immediate surgical repair."
    v = Verifier(large)
    t_miss = best_of(1, lambda: v.locate(fake))
    print(f"3 MB fabricated quote   : {t_miss:8.2f} s   (all tiers tried, nothing found)")


if __name__ == "__main__":
    main()
