"""Overturn rates from a results file, overall and by group, each with a Wilson 95% interval.

Works on rows (:mod:`llm_extract.tables`), so every results format (JSONL, JSON, CSV, Parquet) gives
the same numbers. Definitions, stated once here and in the README:

- an item is *decided* when it has a decision; its *overturn rate* is the share of decided items
  whose denial was reversed in whole or in part (``overturned`` or ``partial``);
- a letter counts in a group when one of its items does; a letter that failed to extract counts
  in ``letters`` and ``failed``, never in items;
- multi-valued fields count an item once under each value: an item whose reviewer cited MTUS and
  ODG counts under both ``guideline_source`` groups, a reviewer with two specialties under both.

The interval is Wilson's score interval for a binomial proportion (:func:`wilson`): unlike the
normal approximation it stays inside [0, 1] and behaves for the small groups that breakdowns by
drug class produce (3 of 4 overturned is 0.75 with an interval of roughly [0.30, 0.95]).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

from .tables import COLUMN_TYPES, SOURCES

CONFIDENCE = 0.95
#: Two-sided normal quantile for CONFIDENCE (1.95996...).
Z = NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)
REVERSED = ("overturned", "partial")
NONE_LABEL = "(none)"

#: The breakdowns printed when no ``--by`` is given, in this order.
DEFAULT_BY = ("category", "subcategory", "guideline_source", "reviewer_specialty", "decision_year")
#: Groupings that are not plain columns: name -> (title, values of one row).
VIRTUAL: dict[str, tuple[str, Callable[[dict[str, Any]], list[Any]]]] = {
    "subcategory": (
        "category / subcategory (drug class for Pharmaceuticals)",
        lambda r: [f"{r['category']} / {r['subcategory']}"] if r.get("subcategory") else [r.get("category")],
    ),
    "drug_class": (
        "drug class (Pharmaceuticals)",
        lambda r: [r.get("subcategory")] if r.get("category") == "Pharmaceuticals" else [],
    ),
    "guideline_source": (
        "guideline source the reviewer cited",
        lambda r: [s for s in SOURCES if r.get(f"maximus_{s.lower()}_cited")] or [None],
    ),
    "claims_administrator_source": (
        "guideline source the claims administrator cited",
        lambda r: [s for s in SOURCES if r.get(f"claims_administrator_{s.lower()}_cited")] or [None],
    ),
    "reviewer_specialty": ("reviewer specialty", lambda r: list(r.get("reviewer_specialties") or []) or [None]),
}
TITLES = {"category": "DWC request category", "decision_year": "decision year"}


def wilson(successes: int, n: int, z: float = Z) -> tuple[float, float]:
    """Wilson score interval for ``successes`` out of ``n`` (``(0.0, 1.0)`` when n is 0).

    centre = (p + z²/2n) / (1 + z²/n); half-width = z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n).
    """
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact at the ends, not 1e-17 off
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


@dataclass
class Group:
    """One group's counts and overturn rate."""

    value: str
    letters: int
    items: int
    decided: int
    overturned: int
    partial: int
    rate: float | None
    low: float | None
    high: float | None


def known_fields() -> list[str]:
    """Every name ``--by`` accepts."""
    return sorted(set(VIRTUAL) | set(COLUMN_TYPES))


def _values(field: str) -> Callable[[dict[str, Any]], list[Any]]:
    if field in VIRTUAL:
        return VIRTUAL[field][1]
    if field not in COLUMN_TYPES:
        raise KeyError(field)
    if COLUMN_TYPES[field] == "list":
        return lambda r: list(r.get(field) or []) or [None]
    return lambda r: [r.get(field)]


def _group(value: Any, rows: Sequence[dict[str, Any]]) -> Group:
    items = [r for r in rows if r.get("item_index") is not None]
    decided = [r for r in items if r.get("decision")]
    overturned = sum(1 for r in decided if r["decision"] == "overturned")
    partial = sum(1 for r in decided if r["decision"] == "partial")
    reversed_ = overturned + partial
    low, high = wilson(reversed_, len(decided)) if decided else (None, None)
    return Group(
        value=NONE_LABEL if value is None or value == "" else str(value),
        letters=len({(r.get("file"), r.get("sha256")) for r in rows}),
        items=len(items),
        decided=len(decided),
        overturned=overturned,
        partial=partial,
        rate=reversed_ / len(decided) if decided else None,
        low=low,
        high=high,
    )


def breakdown(rows: Sequence[dict[str, Any]], field: str, min_items: int = 1) -> list[Group]:
    """One group per value of ``field`` (several per row for multi-valued fields).

    Sorted by decided items, most first (years and ages in their own order), so the groups whose
    rates mean something come first; groups with fewer than ``min_items`` items are left out.
    """
    values = _values(field)
    buckets: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("item_index") is None:
            continue
        for value in dict.fromkeys(values(row)):
            buckets.setdefault(value, []).append(row)
    groups = [_group(value, members) for value, members in buckets.items()]
    groups = [g for g in groups if g.items >= min_items]
    if field in COLUMN_TYPES and COLUMN_TYPES[field] in ("int", "date"):
        return sorted(groups, key=lambda g: (g.value == NONE_LABEL, g.value))
    return sorted(groups, key=lambda g: (g.value == NONE_LABEL, -g.decided, -(g.rate or 0), g.value))


