"""A test-only extractor that misbehaves on letters whose file name asks it to.

``install()`` replaces ``llm_extract.pipeline.extract``; worker processes forked afterwards inherit
it (the rules backend's pool forks its workers when a batch starts). A letter named
``*-sigkill.txt`` kills its worker, ``*-abort.txt`` aborts it (SIGABRT, as pdfium does on some
PDF bombs), ``*-segfault.txt`` dereferences NULL, ``*-exit.txt`` calls ``os._exit(3)``,
``*-hang.txt`` never returns, ``*-once.txt`` kills its worker on its first run only; any other letter is extracted for real.
"""

from __future__ import annotations

import ctypes
import faulthandler
import os
import signal
import time
from pathlib import Path
from typing import Any

import llm_extract.pipeline as pipeline

_real_extract = pipeline.extract
#: Kinds of misbehaviour, by the file-name suffix that triggers them.
KINDS = ("sigkill", "abort", "segfault", "exit", "hang")


#: Seconds a misbehaving letter works before it crashes. A worker that dies within a few
#: milliseconds of sending its previous letter's result can make pebble blame that earlier
#: letter (its result is still queued when the death is noticed, so it looks still running),
#: which these tests are not about; real letters take longer than this to crash a worker.
CRASH_AFTER_S = 0.3


def misbehave(kind: str) -> None:
    faulthandler.disable()  # pytest's, inherited by the fork: a crash here is meant, not worth a stack dump
    time.sleep(CRASH_AFTER_S)
    if kind == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif kind == "abort":
        os.abort()
    elif kind == "segfault":
        ctypes.string_at(0)
    elif kind == "exit":
        os._exit(3)
    elif kind == "hang":
        while True:
            time.sleep(1)


def extract(letter: Any, **kwargs: Any) -> Any:
    name = str(letter) if isinstance(letter, (str, os.PathLike)) else getattr(letter, "name", None) or ""
    stem = Path(name).stem  # a path, or an ingested Letter's name (a batch of one reads it first)
    kind = stem.rsplit("-", 1)[-1]
    if kind in KINDS:
        misbehave(kind)
    if kind == "once":  # ``*-once.txt``: kills its worker the first time only (a marker file beside it remembers)
        marker = Path(name).with_suffix(".crashed")
        if not marker.exists():
            marker.touch()
            misbehave("sigkill")
    return _real_extract(letter, **kwargs)


def install() -> None:
    pipeline.extract = extract
