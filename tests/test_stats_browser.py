"""The ``stats --html`` report in a real browser: Debian's Chromium driven by Playwright, from file://.

Builds the report from real letters' results with the CLI, opens it, checks every chart has one bar
per group whose width is the group's rate and whose whisker spans its Wilson interval, that the page
fetches nothing and logs no error, and saves a screenshot to ``artifacts/stats.png`` (and, with
UPDATE_DOCS_SCREENSHOT=1, ``docs/stats.png`` for the README).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from conftest import CHROMIUM, PDFS, playwright_or_skip, save_screenshot
from typer.testing import CliRunner

from llm_extract.cli import app
from llm_extract.stats import PLOT_WIDTH

playwright_sync = playwright_or_skip()
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
runner = CliRunner()


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("stats")
    results, page = tmp / "results.jsonl", tmp / "report.html"
    out = runner.invoke(app, ["extract", *map(str, PDFS), "--format", "jsonl", "-o", str(results)])
    assert out.exit_code == 0, out.output
    out = runner.invoke(app, ["stats", str(results), "--json", "--html", str(page)])
    assert out.exit_code == 0, out.output
    return page, json.loads(out.output)


def test_stats_report_in_chromium(report) -> None:
    page_path, summary = report
    profile = tempfile.mkdtemp(prefix="llm-extract-chromium-")
    try:
        with playwright_sync.sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                profile, executable_path=str(CHROMIUM), args=LAUNCH_ARGS, headless=True,
                viewport={"width": 1000, "height": 1100},
            )
            page = context.new_page()
            errors: list[str] = []
            requests: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("request", lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
            page.goto(page_path.as_uri())
            page.wait_for_selector("section svg")

            sections = page.locator("section")
            assert sections.count() == len(summary["breakdowns"])
            for index, block in enumerate(summary["breakdowns"]):
                section = sections.nth(index)
                assert section.get_attribute("data-field") == block["field"]
                rows = section.locator("g.row")
                assert rows.count() == len(block["groups"])
                for r, group in enumerate(block["groups"][:8]):
                    row = rows.nth(r)
                    assert row.get_attribute("data-value") == group["value"]
                    width = float(row.locator("rect.bar").get_attribute("width"))
                    assert abs(width - (group["rate"] or 0) * PLOT_WIDTH) < 0.1
                    if group["rate"] is not None:
                        whisker = row.locator("line.whisker").first
                        x1, x2 = float(whisker.get_attribute("x1")), float(whisker.get_attribute("x2"))
                        assert abs((x2 - x1) - (group["high"] - group["low"]) * PLOT_WIDTH) < 0.2
                    box = row.locator("rect.bar").bounding_box()
                    assert box is not None and box["height"] > 10  # rendered, not just in the DOM
            headline = page.locator(".headline").text_content()
            assert f"{summary['letters']}" in headline and "letters" in headline and "built-in" not in headline
            assert not errors, errors
            assert not requests, requests  # self-contained: nothing fetched

            save_screenshot(page, "stats.png")
            context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
