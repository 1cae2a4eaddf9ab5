"""Batch throughput, LLM concurrency, cache speed-up and memory, measured side by side in one run.

    python benchmarks/bench_batch.py [--latency 0.5] [--letters 48] [--memory-letters 1000]

Prints:
- rules backend, PDF -> verified Determination on the 158 real PDFs: letters/s in this process
  (no isolation), with 1 worker process and with one worker process per core (and per core);
- against a local fake OpenAI endpoint with fixed latency: 8 jobs vs 1 (goal >= 6x), and a cached
  re-run vs the uncached run (goal >= 100x);
- peak memory (RSS) streaming 100 vs 1,000 letters through extract_many (flat = similar);
- the outputs: writing 10,000 records, then opening the file again to resume (JSON Lines, JSON).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fake_openai import FakeOpenAI, Step, answer_from  # noqa: E402

from llm_extract import extract, extract_many, load  # noqa: E402
from llm_extract.batch import extract_one  # noqa: E402

PDFS = sorted((ROOT / "evals" / "letters" / "imr-2016-2017").glob("*.pdf"))
SEED = ROOT / "evals" / "letters" / "seeds" / "000_c56c88992780afee.txt"


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def rules_throughput() -> None:
    cores = os.cpu_count() or 1
    inline = timed(lambda: [extract_one(p) for p in PDFS])
    one = timed(lambda: list(extract_many(PDFS, jobs=1)))
    many = timed(lambda: list(extract_many(PDFS, jobs=cores)))
    n = len(PDFS)
    print(f"rules, in this process    : {n / inline:7.1f} letters/s  (no isolation, no time budget)")
    print(f"rules, 1 worker process   : {n / one:7.1f} letters/s  ({inline / one:.2f}x in-process: the cost of isolation)")
    print(
        f"rules, {cores} processes        : {n / many:7.1f} letters/s  ({n / many / cores:.1f} per core, "
        f"{one / many:.2f}x)"
    )


def _serve(
    answer: dict,
    latency: float,
    ports: multiprocessing.Queue,
    ask: multiprocessing.Queue,
    counts: multiprocessing.Queue,
) -> None:
    """The fake endpoint in its own process, so it does not share the client's interpreter lock."""
    with FakeOpenAI([Step(answer=answer, delay=latency)]) as server:
        ports.put(server.base_url)
        ask.get()  # serve until asked for the request count
        counts.put(len(server.requests))


def llm_concurrency(latency: float, count: int) -> None:
    base = load(SEED).text
    letters = [base + "\n" * i for i in range(count)]  # distinct letters (distinct cache keys), same items
    answer = answer_from(extract(base))
    ports: multiprocessing.Queue = multiprocessing.Queue()
    ask: multiprocessing.Queue = multiprocessing.Queue()
    counts: multiprocessing.Queue = multiprocessing.Queue()
    proc = multiprocessing.Process(target=_serve, args=(answer, latency, ports, ask, counts), daemon=True)
    proc.start()
    base_url = ports.get(timeout=30)
    with tempfile.TemporaryDirectory() as cache:
        opts = dict(
            backend="openai",
            model="fake",
            base_url=base_url,
            api_key="k",
            mode="json",
            strategy="whole-letter",
            cache_dir=cache,
        )
        serial = timed(lambda: list(extract_many(letters, jobs=1, cache=False, **opts)))
        parallel = timed(lambda: list(extract_many(letters, jobs=8, **opts)))  # fills the cache
        cached = timed(lambda: list(extract_many(letters, jobs=8, **opts)))
    ask.put("count?")
    sent = counts.get(timeout=30)
    proc.join(timeout=5)
    print(
        f"LLM {count} letters, {latency:.1f}s latency: 1 job {serial:6.2f}s, 8 jobs {parallel:6.2f}s "
        f"-> {serial / parallel:.1f}x (goal >= 6x)"
    )
    print(
        f"LLM cached re-run          : {cached:6.3f}s vs uncached {parallel:.2f}s -> {parallel / cached:.0f}x "
        f"(goal >= 100x); requests sent {sent} (= {2 * count}: none for the cached run)"
    )


def peak_rss_mb(count: int) -> float:
    """Peak RSS of a fresh process streaming ``count`` letters through extract_many: the larger of the
    process's own and its worker process's (the rules backend extracts in a worker)."""
    code = (
        "import itertools,resource,sys; from pathlib import Path; from llm_extract import extract_many\n"
        f"pdfs=sorted(Path({str(ROOT)!r}).glob('evals/letters/imr-2016-2017/*.pdf'))\n"
        f"letters=itertools.islice(itertools.cycle(pdfs), {count})\n"
        "n=sum(1 for _ in extract_many(letters, jobs=1))\n"
        "print(n, max(resource.getrusage(who).ru_maxrss for who in "
        "(resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert int(out[0]) == count
    return int(out[1]) / 1024


def output_costs(count: int = 10_000) -> None:
    """Seconds to write ``count`` records and to open the file again for a resume, per format."""
    from llm_extract.outputs import open_output

    base = extract(SEED)
    records = [
        base.model_copy(update={"source": base.source.model_copy(update={"name": f"letters/{i}.txt"})})
        for i in range(count)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("jsonl", "json"):
            path = Path(tmp) / f"results.{fmt}"

            def write(path: Path = path, fmt: str = fmt) -> None:
                with open_output(path, fmt) as sink:
                    for record in records:
                        sink.write(record)

            def reopen(path: Path = path, fmt: str = fmt) -> None:
                with open_output(path, fmt) as sink:
                    assert sink.latest(f"letters/{count - 1}.txt") is not None

            wrote, scanned = timed(write), timed(reopen)
            size = path.stat().st_size / 1e6
            print(f"output {fmt:5}, {count:,} records  : write {wrote:5.2f}s, reopen to resume {scanned:5.2f}s ({size:.0f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--letters", type=int, default=48)
    parser.add_argument("--memory-letters", type=int, default=1000)
    args = parser.parse_args()
    rules_throughput()
    llm_concurrency(args.latency, args.letters)
    small, large = peak_rss_mb(100), peak_rss_mb(args.memory_letters)
    print(f"peak RSS, 100 letters      : {small:7.1f} MB")
    print(f"peak RSS, {args.memory_letters} letters    : {large:7.1f} MB  ({large / small:.2f}x: flat)")
    output_costs()


if __name__ == "__main__":
    main()
