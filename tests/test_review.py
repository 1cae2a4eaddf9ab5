"""The reviewer page without a browser: escaping, order, self-containment, letters, the command."""

from __future__ import annotations

import base64
import hashlib
import html as html_lib
import json
import os
import re
import socket
import stat
import threading
import urllib.request
from pathlib import Path

import pytest
from conftest import FIXTURES, REPO_LETTERS_AND_GOLD, invoke_review, pdf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from llm_extract import Flag, FlagCode, extract, load
from llm_extract.ingest import MAX_INPUT_BYTES
from llm_extract.review import (
    LetterFileError,
    build_review_data,
    build_review_html,
    load_results,
    make_server,
    read_letter_bytes,
)
from llm_extract.review.page import _segments
from llm_extract.schema import stated_values
from llm_extract.tables import read_results

SCRIPT = "<script>alert('x')</script>"


def _data(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="review-data">(.*?)</script>', html, re.S)
    assert match, "the page embeds its data as JSON"
    return json.loads(match.group(1))


@pytest.fixture(scope="module")
def letters():
    """Three real letters: one clean, one with a warning, one given an error flag."""
    clean = extract(pdf("CM16-0230651"))
    warned = extract(pdf("CM16-0240900"))
    errored = extract(pdf("CM16-0235991"))
    errored = errored.model_copy(
        update={
            "flags": [
                Flag(code=FlagCode.MISSING_RATIONALE, severity="error", item=0, message="injected"),
            ]
        }
    )
    texts = [load(pdf(n)).text for n in ("CM16-0230651", "CM16-0240900", "CM16-0235991")]
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
    assert data["summary"] == {"failed": 0, "rejected": 0, "error": 1, "warning": 1, "info": 0, "clean": 1}


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
        _check_segments(letter, by_sha[letter["sha256"]])


def test_every_stated_value_shows_its_evidence_or_that_it_has_none(letters):
    dets, texts = letters
    by_sha = {d.source.sha256: (d, t) for d, t in zip(dets, texts)}
    gone = dets[0].model_copy(update={"evidence": {k: v for k, v in dets[0].evidence.items() if k != "case.date_assigned"}})
    data = build_review_data([*dets, gone], [*texts, texts[0]])
    for letter in data["letters"]:
        det, text = by_sha[letter["sha256"]]
        stated = [path for path, _ in stated_values(det)]
        assert stated and set(stated) <= set(letter["evidence"])
        for path in stated:
            sid = letter["evidence"][path]
            if path == "case.date_assigned" and letter["key"] == str(len(dets)):
                assert sid is None  # the copy without that evidence: shown as having none
                continue
            span = letter["spans"][sid]
            assert span["kind"] == "evidence" and span["path"] == path
            assert text[span["start"] : span["end"]] == det.evidence[path].text


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
    res = _invoke(["review", str(results), str(FIXTURES), "-o", str(out)])
    assert res.exit_code == 0, res.output
    letter = _data(out.read_text(encoding="utf-8"))["letters"][0]
    assert letter["has_text"] is False
    assert "nowhere/gone.pdf is not among the letters given" in letter["notice"]
    assert letter["items"]  # items and flags are still shown
    res = _invoke(["review", str(results), "-o", str(out)])  # no letters given at all
    assert res.exit_code == 0, res.output
    assert "No letter files were given" in _data(out.read_text(encoding="utf-8"))["letters"][0]["notice"]


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
    res = _invoke(["review", str(results), "-o", str(out), *REPO_LETTERS_AND_GOLD, "--eval-report", str(tmp_path / "report.json")])
    assert res.exit_code == 0, res.output
    letter = _data(out.read_text(encoding="utf-8"))["letters"][0]
    assert letter["has_text"] and letter["notice"] is None
    assert letter["gold"] is not None and letter["gold"]["letter"] == "imr-2016-2017/CM16-0230651.pdf"
    assert letter["verdict_letter"] == "imr-2016-2017/CM16-0230651.pdf"
    mm = [t for t in letter["targets"] if t["type"] == "mismatch"]
    assert len(mm) == 1 and mm[0]["field"] == "decision" and mm[0]["item_index"] == 0


_invoke = invoke_review


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


# --------------------------------------------------------------------------------------------
# Everything extract writes: failed letters, line separators in the text, unreadable records
# --------------------------------------------------------------------------------------------

#: Characters ``str.splitlines`` treats as line breaks besides \n and \r\n: none may cut a record
#: or shift an offset.
SEPARATORS = "\u2028\u2029\x85\x0b\x0c\x1c\x1d\x1e\r"


def _extract_cli(args: list[str]):
    from llm_extract.cli import app

    return CliRunner().invoke(app, ["extract", *args])


def _separated_letter(tmp_path: Path) -> tuple[Path, str]:
    text = (FIXTURES / "case-number-header.txt").read_text(encoding="utf-8")
    anchor = text.index("Decision rationale:")
    text = text[:anchor] + "See\u2028the\u2029records\x85here. " + text[anchor:]
    text = text.replace("medically necessary", "medically\u2028necessary", 1)
    path = tmp_path / "separators.txt"
    path.write_bytes(text.encode("utf-8"))
    return path, text


def _check_segments(letter: dict, text: str) -> None:
    assert "".join(seg[0] for seg in letter["segments"]) == text
    pos, covered = 0, {}
    for seg_text, ids, _soft in letter["segments"]:
        for sid in ids:
            covered.setdefault(sid, [pos, pos])[1] = pos + len(seg_text)
        pos += len(seg_text)
    for sid, span in letter["spans"].items():
        assert covered[sid] == [span["start"], span["end"]], sid


def test_review_reads_everything_extract_writes(tmp_path):
    """A JSONL written by ``llm-extract extract``: a failed letter, a letter with U+2028/U+2029/U+0085,
    a real PDF. The page shows all three; offsets stay exact; the command exits 0."""
    sep_path, sep_text = _separated_letter(tmp_path)
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF garbage")
    real = pdf("CM16-0230651")
    results = tmp_path / "results.jsonl"
    res = _extract_cli([str(sep_path), str(broken), str(real), "--format", "jsonl", "-o", str(results)])
    assert res.exit_code == 1, res.output  # one letter failed; the others were written
    raw = results.read_bytes()
    assert raw.count(b"\n") == 3 and "\u2028".encode() in raw  # raw separators inside a record

    out = tmp_path / "review.html"
    res = _invoke(["review", str(results), str(sep_path), str(real), "-o", str(out)])
    assert res.exit_code == 0, res.output
    data = _data(out.read_text(encoding="utf-8"))
    by_file = {d["file"]: d for d in data["letters"]}
    assert set(by_file) == {"separators.txt", "broken.pdf", "CM16-0230651.pdf"}
    assert data["letters"][0]["file"] == "broken.pdf"  # failed letters lead the queue
    failed = by_file["broken.pdf"]
    assert failed["severity"] == "failed" and failed["problem"]["code"] == "unreadable_pdf"
    assert "cannot be opened" in failed["problem"]["message"] and failed["codes"] == ["failed:unreadable_pdf"]
    assert data["summary"]["failed"] == 1
    sep = by_file["separators.txt"]
    assert sep["has_text"] and sep["notice"] is None
    _check_segments(sep, sep_text)
    quotes = [q for it in sep["items"] for q in it["quotes"] if q["span"]]
    assert quotes
    for q in quotes:
        span = sep["spans"][q["span"]]
        assert " ".join(sep_text[span["start"] : span["end"]].split()) == q["text"]
    assert by_file["CM16-0230651.pdf"]["has_text"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # private, like the results: it quotes the letters
    # the tables (llm-extract stats) read the same file through the same reader: every record whole
    rows = read_results(results)
    assert len(rows) == sum(max(1, len(d["items"])) for d in data["letters"])
    assert {r["file"] for r in rows} == {str(sep_path), str(broken), str(real)}
    assert [r["item"] for r in rows if r["file"] == str(sep_path)] == [it["item"] for it in sep["items"]]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(SEPARATORS)), min_size=1, max_size=12))
