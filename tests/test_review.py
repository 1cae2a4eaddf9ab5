"""The reviewer page without a browser: escaping, order, self-containment, letters, the command."""

from __future__ import annotations

import json
import re
import threading
import urllib.request
from pathlib import Path

import pytest
import typer
from conftest import FIXTURES, ROOT, pdf
from typer.testing import CliRunner

from llm_extract import Flag, FlagCode, extract, load
from llm_extract.review import (
    _segments,
    build_review_data,
    build_review_html,
    make_server,
    review_command,
)

SCRIPT = "<script>alert('x')</script>"


def _data(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="review-data">(.*?)</script>', html, re.S)
    assert match, "the page embeds its data as JSON"
    return json.loads(match.group(1))


@pytest.fixture(scope="module")
def letters():
    """Three real letters: one clean, one with a warning, one given an error flag."""
    clean = extract(pdf("CM16-0230651"))
    warned = extract(pdf("CM17-0009887"))
    errored = extract(pdf("CM16-0235991"))
    errored = errored.model_copy(
        update={
            "flags": [
                Flag(code=FlagCode.MISSING_RATIONALE, severity="error", item=0, message="injected"),
            ]
        }
    )
    texts = [load(pdf(n)).text for n in ("CM16-0230651", "CM17-0009887", "CM16-0235991")]
    return [clean, warned, errored], texts


@pytest.fixture()
def evil(tmp_path: Path):
    text = (FIXTURES / "case-number-header.txt").read_text(encoding="utf-8")
    text = text.replace("Decision rationale:", f"Decision rationale: {SCRIPT} ", 1)
    path = tmp_path / "evil.txt"
    path.write_text(text, encoding="utf-8")
    return extract(path), text


def test_sorted_by_severity(letters):
    dets, texts = letters
    data = build_review_data(dets, texts)
    assert [d["severity"] for d in data["letters"]] == ["error", "warning", "clean"]
    assert data["summary"] == {"error": 1, "warning": 1, "info": 0, "clean": 1}


def test_letter_text_is_escaped(evil):
    det, text = evil
    html = build_review_html([det], [text])
    assert SCRIPT not in html  # never raw, anywhere in the page
    assert "</script>" not in html.split('id="review-data">', 1)[1].split("</script>", 1)[0]
    data = _data(html)
    assert SCRIPT in "".join(seg[0] for seg in data["letters"][0]["segments"])  # the text, as text


def test_segments_rebuild_the_text_and_carry_every_span(letters):
    dets, texts = letters
    data = build_review_data(dets, texts)
    by_sha = {d.source.sha256: t for d, t in zip(dets, texts)}
    for letter in data["letters"]:
        text = by_sha[letter["sha256"]]
        segments = letter["segments"]
        assert "".join(s[0] for s in segments) == text
        pos, covered = 0, {}
        for seg_text, ids, _soft in segments:
            for sid in ids:
                covered.setdefault(sid, [pos, pos])[1] = pos + len(seg_text)
            pos += len(seg_text)
        for sid, span in letter["spans"].items():
            assert covered[sid] == [span["start"], span["end"]], sid


def test_segments_overlap():
    segs = _segments("abcdefgh", [{"id": "a", "start": 1, "end": 5}, {"id": "b", "start": 3, "end": 7}])
    assert [(s[0], s[1]) for s in segs] == [
        ("a", []),
        ("bc", ["a"]),
        ("de", ["a", "b"]),
        ("fg", ["b"]),
        ("h", []),
    ]


def test_self_contained(letters):
    dets, texts = letters
    html = build_review_html(dets, texts)
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert "<link" not in html.lower()
    assert "@import" not in html
    assert "Content-Security-Policy" in html


def test_missing_letter_is_a_notice_not_a_crash(letters, tmp_path):
    dets, _ = letters
    gone = dets[0].model_copy(
        update={"source": dets[0].source.model_copy(update={"name": "nowhere/gone.pdf"})}
    )
    results = tmp_path / "r.jsonl"
    results.write_text(gone.model_dump_json() + "\n", encoding="utf-8")
    out = tmp_path / "review.html"
    res = _invoke(["review", str(results), "-o", str(out)])
    assert res.exit_code == 0, res.output
    letter = _data(out.read_text(encoding="utf-8"))["letters"][0]
    assert letter["has_text"] is False
    assert "Letter not found: nowhere/gone.pdf" in letter["notice"]
    assert letter["items"]  # items and flags are still shown


def test_letters_dir_and_gold_and_report(letters, tmp_path):
    dets, _ = letters
    det = dets[0]
    moved = det.model_copy(
        update={"source": det.source.model_copy(update={"name": "elsewhere/CM16-0230651.pdf"})}
    )
    results = tmp_path / "r.jsonl"
    results.write_text(moved.model_dump_json() + "\n", encoding="utf-8")
    report = {
        "mismatches": [
            {
                "letter": "imr-2016-2017/CM16-0230651.pdf",
                "kind": "decision",
                "field": "decision",
                "item": det.items[0].item,
                "gold": "overturned",
                "predicted": "upheld",
                "offset": 10,
                "context": "",
            }
        ]
    }
    (tmp_path / "report.json").write_text(json.dumps(report), encoding="utf-8")
    out = tmp_path / "review.html"
    res = _invoke(
        [
            "review",
            str(results),
            "-o",
            str(out),
            "--letters",
            str(ROOT / "evals" / "letters"),
            "--gold",
            str(ROOT / "evals" / "gold"),
            "--eval-report",
            str(tmp_path / "report.json"),
        ]
    )
    assert res.exit_code == 0, res.output
    letter = _data(out.read_text(encoding="utf-8"))["letters"][0]
    assert letter["has_text"] and letter["notice"] is None
    assert letter["gold"] is not None and letter["gold"]["letter"] == "imr-2016-2017/CM16-0230651.pdf"
    assert letter["verdict_letter"] == "imr-2016-2017/CM16-0230651.pdf"
    mm = [t for t in letter["targets"] if t["type"] == "mismatch"]
    assert len(mm) == 1 and mm[0]["field"] == "decision" and mm[0]["item_index"] == 0


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("review")(review_command)
    app.command("noop")(lambda: None)  # two commands keep "review" a sub-command
    return app


def _invoke(args: list[str]):
    return CliRunner().invoke(_app(), args)


def test_cli_bad_results_path(tmp_path):
    res = _invoke(["review", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "x.html")])
    assert res.exit_code == 1
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: results not found")
    assert not (tmp_path / "x.html").exists()


