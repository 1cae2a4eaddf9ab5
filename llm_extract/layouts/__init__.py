"""The layout parser: each layout *family* of IMR letters is one module here.

A family finds where things are in a letter, as offsets: header, reviewer and patient fields
(:mod:`llm_extract.fields`, shared), and per item its heading, decision, partial-authorisation parts
and sections (claims administrator guideline, MAXIMUS guideline, rationale). It does not decide what
anything *means* beyond the decision word: :mod:`llm_extract.rules` turns the :class:`Parsed` into a
Determination, and the LLM backend uses the same segmentation for per-item prompts and cross-checks.

A family is a module of this package (found by :func:`families`, nothing to register) holding
``NAME``, ``PRIORITY`` (families are tried in increasing order), ``BY_ITEMS`` (whether a letter
without its title may be read by its items), ``LABELS`` (section kind -> label regex),
``title(text)`` (the section title it is recognised by, or None) and ``parse(text, section,
parsed)``; item headings come from the shared decision grammar (:mod:`.grammar`), plus the family's
own heading grammar if it has one. A letter is read by the first family whose title it carries;
without any title, by the first ``BY_ITEMS`` family whose items it carries (decision-grammar
headings followed by that family's labels), so a renamed section still parses. A letter no family
reads is ``unknown`` (flagged ``layout_unknown``), one whose family finds no item is flagged
``no_items``: never a silent empty result.

Families, in the order they are tried: ``mpr-2013`` (:mod:`.mpr_2013`), ``maximus-2015``
(:mod:`.maximus_2015`), ``imr-issues`` (:mod:`.imr_issues`). Adding one: see the README ("Layouts it
reads").
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from types import ModuleType

from ..errors import NotAnIMRLetterError
from ..fields import read_fields
from ..normalize import blank, collapse, furniture_spans
from ..schema import FlagCode
from .base import ItemBlock, Note, Parsed, Span, check_spans
from .grammar import DECISION_WORD

__all__ = ["FAMILIES", "ItemBlock", "Note", "Parsed", "Span", "detect", "families", "page_furniture", "parse"]

#: What a module must define to be a layout family.
FAMILY_ATTRIBUTES = ("NAME", "PRIORITY", "BY_ITEMS", "LABELS", "title", "parse")


def families() -> tuple[ModuleType, ...]:
    """Every layout family in this package, in the order they are tried (``PRIORITY``, then name).

    A module is a family when it defines ``NAME`` (the shared helpers, :mod:`.base` and
    :mod:`.grammar`, do not); a family missing any other of :data:`FAMILY_ATTRIBUTES` is a
    mistake that raises at import rather than being skipped silently.
    """
    found = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if not hasattr(module, "NAME"):
            continue
        missing = [name for name in FAMILY_ATTRIBUTES if not hasattr(module, name)]
        if missing:
            raise TypeError(f"layout family {module.__name__} lacks {', '.join(missing)}")
        found.append(module)
    return tuple(sorted(found, key=lambda m: (m.PRIORITY, m.NAME)))


#: The layout families, in the order their titles are looked for.
FAMILIES: tuple[ModuleType, ...] = families()
#: Families that can be recognised by their items alone (decision-grammar headings with their labels).
BY_ITEMS: tuple[ModuleType, ...] = tuple(f for f in FAMILIES if f.BY_ITEMS)

_F = re.IGNORECASE
#: Lines that are never page furniture, however often they repeat at page edges: every family's
#: section labels and the decision words.
PROTECTED = re.compile(
    "|".join([DECISION_WORD, *(p.pattern for family in FAMILIES for p in family.LABELS.values())]), _F
)
#: Signals that a text is an IMR letter at all; two distinct ones are needed without a layout.
IMR_MARKERS = [
    re.compile(p, _F)
    for p in (
        r"Independent\s+Medical\s+Review",
        r"\bIMR\b",
        r"MAXIMUS",
        r"Decision\s+rationale",
        r"Claims\s+Administrator",
        r"Utilization\s+Review",
    )
]


def page_furniture(text: str) -> list[Span]:
    """The letter's page furniture (known shapes, and running headers/footers found by repetition),
    never a section label or a decision: what segmentation and the verifier both read past."""
    return furniture_spans(text, PROTECTED)


def detect(text: str) -> str:
    """Name of the letter's layout family, or ``unknown``; raise if it is not an IMR letter at all."""
    return parse(text).layout


