"""Hostile input: super-linear shapes finish, PDF bombs end in a typed error, reads are bounded.

No tight timing asserts: each shape must finish under a generous alarm at a size where a
quadratic parser takes minutes, and its time may grow at most ``MAX_GROWTH`` times for 10x the
size (linear is ~10x, quadratic ~100x), measured side by side in one run. The numbers are in
``benchmarks/bench_adversarial.py``.
"""

from __future__ import annotations

import os
import signal
import stat
import threading
import time
import timeit
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pytest
from conftest import PDFS, pdf
from hostile import PDF_BOMBS, SHAPES, broken_page_tree, form_fan_out, text_pdf
from test_properties import outcome

from llm_extract import (
    ExtractionError,
    InputTooLargeError,
    LetterNotFoundError,
    PDFTooComplexError,
    UnreadableFileError,
    UnreadablePDFError,
    extract,
    load,
)
from llm_extract.pdftext import MEMORY_ENV, TIMEOUT_ENV, PdfLimits

#: Characters of the large input: a quadratic shape takes minutes here, a linear one ~1 s.
LARGE = 500_000
SMALL = LARGE // 10
#: 10x the size may cost at most this many times the time (linear ~10x, quadratic ~100x).
MAX_GROWTH = 50
#: Seconds after which a shape counts as hung.
HANG_S = 60
#: Bombs in the tests get less memory and time than the defaults, so they fail sooner.
TEST_LIMITS = PdfLimits(memory_bytes=256 * 2**20, cpu_seconds=3)


class Hung(Exception):
    pass


def _raise_hung(signum: int, frame: object) -> None:
    raise Hung


def run_bounded(fn, seconds: float):  # noqa: ANN001, ANN201
    """``fn()`` under a SIGALRM deadline (regex matching and Python loops both check signals)."""
    previous = signal.signal(signal.SIGALRM, _raise_hung)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def best_time(fn, repeat: int) -> float:  # noqa: ANN001
    return min(timeit.repeat(fn, number=1, repeat=repeat))


@pytest.mark.parametrize("shape", list(SHAPES))
def test_shape_is_linear(shape: str) -> None:
    small, large = SHAPES[shape](SMALL), SHAPES[shape](LARGE)
    try:
        t_large = run_bounded(lambda: best_time(lambda: outcome(large), 1), HANG_S)
    except Hung:
        pytest.fail(f"{shape}: {len(large):,} characters did not finish in {HANG_S} s")
    t_small = best_time(lambda: outcome(small), 3)
    growth = t_large / max(t_small, 1e-3)
    assert growth < MAX_GROWTH * (len(large) / len(small)) / 10, (shape, t_small, t_large)


# --------------------------------------------------------------------------- PDF bombs


@pytest.mark.parametrize("bomb", list(PDF_BOMBS))
def test_pdf_bomb_ends_in_a_typed_error(bomb: str) -> None:
    data = PDF_BOMBS[bomb]()
    assert len(data) < 4096  # a tiny file
    with pytest.raises(PDFTooComplexError) as info:
        load(data, pdf_limits=TEST_LIMITS)
    assert info.value.code == "pdf_too_complex" and isinstance(info.value, UnreadablePDFError)
    assert "256 MiB" in str(info.value)
    assert load(pdf("CM16-0230651")).kind == "pdf"  # the next PDF gets a fresh sandbox


def test_bomb_under_default_limits_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "bomb.pdf"
    path.write_bytes(form_fan_out())
    with pytest.raises(PDFTooComplexError, match="bomb.pdf"):
        extract(path)


def test_cpu_limit_ends_a_slow_pdf() -> None:
    limits = PdfLimits(memory_bytes=4 * 2**30, cpu_seconds=1)
    start = time.monotonic()
    with pytest.raises(PDFTooComplexError, match="CPU"):
        load(form_fan_out(), pdf_limits=limits)
    assert time.monotonic() - start < 30


def test_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MEMORY_ENV, "300")
    monkeypatch.setenv(TIMEOUT_ENV, "2.5")
    limits = PdfLimits.from_env()
    assert limits.memory_bytes == 300 * 2**20 and limits.cpu_seconds == 2.5
    with pytest.raises(PDFTooComplexError, match="300 MiB, 2.5 s"):
        load(PDF_BOMBS["self-referencing forms"]())
    monkeypatch.setenv(MEMORY_ENV, "lots")
    assert PdfLimits.from_env().memory_bytes == PdfLimits().memory_bytes


def test_broken_page_tree_is_unreadable_not_a_crash() -> None:
    with pytest.raises(UnreadablePDFError):
        load(broken_page_tree())


