"""The embedded local LLM for real: llama.cpp's server with the pinned model, on a real letter.

Runs whenever ``pip install -e ".[local]"`` has installed llama-cpp-python and the model; CI sets
LLM_EXTRACT_REQUIRE_LOCAL=1 so a missing install fails instead of skipping.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from conftest import pdf

from llm_extract import Determination, FlagCode, extract, load
from llm_extract.llm import local
from llm_extract.schema import Quote, held

KEY = os.environ.get("LLM_EXTRACT_LOCAL_MODEL") or local.DEFAULT_MODEL
LETTER = pdf("CM16-0230548")  # a real two-item 2016 letter: an MRI upheld, acupuncture overturned
GOLD = json.loads((Path(__file__).resolve().parent.parent / "evals/gold/CM16-0230548.json").read_text())


def _missing() -> str | None:
    try:
        import llama_cpp  # noqa: F401

        local.model_path(KEY)
    except Exception as exc:  # not installed: say why
        return f"local model unavailable ({exc}); install with: pip install -e '.[local]'"
    return None


def _require_local() -> None:
    reason = _missing()
    if reason and os.environ.get("LLM_EXTRACT_REQUIRE_LOCAL"):
        pytest.fail(reason)
    if reason:
        pytest.skip(reason)


def test_local_model_decides_a_real_letter(tmp_path: Path) -> None:
    """The model's own decisions (not the parser's, which it never sees as an answer) match the gold
    labels, and its evidence is the letter's: the conclusion it numbers is quoted exactly."""
    _require_local()
    text = load(LETTER).text
    rules = extract(LETTER)
    result = extract(LETTER, backend="local", model=KEY, cache_dir=tmp_path / "cache")
    assert isinstance(result, Determination)
    assert result.source.backend == "local" and result.source.model == KEY
    assert result.source.strategy == "per-item-brief"
    usage = result.source.usage
    assert usage and usage.requests >= len(GOLD["items"]) and usage.estimated_cost_usd == 0
    assert usage.completion_tokens <= 60 * usage.requests  # the brief view: a few dozen tokens per answer
    assert [i.item for i in result.items] == [i.item for i in rules.items]  # per-item: the parser names items
    assert [i.decision for i in result.items] == [g["decision"] for g in GOLD["items"]] == ["upheld", "overturned"]
    error_codes = {f.code for f in result.flags if f.severity == "error"}
    for item in result.items:
        assert item.conclusion, item.item
        for quote in held(item, Quote):  # sentences the model numbered, copied by code: exact, with offsets
            assert quote.match == "exact" and text[quote.start : quote.end] == quote.text
        assert item.rationale_summary and len(item.rationale_summary) <= 300
    for item, gold in zip(result.items, GOLD["items"]):
        if " ".join(item.conclusion.text.split()) != gold["conclusion"]:  # type: ignore[union-attr]
            assert FlagCode.LLM_REASK_EXHAUSTED in error_codes  # a wrong conclusion never passes silently
    again = extract(LETTER, backend="local", model=KEY, cache_dir=tmp_path / "cache")
    assert again.source.cached is result.ok  # only a flag-free result was cached


