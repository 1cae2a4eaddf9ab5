"""The command line as a user runs it: real subprocesses, one-line errors, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
