"""Batch extraction: order, isolation of bad letters, time budgets, crashed workers, streaming,
executors, resume, rate limits."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import misbehaving
import pytest
from conftest import PDFS, ROOT, SEEDS
from fake_openai import FakeOpenAI, Step
from test_llm import letter_answer

import llm_extract.pipeline as pipeline
from llm_extract import Determination, extract
from llm_extract.batch import (
    LETTER_TIMEOUT_S,
    WINDOW_PER_JOB,
    BatchError,
    expand,
    extract_many,
    extract_one,
    letter_timeout,
)

LETTERS = [*PDFS[:6], *SEEDS[:2]]


def names(outcomes: list) -> list[str]:
    return [o.source.name if isinstance(o, Determination) else o.letter for o in outcomes]


def test_ordered_results_match_one_by_one_extraction_and_bad_letters_are_records(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text(" ")
    inputs = [*LETTERS[:3], empty, tmp_path / "missing.pdf", *LETTERS[3:]]
    outcomes = list(extract_many(inputs, jobs=2))
    assert len(outcomes) == len(inputs)
    assert names(outcomes) == [str(p) for p in inputs]
    errors = [o for o in outcomes if isinstance(o, BatchError)]
    assert [(e.error, e.ok) for e in errors] == [("empty", False), ("not_found", False)]
    good = [o for o in outcomes if isinstance(o, Determination)]
    assert good == [extract(p) for p in LETTERS]


def test_as_completed_yields_every_letter_once() -> None:
    outcomes = list(extract_many(LETTERS, jobs=2, ordered=False))
    assert sorted(names(outcomes)) == sorted(str(p) for p in LETTERS)


def test_input_is_consumed_lazily_so_memory_stays_flat() -> None:
    pulled = 0

    def source():
        nonlocal pulled
        for _ in range(1000):
            pulled += 1
            yield SEEDS[0]

    stream = extract_many(source(), jobs=2)
    first = next(stream)
    assert isinstance(first, Determination)
    assert pulled <= 2 * WINDOW_PER_JOB + 1  # a bounded window, not 1,000 letters in flight
    stream.close()


def test_any_executor_dask_local_cluster_gives_the_same_results() -> None:
    import distributed  # in the test extras: a missing install fails here rather than skipping

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with cluster, distributed.Client(cluster) as client:
        on_dask = list(extract_many(LETTERS, executor=client.get_executor()))
    assert on_dask == list(extract_many(LETTERS, jobs=1))


def test_expand_directories_and_globs(tmp_path: Path) -> None:
    found = expand([str(SEEDS[0].parent), str(PDFS[0].parent / "CM16-023*.pdf"), str(SEEDS[0])])
    assert found[: len(SEEDS)] == SEEDS
    assert all(p.suffix in (".pdf", ".txt") for p in found)
    assert len(found) == len(set(p.resolve() for p in found))  # the seed named twice appears once


def test_cli_writes_incrementally_and_resumes_after_a_torn_line(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    cli = [sys.executable, "-m", "llm_extract", "extract", "--format", "jsonl", "-o", str(out)]
    first = subprocess.run([*cli, *map(str, LETTERS[:4])], capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "4 letters: 4 ok, 0 flagged, 0 failed" in first.stderr
    with out.open("a") as handle:
        handle.write('{"items": [{"item": "half a li')  # a crash mid-line
    second = subprocess.run([*cli, "--jobs", "2", *map(str, LETTERS)], capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert "4 already done" in second.stderr
    lines = out.read_text().splitlines()
    assert len(lines) == len(LETTERS)
    assert sorted(json.loads(line)["source"]["name"] for line in lines) == sorted(map(str, LETTERS))


def test_threads_share_a_backoff_after_429_and_respect_the_in_flight_cap(tmp_path: Path) -> None:
    lock = threading.Lock()
    in_flight = peak = 0
    times: list[tuple[float, int]] = []

    def respond(request: dict) -> Step:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
            first = not times
            times.append((time.monotonic(), 429 if first else 200))
        try:
            if first:
                return Step(status=429, headers={"retry-after": "1"})
            time.sleep(0.2)
            return Step(answer=letter_answer())
        finally:
            with lock:
                in_flight -= 1

    texts = [SEEDS[0].read_text() + "\n" * i for i in range(6)]  # six distinct letters, same items
    with FakeOpenAI(respond) as server:
        outcomes = list(extract_many(texts, backend="openai", jobs=6, max_in_flight=2, model="m",
                                     base_url=server.base_url, api_key="k", mode="json", strategy="whole-letter",
                                     cache=False, backoff_initial=0.01, backoff_max=0.05))
    assert all(isinstance(o, Determination) and o.ok for o in outcomes), outcomes
    assert peak <= 2
    t429 = times[0][0]
    # requests already on the wire when the 429 came back aside, nobody asked again within the Retry-After
    assert not [t for t, _ in times[1:] if t429 + 0.3 < t < t429 + 0.9], times
    assert len(times) == 7  # six letters and the one refused request


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Letters whose worker dies (SIGKILL, SIGABRT, SIGSEGV, os._exit) or hangs, with the test extractor
    installed so that the batch's forked workers inherit it."""
    monkeypatch.setattr(pipeline, "extract", misbehaving.extract)
    letters = []
    for kind in misbehaving.KINDS:
        letter = tmp_path / f"letter-{kind}.txt"
        shutil.copy(SEEDS[0], letter)  # a good letter: only its name makes the extractor misbehave
        letters.append(letter)
    return letters