def test_local_model_reads_an_unknown_layout(tmp_path: Path) -> None:
    """Where the parser does not know the layout, the model finds the item and decides it itself, and
    its concluding sentence is the gold's (or the answer is flagged). It fills the reviewer and the
    patient (required fields, dates copied as written: README, "Unknown layouts") with the gold's
    values, a header null it leaves is flagged, and whatever it states has evidence in the letter."""
    _require_local()
    root = Path(__file__).resolve().parent.parent
    path = root / "evals/letters/unknown/CM17-0005589-numbered.txt"
    gold = json.loads((root / "evals/gold-unknown/CM17-0005589-numbered.json").read_text())
    result = extract(path, backend="local", model=KEY, cache=False)
    text = load(path).text
    assert result.source.layout == "unknown" and result.source.strategy == "whole-letter-brief"
    assert [(i.item, i.decision) for i in result.items] == [("MRI of the right shoulder", "overturned")]
    conclusion = result.items[0].conclusion
    located = conclusion is not None and conclusion.match in ("exact", "normalized")
    if not located or " ".join(text[conclusion.start : conclusion.end].split()) != gold["items"][0]["conclusion"]:  # type: ignore[union-attr]
        assert FlagCode.LLM_REASK_EXHAUSTED in {f.code for f in result.flags}  # never passes silently
    assert result.reviewer.model_dump() == gold["reviewer"]
    assert result.patient.model_dump() == gold["patient"]
    for field, value in result.case.model_dump(mode="json").items():
        assert value in (None, gold["case"][field]), field
    codes = {f.code for f in result.flags}
    if None in result.case.model_dump().values():
        assert FlagCode.HEADER_FIELD_MISSING in codes  # a null the model left is never silent
    assert FlagCode.EVIDENCE_MISSING not in {f.code for f in result.flags}  # every stated value has evidence


def test_a_model_file_with_the_wrong_checksum_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "fake_model_part_pkg"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "data" / "part.bin").write_bytes(b"GGUF" + b"\0" * 64)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("LLM_EXTRACT_MODELS_DIR", str(tmp_path / "models"))
    spec = local.ModelSpec(key="fake", filename="fake.gguf", sha256="0" * 64, size=68,
                           parts=(("fake_model_part_pkg", "part.bin"),), requirement="-", note="-")
    monkeypatch.setitem(local.MODELS, "fake", spec)
    with pytest.raises(local.LocalModelError, match="refusing"):
        local.model_path("fake")
    assert not (tmp_path / "models" / "fake.gguf").exists()
    sys.modules.pop("fake_model_part_pkg", None)


def test_missing_model_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLM_EXTRACT_MODELS_DIR", str(tmp_path))
    spec = local.ModelSpec(key="absent", filename="absent.gguf", sha256="0" * 64, size=1,
                           parts=(("no_such_model_part_package", "x.bin"),), requirement='pip install -e ".[local]"',
                           note="-")
    monkeypatch.setitem(local.MODELS, "absent", spec)
    with pytest.raises(local.LocalModelError, match=r"pip install -e"):
        local.model_path("absent")


def test_server_child_signals_itself_when_its_parent_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The parent watch: once the parent pid changes (the parent died), the server gets SIGTERM."""
    from llm_extract.llm import child

    parents = iter([100, 100, 1])  # alive, alive, re-parented to init
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(child.os, "getppid", lambda: next(parents))
    monkeypatch.setattr(child.time, "sleep", lambda _s: None)
    monkeypatch.setattr(child.os, "kill", lambda pid, sig: sent.append((pid, sig)))
    monkeypatch.setattr(child.os, "_exit", lambda code: sent.append((-1, code)))
    child._watch(100)
    assert sent[0] == (child.os.getpid(), child.signal.SIGTERM)


def _running(pid: int) -> bool:
    """Alive and not a zombie (an exited child waiting for init to reap it has stopped too)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_killed_parent_takes_the_server_down(tmp_path: Path) -> None:
    """A parent killed with SIGKILL (no atexit) must not leave the 1 GB model server running."""
    _require_local()
    import signal
    import subprocess
    import time
    import urllib.request

    script = (
        "import sys, time\n"
        "from llm_extract.llm import local\n"
        f"server = local.LocalServer({KEY!r}).start()\n"
        "print(server.port, server.process.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        port, server_pid = map(int, parent.stdout.readline().split())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5) as response:
            assert response.status == 200
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _running(server_pid):
            time.sleep(0.5)
        if _running(server_pid):
            os.kill(server_pid, signal.SIGKILL)
            pytest.fail("the server outlived its killed parent")
    finally:
        if parent.poll() is None:
            parent.kill()
