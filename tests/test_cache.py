"""The result cache under hostile conditions: damaged stores, shared and unsafe locations.

Every extraction here runs the LLM backend over real HTTP against the scripted server on
127.0.0.1 (``tests/fake_openai.py``), so "cached or not" is counted in requests the server saw.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import SEEDS
from fake_openai import FakeOpenAI, Step, answer_from
from typer.testing import CliRunner

from llm_extract import CacheError, ResultCache, extract, extract_many
from llm_extract.cache import CACHE_ENV, STORE_DIR, cache_key, cache_stats, clear_cache
from llm_extract.cli import app

LETTER = SEEDS[0]
GOOD = Step(answer=answer_from(extract(LETTER)))


def options(server: FakeOpenAI, location: Path, **extra: Any) -> dict[str, Any]:
    return {
        "backend": "openai",
        "model": "fake-model",
        "base_url": server.base_url,
        "api_key": "sk-cache-test",
        "mode": "json",
        "strategy": "whole-letter",
        "cache_dir": location,
        "timeout": 5.0,
        **extra,
    }


def _populated(location: Path) -> Path:
    """A store holding one real entry, written and closed by another handle (a previous run)."""
    cache = ResultCache(location)
    cache.put(cache_key({"any": "key"}), extract(LETTER))
    assert cache.stats()["entries"] == 1
    cache.close()
    return location / STORE_DIR / "cache.db"


def _garbage(location: Path) -> None:
    (location / STORE_DIR).mkdir(parents=True, mode=0o700)
    (location / STORE_DIR / "cache.db").write_bytes(os.urandom(4096))


def _truncated(location: Path) -> None:
    db = _populated(location)
    with db.open("r+b") as handle:
        handle.truncate(db.stat().st_size // 2)


def _truncated_header(location: Path) -> None:
    db = _populated(location)
    with db.open("r+b") as handle:
        handle.truncate(60)


def _directory(location: Path) -> None:
    db = _populated(location)
    for path in db.parent.glob("cache.db*"):
        path.unlink()
    db.mkdir()


DAMAGE: dict[str, Callable[[Path], None]] = {
    "garbage": _garbage,
    "truncated": _truncated,
    "truncated-header": _truncated_header,
    "directory": _directory,
}


def _cli(location: Path, *args: str):
    return CliRunner().invoke(app, list(args), env={CACHE_ENV: str(location)})


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_store_is_a_cache_miss_and_cache_clear_repairs_it(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    location = tmp_path / "cache"
    DAMAGE[damage](location)
    caplog.set_level(logging.WARNING, logger="llm_extract.cache")
    with FakeOpenAI([GOOD]) as server:
        first = extract(LETTER, **options(server, location))
        second = extract(LETTER, **options(server, location))
        assert first.ok and second.ok and not second.source.cached
        assert len(server.requests) == 2  # uncached, not failed
        warnings = [r for r in caplog.records if r.name == "llm_extract.cache"]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert "cache clear" in warnings[0].getMessage()

        res = _cli(location, "cache", "stats")
        assert res.exit_code == 0, res.output
        stats = json.loads(res.stdout)
        assert stats["entries"] is None and "cache clear" in stats["problem"]
        assert "warning: the cache is damaged" in res.stderr

        res = _cli(location, "cache", "clear")
        assert res.exit_code == 0, res.output
        assert res.stdout.startswith("removed ")
        assert json.loads(_cli(location, "cache", "stats").stdout)["entries"] == 0

        extract(LETTER, **options(server, location))
        assert extract(LETTER, **options(server, location)).source.cached
        assert len(server.requests) == 3  # repaired: the last run was served from the cache


def test_a_batch_over_a_damaged_store_warns_once_and_extracts_every_letter(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    location = tmp_path / "cache"
    _garbage(location)
    caplog.set_level(logging.WARNING, logger="llm_extract.cache")
    with FakeOpenAI([GOOD]) as server:
        outcomes = list(extract_many([LETTER] * 4, jobs=2, **options(server, location)))
        assert [o.ok for o in outcomes] == [True] * 4
        assert len(server.requests) == 4
    assert len([r for r in caplog.records if r.name == "llm_extract.cache"]) == 1


def test_python_clear_repairs_too(tmp_path: Path) -> None:
    location = tmp_path / "cache"
    _garbage(location)
    removed, store = clear_cache(location)
    assert removed is None and store == location / STORE_DIR
    assert cache_stats(location)["entries"] == 0
    _populated(location)
    cache = ResultCache(location)
    assert cache.clear() == 1 and cache.stats()["entries"] == 0


def test_a_shared_location_keeps_its_mode_and_gets_a_private_store(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    with FakeOpenAI([GOOD]) as server:
        extract(LETTER, **options(server, shared))
        assert extract(LETTER, **options(server, shared)).source.cached
        assert len(server.requests) == 1
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert stat.S_IMODE((shared / STORE_DIR).stat().st_mode) == 0o700
    assert sorted(p.name for p in shared.iterdir()) == [STORE_DIR]  # nothing else put there
    res = _cli(shared, "cache", "clear")
    assert res.exit_code == 0 and stat.S_IMODE(shared.stat().st_mode) == 0o1777


def test_a_new_location_is_created_private(tmp_path: Path) -> None:
    location = tmp_path / "new" / "cache"
    ResultCache(location)
    assert stat.S_IMODE(location.stat().st_mode) == 0o700
    assert stat.S_IMODE((location / STORE_DIR).stat().st_mode) == 0o700


def _refused(location: Path, match: str) -> None:
    """Refused by the Python API and by extraction, with a typed error."""
    with pytest.raises(CacheError, match=match):
        ResultCache(location)
    with FakeOpenAI([GOOD]) as server, pytest.raises(CacheError, match=match):
        extract(LETTER, **options(server, location))


def test_the_commands_refuse_in_one_line(tmp_path: Path) -> None:
    location = tmp_path / "cache"
    location.write_text("not a directory", encoding="utf-8")
    for command in ("stats", "clear"):  # the real command line: its entry point prints the error
        res = subprocess.run(
            [sys.executable, "-m", "llm_extract", "cache", command],
            env={**os.environ, CACHE_ENV: str(location)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 2, (res.stdout, res.stderr)  # a configuration error: exit 2
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: cache location") and "not a directory" in lines[0]
    assert location.read_text(encoding="utf-8") == "not a directory"


def test_a_batch_stops_at_a_refused_location(tmp_path: Path) -> None:
    """Every letter would fail the same way (CacheError.stops_batch): one error line, exit 2 (the
    command must change, not the letters), no request sent."""
    location = tmp_path / "cache"
    location.write_text("not a directory", encoding="utf-8")
    with FakeOpenAI([GOOD]) as server:
        args = ["extract", str(SEEDS[0]), str(SEEDS[1]), "--backend", "openai", "--model", "m"]
        out = tmp_path / "out.jsonl"
        res = _cli(location, *args, "--base-url", server.base_url, "--mode", "json", "-o", str(out))
        assert res.exit_code == 2, res.output
        assert server.requests == []
    assert res.output.count("error: cache location") == 1, res.output


def test_a_file_is_refused(tmp_path: Path) -> None:
    location = tmp_path / "cache"
    location.write_text("not a directory", encoding="utf-8")
    _refused(location, "not a directory")
    assert location.read_text(encoding="utf-8") == "not a directory"


def test_a_store_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / STORE_DIR).write_text("x", encoding="utf-8")
    _refused(tmp_path / "cache", "not a directory")


def test_a_store_open_to_others_is_refused_not_chmodded(tmp_path: Path) -> None:
    store = tmp_path / "cache" / STORE_DIR
    store.mkdir(parents=True)
    store.chmod(0o755)
    _refused(tmp_path / "cache", "open to other users")
    assert stat.S_IMODE(store.stat().st_mode) == 0o755


def test_a_symlinked_store_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / STORE_DIR).symlink_to(elsewhere)
    _refused(tmp_path / "cache", "symbolic link")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
def test_a_store_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "cache" / STORE_DIR
    store.mkdir(parents=True, mode=0o700)
    os.chown(store, 65534, 65534)
    _refused(tmp_path / "cache", "belongs to another user")


def test_an_unwritable_location_is_refused(tmp_path: Path) -> None:
    location = tmp_path / "readonly"
    location.mkdir()
    location.chmod(0o500)
    immutable = False
    if os.geteuid() == 0:  # root writes through modes: make the directory immutable instead
        chattr = shutil.which("chattr")
        done = chattr and subprocess.run([chattr, "+i", str(location)], capture_output=True).returncode == 0
        if not done:
            pytest.skip("running as root without chattr +i: cannot make a directory unwritable")
        immutable = True
    try:
        _refused(location, "cannot create the cache directory")
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(location)], check=True)
        location.chmod(0o700)