def test_line_separators_anywhere_keep_records_and_offsets(tmp_path, inserts):
    """Any line-break character anywhere in a letter: its JSONL record is one record, and every
    span of the page still points at the same characters."""
    text = (FIXTURES / "case-number-header.txt").read_text(encoding="utf-8")
    for position, char in sorted(inserts, reverse=True):
        at = position % (len(text) + 1)
        text = text[:at] + char + text[at:]
    det = extract(text)
    results = tmp_path / "hyp.jsonl"
    results.write_text(det.model_dump_json() + "\n" + det.model_dump_json() + "\n", encoding="utf-8")
    loaded = load_results(results)
    assert loaded == [det, det]
    letter = build_review_data(loaded[:1], [text])["letters"][0]
    _check_segments(letter, text)


def test_unreadable_records_are_shown_with_a_reason_and_the_rest_kept(letters, tmp_path):
    dets, _ = letters
    good = dets[0].model_dump_json()
    older = dets[1].model_dump(mode="json")
    older["source"]["schema_version"] = "0.9"
    del older["source"]["layout"]
    older["source"]["name"] = "old/letter.pdf"
    failed = json.dumps({"ok": False, "letter": "gone.pdf", "error": "not_found", "message": "gone.pdf: no such file"})
    lines = [good, '{"case": {"case_number": "torn', json.dumps(older), "", "[1, 2]", failed, "\xff\xfe"]
    results = tmp_path / "mixed.jsonl"
    results.write_bytes("\n".join(lines).encode("utf-8", "surrogateescape") + b"\n")
    entries = load_results(results)
    kinds = [type(e).__name__ for e in entries]
    assert kinds == ["Determination", "Rejected", "Rejected", "Rejected", "BatchError", "Rejected"]
    torn, old, array, _failed, binary = entries[1], entries[2], entries[3], entries[4], entries[5]
    assert torn.where.endswith("mixed.jsonl:2") and torn.reason.startswith("not JSON")
    assert old.where.endswith(":3") and "schema 0.9" in old.reason and "layout" in old.reason
    assert old.name == "old/letter.pdf"
    assert "list" in array.reason and array.where.endswith(":5")
    assert binary.where.endswith(":7") and binary.reason.startswith("not JSON")

    out = tmp_path / "review.html"
    res = _invoke(["review", str(results), "-o", str(out)])
    assert res.exit_code == 0, res.output
    warnings = [line for line in res.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 4 and "mixed.jsonl:3" in warnings[1]
    data = _data(out.read_text(encoding="utf-8"))
    assert data["summary"]["rejected"] == 4 and data["summary"]["failed"] == 1
    old_entry = next(d for d in data["letters"] if d["file"] == "letter.pdf")
    assert old_entry["severity"] == "rejected" and "schema 0.9" in old_entry["problem"]["message"]
    assert sum(d["severity"] not in ("failed", "rejected") for d in data["letters"]) == 1


def test_extracts_json_output_with_a_failed_letter_and_a_damaged_record(tmp_path):
    """``extract -o results.json`` (one record per line in an array), failed letter included; a
    record damaged later costs that record only."""
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4 not really")
    results = tmp_path / "results.json"
    res = _extract_cli([str(FIXTURES / "case-number-header.txt"), str(broken), "-o", str(results)])
    assert res.exit_code == 1, res.output
    assert [type(e).__name__ for e in load_results(results)] == ["Determination", "BatchError"]
    lines = results.read_bytes().split(b"\n")
    assert lines[0] == b"[" and len(lines) == 5  # "[", two records, "]", ""
    lines[1] = lines[1][:200]  # torn in the middle
    results.write_bytes(b"\n".join(lines))
    entries = load_results(results)
    assert [type(e).__name__ for e in entries] == ["Rejected", "BatchError"]
    assert entries[0].where.endswith("results.json:2")


def test_hostile_records_are_rejected_without_reading_them_whole(letters, tmp_path):
    """A line past the batch writer's record limit is skipped unread; JSON nested past the
    interpreter's recursion limit is a rejected record, not a crash."""
    from llm_extract.records import MAX_RECORD_BYTES

    good = letters[0][0].model_dump_json().encode()
    results = tmp_path / "hostile.jsonl"
    results.write_bytes(good + b"\n" + b"[" * 200_000 + b"\n")
    with results.open("r+b") as handle:  # a sparse line of NULs, longer than any record
        handle.truncate(results.stat().st_size + MAX_RECORD_BYTES + 10)
    with results.open("ab") as handle:
        handle.write(b"\n" + good + b"\n")
    entries = load_results(results)
    assert [type(e).__name__ for e in entries] == ["Determination", "Rejected", "Rejected", "Determination"]
    assert entries[1].reason.startswith("not JSON") and "over the record limit" in entries[2].reason


def test_one_json_document_object_or_array(letters, tmp_path):
    """What ``extract -o results.json`` writes: one indented object, or an array of them."""
    dets, _ = letters
    one = tmp_path / "one.json"
    one.write_text(json.dumps(dets[0].model_dump(mode="json"), indent=2), encoding="utf-8")
    assert load_results(one) == [dets[0]]
    many = tmp_path / "many.json"
    many.write_text(json.dumps([d.model_dump(mode="json") for d in dets], indent=2), encoding="utf-8")
    assert load_results(many) == dets


# --------------------------------------------------------------------------------------------
# The page embeds only letters the user named, and only when the sha256 matches
# --------------------------------------------------------------------------------------------


def _renamed(det, name: str, sha256: str | None = None):
    update = {"name": name} if sha256 is None else {"name": name, "sha256": sha256}
    return det.model_copy(update={"source": det.source.model_copy(update=update)})


def test_a_results_file_cannot_name_a_file_into_the_page(letters, tmp_path):
    dets, _ = letters
    secret = tmp_path / "private" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("TOP-SECRET-MARKER not a letter\n", encoding="utf-8")
    digest = hashlib.sha256(secret.read_bytes()).hexdigest()
    records = [
        _renamed(dets[0], "/etc/passwd"),
        _renamed(dets[1], str(secret), digest),  # the right sha256, but the file was not given
        _renamed(dets[2], "../private/secret.txt", digest),
    ]
    results = tmp_path / "r.jsonl"
    results.write_text("".join(r.model_dump_json() + "\n" for r in records), encoding="utf-8")
    out = tmp_path / "review.html"
    given = ([], ["--letters", str(FIXTURES)], [str(pdf("CM16-0230651"))])
    for extra, shown in zip(given, ([], [], [dets[0].source.sha256])):
        res = _invoke(["review", str(results), *extra, "-o", str(out)])
        assert res.exit_code == 0, res.output
        html = out.read_text(encoding="utf-8")
        assert "TOP-SECRET-MARKER" not in html and "root:x:0:0" not in html
        # text only where a given file has the record's sha256 (whatever name the record claims)
        assert [d["sha256"] for d in _data(html)["letters"] if d["has_text"]] == shown


def test_letters_match_by_sha256_not_by_name(letters, tmp_path):
    dets, texts = letters
    edited = tmp_path / "edited" / "CM16-0230651.pdf"  # same name, other bytes
    edited.parent.mkdir()
    edited.write_bytes(pdf("CM16-0235991").read_bytes())
    renamed = tmp_path / "renamed" / "anything.pdf"  # other name, the right bytes
    renamed.parent.mkdir()
    renamed.write_bytes(pdf("CM16-0240900").read_bytes())
    results = tmp_path / "r.jsonl"
    results.write_text(dets[0].model_dump_json() + "\n" + dets[1].model_dump_json() + "\n", encoding="utf-8")
    out = tmp_path / "review.html"
    res = _invoke(["review", str(results), str(edited), "--letters", str(renamed.parent), "-o", str(out)])
    assert res.exit_code == 0, res.output
    by_file = {d["file"]: d for d in _data(out.read_text(encoding="utf-8"))["letters"]}
    stale = by_file["CM16-0230651.pdf"]
    assert not stale["has_text"] and "sha256 differs" in stale["notice"]
    found = by_file["CM16-0240900.pdf"]
    assert found["has_text"] and "".join(s[0] for s in found["segments"]) == texts[1]


def test_letter_reads_are_bounded(letters, tmp_path):
    """A letter over ingest's size limit is not read; a FIFO named like a letter never blocks."""
    dets, _ = letters
    folder = tmp_path / "letters"
    folder.mkdir()
    big = folder / "CM16-0230651.pdf"
    with big.open("wb") as handle:  # sparse: costs no disk
        handle.truncate(MAX_INPUT_BYTES + 1)
    fifo = folder / "CM16-0240900.pdf"
    os.mkfifo(fifo)
    with pytest.raises(LetterFileError, match="over the"):
        read_letter_bytes(big)
    with pytest.raises(LetterFileError, match="not a regular file"):
        read_letter_bytes(fifo)
    results = tmp_path / "r.jsonl"
    results.write_text(dets[0].model_dump_json() + "\n" + dets[1].model_dump_json() + "\n", encoding="utf-8")
    out = tmp_path / "review.html"
    res = _invoke(["review", str(results), "--letters", str(folder), "-o", str(out)])
    assert res.exit_code == 0, res.output
    by_file = {d["file"]: d for d in _data(out.read_text(encoding="utf-8"))["letters"]}
    assert "over the 8,388,608-byte limit: not read" in by_file["CM16-0230651.pdf"]["notice"]
    assert "not a regular file" in by_file["CM16-0240900.pdf"]["notice"]


def test_letter_arguments_must_exist(letters, tmp_path):
    results = tmp_path / "r.jsonl"
    results.write_text(letters[0][0].model_dump_json() + "\n", encoding="utf-8")
    res = _invoke(["review", str(results), str(tmp_path / "nope.pdf"), "-o", str(tmp_path / "x.html")])
    assert res.exit_code == 1 and "letter not found" in res.output
    res = _invoke(["review", str(results), "--letters", str(tmp_path / "nodir"), "-o", str(tmp_path / "x.html")])
    assert res.exit_code == 1 and "letters directory not found" in res.output


# --------------------------------------------------------------------------------------------
# --serve: only its own address, strict headers
# --------------------------------------------------------------------------------------------


def _raw_get(port: int, host_lines: list[str]) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request over a raw socket, with exactly the Host header lines given."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        head = "GET / HTTP/1.1\r\n" + "".join(f"{line}\r\n" for line in host_lines) + "Connection: close\r\n\r\n"
        sock.sendall(head.encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    header, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = header.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.fixture()
def served(letters):
    dets, texts = letters
    html = build_review_html(dets, texts)
    server = make_server(lambda: html, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], texts
    finally:
        server.shutdown()
        server.server_close()


def test_serve_rejects_dns_rebinding(served):
    port, texts = served
    marker = texts[0].split("\n")[0].strip().encode()
    for host_lines in (
        ["Host: evil.example"],
        [f"Host: evil.example:{port}"],
        [f"Host: 127.0.0.1:{port}.evil.example"],
        ["Host: 127.0.0.1"],  # another port's page
        [],  # no Host at all
        [f"Host: 127.0.0.1:{port}", "Host: evil.example"],  # two
    ):
        status, headers, body = _raw_get(port, host_lines)
        assert status == 403, host_lines
        assert marker not in body and b"review-data" not in body
        assert headers["x-content-type-options"] == "nosniff"
    for good in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}"):
        status, headers, body = _raw_get(port, [f"Host: {good}"])
        assert status == 200 and b"review-data" in body
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY" and headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "unsafe-inline" not in headers["content-security-policy"].split("script-src", 1)[1].split(";")[0]


def test_the_only_script_the_policy_allows_is_the_pages_own(letters):
    dets, texts = letters
    html = build_review_html(dets, texts)
    policy = html_lib.unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1))
    allowed = re.search(r"script-src '(sha256-[^']+)'", policy).group(1)
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)  # executable scripts (no type=)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert allowed == f"sha256-{digest}"
    assert "default-src 'none'" in policy and "unsafe-inline" not in policy.split("style-src")[0]