EXPECTED = {"sigkill": "SIGKILL", "abort": "SIGABRT", "segfault": "SIGSEGV", "exit": "exit status 3"}


@pytest.mark.parametrize("ordered", [True, False])
def test_crashed_and_hung_workers_fail_only_their_own_letters(hostile: list[Path], ordered: bool) -> None:
    good = [*PDFS[:8], *SEEDS]
    inputs = [good[0], *hostile[:3], *good[1:6], *hostile[3:], *good[6:]]
    started = time.monotonic()
    outcomes = list(extract_many(inputs, jobs=2, timeout=3, ordered=ordered))
    elapsed = time.monotonic() - started
    assert sorted(names(outcomes)) == sorted(map(str, inputs))  # every letter exactly once
    if ordered:
        assert names(outcomes) == [str(p) for p in inputs]
    by_name = dict(zip(names(outcomes), outcomes))
    for path in good:
        assert by_name[str(path)] == extract(path)
    for path in hostile:
        failed = by_name[str(path)]
        kind = path.stem.rsplit("-", 1)[-1]
        assert isinstance(failed, BatchError) and failed.sha256 == sha256(path), failed
        if kind == "hang":
            assert failed.error == "timeout" and "3 s" in failed.message
        else:
            assert failed.error == "worker_crashed" and EXPECTED[kind] in failed.message, failed
    assert elapsed < 60  # the hung letter was stopped at its budget, not waited for


def test_a_letter_whose_worker_died_once_gets_its_result_from_a_fresh_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "extract", misbehaving.extract)
    once = tmp_path / "letter-once.txt"
    shutil.copy(SEEDS[0], once)
    outcomes = list(extract_many([PDFS[0], once, PDFS[1]], jobs=2, timeout=10))
    assert once.with_suffix(".crashed").exists()  # its first worker really died
    assert outcomes == [extract(PDFS[0]), extract(SEEDS[0]).model_copy(
        update={"source": extract(SEEDS[0]).source.model_copy(update={"name": str(once)})}
    ), extract(PDFS[1])]


def test_a_crash_with_one_job_is_isolated_too(hostile: list[Path]) -> None:
    outcomes = list(extract_many([hostile[0], SEEDS[0], hostile[1]], jobs=1, timeout=5))
    assert [type(o).__name__ for o in outcomes] == ["BatchError", "Determination", "BatchError"]


def test_the_cli_writes_every_other_record_and_exits_1(tmp_path: Path) -> None:
    letters = tmp_path / "letters"
    letters.mkdir()
    for pdf in PDFS[:12]:
        shutil.copy(pdf, letters)
    for kind in misbehaving.KINDS:
        shutil.copy(SEEDS[0], letters / f"z-{kind}.txt")
    out = tmp_path / "results.jsonl"
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT / 'tests')!r}); import misbehaving; misbehaving.install()\n"
        "from llm_extract.cli import main; main()"
    )
    args = ["extract", str(letters), "--jobs", "2", "--timeout", "3", "-o", str(out)]
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 12 + len(misbehaving.KINDS)
    failed = {r["letter"]: r["error"] for r in records if r.get("ok") is False}
    assert failed == {
        str(letters / f"z-{k}.txt"): ("timeout" if k == "hang" else "worker_crashed") for k in misbehaving.KINDS
    }
    assert sorted(r["source"]["name"] for r in records if "source" in r) == sorted(
        str(letters / p.name) for p in PDFS[:12]
    )
    assert f"{12 + len(misbehaving.KINDS)} letters: 12 ok, 0 flagged, 5 failed" in proc.stderr


