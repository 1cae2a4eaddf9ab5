"""Hostile inputs: time growth per shape, PDF bombs under the sandbox's limits, memory over many letters.

    python benchmarks/bench_adversarial.py [--small 200000] [--large 2000000] [--letters 6]
    python benchmarks/bench_adversarial.py --regexes      # also sweep every parser regex

Prints, measured side by side in one run:

- for each super-linear shape in ``tests/hostile.py`` (long whitespace runs in labels, repeated
  label prefixes, number-only lines, an open quote before many sentences, blank lines before a
  heading, ...): ``extract()`` time at two sizes, the growth ratio as a caller sees it and with
  CPython's cyclic GC paused, and PASS/FAIL against the goal (10x the size: at most 12x the
  time) on the latter (see :func:`shapes`). A shape that runs past ``--timeout`` FAILs;
- each PDF bomb (a 1-3 kB file): the typed error it ends in, how long that took, and that the
  caller's memory did not move; then one line per limit (PDF memory cap, PDF time limit);
- RSS after N and after 10N distinct large letters extracted in one fresh process (flat: no
  cache holds whole letters);
- with ``--regexes``: every module-level regex of the extraction modules against near-miss
  inputs built from strings it matches (whitespace-inflated, repeated prefixes, a prefix and a
  long filler), at two sizes, worst growth per regex.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from hostile import PDF_BOMBS, SEED, SHAPES  # noqa: E402

from llm_extract import ExtractionError, extract, load  # noqa: E402
from llm_extract.pdftext import PDF_WALL_FACTOR, PdfLimits  # noqa: E402

#: 10x the size may cost at most this many times the time.
GOAL_RATIO = 12.0
#: Patterns the code only ever applies anchored (``.match`` at one position): searching them from
#: every position is quadratic by design and says nothing about the parser, so only ``match`` is timed.
MATCH_ONLY = {
    "layouts.grammar.AUTHORIZED_BY",
    "layouts.grammar.CA_AUTHORIZED",
    "layouts.grammar.REMAINING",
    "layouts.grammar.ITEM_NUMBER",
    "citations.NON_MTUS",
    "citations.MTUS_PREFIX",
    "citations._ODG_CHAPTER",
}


class _Timeout(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise _Timeout


def timed(fn, limit: float, repeat: int = 1) -> float:  # noqa: ANN001
    """Best wall time of ``repeat`` runs of ``fn``; inf past ``limit`` seconds (regexes check signals)."""
    signal.signal(signal.SIGALRM, _alarm)
    best = float("inf")
    for _ in range(repeat):
        signal.setitimer(signal.ITIMER_REAL, limit)
        try:
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
        except _Timeout:
            return float("inf")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    return best


def _extract(text: str) -> None:
    with contextlib.suppress(ExtractionError):
        extract(text)


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _paused_gc(fn):  # noqa: ANN001, ANN202
    """``fn`` with CPython's cyclic collector paused (and run before), restoring its state."""

    def run() -> None:
        gc.collect()
        gc.disable()
        try:
            fn()
        finally:
            gc.enable()

    return run


def shapes(small: int, large: int, limit: float) -> bool:
    """Growth per shape, as a caller sees it and with the cyclic GC paused.

    The verdict is on the second: a shape that builds tens of thousands of objects (20,000
    citations in a 2 MB letter) triggers one or two *full* cyclic-GC passes over the whole
    interpreter (every imported module's objects) at 2 MB and none at 200 kB. That cost is CPython
    amortising its collector (linear over larger inputs), not the parser; both columns are shown.
    """
    print(f"shapes: extract() at {small / 1e3:,.0f} kB and {large / 1e3:,.0f} kB (goal: <= {GOAL_RATIO:g}x the time)")
    print(f"{'shape':34s} {'small s':>8s} {'large s':>8s} {'growth':>7s} {'GC paused':>10s}  verdict")
    ok = True
    for name, make in SHAPES.items():
        a_text, b_text = make(small), make(large)
        t_small = timed(lambda t=a_text: _extract(t), limit, repeat=3)
        t_large = timed(lambda t=b_text: _extract(t), limit, repeat=3) if t_small != float("inf") else float("inf")
        p_small = timed(_paused_gc(lambda t=a_text: _extract(t)), limit, repeat=3)
        p_large = timed(_paused_gc(lambda t=b_text: _extract(t)), limit, repeat=3) if p_small != float("inf") else p_small
        size_ratio = len(b_text) / len(a_text)
        growth = t_large / t_small if t_small > 0 else float("inf")
        algorithm = p_large / p_small if p_small > 0 else float("inf")
        # the goal is stated for 10x the size; scale it when a generator rounds the sizes
        passed = algorithm <= GOAL_RATIO * size_ratio / 10
        ok &= passed
        print(
            f"{name:34s} {t_small:8.3f} {t_large:8.3f} {growth:6.1f}x {algorithm:9.1f}x  {'PASS' if passed else 'FAIL'}"
            f"  ({len(a_text) / 1e3:,.0f} / {len(b_text) / 1e3:,.0f} kB)"
        )
    return ok


