"""Tables and statistics: to_rows / to_dataframe, CSV and Parquet round trips, DuckDB over Parquet,
read_results on every format and on bad files, Wilson intervals, and the ``stats`` command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import pdf
from typer.testing import CliRunner

from llm_extract import BatchError, extract
from llm_extract.cli import app
from llm_extract.errors import ResultsFileError
from llm_extract.stats import breakdown, render_html, summarize, wilson
from llm_extract.tables import (
    COLUMNS,
    read_csv,
    read_parquet,
    read_results,
    rows_by_letter,
    to_dataframe,
    to_rows,
    write_csv,
    write_parquet,
)

runner = CliRunner()
NAMES = ("CM16-0230651", "CM17-0009887", "CM16-0229336", "CM16-0240518")


@pytest.fixture(scope="module")
def results() -> list:
    out: list = [extract(pdf(n)) for n in NAMES]
    out.append(BatchError(letter="letters/broken.pdf", error="unreadable_pdf", message="cannot read\nthe PDF"))
    return out


@pytest.fixture(scope="module")
def jsonl(tmp_path_factory, results) -> Path:
    path = tmp_path_factory.mktemp("results") / "results.jsonl"
    path.write_text("".join(r.model_dump_json() + "\n" for r in results), encoding="utf-8")
    return path


def test_one_row_per_item_and_one_per_failed_letter(results) -> None:
    rows = to_rows(results)
    items = sum(len(r.items) for r in results[:-1])
    assert len(rows) == items + 1
    assert [name for name, _, _ in COLUMNS] == list(rows[0])
    first = results[0]
    row = rows[0]
    assert (row["file"], row["sha256"], row["case_number"]) == (first.source.name, first.source.sha256, first.case.case_number)
    assert row["item"] == first.items[0].item and row["decision"] == first.items[0].decision
    assert row["category"] == first.items[0].category and row["item_index"] == 0
    assert row["decision_year"] == first.case.decision_date.year
    failed = rows[-1]
    assert (failed["file"], failed["ok"], failed["error"]) == ("letters/broken.pdf", False, "unreadable_pdf")
    assert failed["error_message"] == "cannot read the PDF" and failed["item_index"] is None


def test_citations_flattened_per_source(results) -> None:
    rows = to_rows(results[:1])
    item = results[0].items[0]
    for row, item in zip(rows, results[0].items):
        sources = {c.source for c in item.maximus_guideline}
        for source in ("MTUS", "ODG", "ACOEM", "other"):
            assert row[f"maximus_{source.lower()}_cited"] == (source in sources)
        mtus = [c for c in item.maximus_guideline if c.source == "MTUS"]
        assert row["maximus_mtus_titles"] == list(dict.fromkeys(c.title for c in mtus if c.title))


def test_drug_columns(results) -> None:
    rows = [r for r in to_rows(results) if r["category"] == "Pharmaceuticals"]
    assert rows, "the fixture letters hold pharmaceutical items"
    assert all(r["drug_name"] and r["drug_as_written"] for r in rows)


def test_rows_from_dicts_equal_rows_from_models(results) -> None:
    dicts = [json.loads(r.model_dump_json()) for r in results]
    assert to_rows(dicts) == to_rows(results)


def test_csv_and_parquet_round_trip(tmp_path, results) -> None:
    rows = to_rows(results)
    csv_path, parquet_path = tmp_path / "r.csv", tmp_path / "r.parquet"
    with csv_path.open("wb") as handle:
        write_csv(rows, handle)
    with parquet_path.open("wb") as handle:
        write_parquet(rows, handle)
    assert read_csv(csv_path) == rows
    assert read_parquet(parquet_path) == rows
    assert len(csv_path.read_text(encoding="utf-8").splitlines()) == len(rows) + 1  # one line per row
    assert [len(g) for g in rows_by_letter(rows)] == [max(1, len(r.items)) for r in results[:-1]] + [1]


def test_duckdb_reads_the_parquet_file(tmp_path, results) -> None:
    duckdb = pytest.importorskip("duckdb")
    path = tmp_path / "r.parquet"
    with path.open("wb") as handle:
        write_parquet(to_rows(results), handle)
    [(total, cats)] = duckdb.sql(
        f"select count(*), count(distinct category) from read_parquet('{path}') where error is null"
    ).fetchall()
    assert total == sum(len(r.items) for r in results[:-1]) and cats >= 2
    [(year,)] = duckdb.sql(f"select min(year(decision_date)) from read_parquet('{path}')").fetchall()
    assert year == 2017 or year == 2016


def test_to_dataframe_types(results) -> None:
    pytest.importorskip("pandas")
    frame = to_dataframe(results)
    assert len(frame) == len(to_rows(results))
    assert str(frame["decision_date"].dtype).startswith("datetime64")
    assert str(frame["item_index"].dtype) == "Int64"
    assert isinstance(frame.loc[0, "maximus_mtus_titles"], list)


def test_read_results_every_format_same_rows(tmp_path, jsonl, results) -> None:
    rows = read_results(jsonl)
    as_json = tmp_path / "r.json"
    as_json.write_text(json.dumps([json.loads(r.model_dump_json()) for r in results]), encoding="utf-8")
    assert read_results(as_json) == rows
    for suffix, writer in ((".csv", write_csv), (".parquet", write_parquet)):
        path = tmp_path / f"r{suffix}"
        with path.open("wb") as handle:
            writer(rows, handle)
        assert read_results(path) == rows


def test_read_results_torn_last_line_is_read_up_to_it(tmp_path, jsonl) -> None:
    torn = tmp_path / "torn.jsonl"
    torn.write_text(jsonl.read_text(encoding="utf-8") + '{"case": {"case_nu', encoding="utf-8")
    assert read_results(torn) == read_results(jsonl)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("a.jsonl", "not json\n{}\n"),
        ("b.json", "[1, 2]"),
        ("c.csv", "x,y\n1,2\n"),
        ("d.parquet", "not parquet"),
        ("e.txt", "hello"),
        ("f.jsonl", '{"hello": "world"}\n'),
    ],
)
def test_bad_results_files_raise_a_typed_error(tmp_path, name, content) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ResultsFileError):
        read_results(path)


def test_wilson_interval() -> None:
    lo, hi = wilson(0, 10)
    assert lo == 0.0 and math.isclose(hi, 0.2775, abs_tol=1e-4)
    lo, hi = wilson(5, 10)
    assert math.isclose(lo, 0.2366, abs_tol=1e-4) and math.isclose(hi, 0.7634, abs_tol=1e-4)
    lo, hi = wilson(81, 263)  # a textbook value (Newcombe 1998): 0.2553-0.3662
    assert math.isclose(lo, 0.2553, abs_tol=1e-3) and math.isclose(hi, 0.3662, abs_tol=1e-3)
    assert wilson(0, 0) == (0.0, 1.0)


def test_summary_counts(results) -> None:
    rows = to_rows(results)
    summary = summarize(rows)
    decided = [r for r in rows if r["decision"]]
    overturned = sum(r["decision"] in ("overturned", "partial") for r in decided)
    assert summary["letters"] == len(results) and summary["failed_letters"] == 1
    assert summary["overall"]["decided"] == len(decided)
    assert summary["overall"]["overturned"] + summary["overall"]["partial"] == overturned
    by_cat = {g["value"]: g for g in summary["breakdowns"][0]["groups"]}
    assert sum(g["items"] for g in by_cat.values()) == len(decided)
    sources = breakdown(rows, "guideline_source")
    assert sum(g.items for g in sources) >= len(decided)  # an item counts once per source cited
    with pytest.raises(KeyError):
        summarize(rows, ["no_such_field"])


def test_html_report_is_self_contained(results) -> None:
    page = render_html(summarize(to_rows(results)), source="results.jsonl")
    assert "<svg" in page and "http://" not in page.replace("http://www.w3.org", "") and "<script" not in page
    assert "built-in method" not in page


def test_stats_command(tmp_path, jsonl) -> None:
    out = runner.invoke(app, ["stats", str(jsonl)])
    assert out.exit_code == 0, out.output
    assert "By DWC request category:" in out.output and "Wilson" in out.output
    out = runner.invoke(app, ["stats", str(jsonl), "--json", "--by", "drug_class", "--html", str(tmp_path / "s.html")])
    data = json.loads(out.output)
    assert [b["field"] for b in data["breakdowns"]] == ["drug_class"]
    assert (tmp_path / "s.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    out = runner.invoke(app, ["stats", str(jsonl), "--by", "nope"])
    assert out.exit_code == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text("garbage\n{}\n", encoding="utf-8")
    out = runner.invoke(app, ["stats", str(bad)])
    assert out.exit_code != 0


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_extract_writes_tables_incrementally_and_resumes(tmp_path, suffix) -> None:
    """``-o results.csv|.parquet``: one row per item, a failed letter one row, resume by path and
    sha256, a journal left by a run that died folded in, --restart starts afresh."""
    from llm_extract.outputs import open_output

    letters = [pdf(n) for n in NAMES[:3]]
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7 this is not a pdf")
    out = tmp_path / f"results{suffix}"
    first = runner.invoke(app, ["extract", str(letters[0]), str(broken), "-o", str(out)])
    assert first.exit_code == 1  # the broken letter failed; the other one is written
    rows = read_results(out)
    assert [r["error"] for r in rows if r["error"]] == ["unreadable_pdf"] or len([r for r in rows if r["error"]]) == 1
    assert {r["file"] for r in rows} == {str(letters[0]), str(broken)}

    # a run that dies after journaling a letter: the next run keeps it and extracts only the rest
    with open_output(out, suffix.lstrip(".")) as sink:
        sink.write(extract(letters[1]))
        sink._journal.close()  # noqa: SLF001  (the process "dies": no close, no rebuild)
        sink._closed = True  # noqa: SLF001
        sink._release()  # noqa: SLF001
    second = runner.invoke(app, ["extract", *map(str, letters), "-o", str(out)])
    assert second.exit_code == 0, second.output
    rows = read_results(out)
    expected = to_rows([extract(p) for p in letters])
    assert [r for r in rows if not r["error"]] == expected  # each letter once, the journaled one kept
    assert [r["file"] for r in rows if r["error"]] == [str(broken)]  # not asked again: still its record
    assert not any(p.name.endswith("journal.jsonl") for p in tmp_path.iterdir())
    again = runner.invoke(app, ["extract", *map(str, letters), "-o", str(out)])
    assert "3 already done" in again.output
    restart = runner.invoke(app, ["extract", str(letters[2]), "-o", str(out), "--restart"])
    assert restart.exit_code == 0 and read_results(out) == to_rows([extract(letters[2])])


def test_parquet_without_pyarrow_is_one_line_before_any_letter(monkeypatch, tmp_path) -> None:
    import builtins

    real = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    from llm_extract.errors import OutputUnusableError

    out = runner.invoke(app, ["extract", str(pdf(NAMES[0])), "-o", str(tmp_path / "r.parquet")])
    assert isinstance(out.exception, OutputUnusableError)  # the CLI's main() prints it as one line, exit 2
    assert "pip install 'llm_extract[parquet]'" in str(out.exception)
    assert not (tmp_path / "r.parquet").exists()