def test_text_over_the_limit_is_too_complex() -> None:
    data = text_pdf("Independent Medical Review\n" + "x" * 400)
    with pytest.raises(PDFTooComplexError, match="characters"):
        load(data, pdf_limits=PdfLimits(max_chars=100))
    assert "Independent Medical Review" in load(data).text


def test_sandbox_from_threads_with_a_bomb_among_them() -> None:
    real = [pdf(p.stem) for p in PDFS[:12]]
    expected = {p: load(p).text for p in real}
    jobs: list[object] = [*real[:6], "bomb", *real[6:]]

    def one(job: object) -> str:
        if job == "bomb":
            try:
                load(PDF_BOMBS["self-referencing forms"](), pdf_limits=TEST_LIMITS)
            except PDFTooComplexError as err:
                return err.code
            return "loaded"
        return load(job).text  # type: ignore[arg-type]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(one, jobs))
    assert results[6] == "pdf_too_complex"
    assert [r for r in results if r != "pdf_too_complex"] == [expected[p] for p in real]


def _load_text(path: str) -> str:
    return load(path).text


def test_sandbox_from_forked_worker_processes() -> None:
    paths = [str(p) for p in PDFS[:6]]
    load(paths[0])  # this process has a sandbox child already; forked workers must not share it
    with ProcessPoolExecutor(max_workers=2, mp_context=get_context("fork")) as pool:
        texts = list(pool.map(_load_text, paths))
    assert texts == [load(p).text for p in paths]


def test_killed_sandbox_is_replaced() -> None:
    from llm_extract import pdftext

    load(pdf("CM16-0230651"))
    for worker in list(pdftext._pool):
        worker.proc.kill()
        worker.proc.wait()
    assert "IMR" in load(pdf("CM16-0230651")).text


# --------------------------------------------------------------------------- bounded reads


def test_fifo_neither_hangs_nor_blocks(tmp_path: Path) -> None:
    fifo = tmp_path / "letter.txt"
    os.mkfifo(fifo)
    with pytest.raises(UnreadableFileError, match="FIFO"):
        run_bounded(lambda: load(fifo), 10)
    with pytest.raises(UnreadableFileError):
        run_bounded(lambda: extract(str(fifo)), 10)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null", "/dev/urandom"])
def test_devices_are_not_letters(device: str) -> None:
    if not os.path.exists(device):
        pytest.skip(f"no {device}")
    with pytest.raises(UnreadableFileError, match="device"):
        run_bounded(lambda: load(Path(device)), 10)


def test_proc_files_are_read_bounded() -> None:
    # /proc files report size 0; the read itself must stop at the limit
    with pytest.raises(InputTooLargeError):
        load(Path("/proc/self/maps"), max_bytes=64)
    with pytest.raises(ExtractionError):
        extract(Path("/proc/self/status"))


def test_file_growing_past_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "growing.txt"
    path.write_bytes(b"IMR letter\n")
    stop = threading.Event()

    def grow() -> None:
        with path.open("ab") as handle:
            while not stop.is_set():
                handle.write(b"x" * 65536)
                handle.flush()

    writer = threading.Thread(target=grow)
    writer.start()
    try:
        time.sleep(0.2)
        with pytest.raises(InputTooLargeError):
            run_bounded(lambda: load(path, max_bytes=1 << 20), 20)
    finally:
        stop.set()
        writer.join()


def test_directory_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFileError, match="directory"):
        load(tmp_path)
    with pytest.raises(LetterNotFoundError):
        load(tmp_path / "missing.pdf")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.txt"
    path.write_text("IMR")
    path.chmod(0)
    try:
        with pytest.raises(UnreadableFileError, match="ermission"):
            load(path)
    finally:
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)


def test_a_name_with_a_lone_surrogate_is_text_not_a_crash() -> None:
    assert outcome("letter\ud800.txt") is None


def test_too_many_pages_is_too_large() -> None:
    with pytest.raises(InputTooLargeError, match="page"):
        load(pdf("CM16-0230651"), pdf_limits=PdfLimits(max_pages=1))


def test_a_sandbox_that_fails_by_itself_is_not_blamed_on_the_pdf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llm_extract import pdftext

    broken = tmp_path / "worker.py"
    broken.write_text("import sys\nsys.exit(3)\n")
    pdftext.shutdown()
    monkeypatch.setattr(pdftext, "_WORKER_SCRIPT", str(broken))
    with pytest.raises(UnreadablePDFError, match="sandbox exited with status 3") as info:
        load(pdf("CM16-0230651"))
    assert not isinstance(info.value, PDFTooComplexError)

    def no_processes(*args: object, **kwargs: object) -> None:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(pdftext.subprocess, "Popen", no_processes)
    with pytest.raises(UnreadablePDFError, match="could not start"):
        load(pdf("CM16-0230651"))
