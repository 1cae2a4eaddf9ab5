"""Batch extraction: order, isolation of bad letters, streaming, executors, resume, rate limits."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from conftest import PDFS, SEEDS
from fake_openai import FakeOpenAI, Step
from test_llm import letter_answer

from llm_extract import Determination, extract
from llm_extract.batch import WINDOW_PER_JOB, BatchError, done_letters, expand, extract_many

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
    assert done_letters(out) >= {str(p) for p in LETTERS}


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
