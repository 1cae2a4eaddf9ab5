"""The reviewer page in a real browser: Debian's Chromium driven by Playwright, from file://.

Builds the page from real letters (plus one with a fabricated quote, one with an injected error
flag, one whose text holds ``<script>`` and line separators, and a letter that failed to extract),
clicks a flag, checks its span is highlighted and in view, records a ``correct`` verdict, exports
it and checks the JSON, and saves a screenshot to ``artifacts/review.png`` (and, with
UPDATE_DOCS_SCREENSHOT=1, ``docs/review.png`` for the README). The page runs under its own strict
Content-Security-Policy: a blocked script or style would show up as a console error here.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from conftest import (
    CHROMIUM,
    FIXTURES,
    REPO_LETTERS_AND_GOLD,
    ROOT,
    invoke_review,
    pdf,
    playwright_or_skip,
    save_screenshot,
)

from llm_extract import BatchError, Flag, FlagCode, Quote, extract, load, verify
from llm_extract.batch import extract_one

playwright_sync = playwright_or_skip()

LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDTH, HEIGHT = 1280, 800
FABRICATED = "The patient was cleared to return to full duty without any restrictions."
SCRIPT = "<script>window.__pwned = 1</script>"
#: Line breaks for str.splitlines but not for JSON Lines: the letter must show exactly as written.
SEPARATORS = "one\u2028two\u2029three\x85four"


def _build_results(tmp: Path) -> tuple[Path, dict[str, object]]:
    """Real letters' results as JSONL, with an injected error flag, a fabricated quote and a <script> letter."""
    plain = [extract(pdf(n)) for n in ("CM17-0009887", "CM16-0229336")]

    contradicted = extract(pdf("CM16-0230651"))  # clean; we inject a contradiction on item 2
    item = contradicted.items[1]
    last = item.conclusion
    assert last is not None
    contradicted = contradicted.model_copy(
        update={
            "flags": [
                *contradicted.flags,
                Flag(
                    code=FlagCode.DECISION_CONTRADICTS_RATIONALE,
                    severity="error",
                    item=1,
                    start=last.start,
                    end=last.end,
                    message="injected for the test: the decision contradicts the rationale's conclusion",
                ),
            ]
        }
    )

    fabricated_path = pdf("CM16-0235991")
    fabricated = extract(fabricated_path)
    first = fabricated.items[0]
    fabricated.items[0] = first.model_copy(update={"quotes": [*first.quotes, Quote(text=FABRICATED)]})
    # and a stated value whose evidence is gone: the page must say the letter was not shown to state it
    evidence = {k: v for k, v in fabricated.evidence.items() if k != "patient.age"}
    fabricated = verify(fabricated.model_copy(update={"evidence": evidence}), load(fabricated_path))
    assert any(f.code == FlagCode.QUOTE_NOT_FOUND for f in fabricated.flags)
    assert any(f.code == FlagCode.EVIDENCE_MISSING for f in fabricated.flags)

    text = (FIXTURES / "case-number-header.txt").read_text(encoding="utf-8")
    anchor = "Decision rationale:"
    assert anchor in text
    evil_text = text.replace(anchor, f"{SEPARATORS} {anchor} {SCRIPT} ", 1)
    evil_path = tmp / "evil-letter.txt"
    evil_path.write_bytes(evil_text.encode("utf-8"))
    evil = extract(evil_path)

    broken = tmp / "broken-letter.pdf"  # what extract writes for a letter that fails
    broken.write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ntrailer << >>\n%%EOF")
    failed = extract_one(broken)
    assert isinstance(failed, BatchError)

    results = tmp / "results.jsonl"
    dets = [*plain, contradicted, fabricated, evil, failed]
    results.write_text("".join(d.model_dump_json() + "\n" for d in dets), encoding="utf-8")
    # an eval report with one mismatch on a real letter (report.json's "mismatches" shape)
    report = {
        "backend": "rules",
        "passed": True,
        "mismatches": [
            {
                "letter": "imr-2016-2017/CM16-0229336.pdf",
                "kind": "citation_title",
                "field": "maximus_guideline.titles",
                "item": plain[1].items[0].item,
                "gold": ["Knee & Leg"],
                "predicted": [],
                "offset": plain[1].items[0].heading.start,
                "context": "…test context…",
            }
        ],
    }
    info = {
        "contradicted": contradicted,
        "fabricated": fabricated,
        "evil_path": evil_path,
        "evil_text": evil_text,
        "failed": failed,
    }
    (tmp / "report.json").write_text(json.dumps(report), encoding="utf-8")
    return results, info


