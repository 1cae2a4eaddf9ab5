"""Writers for the evaluation report: ``report.json``, ``report.md`` and ``report.html``.

The JSON is the record (stable keys, compared by ``--baseline``); Markdown is for a pull request;
the HTML is for a reviewer working through mismatches. The HTML is one self-contained file
(inline CSS and SVG, no scripts, no network) and every string that came from a letter, a gold
file or the extractor goes through :func:`html.escape`, because letters are untrusted text.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from evals.metrics import letter_id

REPORT_VERSION = "2"
JSON_NAME = "report.json"
MD_NAME = "report.md"
HTML_NAME = "report.html"
#: Width in pixels of the value bar drawn for each metric in the HTML report.
BAR_WIDTH = 220
#: The metrics shown side by side for every text source (the letters as PDFs, and as other tools
#: extract them): a parser that reads only one tool's layout shows up here.
SOURCE_METRICS = {
    "items": "items",
    "decisions": "decisions",
    "header": "header",
    "reviewer": "reviewer",
    "patient": "patient",
    "conclusion_grounding": "conclusion",
    "evidence_missing": "no evidence",
    "fabricated_quotes": "fabricated",
    "failed_letters": "failed",
}


# --------------------------------------------------------------------------------------------
# Formatting helpers shared by the writers and the console
# --------------------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 3) -> str:
    """A metric value for people: fixed decimals for ratios, integers for counts, '-' for none."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 2):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def fmt_metric(entry: dict[str, Any], key: str = "value") -> str:
    """A summary entry's value (or CI bound): counts as integers, ratios with three decimals."""
    value = entry.get(key)
    if entry["kind"] == "count" and value is not None:
        return f"{value:g}"
    return fmt(value)


def fmt_ci(entry: dict[str, Any]) -> str:
    if entry.get("ci_low") is None:
        return "-"
    return f"[{fmt_metric(entry, 'ci_low')}, {fmt_metric(entry, 'ci_high')}]"


def fmt_counts(entry: dict[str, Any]) -> str:
    """tp/fp/fn for P/R/F1 metrics, correct/total for accuracies, the count for counts."""
    if entry["kind"] == "prf":
        return f"tp {entry['tp']} fp {entry['fp']} fn {entry['fn']}"
    if entry["kind"] == "accuracy":
        return f"{entry['correct']}/{entry['total']}"
    return str(entry["count"])


def fmt_value(value: Any) -> str:
    """A gold or predicted value in a mismatch, compact and on one line."""
    if value is None:
        return "(none)"
    if isinstance(value, list):
        return "[" + "; ".join(str(v) for v in value) + "]" if value else "[]"
    return " ".join(str(value).split())


#: The same columns titled to fit a 110-character console.
SOURCE_SHORT = {
    "items": "items",
    "decisions": "dec.",
    "header": "header",
    "reviewer": "rev.",
    "patient": "pat.",
    "conclusion_grounding": "concl.",
    "evidence_missing": "no evid.",
    "fabricated_quotes": "fabr.",
    "failed_letters": "failed",
}


def source_headers(short: bool = False) -> list[str]:
    """Column titles of the per-source table (console: ``short``; Markdown, HTML)."""
    return [
        "source",
        "n" if short else "letters",
        *(SOURCE_SHORT if short else SOURCE_METRICS).values(),
        "result",
    ]


def source_rows(report: dict[str, Any]) -> list[list[str]]:
    """One row per text source: its letter count, the :data:`SOURCE_METRICS` and pass/FAIL."""
    rows = []
    for name, entry in report.get("sources", {}).items():
        summary = entry["summary"]
        rows.append(
            [
                name,
                str(entry["letters"]["total"]),
                *(fmt_metric(summary[m]) for m in SOURCE_METRICS),
                "pass" if entry["passed"] else "FAIL",
            ]
        )
    return rows


