"""The analysts' toolkit: the enrichment stage's cost next to the parse it follows, and ``stats``.

Prints, measured side by side in one run (these machines are noisy: compare the ratios):

- parse + rules build vs the enrichment stage (category, drug, diagnoses) over the 158 real letters,
  in one process, letters already loaded;
- ``llm-extract stats`` on those letters' results (JSONL, CSV and Parquet) vs ``llm-extract version``
  (the CLI's start-up alone), wall and CPU seconds, best of a few runs.

    python benchmarks/bench_analytics.py
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LETTERS = sorted((ROOT / "evals" / "letters" / "imr-2016-2017").glob("*.pdf"))
RUNS = 5


def _best(fn, runs: int = RUNS) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _cli(args: list[str]) -> tuple[float, float]:
    """Best wall and CPU seconds of ``llm-extract ARGS`` over RUNS runs."""
    wall, cpu = float("inf"), float("inf")
    for _ in range(RUNS):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "llm_extract", *args], check=True, stdout=subprocess.DEVNULL)
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = min(wall, elapsed)
        cpu = min(cpu, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return wall, cpu


def main() -> None:
    from llm_extract import layouts, load, rules
    from llm_extract.classify import enrich
    from llm_extract.tables import read_results, write_csv, write_parquet

    letters = [load(p) for p in LETTERS]
    built = [rules.build(letter, layouts.parse(letter.text)) for letter in letters]
    enrich(built[0], letters[0])  # the lexicons and the drug dictionary index, once
    parse = _best(lambda: [rules.build(x, layouts.parse(x.text)) for x in letters], 3)
    stage = _best(lambda: [enrich(b, x) for b, x in zip(built, letters)], 3)
    print(f"{len(letters)} letters: parse+build {parse:.3f} s, enrichment {stage:.3f} s "
          f"(enrichment / parse+build = {stage / parse:.2f})")

    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results.jsonl"
        subprocess.run(
            [sys.executable, "-m", "llm_extract", "extract", *map(str, LETTERS), "-f", "jsonl", "-o", str(results)],
            check=True, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        rows = read_results(results)
        for suffix, writer in ((".csv", write_csv), (".parquet", write_parquet)):
            with (Path(tmp) / f"results{suffix}").open("wb") as handle:
                writer(rows, handle)
        base_wall, base_cpu = _cli(["version"])
        print(f"llm-extract version (start-up only): {base_wall:.2f} s wall, {base_cpu:.2f} s CPU")
        for suffix in (".jsonl", ".csv", ".parquet"):
            wall, cpu = _cli(["stats", str(Path(tmp) / f"results{suffix}")])
            print(f"llm-extract stats results{suffix} ({len(rows)} rows): {wall:.2f} s wall, {cpu:.2f} s CPU "
                  f"({wall / base_wall:.2f}x start-up)")


if __name__ == "__main__":
    main()