def bombs() -> bool:
    limits = PdfLimits.from_env()
    print()
    print(f"PDF bombs (limits: {limits.memory_bytes / 2**20:,.0f} MiB address space, "
          f"{limits.cpu_seconds:g} s CPU, {limits.wall_seconds:g} s wall, in a sandbox child)")
    ok = True
    for name, make in PDF_BOMBS.items():
        data = make()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        try:
            load(data)
            outcome = "loaded (!)"
            ok = False
        except ExtractionError as err:
            outcome = err.code
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"  {name:26s} {len(data):6,d} bytes -> {outcome:16s} in {elapsed:5.1f} s; "
              f"caller's peak RSS {before:,.0f} -> {after:,.0f} MB")
    print(f"limit: PDF memory cap   {limits.memory_bytes / 2**20:,.0f} MiB per PDF (LLM_EXTRACT_PDF_MEMORY_MB)")
    print(f"limit: PDF time         {limits.cpu_seconds:g} s CPU, {limits.cpu_seconds * PDF_WALL_FACTOR:g} s wall per PDF "
          "(LLM_EXTRACT_PDF_TIMEOUT_S)")
    from llm_extract.batch import letter_timeout

    print(
        f"limit: time per letter  {letter_timeout('rules'):g} s rules, {letter_timeout('openai'):g} s LLM in batches "
        "(--timeout, extract_many(timeout=)); one call of extract() is bounded by the linear parser"
    )
    return ok