def test_llm_threads_give_up_a_letter_over_budget_and_discard_its_late_result(tmp_path: Path) -> None:
    marker = "SLOW-LETTER-7f3a"

    def respond(request: dict) -> Step:
        return Step(answer=letter_answer(), delay=15.0 if marker in json.dumps(request) else 0.0)

    base = SEEDS[0].read_text()
    texts = [base, base + "\n", base + "\n" + marker + "\n", base + "\n\n"]
    with FakeOpenAI(respond) as server:
        started = time.monotonic()
        outcomes = list(
            extract_many(texts, backend="openai", jobs=2, timeout=4, request_timeout=30, model="m",
                         base_url=server.base_url, api_key="k", mode="json", strategy="whole-letter",
                         cache=False)
        )
        elapsed = time.monotonic() - started
    kinds = [o.error if isinstance(o, BatchError) else "ok" for o in outcomes]
    assert kinds == ["ok", "ok", "timeout", "ok"], outcomes
    assert outcomes[2].sha256 == hashlib.sha256(texts[2].encode()).hexdigest()
    assert "4 s" in outcomes[2].message
    assert elapsed < 15.0  # nobody waited for the slow answer


def test_a_callers_executor_keeps_its_letters_to_the_budget(hostile: list[Path]) -> None:
    hang = next(p for p in hostile if p.stem.endswith("hang"))
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(extract_many([SEEDS[0], hang, SEEDS[1]], executor=pool, timeout=1))
    assert [o.error if isinstance(o, BatchError) else "ok" for o in outcomes] == ["ok", "timeout", "ok"]


def test_budget_defaults_and_validation() -> None:
    assert letter_timeout("rules") == LETTER_TIMEOUT_S["rules"]
    assert letter_timeout("local") > letter_timeout("openai") > letter_timeout("rules")
    assert letter_timeout("rules", 2) == 2.0
    for bad in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ValueError):
            letter_timeout("rules", bad)


def test_environment_errors_become_records_not_crashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    letter = tmp_path / "letter.txt"
    letter.write_text(SEEDS[0].read_text())

    def denied(path, **_):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(pipeline, "extract", denied)
    failed = extract_one(letter)
    assert isinstance(failed, BatchError) and failed.error == "io_error"
    assert failed.sha256 == sha256(letter) and "Permission denied" in failed.message


def test_a_file_named_like_a_glob_is_that_file(tmp_path: Path) -> None:
    literal = tmp_path / "a[1].txt"
    shutil.copy(SEEDS[0], literal)
    shutil.copy(SEEDS[1], tmp_path / "a1.txt")  # what "a[1].txt" would match as a pattern
    assert expand([str(literal)]) == [literal]
    assert expand([str(tmp_path / "a[12].txt")]) == [tmp_path / "a1.txt"]  # no such file: a pattern


def test_an_unreadable_directory_is_reported_not_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ok").mkdir()
    shutil.copy(SEEDS[0], tmp_path / "ok" / "a.txt")
    (tmp_path / "locked").mkdir()
    real_scandir = os.scandir

    def scandir(path):
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    problems: list[str] = []
    assert expand([str(tmp_path)], on_error=problems.append) == [tmp_path / "ok" / "a.txt"]
    assert problems == [f"cannot read the directory {tmp_path / 'locked'}: Permission denied"]


def _extract_in_daemon(letters: list[str]) -> list[str]:
    return [type(o).__name__ for o in extract_many(letters, jobs=2, timeout=60)]


def test_inside_a_daemonic_worker_letters_run_in_threads_instead() -> None:
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(1) as pool:  # its workers may not start processes
        assert pool.apply(_extract_in_daemon, ([str(SEEDS[0]), str(SEEDS[1])],)) == ["Determination"] * 2
