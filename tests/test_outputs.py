"""Batch outputs: the format follows the extension; resume matches path and sha256; one record per
letter at the end; damaged lines kept and reported; a lock between runs; crash-safe replacement."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import threading
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
from conftest import SEEDS
from filelock import FileLock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm_extract import cli, extract
from llm_extract.batch import BatchError
from llm_extract.errors import OutputLockedError, OutputUnusableError, OutputWriteError
from llm_extract.outputs import FORMATS, JsonlOutput, JsonOutput, format_for, open_output

BASE = extract(SEEDS[0])
FLAGGED = extract(SEEDS[1].read_text().replace(": Overturned", ": Upheld"))  # decision contradicts rationale


def run(*args: str) -> SimpleNamespace:
    """``llm-extract extract ARGS`` in this process (the same code as the command, without its start-up
    time); ``tests/test_cli.py`` runs the command itself."""
    stdout, stderr = io.TextIOWrapper(io.BytesIO(), encoding="utf-8"), io.StringIO()
    with mock.patch.object(sys, "argv", ["llm-extract", "extract", *args]), redirect_stdout(stdout), \
            redirect_stderr(stderr):
        code = cli._run()
    stdout.flush()
    return SimpleNamespace(returncode=code, stdout=stdout.buffer.getvalue().decode(), stderr=stderr.getvalue())


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def letters(tmp_path: Path, count: int) -> list[Path]:
    made = []
    for i in range(count):
        path = tmp_path / f"letter{i}.txt"
        shutil.copy(SEEDS[i % len(SEEDS)], path)
        made.append(path)
    return made


def name_of(record: dict) -> str:
    return record["letter"] if record.get("ok") is False else record["source"]["name"]


def test_the_format_follows_the_extension_unless_format_says_otherwise(tmp_path: Path) -> None:
    assert format_for(Path("r.jsonl"), None) == "jsonl"
    assert format_for(Path("R.JSONL"), None) == "jsonl"
    assert format_for(Path("r.json"), None) == "json"
    assert format_for(Path("r.json"), "jsonl") == "jsonl"
    assert format_for(None, None) == "json"
    for bad in (lambda: format_for(Path("r.txt"), None), lambda: format_for(Path("r.json"), "xml"),
                lambda: format_for(tmp_path, None)):
        with pytest.raises(OutputUnusableError):
            bad()
    assert set(FORMATS) >= {"json", "jsonl"}

    [letter] = letters(tmp_path, 1)
    as_lines, as_array = tmp_path / "r.jsonl", tmp_path / "r.json"
    assert run(str(letter), str(SEEDS[1]), "-o", str(as_lines)).returncode == 0
    assert [r["source"]["name"] for r in records(as_lines)] == [str(letter), str(SEEDS[1])]
    assert run(str(letter), str(SEEDS[1]), "-o", str(as_array)).returncode == 0
    array = json.loads(as_array.read_text())
    assert [r["source"]["name"] for r in array] == [str(letter), str(SEEDS[1])]
    assert as_array.read_text().count("\n") == 4  # '[', one record per line, ']'


def test_a_letter_is_done_only_when_path_and_sha256_both_match(tmp_path: Path) -> None:
    a, b = letters(tmp_path, 2)
    out = tmp_path / "results.jsonl"
    assert run(str(a), str(b), "-o", str(out)).returncode == 0
    copy = tmp_path / "copy-of-a.txt"
    shutil.copy(a, copy)  # the same bytes at another path: another letter
    b.write_text(b.read_text() + "\n")  # edited: its old result is stale
    proc = run(str(a), str(b), str(copy), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "2 letters: 2 ok" in proc.stderr and "1 already done" in proc.stderr
    final = records(out)
    assert sorted(name_of(r) for r in final) == sorted(map(str, (a, b, copy)))  # one record per letter
    by_name = {name_of(r): r for r in final}
    assert by_name[str(b)]["source"]["sha256"] == extract(b).source.sha256  # the edited letter's new result


def test_a_failed_letter_is_retried_and_its_record_replaced(tmp_path: Path) -> None:
    letter = tmp_path / "late.txt"
    letter.write_text(" ")
    out = tmp_path / "results.jsonl"
    first = run(str(letter), str(SEEDS[0]), "-o", str(out))
    assert first.returncode == 1
    failed = records(out)[0]
    assert failed["ok"] is False and failed["error"] == "empty"
    assert failed["sha256"] == hashlib.sha256(b" ").hexdigest()  # resume tells this file from its next version
    shutil.copy(SEEDS[1], letter)
    second = run(str(letter), str(SEEDS[0]), "-o", str(out))
    assert second.returncode == 0, second.stderr
    final = records(out)
    assert len(final) == 2 and all(r.get("ok") is not False for r in final)


def test_blank_and_malformed_lines_in_the_middle_are_kept_and_reported(tmp_path: Path) -> None:
    a, b, c, d = letters(tmp_path, 4)
    out = tmp_path / "results.jsonl"
    assert run(str(a), str(b), str(c), "-o", str(out)).returncode == 0
    lines = out.read_text().splitlines(keepends=True)
    out.write_text(lines[0] + "\n" + "not json at all\n" + "".join(lines[1:]))
    proc = run(str(a), str(b), str(c), str(d), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert f"warning: {out}: line 2 is blank; kept" in proc.stderr
    assert f"warning: {out}: line 3 is not a JSON record; kept" in proc.stderr
    assert "1 letters: 1 ok" in proc.stderr and "3 already done" in proc.stderr  # nothing after them was lost
    after = out.read_text().splitlines(keepends=True)
    assert after[:5] == [lines[0], "\n", "not json at all\n", *lines[1:]] and len(after) == 6


def test_only_a_torn_last_line_is_repaired(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    with JsonlOutput(out) as sink:
        sink.write(BASE)
    whole = out.read_bytes()
    out.write_bytes(whole + b'{"source": {"name": "x", "sha')
    with JsonlOutput(out) as sink:
        assert any("removed a torn last line" in note for note in sink.notes)
    assert out.read_bytes() == whole
    out.write_bytes(whole + whole.rstrip(b"\n"))  # a whole record without its newline: kept, newline added
    with JsonlOutput(out):
        pass
    assert out.read_bytes() == whole  # both whole; the older record of the same letter was dropped


def test_a_second_run_on_the_same_output_refuses_or_waits(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    lock = FileLock(str(tmp_path / ".results.jsonl.lock"), thread_local=False)
    lock.acquire()
    try:
        proc = run(str(SEEDS[0]), "-o", str(out))
        assert proc.returncode == 2
        assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
        assert "another run" in proc.stderr and not out.exists()
        with pytest.raises(OutputLockedError):
            JsonlOutput(out)
        threading.Timer(2.0, lock.release).start()
        waited = run(str(SEEDS[0]), "-o", str(out), "--lock-wait", "120")
    finally:
        if lock.is_locked:
            lock.release()
    assert waited.returncode == 0, waited.stderr
    assert len(records(out)) == 1


def test_two_concurrent_runs_never_interleave_or_duplicate_records(tmp_path: Path) -> None:
    many = letters(tmp_path, 10)
    out = tmp_path / "results.jsonl"
    cmd = [sys.executable, "-m", "llm_extract", "extract", *map(str, many), "-o", str(out), "--lock-wait", "300"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    final = records(out)  # every line parses: nothing interleaved
    assert sorted(name_of(r) for r in final) == sorted(map(str, many))
    assert any("10 already done" in stderr for _, stderr in results)


def test_replacing_records_is_crash_safe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "results.jsonl"
    old = BASE.model_copy(update={"source": BASE.source.model_copy(update={"name": "a.txt", "sha256": "1" * 64})})
    new = old.model_copy(update={"source": old.source.model_copy(update={"sha256": "2" * 64})})
    with JsonlOutput(out) as sink:
        sink.write(old)
    before = out.read_bytes()

    def full_disk(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    sink = JsonlOutput(out)
    sink.write(new)
    with pytest.raises(OutputWriteError, match="next run drops the older ones"):
        sink.close()
    assert out.read_bytes().startswith(before) and len(records(out)) == 2  # nothing lost, nothing torn
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    monkeypatch.undo()
    with JsonlOutput(out) as sink:
        assert sink.done("a.txt") is None  # the newest record is the one that counts
    assert [r["source"]["sha256"] for r in records(out)] == ["2" * 64]


def test_json_output_resumes_and_folds_in_a_journal_left_by_a_crash(tmp_path: Path) -> None:
    a, b, c = letters(tmp_path, 3)
    out = tmp_path / "results.json"
    assert run(str(a), str(b), "-o", str(out)).returncode == 0
    journal = tmp_path / ".results.json.journal.jsonl"
    journal.write_text(extract(c).model_dump_json() + "\n" + '{"torn": ')  # a run killed mid-record
    proc = run(str(a), str(b), str(c), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "3 already done" in proc.stderr and not journal.exists()
    assert [r["source"]["name"] for r in json.loads(out.read_text())] == [str(a), str(b), str(c)]


def test_json_output_that_is_not_ours_is_never_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    out.write_text("this is not JSON")
    proc = run(str(SEEDS[0]), str(SEEDS[1]), "-o", str(out))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--restart" in proc.stderr
    assert out.read_text() == "this is not JSON"
    assert run(str(SEEDS[0]), str(SEEDS[1]), "-o", str(out), "--restart").returncode == 0
    assert len(json.loads(out.read_text())) == 2
    pretty = tmp_path / "pretty.json"  # a foreign but valid layout is read whole
    pretty.write_text(json.dumps([json.loads(BASE.model_dump_json())], indent=2))
    with JsonOutput(pretty) as sink:
        assert sink.done(SEEDS[0]) is not None


def test_one_letter_to_json_is_its_object(tmp_path: Path) -> None:
    out = tmp_path / "one.json"
    assert run(str(SEEDS[0]), "-o", str(out)).returncode == 0
    assert json.loads(out.read_text())["source"]["name"] == str(SEEDS[0])
    again = run(str(SEEDS[0]), "-o", str(out))
    assert again.returncode == 0 and json.loads(out.read_text())["source"]["name"] == str(SEEDS[0])


def test_strict_on_a_resumed_run_counts_the_flagged_results_already_there(tmp_path: Path) -> None:
    swapped = tmp_path / "swapped.txt"
    swapped.write_text(SEEDS[1].read_text().replace(": Overturned", ": Upheld"))
    out = tmp_path / "results.jsonl"
    assert run(str(swapped), str(SEEDS[0]), "-o", str(out)).returncode == 0
    proc = run(str(swapped), str(SEEDS[0]), "-o", str(out), "--strict")
    assert proc.returncode == 3, proc.stderr
    assert "2 already done (1 flagged)" in proc.stderr and "1 result(s) carry error flags" in proc.stderr


def _variant(name: str, sha: int, failed: bool, flagged: bool) -> object:
    digest = f"{sha:064x}"
    if failed:
        return BatchError(letter=name, sha256=digest, error="empty", message=f"{name}: empty")
    base = FLAGGED if flagged else BASE
    return base.model_copy(update={"source": base.source.model_copy(update={"name": name, "sha256": digest})})


OUTCOME = st.tuples(st.sampled_from(["a.txt", "b.txt", "c.pdf", "d e.txt"]), st.integers(0, 2), st.booleans(),
                    st.booleans())
RUN = st.tuples(st.lists(OUTCOME, max_size=6), st.sampled_from(["", "\n", "junk\n", "torn"]))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(runs=st.lists(RUN, min_size=1, max_size=4), fmt=st.sampled_from(["jsonl", "json"]))
def test_any_sequence_of_runs_ends_with_the_newest_record_per_letter(tmp_path: Path, runs: list, fmt: str) -> None:
    """Whatever runs wrote, and whatever damage came between them, each letter's newest record is there
    exactly once, damaged lines other than a torn tail are kept, and a done letter is one whose newest
    record is a result for the same sha256."""
    out = tmp_path / f"r-{os.urandom(4).hex()}.{fmt}"
    newest: dict[str, object] = {}
    junk = 0
    for outcomes, damage in runs:
        if out.exists() and fmt == "jsonl" and damage:
            with out.open("a") as handle:
                handle.write('{"torn": tr' if damage == "torn" else damage)
            junk += damage != "torn"
        with open_output(out, fmt) as sink:
            for name, sha, failed, flagged in outcomes:
                outcome = _variant(name, sha, failed, flagged)
                sink.write(outcome)
                newest[name] = outcome
    if not newest:
        return
    lines = out.read_text().splitlines()
    if fmt == "json":
        found = json.loads(out.read_text())
    else:
        found = [json.loads(line) for line in lines if line.strip() and line != "junk"]
        assert len(lines) - len(found) == junk
    assert sorted(name_of(r) for r in found) == sorted(newest)
    for record in found:
        assert record == json.loads(newest[name_of(record)].model_dump_json())
    with open_output(out, fmt) as sink:
        for name, outcome in newest.items():
            prior = sink.latest(name)
            assert prior.extracted == (not isinstance(outcome, BatchError))
            assert prior.flagged == (not isinstance(outcome, BatchError) and not outcome.ok)


def test_a_journal_is_only_left_behind_by_a_crash(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    with JsonOutput(out) as sink:
        sink.write(BASE)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".r.json.lock", "r.json"]
    before = out.stat()
    with JsonOutput(out) as sink:  # nothing new: the file is not rewritten
        assert sink.done(SEEDS[0]) is not None
    assert (out.stat().st_ino, out.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".r.json.lock", "r.json"]