@pytest.fixture(scope="module")
def page_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    tmp = tmp_path_factory.mktemp("review")
    results, info = _build_results(tmp)
    out = tmp / "review.html"
    report = str(tmp / "report.json")
    res = invoke_review(["review", str(results), str(info["evil_path"]), *REPO_LETTERS_AND_GOLD, "--eval-report", report, "-o", str(out)])
    assert res.exit_code == 0, res.output
    return out, info


@pytest.fixture(scope="module")
def browser_context():
    profile = tempfile.mkdtemp(prefix="llm-extract-chromium-")
    with playwright_sync.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            args=LAUNCH_ARGS,
            headless=True,
            viewport={"width": WIDTH, "height": HEIGHT},
            accept_downloads=True,
        )
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


def _in_viewport(page, selector: str) -> bool:
    return page.evaluate(
        """(sel) => {
            const el = document.querySelector(sel);
            if (!el) return false;
            const r = el.getBoundingClientRect();
            const box = document.getElementById('text-wrap').getBoundingClientRect();
            return r.height > 0 && r.top >= box.top && r.bottom <= box.bottom
                && r.top >= 0 && r.bottom <= window.innerHeight;
        }""",
        selector,
    )


def test_review_page_in_chromium(page_file, browser_context, tmp_path):
    html_path, info = page_file
    contradicted = info["contradicted"]
    page = browser_context.new_page()
    errors: list[str] = []
    requests: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on(
        "request",
        lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:", "blob:")) else None,
    )
    page.goto(html_path.as_uri())
    page.wait_for_selector(".qi")

    # the queue: the failed letter, then errors first
    severities = page.eval_on_selector_all(".qi", "els => els.map(e => e.dataset.severity)")
    assert severities[:3] == ["failed", "error", "error"], severities
    rank = {"failed": -1, "error": 0, "warning": 1, "info": 2, "clean": 3}
    assert [rank[s] for s in severities] == sorted(rank[s] for s in severities)
    assert len(severities) == 6

    # the failed letter: its error, no text, nothing to review
    failed = info["failed"]
    page.click(".qi:has-text('broken-letter.pdf')")
    assert page.text_content(".qi.sel .badge") == f"failed: {failed.error}"
    problem = page.locator("#targets .tg.problem")
    assert problem.count() == 1 and problem.locator(".msg").text_content() == failed.message
    assert failed.message in page.text_content("#notice")
    assert "could not be extracted" in page.text_content("#text")

    # the contradicted letter: click its injected flag; its span is highlighted and in view
    page.click(".qi:has-text('CM16-0230651.pdf')")
    card = ".tg[data-target^='flag:decision_contradicts_rationale']"
    page.click(f"{card} .msg")
    active = "#text .hl.active"
    page.wait_for_selector(active)
    flag_text = page.eval_on_selector_all(active, "els => els.map(e => e.textContent).join('')")
    quote = contradicted.items[1].conclusion
    assert flag_text == quote.text
    assert _in_viewport(page, active)
    assert page.eval_on_selector(active, "e => e.classList.contains('act-error')")

    # evidence: clicking a header field scrolls to and highlights where the letter states it, as written
    evidence = contradicted.evidence["case.date_assigned"]
    assert evidence.text != contradicted.case.date_assigned.isoformat()  # "01/12/2017", not "2017-01-12"
    page.click("#details [data-path='case.date_assigned']")
    page.wait_for_selector(active)
    shown = page.eval_on_selector_all(active, "els => els.map(e => e.textContent).join('')")
    assert shown == evidence.text
    assert page.eval_on_selector(active, "e => e.classList.contains('act-evidence') && e.classList.contains('k-ev')")
    assert _in_viewport(page, active)
    # every value the result states is marked in the letter with the evidence class
    marked = page.eval_on_selector_all("#text .hl.k-ev", "els => els.length")
    assert marked >= len(contradicted.evidence) // 2
    # an item's decision: the decision word as the letter writes it
    page.click("#tabs button[data-tab='items']")
    page.click("#pane-items [data-path='items.1.decision']")
    shown = page.eval_on_selector_all(active, "els => els.map(e => e.textContent).join('')")
    assert shown == contradicted.evidence["items.1.decision"].text
    assert shown.casefold() == contradicted.items[1].decision
    page.click("#tabs button[data-tab='review']")

    # record a verdict: correct, with a value and a note
    page.click(f"{card} button[data-verdict='correct']")
    page.select_option(f"{card} .c-field", "decision")
    page.fill(f"{card} .c-value", "overturned")
    page.fill(f"{card} .c-note", "the conclusion says the request is medically necessary")
    page.click(f"{card} .c-save")
    assert page.eval_on_selector(f"{card} button[data-verdict='correct']", "e => e.classList.contains('on')")

    # keyboard: j moves to the next flag (or mismatch) and highlights it
    before = page.eval_on_selector(".tg.sel", "e => e.dataset.target")
    page.keyboard.press("j")
    after = page.eval_on_selector(".tg.sel", "e => e.dataset.target")
    assert after != before
    page.keyboard.press("k")
    assert page.eval_on_selector(".tg.sel", "e => e.dataset.target") == before

    # export: the download holds the verdict in the evals.run --verdicts format
    with page.expect_download() as dl:
        page.click("#btn-export")
    exported = tmp_path / "verdicts.json"
    dl.value.save_as(exported)
    verdicts = json.loads(exported.read_text(encoding="utf-8"))
    assert len(verdicts) == 1
    v = verdicts[0]
    assert v["letter"] == "imr-2016-2017/CM16-0230651.pdf"
    assert v["sha256"] == contradicted.source.sha256
    assert v["verdict"] == "correct" and v["field"] == "decision" and v["value"] == "overturned"
    assert v["note"] == "the conclusion says the request is medically necessary"
    assert v["flag"] == "decision_contradicts_rationale"
    assert v["item_index"] == 1 and v["item"] == contradicted.items[1].item
    # the "copy JSON" textarea shows the same list
    page.click("#btn-copy")
    assert json.loads(page.input_value("#export-json")) == verdicts
    page.click("#btn-close")

    try:  # the harness (evals/run.py) reads this file and folds the correction into the gold
        from evals.run import apply_verdicts, load_gold_dir, load_verdicts
    except ImportError:
        pass
    else:
        golds, applied = apply_verdicts(load_gold_dir(ROOT / "evals" / "gold"), load_verdicts(exported))
        assert applied == 1
        gold = next(g for g in golds if g.letter == v["letter"])
        assert gold.items[1].decision == "overturned"

    # the fabricated quote: its flag has no span, so the item's rationale shows as not found
    page.click(".qi:has-text('CM16-0235991.pdf')")
    page.click(".tg[data-target^='flag:quote_not_found'] .msg")
    assert page.eval_on_selector(active, "e => e.classList.contains('act-error')")
    assert _in_viewport(page, active)
    # a stated value without evidence says so, and shows nothing in the letter
    missing = "#details [data-path='patient.age']"
    assert page.eval_on_selector(missing, "e => e.classList.contains('noev')")
    page.click(missing)
    assert page.locator("#text .hl.active").count() == 0
    assert "no evidence" in page.text_content("#toast")
    page.click("#tabs button[data-tab='items']")
    assert page.locator("#pane-items .nf").first.text_content().endswith(f"“{FABRICATED}”")
    page.click("#tabs button[data-tab='gold']")
    assert page.locator("#pane-gold .gold-item").count() >= 1
    page.click("#tabs button[data-tab='review']")

    # escaping: the letter's <script> shows as text and never runs; U+2028/U+2029/U+0085 kept as written
    page.click(".qi:has-text('evil-letter.txt')")
    assert SCRIPT in page.text_content("#text")
    assert page.text_content("#text") == info["evil_text"]
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("#text script").count() == 0

    # verdicts persist across a reload (localStorage keyed by sha256)
    page.reload()
    page.click(".qi:has-text('CM16-0230651.pdf')")
    assert page.eval_on_selector(f"{card} button[data-verdict='correct']", "e => e.classList.contains('on')")

    assert not errors, errors
    assert not requests, requests  # self-contained: nothing fetched from the network

    # the screenshot: the contradicted letter with its flag selected
    page.click(f"{card} .msg")
    page.wait_for_timeout(1200)  # let the highlight pulse finish
    save_screenshot(page, "review.png")
    page.close()
