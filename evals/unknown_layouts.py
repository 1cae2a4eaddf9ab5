"""Letters in layouts the layout parser has never seen, with their gold: for the whole-letter LLM path.

    python -m evals.unknown_layouts            # (re)writes evals/letters/unknown/ and evals/gold-unknown/
    python -m evals.run --backend local --jobs 1 --gold evals/gold-unknown --source pdfium --out evals/out-unknown

Each fixture re-renders a hand-labelled gold letter (``evals/gold/<stem>.json`` and its letter) into
one of three layouts no parser rule knows: the same facts and the same words where it matters
(case summary, guideline sections and rationales copied from the letter; items, decisions,
header, reviewer and patient from the gold labels), laid out differently:

- ``numbered``: items as numbered paragraphs, the decision on a line of its own ("Outcome" then
  "Upheld"), different section titles, header fields as "label value" lines;
- ``table``: the header as a bordered key/value table, each item as a "Service requested | ..."
  table with its result, then its reasoning;
- ``summary``: a summary list first ("(1) item .......... Overturned"), the reasoning for each
  item later in a discussion section.

The gold of a fixture is the source gold with the letter path changed, so no label comes from an
extractor. Nothing here is used at run time; ``tests/test_unknown_layouts.py`` checks the committed
files are what this script writes, that the parser does not know any of these layouts, and that
every gold item, decision word and conclusion is in its fixture.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from llm_extract import layouts, load
from llm_extract.compare import align_items
from llm_extract.normalize import collapse

from .gold import GOLD_DIR, LETTERS_DIR, GoldItem, GoldLetter

UNKNOWN_GOLD_DIR = GOLD_DIR.parent / "gold-unknown"
UNKNOWN_LETTERS_DIR = LETTERS_DIR / "unknown"

#: (source gold stem, layout): real letters of 1-6 items with both decisions and partial authorisations,
#: none of them a few-shot example's letter (prompts/examples.json).
FIXTURES: tuple[tuple[str, str], ...] = (
    ("CM17-0005589", "numbered"),
    ("CM16-0230548", "numbered"),
    ("CM16-0239569", "numbered"),
    ("CM17-0015218", "numbered"),
    ("CM16-0229336", "table"),
    ("CM16-0247624", "table"),
    ("CM17-0004133", "table"),
    ("CM16-0249724", "table"),
    ("CM16-0246487", "summary"),
    ("CM17-0012640", "summary"),
    ("CM17-0002198", "summary"),
    ("CM16-0235724", "summary"),
)

_SUMMARY_START = re.compile(r"CLINICAL\s+CASE\s+SUMMARY\s*(?:The\s+expert\s+reviewer\s+developed.*?records\s*:)?", re.I | re.S)
_SUMMARY_END = re.compile(r"IMR\s+ISSUES\s*,?\s+DECISIONS\s+AND\s+RATIONALES", re.I)


class Source:
    """One gold letter and the parts of its text a re-rendering needs."""

    def __init__(self, stem: str) -> None:
        self.gold = GoldLetter.model_validate_json((GOLD_DIR / f"{stem}.json").read_text(encoding="utf-8"))
        text = load(LETTERS_DIR / self.gold.letter).text
        parsed = layouts.parse(text)
        start, end = _SUMMARY_START.search(text), _SUMMARY_END.search(text)
        if not (start and end and parsed.items):
            raise ValueError(f"{stem}: not an imr-issues letter with a case summary")
        self.summary = collapse(text[start.end() : end.start()])
        names = [collapse(text[b.heading[0] : b.heading[1]]) for b in parsed.items]
        pairs = {g: p for g, p, _ in align_items([i.item for i in self.gold.items], names)}
        if len(pairs) != len(self.gold.items):
            raise ValueError(f"{stem}: the parser and the gold disagree on the items")
        self.parts: list[dict[str, str]] = []
        for index, item in enumerate(self.gold.items):
            block = parsed.items[pairs[index]]

            def part(span: tuple[int, int] | None) -> str:
                return collapse(text[span[0] : span[1]]) if span else ""

            rationale = part(block.rationale)
            if item.conclusion and collapse(item.conclusion) not in rationale:
                raise ValueError(f"{stem}: gold conclusion of {item.item!r} is not in its rationale")
            self.parts.append({"ca": part(block.ca), "mx": part(block.mx), "rationale": rationale})


def _word(item: GoldItem) -> str:
    return {"upheld": "Upheld", "overturned": "Overturned", "partial": "Partially Upheld"}[item.decision]


def _us(date: str | None) -> str:
    """An ISO gold date as the letters write it (MM/DD/YYYY)."""
    if not date:
        return "-"
    year, month, day = date.split("-")
    return f"{month}/{day}/{year}"


def _request(item: GoldItem) -> str:
    """The item as a heading, with a partial authorisation's history before it."""
    if item.original_request is None:
        return item.item
    return (
        f"Originally requested: {item.original_request}. Authorized by the Claims Administrator: "
        f"{item.authorized}. Remaining portion under review: {item.item}"
    )


def _people(src: Source) -> list[str]:
    reviewer = src.gold.reviewer
    return [
        f"Licensed in: {', '.join(reviewer.licensure) or '-'}",
        f"Board certification: {', '.join(reviewer.specialties) or '-'}",
    ]


