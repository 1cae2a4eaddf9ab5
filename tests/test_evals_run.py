"""``python -m evals.run`` end to end: on the real gold set with the rules backend, and on a tiny
hand-made gold set for escaping, verdicts and usage errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evals.gold import GOLD_DIR, LETTERS_DIR
from evals.run import main

ROOT = Path(__file__).resolve().parent.parent
STABLE_KEYS = {
    "version",
    "backend",
    "options",
    "letters",
    "summary",
    "per_letter",
    "mismatches",
    "flags",
    "thresholds",
    "passed",
}
SCRIPT = "<script>alert(1)</script>"
SEED = "000_c56c88992780afee"
LAST_CONCLUSION = "This request is not medically necessary. \n"
INJECTED = f"The reviewer notes {SCRIPT} in the file. "


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    out = tmp_path_factory.mktemp("run1")
    return main(["--out", str(out)]), out


def load_report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text(encoding="utf-8"))


def test_rules_backend_passes_the_default_gates(first_run: tuple[int, Path]) -> None:
    code, out = first_run
    assert code == 0
    for name in ("report.json", "report.md", "report.html"):
        assert (out / name).is_file(), name
    report = load_report(out)
    assert set(report) >= STABLE_KEYS
    assert report["passed"] is True
    assert report["backend"] == "rules"
    assert report["letters"]["total"] == len(list(GOLD_DIR.glob("*.json")))
    assert report["letters"]["failed"] == []
    summary = report["summary"]
    assert summary["items"]["value"] >= 0.95
    assert summary["decisions"]["value"] >= 0.95
    assert summary["fabricated_quotes"]["value"] == 0
    for entry in summary.values():
        assert {"value", "ci_low", "ci_high", "kind"} <= set(entry)
    assert {"tp", "fp", "fn", "precision", "recall", "f1"} <= set(summary["items"])
    assert set(report["thresholds"]) >= {"min_item_f1", "min_decision_accuracy", "max_fabricated_quotes"}
    assert all(m["letter"] and m["kind"] and "context" in m for m in report["mismatches"])



def test_every_text_source_is_scored_and_gated(first_run: tuple[int, Path]) -> None:
    """The committed text variants: the same answer whatever tool produced the text (issue 13)."""
    _, out = first_run
    report = load_report(out)
    sources = report["sources"]
    assert list(sources) == ["pdfium", *sorted(p.name for p in (LETTERS_DIR / "variants").iterdir() if p.is_dir())]
    assert set(sources) >= {"pdfium", "pdftotext", "pdftotext-layout", "pdfminer", "pypdf", "pymupdf"}
    pdfs = sum(1 for p in GOLD_DIR.glob("*.json") if json.loads(p.read_text())["letter"].endswith(".pdf"))
    for name, entry in sources.items():
        summary = entry["summary"]
        assert entry["passed"], name
        assert entry["letters"]["total"] == (len(list(GOLD_DIR.glob("*.json"))) if name == "pdfium" else pdfs)
        assert summary["items"]["value"] == 1.0 and summary["decisions"]["value"] == 1.0, name
        for metric in ("header", "reviewer", "patient"):
            assert summary[metric]["value"] >= 0.99, (name, metric)
        assert summary["evidence_missing"]["value"] == 0, name
        assert summary["evidence"]["value"] == 1.0, name
        assert set(entry["thresholds"]) == set(report["thresholds"])
    assert report["summary"] == sources["pdfium"]["summary"]
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "## Per text source" in md and all(f"| {name} |" in md for name in sources)
    assert "Per text source" in (out / "report.html").read_text(encoding="utf-8")


def test_impossible_threshold_exits_1_and_jobs_do_not_change_numbers(
    first_run: tuple[int, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--out", str(tmp_path), "--min-item-f1", "1.01", "--jobs", "1", "--source", "pdfium"])
    assert code == 1
    report = load_report(tmp_path)
    assert report["passed"] is False
    assert report["thresholds"]["min_item_f1"]["passed"] is False
    assert "FAILED" in capsys.readouterr().out
    assert report["summary"] == load_report(first_run[1])["summary"]


def test_baseline_of_the_same_run_shows_no_regressions(first_run: tuple[int, Path], tmp_path: Path) -> None:
    baseline = first_run[1] / "report.json"
    code = main(
        ["--out", str(tmp_path), "--baseline", str(baseline), "--fail-on-regression", "--source", "pdfium"]
    )
    assert code == 0
    comparison = load_report(tmp_path)["comparison"]
    assert comparison["regressed"] == [] and comparison["improved"] == []
    assert comparison["letters"]["regressed"] == [] and comparison["letters"]["improved"] == []
    assert "Comparison with" in (tmp_path / "report.md").read_text(encoding="utf-8")


def test_baseline_comparison_lists_what_changed(first_run: tuple[int, Path], tmp_path: Path) -> None:
    old = load_report(first_run[1])
    old["summary"]["items"]["value"] = 0.5  # the baseline was worse here...
    old["summary"]["decisions"]["value"] = 1.5  # ...and better here
    letter = old["per_letter"][0]
    letter["mismatches"] += 3
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(old), encoding="utf-8")
    out = tmp_path / "out"
    only = ["--source", "pdfium"]
    assert main(["--out", str(out), "--baseline", str(baseline), *only]) == 0
    assert main(["--out", str(out), "--baseline", str(baseline), "--fail-on-regression", *only]) == 1
    comparison = load_report(out)["comparison"]
    assert "items" in comparison["improved"]
    assert "decisions" in comparison["regressed"]
    assert [r["letter"] for r in comparison["letters"]["improved"]] == [letter["letter"]]


def run_subprocess(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evals.run", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def assert_usage_error(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]
    assert "Traceback" not in proc.stderr


def test_missing_gold_dir_is_a_one_line_usage_error(tmp_path: Path) -> None:
    proc = run_subprocess("--gold", str(tmp_path / "nope"), "--out", str(tmp_path / "out"))
    assert_usage_error(proc, "gold directory not found")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--backend", "nonesuch"], "nonesuch"),
        (["--model", "gpt-x"], "bad option"),
        (["--jobs", "0"], "jobs"),
        (["--min-item-f1", "lots"], "min-item-f1"),
        (["--bogus"], "bogus"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    args: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*args, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


def test_bad_baseline_and_verdicts_files_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "a report"}', encoding="utf-8")
    assert main(["--out", str(tmp_path), "--baseline", str(bad)]) == 2
    assert "bad baseline file" in capsys.readouterr().err
    assert main(["--out", str(tmp_path), "--baseline", str(tmp_path / "missing.json")]) == 2
    assert "bad baseline file" in capsys.readouterr().err
    assert main(["--out", str(tmp_path), "--verdicts", str(bad)]) == 2
    assert "bad verdicts file" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# A tiny gold set: one seed letter with markup injected into its last rationale.
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[Path, Path]:
    """(gold dir, letters dir) holding one seed letter with "<script>" in its last rationale."""
    text = (LETTERS_DIR / "seeds" / f"{SEED}.txt").read_text(encoding="utf-8")
    assert text.count(LAST_CONCLUSION) >= 1
    at = text.rindex(LAST_CONCLUSION)
    text = text[:at] + INJECTED + text[at:]
    letters = tmp_path / "letters"
    (letters / "seeds").mkdir(parents=True)
    (letters / "seeds" / "injected.txt").write_text(text, encoding="utf-8")
    gold = json.loads((GOLD_DIR / f"seed-{SEED}.json").read_text(encoding="utf-8"))
    gold["letter"] = "seeds/injected.txt"
    # The labeller (wrongly) took the injected sentence as the conclusion: a mismatch whose
    # gold value and letter context both carry the markup.
    gold["items"][-1]["conclusion"] = INJECTED.strip()
    gold_dir = tmp_path / "gold"
    gold_dir.mkdir()
    (gold_dir / "injected.json").write_text(json.dumps(gold), encoding="utf-8")
    return gold_dir, letters


def test_html_report_escapes_letter_text(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    gold_dir, letters = tiny
    out = tmp_path / "out"
    assert main(["--gold", str(gold_dir), "--letters", str(letters), "--out", str(out)]) == 0
    report = load_report(out)
    [mm] = [m for m in report["mismatches"] if m["kind"] == "conclusion"]
    assert SCRIPT in mm["gold"] and SCRIPT in mm["context"]
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "http://" not in page and "https://" not in page  # self-contained: nothing to fetch
    assert "<script" not in (out / "report.md").read_text(encoding="utf-8").lower()


def test_correct_verdicts_are_folded_into_the_gold(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    gold_dir, letters = tiny
    path = next(gold_dir.glob("*.json"))
    gold = json.loads(path.read_text(encoding="utf-8"))
    heading = gold["items"][0]["item"]
    gold["items"][0]["decision"] = "overturned"  # a labelling slip: the letter says Upheld
    path.write_text(json.dumps(gold), encoding="utf-8")
    base = ["--gold", str(gold_dir), "--letters", str(letters)]

    out1 = tmp_path / "before"
    main([*base, "--out", str(out1)])
    before = load_report(out1)
    assert before["summary"]["decisions"]["correct"] == 2
    assert any(m["kind"] == "decision" for m in before["mismatches"])

    verdicts = tmp_path / "verdicts.json"
    verdicts.write_text(
        json.dumps(
            [
                {
                    "letter": "seeds/injected.txt",
                    "item": heading,
                    "field": "decision",
                    "value": "upheld",
                    "verdict": "correct",
                },
                {
                    "letter": "injected",
                    "item": heading,
                    "field": "decision",
                    "value": "overturned",
                    "verdict": "incorrect",
                },
                {
                    "letter": "injected",
                    "item": None,
                    "field": "patient.age",
                    "value": 37,
                    "verdict": "correct",
                },
            ]
        ),
        encoding="utf-8",
    )
    out2 = tmp_path / "after"
    assert main([*base, "--out", str(out2), "--verdicts", str(verdicts)]) == 0
    after = load_report(out2)
    assert after["summary"]["decisions"]["value"] == 1.0
    assert not any(m["kind"] == "decision" for m in after["mismatches"])
    assert after["options"]["verdicts_applied"] == 2
    assert (
        json.loads(path.read_text(encoding="utf-8"))["items"][0]["decision"] == "overturned"
    )  # file untouched


def test_verdict_naming_an_unknown_item_is_a_usage_error(
    tiny: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gold_dir, letters = tiny
    verdicts = tmp_path / "verdicts.json"
    verdicts.write_text(
        json.dumps(
            [
                {
                    "letter": "injected",
                    "item": "No such item",
                    "field": "decision",
                    "value": "upheld",
                    "verdict": "correct",
                }
            ]
        ),
        encoding="utf-8",
    )
    args = [
        "--gold",
        str(gold_dir),
        "--letters",
        str(letters),
        "--out",
        str(tmp_path),
        "--verdicts",
        str(verdicts),
    ]
    assert main(args) == 2
    assert "no gold item" in capsys.readouterr().err


@pytest.fixture
def one_pdf(tmp_path: Path) -> tuple[Path, Path, str]:
    """(gold dir, letters dir, stem) holding one real PDF letter, its gold file and a variants/ dir."""
    stem = "CM17-0005589"
    letters = tmp_path / "letters"
    (letters / "imr-2016-2017").mkdir(parents=True)
    shutil.copy(LETTERS_DIR / "imr-2016-2017" / f"{stem}.pdf", letters / "imr-2016-2017")
    gold_dir = tmp_path / "gold"
    gold_dir.mkdir()
    shutil.copy(GOLD_DIR / f"{stem}.json", gold_dir)
    return gold_dir, letters, stem


def test_a_failing_text_source_fails_the_run(one_pdf: tuple[Path, Path, str], tmp_path: Path) -> None:
    gold_dir, letters, stem = one_pdf
    text = (LETTERS_DIR / "variants" / "pdftotext" / f"{stem}.txt").read_text(encoding="utf-8")
    assert "Date Assigned:" in text
    for name, body in (("good", text), ("mangled", text.replace("Date Assigned:", "Assigned on"))):
        (letters / "variants" / name).mkdir(parents=True)
        (letters / "variants" / name / f"{stem}.txt").write_text(body, encoding="utf-8")
    out = tmp_path / "out"
    assert main(["--gold", str(gold_dir), "--letters", str(letters), "--out", str(out)]) == 1
    report = load_report(out)
    assert list(report["sources"]) == ["pdfium", "good", "mangled"]
    assert report["sources"]["pdfium"]["passed"] and report["sources"]["good"]["passed"]
    mangled = report["sources"]["mangled"]
    assert not mangled["passed"] and report["passed"] is False
    assert mangled["thresholds"]["min_header_accuracy"]["passed"] is False
    assert any(m["field"] == "case.date_assigned" for m in mangled["mismatches"])
    assert "FAIL** `mangled` `min_header_accuracy`" in (out / "report.md").read_text(encoding="utf-8")
    # Restricting the sources (for slow backends) leaves the failing one out.
    out2 = tmp_path / "out2"
    args = ["--gold", str(gold_dir), "--letters", str(letters), "--out", str(out2)]
    assert main([*args, "--source", "pdfium", "--source", "good"]) == 0
    assert list(load_report(out2)["sources"]) == ["pdfium", "good"]


def test_unknown_or_stale_text_sources_are_usage_errors(
    one_pdf: tuple[Path, Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gold_dir, letters, _ = one_pdf
    args = ["--gold", str(gold_dir), "--letters", str(letters), "--out", str(tmp_path / "out")]
    assert main([*args, "--source", "nosuch"]) == 2
    assert "unknown text source 'nosuch'" in capsys.readouterr().err
    (letters / "variants" / "stale").mkdir(parents=True)  # a source without this letter's text
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "make_text_variants" in err and len(err.strip().splitlines()) == 1


def test_a_letter_that_fails_to_extract_is_a_failed_letter_not_a_crash(
    tiny: tuple[Path, Path], tmp_path: Path
) -> None:
    gold_dir, letters = tiny
    gold = json.loads(next(gold_dir.glob("*.json")).read_text(encoding="utf-8"))
    gold["letter"] = "seeds/empty.txt"
    (letters / "seeds" / "empty.txt").write_text("   \n", encoding="utf-8")
    (gold_dir / "empty.json").write_text(json.dumps(gold), encoding="utf-8")
    out = tmp_path / "out"
    code = main(["--gold", str(gold_dir), "--letters", str(letters), "--out", str(out), "--jobs", "2"])
    assert code == 1  # max_failed_letters = 0 and item F1 drops
    report = load_report(out)
    assert report["letters"]["failed"] == ["seeds/empty.txt"]
    assert report["summary"]["failed_letters"]["value"] == 1
    assert report["summary"]["items"]["fn"] == len(gold["items"])
    assert any(m["kind"] == "failed_letter" for m in report["mismatches"])