def failed_source_thresholds(report: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(source, threshold, entry) for every threshold a non-primary source failed."""
    primary = report.get("primary_source")
    return [
        (source, name, t)
        for source, entry in report.get("sources", {}).items()
        if source != primary
        for name, t in entry["thresholds"].items()
        if not t["passed"]
    ]


# --------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------


def write_json(report: dict[str, Any], out: Path) -> Path:
    path = out / JSON_NAME
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------


def md_escape(text: str) -> str:
    """Table-safe, HTML-inert Markdown text (a letter's "<script>" must not render as HTML)."""
    return html.escape(" ".join(text.split()), quote=False).replace("|", "\\|").replace("`", "\\`")


def _md_comparison(comparison: dict[str, Any]) -> list[str]:
    lines = [f"## Comparison with `{md_escape(comparison['baseline'])}`", ""]
    for verdict in ("regressed", "improved"):
        names = comparison[verdict]
        lines.append(f"**{verdict.capitalize()} metrics ({len(names)}):**")
        lines.append("")
        for name in names:
            m = comparison["metrics"][name]
            lines.append(f"- `{name}`: {fmt(m['baseline'])} → {fmt(m['current'])} (Δ {m['delta']:+.4f})")
        if not names:
            lines.append("- none")
        lines.append("")
    letters = comparison["letters"]
    for verdict in ("regressed", "improved"):
        rows = letters[verdict]
        lines.append(f"**Letters {verdict} ({len(rows)}):** mismatch count baseline → now")
        lines.append("")
        lines += [f"- {md_escape(r['letter'])}: {r['baseline']} → {r['current']}" for r in rows] or ["- none"]
        lines.append("")
    for verdict in ("added", "removed"):
        if letters[verdict]:
            lines.append(f"**Letters {verdict}:** " + ", ".join(md_escape(x) for x in letters[verdict]))
            lines.append("")
    return lines


def write_markdown(report: dict[str, Any], out: Path) -> Path:
    summary = report["summary"]
    lines = [
        f"# Evaluation report: backend `{report['backend']}`",
        "",
        f"**{'PASSED' if report['passed'] else 'FAILED'}** — {report['letters']['total']} letters, "
        f"{report['letters']['gold_items']} gold items, {report['letters']['predicted_items']} predicted items, "
        f"{len(report['letters']['failed'])} failed letters.",
        "",
        "## Thresholds",
        "",
        "| threshold | metric | limit | value | result |",
        "|---|---|---|---|---|",
    ]
    for name, t in report["thresholds"].items():
        lines.append(
            f"| `{name}` | `{t['metric']}` | {t['op']} {fmt(t['limit'])} | {fmt(t['value'])} | "
            f"{'pass' if t['passed'] else '**FAIL**'} |"
        )
    if len(report.get("sources", {})) > 1:
        headers = source_headers()
        lines += [
            "",
            "## Per text source",
            "",
            "Every threshold applies to each source; the summary below is "
            f"`{report.get('primary_source')}`'s.",
            "",
            "| " + " | ".join(headers) + " |",
            "|" + "---|" * len(headers),
        ]
        lines += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in source_rows(report)]
        failed = failed_source_thresholds(report)
        if failed:
            lines.append("")
            lines += [
                f"- **FAIL** `{source}` `{name}`: `{t['metric']}` = {fmt(t['value'])} (needs {t['op']} "
                f"{fmt(t['limit'])})"
                for source, name, t in failed
            ]
    lines += [
        "",
        "## Summary",
        "",
        "| metric | value | 95% CI | counts | precision | recall |",
        "|---|---|---|---|---|---|",
    ]
    for name in summary:
        e = summary[name]
        lines.append(
            f"| `{name}` | {fmt_metric(e)} | {fmt_ci(e)} | {fmt_counts(e)} | "
            f"{fmt(e.get('precision'))} | {fmt(e.get('recall'))} |"
        )
    lines.append("")
    if report.get("comparison"):
        lines += _md_comparison(report["comparison"])
    flags = report["flags"]
    lines += ["## Flags", ""]
    lines += [f"- `{code}`: {n}" for code, n in flags["by_code"].items()] or ["- none"]
    if flags["letters_with_errors"]:
        lines.append("")
        lines.append(
            "Letters with error flags: " + ", ".join(md_escape(x) for x in flags["letters_with_errors"])
        )
    lines += ["", "## Letters with mismatches", ""]
    rows = [r for r in report["per_letter"] if r["mismatches"] or r["error"]]
    if rows:
        lines += [
            "| letter | layout | gold items | predicted | matched | mismatches | error |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            lines.append(
                f"| {md_escape(r['id'])} | {r['layout'] or '-'} | {r['gold_items']} | {r['predicted_items']} | "
                f"{r['matched_items']} | {r['mismatches']} | {md_escape(r['error'] or '')} |"
            )
    else:
        lines.append("None: every letter agrees with its gold file.")
    lines += ["", "## Mismatches", ""]
    current = None
    for m in report["mismatches"]:
        if m["letter"] != current:
            current = m["letter"]
            lines += ["", f"### {md_escape(letter_id(current))} (`{md_escape(current)}`)", ""]
        item = f" · item “{md_escape(m['item'])}”" if m["item"] else ""
        lines.append(
            f"- **{m['kind']}** `{m['field']}`{item}: gold {md_escape(fmt_value(m['gold']))}; "
            f"predicted {md_escape(fmt_value(m['predicted']))}"
        )
        if m["context"]:
            lines.append(f"  > {md_escape(m['context'])}")
    if not report["mismatches"]:
        lines.append("None.")
    for source, entry in report.get("sources", {}).items():
        if source == report.get("primary_source") or not entry["mismatches"]:
            continue
        lines += ["", f"## Mismatches in text source `{md_escape(source)}` ({len(entry['mismatches'])})", ""]
        for m in entry["mismatches"]:
            item = f" · item “{md_escape(m['item'])}”" if m["item"] else ""
            lines.append(
                f"- {md_escape(letter_id(m['letter']))} **{m['kind']}** `{m['field']}`{item}: gold "
                f"{md_escape(fmt_value(m['gold']))}; predicted {md_escape(fmt_value(m['predicted']))}"
            )
    path = out / MD_NAME
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1b1f24;max-width:1200px}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;margin:.5rem 0}th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;
vertical-align:top}th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;color:#fff}
.badge.pass{background:#1a7f37;color:#fff}.badge.fail{background:#cf222e;color:#fff}
code{background:#f6f8fa;padding:0 3px}blockquote{margin:.2rem 0 .6rem 1rem;color:#57606a;border-left:3px solid
#d0d7de;padding-left:.6rem;white-space:pre-wrap}details{margin:.4rem 0}summary{cursor:pointer;font-weight:600}
.kind{font-family:ui-monospace,monospace;font-size:12px;background:#fff8c5;padding:0 4px}
"""


def esc(value: Any) -> str:
    """Every untrusted string goes through here before it reaches the page."""
    return html.escape("" if value is None else str(value), quote=True)


def svg_bar(entry: dict[str, Any]) -> str:
    """An inline SVG bar of a ratio metric with its CI as a whisker; counts get no bar."""
    value = entry.get("value")
    if entry["kind"] == "count" or value is None:
        return ""
    good = value if entry["higher_is_better"] else 1 - value
    color = "#1a7f37" if good >= 0.95 else "#bf8700" if good >= 0.8 else "#cf222e"
    w = BAR_WIDTH
    parts = [
        f'<svg width="{w}" height="14" viewBox="0 0 {w} 14" role="img" aria-label="{esc(fmt(value))}">',
        f'<rect x="0" y="2" width="{w}" height="10" fill="#eaeef2"/>',
        f'<rect x="0" y="2" width="{value * w:.1f}" height="10" fill="{color}"/>',
    ]
    if entry.get("ci_low") is not None:
        lo, hi = entry["ci_low"] * w, entry["ci_high"] * w
        parts.append(f'<line x1="{lo:.1f}" y1="7" x2="{hi:.1f}" y2="7" stroke="#1b1f24" stroke-width="1.5"/>')
        parts.append(f'<line x1="{lo:.1f}" y1="3" x2="{lo:.1f}" y2="11" stroke="#1b1f24"/>')
        parts.append(f'<line x1="{hi:.1f}" y1="3" x2="{hi:.1f}" y2="11" stroke="#1b1f24"/>')
    parts.append("</svg>")
    return "".join(parts)


def _html_table(
    headers: Iterable[str], rows: Iterable[Iterable[str]], numeric: set[int] | None = None
) -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _html_comparison(comparison: dict[str, Any]) -> str:
    out = [f"<h2>Comparison with <code>{esc(comparison['baseline'])}</code></h2>"]
    rows = []
    for name, m in comparison["metrics"].items():
        if m["change"] == "same":
            continue
        cls = "pass" if m["change"] == "improved" else "fail"
        rows.append(
            [
                f"<code>{esc(name)}</code>",
                esc(fmt(m["baseline"])),
                esc(fmt(m["current"])),
                esc(f"{m['delta']:+.4f}"),
                f'<span class="{cls}">{esc(m["change"])}</span>',
            ]
        )
    out.append(
        _html_table(["metric", "baseline", "now", "delta", "change"], rows, {1, 2, 3})
        if rows
        else "<p>No metric changed.</p>"
    )
    letters = comparison["letters"]
    rows = [
        [esc(r["letter"]), esc(r["baseline"]), esc(r["current"]), f'<span class="{cls}">{verdict}</span>']
        for verdict, cls in (("regressed", "fail"), ("improved", "pass"))
        for r in letters[verdict]
    ]
    out.append(
        _html_table(["letter", "mismatches before", "now", "change"], rows, {1, 2})
        if rows
        else "<p>No letter's mismatch count changed.</p>"
    )
    for verdict in ("added", "removed"):
        if letters[verdict]:
            out.append(f"<p>Letters {verdict}: {esc(', '.join(letters[verdict]))}</p>")
    return "".join(out)


def render_html(report: dict[str, Any]) -> str:
    summary = report["summary"]
    passed = report["passed"]
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        f"<title>Evaluation report: {esc(report['backend'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>Evaluation report: backend <code>{esc(report['backend'])}</code> "
        f'<span class="badge {"pass" if passed else "fail"}">{"PASSED" if passed else "FAILED"}</span></h1>',
        f"<p>{esc(report['letters']['total'])} letters, {esc(report['letters']['gold_items'])} gold items, "
        f"{esc(report['letters']['predicted_items'])} predicted items, "
        f"{esc(len(report['letters']['failed']))} failed letters. Options: "
        f"<code>{esc(json.dumps(report['options'], ensure_ascii=False))}</code></p>",
        "<h2>Thresholds</h2>",
    ]
    rows = []
    for name, t in report["thresholds"].items():
        cls = "pass" if t["passed"] else "fail"
        rows.append(
            [
                f"<code>{esc(name)}</code>",
                f"<code>{esc(t['metric'])}</code>",
                esc(f"{t['op']} {fmt(t['limit'])}"),
                esc(fmt(t["value"])),
                f'<span class="{cls}">{"pass" if t["passed"] else "FAIL"}</span>',
            ]
        )
    parts.append(_html_table(["threshold", "metric", "limit", "value", "result"], rows, {3}))
    if len(report.get("sources", {})) > 1:
        parts.append(
            "<h2>Per text source</h2><p>Every threshold applies to each source; the metrics below "
            f"are <code>{esc(report.get('primary_source'))}</code>'s.</p>"
        )
        rows = [
            [
                esc(c)
                if i < len(row) - 1
                else f'<span class="{"pass" if c == "pass" else "fail"}">{esc(c)}</span>'
                for i, c in enumerate(row)
            ]
            for row in source_rows(report)
        ]
        parts.append(_html_table(source_headers(), rows, set(range(1, len(SOURCE_METRICS) + 2))))
        failed = failed_source_thresholds(report)
        if failed:
            parts.append(
                "<ul>"
                + "".join(
                    f'<li><span class="fail">FAIL</span> <code>{esc(source)}</code> <code>{esc(name)}</code>: '
                    f"{esc(t['metric'])} = {esc(fmt(t['value']))} (needs {esc(t['op'])} {esc(fmt(t['limit']))})</li>"
                    for source, name, t in failed
                )
                + "</ul>"
            )
    parts.append("<h2>Metrics</h2>")
    rows = []
    for name in summary:
        e = summary[name]
        rows.append(
            [
                f"<code>{esc(name)}</code><br><small>{esc(e['label'])}</small>",
                esc(fmt_metric(e)),
                svg_bar(e),
                esc(fmt_ci(e)),
                esc(fmt_counts(e)),
                esc(fmt(e.get("precision"))),
                esc(fmt(e.get("recall"))),
            ]
        )
    parts.append(
        _html_table(["metric", "value", "", "95% CI", "counts", "precision", "recall"], rows, {1, 3, 5, 6})
    )
    if report.get("comparison"):
        parts.append(_html_comparison(report["comparison"]))
    flags = report["flags"]
    parts.append("<h2>Flags</h2>")
    rows = [[f"<code>{esc(code)}</code>", esc(n)] for code, n in flags["by_code"].items()]
    parts.append(_html_table(["code", "count"], rows, {1}) if rows else "<p>No flags.</p>")
    if flags["letters_with_errors"]:
        parts.append(f"<p>Letters with error flags: {esc(', '.join(flags['letters_with_errors']))}</p>")
    parts.append("<h2>Letters</h2>")
    rows = [
        [
            esc(r["id"]),
            esc(r["layout"] or "-"),
            esc(r["gold_items"]),
            esc(r["predicted_items"]),
            esc(r["matched_items"]),
            esc(r["decisions_correct"]),
            esc(r["quotes"]),
            esc(r["mismatches"]),
            esc(r["error"] or ", ".join(r["error_flags"])),
        ]
        for r in report["per_letter"]
    ]
    parts.append(
        _html_table(
            [
                "letter",
                "layout",
                "gold",
                "predicted",
                "matched",
                "decisions ok",
                "quotes",
                "mismatches",
                "errors",
            ],
            rows,
            {2, 3, 4, 5, 6, 7},
        )
    )
    parts.append(f"<h2>Mismatches ({len(report['mismatches'])})</h2>")
    by_letter: dict[str, list[dict[str, Any]]] = {}
    for m in report["mismatches"]:
        by_letter.setdefault(m["letter"], []).append(m)
    if not by_letter:
        parts.append("<p>None.</p>")
    for letter, items in by_letter.items():
        parts.append(
            f"<details open><summary>{esc(letter_id(letter))} ({esc(len(items))}) "
            f"<small><code>{esc(letter)}</code></small></summary>"
        )
        for m in items:
            item = f" · item “{esc(m['item'])}”" if m["item"] else ""
            parts.append(
                f'<p><span class="kind">{esc(m["kind"])}</span> <code>{esc(m["field"])}</code>{item}<br>'
                f"gold: <b>{esc(fmt_value(m['gold']))}</b><br>predicted: <b>{esc(fmt_value(m['predicted']))}</b></p>"
            )
            if m["context"]:
                parts.append(f"<blockquote>{esc(m['context'])}</blockquote>")
        parts.append("</details>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html(report: dict[str, Any], out: Path) -> Path:
    path = out / HTML_NAME
    path.write_text(render_html(report), encoding="utf-8")
    return path


def write_all(report: dict[str, Any], out: Path) -> list[Path]:
    """Write the three reports into ``out`` (created if needed)."""
    out.mkdir(parents=True, exist_ok=True)
    return [write_json(report, out), write_markdown(report, out), write_html(report, out)]
