"""The result cache: verified, flag-free results only, re-verified when read.

``diskcache`` under ``LLM_EXTRACT_CACHE_DIR`` (default: the per-user cache directory), created
private (0700) because results quote medical letters. The key covers everything that changes an
answer: the letter's sha256, backend, model, endpoint, prompt version and template hash, the
output schema's hash and the options. A result with any error flag is never stored, and a stored
result is re-verified against the letter before it is served: a cache entry that no longer
verifies is dropped, not returned.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import diskcache
import platformdirs

from .ingest import Letter
from .schema import Determination, json_schema
from .verify import verify

CACHE_ENV = "LLM_EXTRACT_CACHE_DIR"
PRIVATE_DIR_MODE = 0o700


def default_directory() -> Path:
    return Path(os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir("llm_extract"))


@lru_cache(maxsize=1)
def schema_hash() -> str:
    return hashlib.sha256(json.dumps(json_schema(), sort_keys=True).encode()).hexdigest()[:16]


def cache_key(parts: dict[str, Any]) -> str:
    """A stable key over ``parts`` plus the output schema's hash."""
    payload = json.dumps({**parts, "schema": schema_hash()}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


_open: dict[Path, ResultCache] = {}
_open_lock = threading.Lock()


def open_cache(directory: Path | str | None = None) -> ResultCache:
    """A process-wide ResultCache per directory (diskcache is thread- and process-safe), so a batch
    does not reopen its SQLite index for every letter."""
    path = Path(directory) if directory else default_directory()
    with _open_lock:
        cache = _open.get(path)
        if cache is None:
            cache = _open[path] = ResultCache(path)
        return cache


class ResultCache:
    """A private on-disk cache of verified Determinations."""

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory) if directory else default_directory()
        self.directory.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
        os.chmod(self.directory, PRIVATE_DIR_MODE)
        self._cache = diskcache.Cache(str(self.directory))

    def get(self, key: str, letter: Letter) -> Determination | None:
        raw = self._cache.get(key)
        if raw is None:
            return None
        try:
            result = Determination.model_validate_json(raw)
        except ValueError:
            self._cache.delete(key)
            return None
        checked = verify(result, letter)
        if not checked.ok or checked.source.sha256 != letter.sha256:
            self._cache.delete(key)
            return None
        return checked.model_copy(update={"source": checked.source.model_copy(update={"cached": True})})

    def put(self, key: str, result: Determination) -> bool:
        """Store ``result`` if it carries no error flag; say whether it was stored."""
        if not result.ok:
            return False
        self._cache.set(key, result.model_dump_json())
        return True

    def stats(self) -> dict[str, Any]:
        return {"directory": str(self.directory), "entries": len(self._cache), "bytes": self._cache.volume()}

    def clear(self) -> int:
        return self._cache.clear()

    def close(self) -> None:
        self._cache.close()