def numbered(src: Source) -> str:
    case = src.gold.case
    lines = [
        "STATE OF CALIFORNIA - INDEPENDENT MEDICAL REVIEW",
        "NOTICE OF FINAL DETERMINATION",
        "",
        f"Reference {case.case_number}",
        f"Injury date {_us(case.date_of_injury)}",
        f"Utilization review date {_us(case.ur_denial_date)}",
        f"Application date {_us(case.application_received)}",
        f"Assignment date {_us(case.date_assigned)}",
        f"Determination date {_us(case.decision_date)}",
        f"Review track {case.priority or '-'}",
        "",
        "ABOUT THE PHYSICIAN REVIEWER",
        *_people(src),
        "",
        "BACKGROUND",
        src.summary,
        "",
        "OUTCOME OF EACH SERVICE IN DISPUTE",
    ]
    for n, (item, part) in enumerate(zip(src.gold.items, src.parts), 1):
        lines += [
            "",
            f"{n}. {_request(item)}",
            "Outcome",
            _word(item),
            f"Standards used by the utilization reviewer. {part['ca']}",
            f"Standards relied on by the physician reviewer. {part['mx']}",
            f"Reasoning. {part['rationale']}",
        ]
    return "\n".join(lines) + "\n"


def table(src: Source) -> str:
    case = src.gold.case
    rows = [
        ("IMR case", case.case_number or "-"),
        ("Date of injury", _us(case.date_of_injury)),
        ("Date of UR denial", _us(case.ur_denial_date)),
        ("IMR application received", _us(case.application_received)),
        ("Date assigned to reviewer", _us(case.date_assigned)),
        ("Date of this determination", _us(case.decision_date)),
        ("Priority", case.priority or "-"),
    ]
    width = max(len(k) for k, _ in rows)
    rule = f"+-{'-' * width}-+-{'-' * 20}-+"
    lines = ["FINAL DETERMINATION - INDEPENDENT REVIEW OF MEDICAL NECESSITY", "", rule]
    lines += [f"| {k.ljust(width)} | {v.ljust(20)} |" for k, v in rows] + [rule, ""]
    lines += ["Reviewer credentials", *_people(src), "", "Summary of the medical records", src.summary, ""]
    lines.append("Requested services and results")
    total = len(src.gold.items)
    for n, (item, part) in enumerate(zip(src.gold.items, src.parts), 1):
        lines += [
            "",
            f"Item {n} of {total}",
            f"Service requested | {_request(item)}",
            f"Result            | {_word(item).upper()}",
            f"Guidelines of the claims administrator | {part['ca']}",
            f"Guidelines of the expert reviewer      | {part['mx']}",
            f"Clinical reasoning for item {n}",
            part["rationale"],
        ]
    return "\n".join(lines) + "\n"


def summary(src: Source) -> str:
    case = src.gold.case
    lines = [
        "MAXIMUS FEDERAL SERVICES - IMR DETERMINATION",
        f"IMR number {case.case_number}; injured {_us(case.date_of_injury)}; UR decision {_us(case.ur_denial_date)};"
        f" applied {_us(case.application_received)}; assigned {_us(case.date_assigned)};"
        f" decided {_us(case.decision_date)}; {case.priority or '-'} review.",
        "",
        "DETERMINATION SUMMARY",
    ]
    for n, item in enumerate(src.gold.items, 1):
        lines.append(f"({n}) {_request(item)} {'.' * 8} {_word(item)}")
    lines += ["", "THE REVIEWER", *_people(src), "", "CASE HISTORY", src.summary, "", "DISCUSSION"]
    for n, (item, part) in enumerate(zip(src.gold.items, src.parts), 1):
        lines += [
            "",
            f"Regarding ({n}) {item.item}",
            f"The claims administrator applied: {part['ca']}",
            f"The reviewer applied: {part['mx']}",
            part["rationale"],
        ]
    return "\n".join(lines) + "\n"


LAYOUTS: dict[str, Callable[[Source], str]] = {"numbered": numbered, "table": table, "summary": summary}


def render(stem: str, kind: str) -> tuple[str, str, dict]:
    """(file name, letter text, gold JSON) of one fixture."""
    src = Source(stem)
    name = f"{stem}-{kind}"
    gold = src.gold.model_dump(mode="json")
    gold["letter"] = f"unknown/{name}.txt"
    gold["labeller"] = f"evals/unknown_layouts.py from gold/{stem}.json ({src.gold.labeller})"
    gold["notes"] = f"{kind} layout re-rendering of {src.gold.letter}. " + (src.gold.notes or "")
    return name, LAYOUTS[kind](src), gold


def main() -> None:
    UNKNOWN_LETTERS_DIR.mkdir(parents=True, exist_ok=True)
    UNKNOWN_GOLD_DIR.mkdir(parents=True, exist_ok=True)
    for stem, kind in FIXTURES:
        name, text, gold = render(stem, kind)
        (UNKNOWN_LETTERS_DIR / f"{name}.txt").write_text(text, encoding="utf-8")
        (UNKNOWN_GOLD_DIR / f"{name}.json").write_text(json.dumps(gold, indent=2, ensure_ascii=False) + "\n")
        print(f"{name}: {len(gold['items'])} item(s), {len(text)} characters")


if __name__ == "__main__":
    main()