def test_cli_bad_results_content(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"not": "a determination"}\n', encoding="utf-8")
    res = _invoke(["review", str(bad), "-o", str(tmp_path / "x.html")])
    assert res.exit_code == 1
    assert "not a Determination" in res.output and "Traceback" not in res.output


def test_cli_needs_output_or_serve(letters, tmp_path):
    results = tmp_path / "r.jsonl"
    results.write_text(letters[0][0].model_dump_json() + "\n", encoding="utf-8")
    res = _invoke(["review", str(results)])
    assert res.exit_code == 2
    assert "--output" in res.output


def test_cli_results_directory(letters, tmp_path):
    dets, _ = letters
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "a.json").write_text(dets[0].model_dump_json(), encoding="utf-8")
    (tmp_path / "res" / "b.jsonl").write_text(
        "".join(d.model_dump_json() + "\n" for d in dets[1:]), encoding="utf-8"
    )
    out = tmp_path / "review.html"
    res = _invoke(["review", str(tmp_path / "res"), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert len(_data(out.read_text(encoding="utf-8"))["letters"]) == 3


def test_server_binds_localhost_and_serves_the_page(letters):
    dets, texts = letters
    html = build_review_html(dets, texts)
    server = make_server(lambda: html, port=0)
    assert server.server_address[0] == "127.0.0.1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - local test server
            assert resp.status == 200
            assert resp.read().decode("utf-8") == html
    finally:
        server.shutdown()
        server.server_close()