def parse(text: str) -> Parsed:
    """Segment ``text`` (``load(letter).text``) by its layout family."""
    furniture = page_furniture(text)
    clean = blank(text, furniture)
    parsed = Parsed(layout="unknown", furniture=furniture)
    fields = parsed.fields = read_fields(text)
    parsed.notes += [Note(p.code, p.severity, p.message, p.span) for p in fields.problems]
    for family in FAMILIES:
        found = family.title(clean)
        if found is not None:
            parsed.layout, parsed.section = family.NAME, found.span()
            family.parse(clean, found.span(), parsed)
            break
    else:
        _by_items(clean, parsed)
    if parsed.layout == "unknown":
        if sum(1 for marker in IMR_MARKERS if marker.search(text)) < 2:
            raise NotAnIMRLetterError("this does not look like an IMR determination letter")
        parsed.notes.append(
            Note(FlagCode.LAYOUT_UNKNOWN, "error", "IMR letter of an unknown layout: no items could be segmented")
        )
    elif not parsed.items:
        parsed.notes.append(
            Note(FlagCode.NO_ITEMS, "error", f"no disputed items found in the {parsed.layout} layout")
        )
    _duplicates(clean, parsed)
    _repeated_pages(text, parsed)
    check_spans(parsed)
    return parsed


#: A page shorter than this (non-blank characters) may repeat by chance (a cover sheet, a blank form).
REPEATED_PAGE_MIN_CHARS = 200


def _repeated_pages(text: str, parsed: Parsed) -> None:
    """A page printed twice (word for word the same as another page) duplicates whatever it holds:
    an error, since the items around it may have been read twice or out of order."""
    if "\f" not in text:
        return
    seen: dict[str, int] = {}
    start = 0
    for number, page in enumerate(text.split("\f"), 1):
        key = " ".join(page.split())
        if len(key) >= REPEATED_PAGE_MIN_CHARS:
            first = seen.setdefault(key, number)
            if first != number:
                parsed.notes.append(
                    Note(
                        FlagCode.DUPLICATE_PAGE,
                        "error",
                        f"page {number} repeats page {first} word for word: a page printed twice",
                        (start, start + len(page)),
                    )
                )
        start += len(page) + 1


def _duplicates(clean: str, parsed: Parsed) -> None:
    """Two items with one heading: a page printed twice, or two requests the letter does not tell
    apart. Either way a reader must look (an error, never merged or dropped silently)."""
    seen: dict[str, int] = {}
    for index, block in enumerate(parsed.items):
        name = collapse(clean[block.heading[0] : block.heading[1]])
        if not name:
            continue
        first = seen.setdefault(name.casefold(), index)
        if first != index:
            parsed.notes.append(
                Note(
                    FlagCode.DUPLICATE_ITEM,
                    "error",
                    f"item {index + 1} repeats the heading of item {first + 1} ({name[:80]!r}): "
                    "a page printed twice, or two requests the letter does not tell apart",
                    block.heading,
                    index,
                )
            )


def _by_items(clean: str, parsed: Parsed) -> None:
    """A letter without any family's title, read by the first family whose every item is headed by
    the decision grammar and carries that family's rationale label (anything less stays unknown)."""
    for family in BY_ITEMS:
        trial = Parsed(layout=family.NAME, fields=parsed.fields, furniture=parsed.furniture)
        family.parse(clean, (0, 0), trial)
        if trial.items and all(b.decision_span is not None and "rationale" in b.labels for b in trial.items) and not any(
            n.severity == "error" for n in trial.notes
        ):
            parsed.layout, parsed.items = family.NAME, trial.items
            parsed.notes += trial.notes
            return
