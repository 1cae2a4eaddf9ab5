"""Start-up: a one-letter ``llm-extract extract letter.pdf`` against the core imports it cannot avoid.

Each command runs as its own subprocess, interleaved, ``--runs`` times; the medians are printed
and their ratio. The core is ``import pydantic, pypdfium2, rapidfuzz`` (the three libraries the
rules path is built on); the goal is a one-letter run within 2x of it. Also measured, for where
the time goes: the bare interpreter, ``import llm_extract`` (lazy: the version and a name table),
``from llm_extract import extract`` (every stage of the rules path) and ``llm-extract --version``.
``--importtime`` prints the slowest imports of the one-letter run (``python -X importtime``).

    python benchmarks/bench_startup.py [--runs 15] [--letter PATH] [--importtime]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LETTER = ROOT / "evals" / "letters" / "imr-2016-2017" / "CM16-0230651.pdf"
#: The one-letter run may cost at most this many times the core imports.
GOAL_RATIO = 2.0
#: Modules whose import would mean the rules path pays for the LLM stack (or for a batch's pool).
NEVER_ON_THE_RULES_PATH = ("openai", "instructor", "jinja2", "pebble", "filelock", "pyarrow", "rich", "diskcache")


def commands(letter: Path) -> dict[str, list[str]]:
    py = sys.executable
    return {
        "bare interpreter": [py, "-c", "pass"],
        "core imports": [py, "-c", "import pydantic, pypdfium2, rapidfuzz"],
        "import llm_extract": [py, "-c", "import llm_extract"],
        "the rules path": [py, "-c", "from llm_extract import extract"],
        "llm-extract --version": [py, "-m", "llm_extract", "--version"],
        "one letter (CLI)": [py, "-m", "llm_extract", "extract", str(letter)],
    }


def measure(cmds: dict[str, list[str]], runs: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in cmds}
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    for _ in range(runs):
        for name, cmd in cmds.items():  # interleaved, so load on the machine hits all alike
            started = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True, env=env, cwd=ROOT)
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def loaded_on_the_rules_path(letter: Path) -> list[str]:
    """Heavy modules a one-letter rules run imports (should be none)."""
    probe = (
        "import sys; from llm_extract.cli import main; sys.argv = ['llm-extract', 'extract', sys.argv[1]];\n"
        "import atexit; atexit.register(lambda: print(' '.join(sorted(m for m in sys.modules)), file=sys.stderr))\n"
        "main()"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(letter)], capture_output=True, text=True, cwd=ROOT, check=False
    )
    loaded = set(proc.stderr.split())
    return [name for name in NEVER_ON_THE_RULES_PATH if name in loaded]


def slowest_imports(letter: Path, count: int = 25) -> list[tuple[int, str]]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "llm_extract", "extract", str(letter)],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )
    rows = []
    for line in proc.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if line.startswith("import time:") and len(parts) == 3 and parts[0].strip().isdigit():
            rows.append((int(parts[0]), parts[2].strip()))
    return sorted(rows, reverse=True)[:count]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--letter", type=Path, default=DEFAULT_LETTER)
    parser.add_argument("--importtime", action="store_true")
    args = parser.parse_args()
    medians = measure(commands(args.letter), args.runs)
    core = medians["core imports"]
    print(f"median of {args.runs} runs each, one subprocess per run, interleaved ({os.cpu_count()} cores)")
    for name, seconds in medians.items():
        print(f"  {name:24s} {seconds * 1000:7.1f} ms  {seconds / core:5.2f}x core")
    ratio = medians["one letter (CLI)"] / core
    verdict = "ok" if ratio <= GOAL_RATIO else "over the goal"
    print(f"one-letter CLI run / core imports: {ratio:.2f}x (goal <= {GOAL_RATIO:g}x: {verdict})")
    heavy = loaded_on_the_rules_path(args.letter)
    print(f"heavy modules a one-letter rules run loads: {', '.join(heavy) or 'none'}")
    if args.importtime:
        print("slowest imports of the one-letter run (self time, -X importtime):")
        for micros, name in slowest_imports(args.letter):
            print(f"  {micros / 1000:6.1f} ms  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
