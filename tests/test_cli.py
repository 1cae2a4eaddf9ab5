"""The command line as a user runs it: real subprocesses, one-line errors, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SEEDS, pdf

from llm_extract import Determination, json_schema


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "llm_extract", *args], capture_output=True, text=True, timeout=120
    )


def test_extract_one_pdf_to_json() -> None:
    proc = run("extract", str(pdf("CM16-0230651")))
    assert proc.returncode == 0, proc.stderr
    result = Determination.model_validate_json(proc.stdout)
    assert len(result.items) == 10 and result.source.backend == "rules"


def test_extract_jsonl_to_file(tmp_path: Path) -> None:
    out = tmp_path / "out" / "results.jsonl"
    proc = run("extract", str(SEEDS[0]), str(SEEDS[1]), "--format", "jsonl", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    lines = out.read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line)["items"] for line in lines)
    left = [p.name for p in out.parent.iterdir() if p.name.startswith(".")]
    assert left == [".results.jsonl.lock"]  # no temp file or journal left; the lock file stays, empty


def test_bad_inputs_give_one_line_and_nonzero_exit(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    binary = tmp_path / "blob.txt"
    binary.write_bytes(b"\x00\xff" * 100)
    notimr = tmp_path / "invoice.txt"
    notimr.write_text("Invoice 42. Please pay within thirty days.")
    for path in (empty, binary, notimr, tmp_path / "missing.pdf"):
        proc = run("extract", str(path))
        assert proc.returncode == 1, (path, proc.stderr)
        assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
        assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_one_bad_letter_does_not_stop_the_others(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text(" ")
    proc = run("extract", str(empty), str(SEEDS[0]), "--format", "jsonl")
    assert proc.returncode == 1
    failed, good = (json.loads(line) for line in proc.stdout.splitlines())
    assert failed["ok"] is False and failed["error"] == "empty" and failed["letter"].endswith("empty.txt")
    assert good["items"] and "empty.txt" in proc.stderr


def test_usage_errors_exit_2() -> None:
    for args in (
        ("extract",),
        ("extract", "--format", "xml", str(SEEDS[0])),
        ("extract", "--backend", "nope", str(SEEDS[0])),
    ):
        proc = run(*args)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_strict_exits_3_on_error_flags(tmp_path: Path) -> None:
    letter = tmp_path / "swapped.txt"
    letter.write_text(SEEDS[1].read_text().replace(": Overturned", ": Upheld"))
    assert run("extract", str(letter)).returncode == 0
    assert run("extract", "--strict", str(letter)).returncode == 3


def test_schema_is_generated_from_the_models() -> None:
    proc = run("schema")
    assert proc.returncode == 0
    schema = json.loads(proc.stdout)
    assert schema == json.loads(json.dumps(json_schema()))
    assert schema["properties"].keys() >= {"case", "reviewer", "patient", "items", "flags", "source"}
    assert schema["$defs"]["Quote"]["properties"]["match"]["enum"] == ["exact", "normalized", "fuzzy", "none"]


def one_line_error(proc: subprocess.CompletedProcess, code: int) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr


def test_an_output_that_cannot_be_used_is_a_usage_error_before_any_work(tmp_path: Path) -> None:
    a_file = tmp_path / "plain"
    a_file.write_text("x")
    cases = [
        tmp_path,  # a directory
        a_file / "results.jsonl",  # under a file
        tmp_path / "results.txt",  # an extension that names no format
    ]
    sysfs = Path("/sys/results.jsonl")  # sysfs refuses new files even to root: a real EACCES
    if Path("/sys").is_dir() and not os.access("/sys", os.W_OK):
        cases.append(sysfs)
    elif Path("/sys").is_dir():
        probe = subprocess.run(["touch", str(sysfs)], capture_output=True)
        if probe.returncode != 0:
            cases.append(sysfs)
    for out in cases:
        proc = run("extract", str(SEEDS[0]), str(SEEDS[1]), "-o", str(out))
        one_line_error(proc, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain"]


def test_a_full_disk_is_one_line_and_exit_1() -> None:
    if not Path("/dev/full").exists():
        return
    for fmt in ("jsonl", "json"):
        proc = run("extract", str(SEEDS[0]), str(SEEDS[1]), "-f", fmt, "-o", "/dev/full")
        one_line_error(proc, 1)
        assert "No space left on device" in proc.stderr
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "llm_extract", "extract", str(SEEDS[0])], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    one_line_error(proc, 1)


def test_a_disk_filling_up_mid_run_leaves_only_whole_records(tmp_path: Path, monkeypatch, capsys) -> None:
    from llm_extract import cli

    out = tmp_path / "results.jsonl"
    real_write = os.write
    writes = 0

    def write(fd: int, data) -> int:
        nonlocal writes
        if os.fstat(fd).st_ino == out.stat().st_ino:
            writes += 1
            if writes == 3:  # half the third record reaches the disk, then the disk is full
                real_write(fd, bytes(data)[: len(data) // 2])
                raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(sys, "argv", ["llm-extract", "extract", *map(str, SEEDS), "-o", str(out)])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert f"error: cannot write {out}: No space left on device" in err and "Traceback" not in err
    lines = out.read_text().splitlines(keepends=True)
    assert len(lines) == 2 and all(line.endswith("\n") and json.loads(line)["items"] for line in lines)


def test_letters_that_are_not_regular_files_fail_one_line_each(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    broken = tmp_path / "gone.txt"
    broken.symlink_to(tmp_path / "nowhere.txt")
    for letter in (fifo, broken):
        proc = run("extract", str(letter))  # run() has a timeout: a FIFO must not block
        one_line_error(proc, 1)
    out = tmp_path / "results.jsonl"
    proc = run("extract", str(fifo), str(broken), str(SEEDS[0]), "-o", str(out))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    kinds = [r.get("error", "ok") for r in map(json.loads, out.read_text().splitlines())]
    assert len(kinds) == 3 and kinds[2] == "ok" and "ok" not in kinds[:2]


def test_a_permission_error_reading_a_letter_is_its_record_not_an_internal_error(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    import llm_extract.pipeline as pipeline
    from llm_extract import cli

    real = pipeline.extract

    def extract(letter, **options):
        if str(letter).endswith("secret.txt"):
            raise PermissionError(13, "Permission denied", str(letter))
        return real(letter, **options)

    secret = tmp_path / "secret.txt"
    secret.write_text(SEEDS[0].read_text())
    monkeypatch.setattr(pipeline, "extract", extract)  # inherited by the forked worker
    monkeypatch.setattr(sys, "argv", ["llm-extract", "extract", str(secret), str(SEEDS[0]), "-f", "jsonl"])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 1
    captured = capsys.readouterr()
    assert f"error: {secret}: Permission denied" in captured.err and "internal" not in captured.err
    failed, good = map(json.loads, captured.out.splitlines())
    assert failed["error"] == "io_error" and good["items"]


def test_a_closed_pipe_is_one_line_not_a_traceback() -> None:
    proc = subprocess.run(
        f"{sys.executable} -m llm_extract extract {SEEDS[0]} {SEEDS[1]} {SEEDS[2]} -f jsonl | head -c 10 >/dev/null;"
        " echo status=${PIPESTATUS[0]} >&2",
        shell=True, executable="/bin/bash", capture_output=True, text=True, timeout=120,
    )
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
    assert proc.stderr.rstrip().endswith(("status=0", "status=1")), proc.stderr