def memory(letters: int) -> None:
    """RSS after N and 10N distinct large letters, in a fresh process so earlier work does not count."""
    print()
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from bench_adversarial import rss_child; rss_child(int(sys.argv[2]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent), str(letters)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    print(out.stdout.rstrip() or out.stderr.rstrip())


def rss_child(n: int) -> None:
    size = 2_000_000
    base = SEED * (size // len(SEED))

    def letter(i: int) -> str:
        return f"Letter {i}\n" + base  # distinct text: no cache can hit

    extract(letter(0))
    gc.collect()
    start = rss_mb()
    for i in range(1, n + 1):
        extract(letter(i))
    gc.collect()
    after_n = rss_mb()
    for i in range(n + 1, 10 * n + 1):
        extract(letter(i))
    gc.collect()
    after_10n = rss_mb()
    print(
        f"memory: RSS after 1 / {n} / {10 * n} distinct {size / 1e6:g} MB letters in one process: "
        f"{start:,.0f} / {after_n:,.0f} / {after_10n:,.0f} MB "
        f"({after_10n / after_n:.2f}x from {n} to {10 * n} letters: {'flat' if after_10n < after_n * 1.2 else 'GROWS'})"
    )


def _examples(pattern: re.Pattern[str], wanted: int = 3) -> list[str]:
    """A few distinct strings ``pattern`` matches, generated by hypothesis (none if it cannot)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    found: list[str] = []

    @settings(max_examples=25, database=None, suppress_health_check=list(HealthCheck), deadline=None)
    @given(st.from_regex(pattern))
    def collect(value: str) -> None:
        m = pattern.search(value)
        if m and m.group(0) and m.group(0) not in found and len(found) < wanted:
            found.append(m.group(0))

    # patterns hypothesis cannot generate from (some lookarounds) are reported with no examples
    with contextlib.suppress(Exception):
        collect()
    return found


#: Every module whose regexes run on a letter's text during extract().
EXTRACTION_MODULES = (
    "normalize", "negation", "layouts", "layouts.base", "layouts.grammar", "layouts.imr_issues",
    "layouts.maximus_2015", "layouts.mpr_2013", "citations", "rules", "ingest", "fields", "checks",
    "classify", "drugs", "diagnoses",
)


def regexes(small: int, large: int, limit: float) -> None:
    """Every module-level regex against near-miss shapes built from strings it matches."""
    import importlib
    import warnings

    warnings.filterwarnings("ignore")
    print()
    print(f"regexes: each against near-miss inputs at {small / 1e3:,.0f} and {large / 1e3:,.0f} kB (worst shape shown)")
    seen: set[tuple[str, int]] = set()
    patterns: list[tuple[str, re.Pattern[str]]] = []
    for module in EXTRACTION_MODULES:
        mod = importlib.import_module(f"llm_extract.{module}")
        for key, value in vars(mod).items():
            found = [value] if isinstance(value, re.Pattern) else []
            if isinstance(value, list):
                found = [v for v in value if isinstance(v, re.Pattern)]
            for pattern in found:
                if (pattern.pattern, pattern.flags) not in seen:
                    seen.add((pattern.pattern, pattern.flags))
                    patterns.append((f"{module}.{key}", pattern))
    ws = re.compile(r"\s+")

    def near_misses(example: str, size: int) -> dict[str, str]:
        out = {}
        runs = max(1, len(ws.findall(example)))
        for filler in (" ", "\n", "\r\n"):
            if ws.search(example):
                out[f"whitespace {filler!r} inflated"] = ws.sub(lambda m, f=filler: f * max(1, size // runs // len(f)), example)[:-1]
        for frac in (0.3, 0.6, 0.95):
            prefix = example[: max(1, int(len(example) * frac))]
            out[f"{frac:.0%} prefix repeated"] = (prefix + " ") * max(1, size // (len(prefix) + 1))
            for pad in (" ", "a", "1", ".", "\n", "-", ":", '"', "(", "\n\n1\n"):
                out[f"{frac:.0%} prefix + {pad!r} run"] = prefix + pad * max(1, size // len(pad))
        return out

    def scan(pattern: re.Pattern[str], text: str, anchored: bool) -> None:
        pattern.match(text)
        if not anchored:
            for _ in pattern.finditer(text):
                pass

    worst_all = 0.0
    for name, pattern in patterns:
        examples = _examples(pattern)
        worst = (0.0, "-", "")
        anchored = name in MATCH_ONLY
        for example in examples:
            a, b = near_misses(example, small), near_misses(example, large)
            for shape in a:
                t_a = timed(lambda p=pattern, s=a[shape], m=anchored: scan(p, s, m), limit, repeat=3)
                t_b = (
                    timed(lambda p=pattern, s=b[shape], m=anchored: scan(p, s, m), limit, repeat=3)
                    if t_a != float("inf")
                    else t_a
                )
                growth = t_b / t_a if 0 < t_a < float("inf") else float("inf")
                if t_b > 0.003 and growth > worst[0]:
                    worst = (growth, shape, example)
        verdict = "-" if not examples else "PASS"
        note = worst[1]
        if examples and worst[0] > GOAL_RATIO * 2:
            # a worst-of-36 growth on a shared machine is often a noise spike: confirm it at 4x the
            # large size, where linear means ~4x and quadratic ~16x (2x slack for the noise)
            shape, example = worst[1], worst[2]
            base = near_misses(example, large)[shape]
            more = near_misses(example, large * 4)[shape]
            t_b = timed(lambda p=pattern, s=base, m=anchored: scan(p, s, m), limit, repeat=3)
            t_c = timed(lambda p=pattern, s=more, m=anchored: scan(p, s, m), limit, repeat=3)
            again = t_c / t_b if 0 < t_b < float("inf") else float("inf")
            verdict = "PASS" if again <= 4 * 2 else "FAIL"  # quadratic: 16x
            note = f"{shape}; confirmed at {large * 4 / 1e3:,.0f} kB: {again:.1f}x for 4x"
        worst_all = max(worst_all, worst[0])
        print(f"  {name:34s} {worst[0]:7.1f}x  {verdict:4s}  {note}")
    print(f"  worst growth over all regexes: {worst_all:.1f}x (timer noise on a shared machine shows up here)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=200_000, help="characters of the small input")
    parser.add_argument("--large", type=int, default=2_000_000, help="characters of the large input")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before a shape counts as hung")
    parser.add_argument("--letters", type=int, default=6, help="N for the RSS measurement (N and 10N letters)")
    parser.add_argument("--regexes", action="store_true", help="also sweep every parser regex (minutes)")
    args = parser.parse_args()
    ok = shapes(args.small, args.large, args.timeout)
    ok &= bombs()
    memory(args.letters)
    if args.regexes:
        regexes(100_000, 1_000_000, 10.0)  # both sizes past the CPU caches, so growth is the algorithm's
    print()
    print("all shapes within the goal" if ok else "SOME SHAPES MISS THE GOAL")


if __name__ == "__main__":
    main()