def title(field: str) -> str:
    return VIRTUAL[field][0] if field in VIRTUAL else TITLES.get(field, field.replace("_", " "))


def summarize(rows: Sequence[dict[str, Any]], by: Iterable[str] = DEFAULT_BY, min_items: int = 1) -> dict[str, Any]:
    """Everything ``llm-extract stats`` shows, as plain data (what ``--json`` prints)."""
    by = list(by)
    unknown = [f for f in by if f not in VIRTUAL and f not in COLUMN_TYPES]
    if unknown:
        raise KeyError(unknown[0])
    letters = {(r.get("file"), r.get("sha256")) for r in rows}
    failed = {(r.get("file"), r.get("sha256")) for r in rows if r.get("error")}
    overall = _group("all", rows)
    return {
        "letters": len(letters),
        "failed_letters": len(failed),
        "items": overall.items,
        "confidence": CONFIDENCE,
        "interval": "wilson",
        "overall": asdict(overall),
        "breakdowns": [
            {"field": f, "title": title(f), "groups": [asdict(g) for g in breakdown(rows, f, min_items)]} for f in by
        ],
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def render_text(summary: dict[str, Any], *, max_label: int = 48) -> str:
    """The summary as aligned plain-text tables."""
    o = summary["overall"]
    lines = [
        f"{summary['letters']} letters ({summary['failed_letters']} failed), {summary['items']} items, "
        f"{o['decided']} decided: overturned {o['overturned'] + o['partial']} = {_pct(o['rate'])} "
        f"(95% CI {_pct(o['low'])}-{_pct(o['high'])}, Wilson)",
    ]
    for block in summary["breakdowns"]:
        groups = block["groups"]
        width = min(max_label, max([5] + [len(g["value"]) for g in groups]))
        lines += ["", f"By {block['title']}:", f"{'group':<{width}}  letters  items  overturned    rate  95% CI"]
        for g in groups:
            label = g["value"] if len(g["value"]) <= width else g["value"][: width - 1] + "\u2026"
            ci = f"{_pct(g['low'])}-{_pct(g['high'])}" if g["rate"] is not None else "-"
            lines.append(
                f"{label:<{width}}  {g['letters']:>7}  {g['items']:>5}  {g['overturned'] + g['partial']:>10}"
                f"  {_pct(g['rate']):>6}  {ci}"
            )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# The HTML report: bar charts with interval whiskers, inline SVG, no script, no network
# --------------------------------------------------------------------------------------------------

BAR_HEIGHT = 18
BAR_GAP = 6
LABEL_WIDTH = 330
PLOT_WIDTH = 420
COUNT_WIDTH = 150


def _chart(groups: list[dict[str, Any]]) -> dict[str, Any]:
    """Geometry for one bar chart: a bar per group at its rate, a whisker for its interval."""
    rows = []
    for index, g in enumerate(groups):
        y = index * (BAR_HEIGHT + BAR_GAP)
        rate = g["rate"]
        rows.append(
            {
                **g,
                "y": y,
                "mid": y + BAR_HEIGHT / 2,
                "bar": 0 if rate is None else rate * PLOT_WIDTH,
                "lo": None if g["low"] is None else g["low"] * PLOT_WIDTH,
                "hi": None if g["high"] is None else g["high"] * PLOT_WIDTH,
                "rate_text": _pct(rate),
                "ci_text": "-" if rate is None else f"{_pct(g['low'])}\u2013{_pct(g['high'])}",
            }
        )
    height = max(1, len(groups)) * (BAR_HEIGHT + BAR_GAP) + 24
    ticks = [{"x": PLOT_WIDTH * t / 4, "label": f"{25 * t}%"} for t in range(5)]
    return {"rows": rows, "height": height, "ticks": ticks}


def render_html(summary: dict[str, Any], *, source: str = "") -> str:
    """A self-contained page: the overall rate and one bar chart per breakdown (inline SVG)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("llm_extract", "templates"), autoescape=select_autoescape(["html", "j2"]))
    template = env.get_template("stats.html.j2")
    charts = [{**block, "chart": _chart(block["groups"])} for block in summary["breakdowns"]]
    return template.render(
        summary=summary,
        overall=summary["overall"],
        charts=charts,
        source=source,
        pct=_pct,
        geometry={"label": LABEL_WIDTH, "plot": PLOT_WIDTH, "count": COUNT_WIDTH, "bar": BAR_HEIGHT},
    )
