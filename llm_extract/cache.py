"""The result cache: verified, flag-free results only, re-verified when read.

Layout: the cache *location* is ``$LLM_EXTRACT_CACHE_DIR`` (default: the per-user cache
directory, e.g. ``~/.cache/llm_extract``). The toolkit keeps its results in a subdirectory it
creates itself, ``<location>/results`` (:data:`STORE_DIR`), private (0700) because results quote
medical letters, and holding ``diskcache``'s SQLite index (``cache.db``) and value files. The
location itself is never chmod-ed (it may be a shared directory such as ``/tmp``), and the store
is refused (:class:`~llm_extract.errors.CacheError`) when it is not a directory, is a symbolic
link, belongs to another user, is open to other users, or cannot be written.

The key covers everything that changes an answer: the letter's sha256, backend, model, endpoint
(credentials redacted), prompt version and template hash, the output schema's hash and the
options. A result with any error flag is never stored, and a stored result is re-verified
against the letter before it is served: a cache entry that no longer verifies is dropped.

A damaged store (garbage or a truncated ``cache.db``, a directory where it should be) is a
cache miss, never a failed extraction: the first failure logs one warning and the cache is off
for the rest of the process. ``llm-extract cache clear`` (:func:`clear_cache`) always repairs:
it removes the store and creates it again, empty.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import stat
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import diskcache
import platformdirs

from .errors import CacheError
from .ingest import Letter
from .schema import Determination, json_schema
from .verify import verify

log = logging.getLogger("llm_extract.cache")

CACHE_ENV = "LLM_EXTRACT_CACHE_DIR"
#: The toolkit's own subdirectory of the cache location: the only thing it creates there,
#: makes private, and removes (``cache clear``).
STORE_DIR = "results"
PRIVATE_DIR_MODE = 0o700
#: What a damaged or vanished store raises: each becomes a cache miss (sqlite3.OperationalError,
#: "unable to open database file", is a DatabaseError; diskcache.Timeout: the database stayed locked).
STORE_ERRORS = (sqlite3.DatabaseError, OSError, diskcache.Timeout)
REPAIR_HINT = "run `llm-extract cache clear` to repair it"


def default_directory() -> Path:
    """The cache location: ``$LLM_EXTRACT_CACHE_DIR`` or the per-user cache directory."""
    return Path(os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir("llm_extract"))


@lru_cache(maxsize=1)
def schema_hash() -> str:
    return hashlib.sha256(json.dumps(json_schema(), sort_keys=True).encode()).hexdigest()[:16]


def cache_key(parts: dict[str, Any]) -> str:
    """A stable key over ``parts`` plus the output schema's hash."""
    payload = json.dumps({**parts, "schema": schema_hash()}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def prepare_store(location: Path | str | None = None) -> Path:
    """The private store under ``location``, created if missing; :class:`CacheError` if unsafe.

    Only directories this creates get a mode (0700); an existing location keeps its own.
    """
    base = Path(location).expanduser() if location else default_directory()
    if base.exists() and not base.is_dir():
        raise CacheError(f"cache location {base} is not a directory ({CACHE_ENV} must name a directory)")
    try:
        base.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    except OSError as exc:
        raise CacheError(f"cannot create the cache location {base}: {_reason(exc)}") from None
    store = base / STORE_DIR
    try:
        store.mkdir(mode=PRIVATE_DIR_MODE)
    except FileExistsError:
        pass
    except OSError as exc:
        raise CacheError(f"cannot create the cache directory {store}: {_reason(exc)}") from None
    check_store(store)
    return store


def check_store(store: Path) -> None:
    """Refuse a store another user could read or swap: ours, private, a real directory, writable."""
    try:
        info = os.lstat(store)
    except OSError as exc:
        raise CacheError(f"cannot use the cache directory {store}: {_reason(exc)}") from None
    if stat.S_ISLNK(info.st_mode):
        raise CacheError(f"cache directory {store} is a symbolic link; point {CACHE_ENV} at a real directory")
    if not stat.S_ISDIR(info.st_mode):
        raise CacheError(f"cache directory {store} is not a directory; move it away or choose another {CACHE_ENV}")
    uid = os.geteuid() if hasattr(os, "geteuid") else None
    if uid is not None and info.st_uid != uid:
        raise CacheError(
            f"cache directory {store} belongs to another user (uid {info.st_uid}); choose another {CACHE_ENV}"
        )
    if uid is not None and stat.S_IMODE(info.st_mode) & 0o077:
        raise CacheError(
            f"cache directory {store} is open to other users (mode {stat.S_IMODE(info.st_mode):o}); "
            f"chmod 700 it or choose another {CACHE_ENV}"
        )
    if not os.access(store, os.W_OK | os.X_OK):
        raise CacheError(f"cache directory {store} is not writable; choose another {CACHE_ENV}")


_open: dict[Path, ResultCache] = {}
_open_lock = threading.Lock()


def open_cache(directory: Path | str | None = None) -> ResultCache:
    """A process-wide ResultCache per location (diskcache is thread- and process-safe), so a batch
    does not reopen its SQLite index for every letter, and a damaged store warns once."""
    path = Path(directory) if directory else default_directory()
    with _open_lock:
        cache = _open.get(path)
        if cache is None:
            cache = _open[path] = ResultCache(path)
        return cache


def cache_stats(directory: Path | str | None = None) -> dict[str, Any]:
    """Where the store is, how many results it holds and its size; damage is reported as ``problem``
    (with entries unknown and the bytes its files still take), not raised and not logged."""
    store = prepare_store(directory)
    try:
        with diskcache.Cache(str(store)) as cache:
            return {"directory": str(store), "entries": len(cache), "bytes": cache.volume()}
    except STORE_ERRORS as exc:
        return {
            "directory": str(store),
            "entries": None,
            "bytes": _disk_usage(store),
            "problem": f"{type(exc).__name__}: {_reason(exc)}; {REPAIR_HINT}",
        }


def clear_cache(directory: Path | str | None = None) -> tuple[int | None, Path]:
    """Remove the store and create it again, empty: repairs any damage inside it.

    Returns (results removed, or None when the store could not be counted; the store's path).
    """
    location = Path(directory) if directory else default_directory()
    store = prepare_store(location)
    with _open_lock:
        stale = _open.pop(location, None)
    if stale is not None:
        stale.close()
    removed: int | None
    try:
        with diskcache.Cache(str(store)) as counted:
            removed = len(counted)
    except STORE_ERRORS:
        removed = None
    try:
        shutil.rmtree(store)
        store.mkdir(mode=PRIVATE_DIR_MODE)
    except OSError as exc:
        raise CacheError(f"cannot clear the cache directory {store}: {_reason(exc)}") from None
    return removed, store


class ResultCache:
    """A private on-disk cache of verified Determinations; a damaged store is a cache miss."""

    def __init__(self, directory: Path | str | None = None) -> None:
        self.location = Path(directory) if directory else default_directory()
        self.directory = prepare_store(self.location)
        self.problem: str | None = None
        self._cache: diskcache.Cache | None = None
        self._lock = threading.Lock()
        try:
            self._cache = diskcache.Cache(str(self.directory))
        except STORE_ERRORS as exc:
            self._disable(exc)

    def _disable(self, exc: BaseException) -> None:
        """Stop using a damaged store, with one warning (the extraction goes on uncached)."""
        with self._lock:
            first = self.problem is None
            if first:
                self.problem = f"{type(exc).__name__}: {_reason(exc)}"
            cache, self._cache = self._cache, None
        if first:
            log.warning(
                "the result cache at %s is damaged (%s); continuing without it: %s",
                self.directory,
                self.problem,
                REPAIR_HINT,
            )
        if cache is not None:
            with contextlib.suppress(STORE_ERRORS):
                cache.close()

    def get(self, key: str, letter: Letter) -> Determination | None:
        cache = self._cache  # one reference: another thread may disable the store meanwhile
        if cache is None:
            return None
        try:
            raw = cache.get(key)
        except STORE_ERRORS as exc:
            self._disable(exc)
            return None
        if raw is None:
            return None
        try:
            result = Determination.model_validate_json(raw)
        except ValueError:
            self._delete(key)
            return None
        checked = verify(result, letter)
        if not checked.ok or checked.source.sha256 != letter.sha256:
            self._delete(key)
            return None
        return checked.model_copy(update={"source": checked.source.model_copy(update={"cached": True})})

    def _delete(self, key: str) -> None:
        cache = self._cache
        if cache is None:
            return
        try:
            cache.delete(key)
        except STORE_ERRORS as exc:
            self._disable(exc)

    def put(self, key: str, result: Determination) -> bool:
        """Store ``result`` if it carries no error flag; say whether it was stored."""
        cache = self._cache
        if not result.ok or cache is None:
            return False
        try:
            cache.set(key, result.model_dump_json())
        except STORE_ERRORS as exc:
            self._disable(exc)
            return False
        return True

    def stats(self) -> dict[str, Any]:
        """See :func:`cache_stats`."""
        return cache_stats(self.location)

    def clear(self) -> int | None:
        """Remove every cached result (and any damage): see :func:`clear_cache`."""
        self.close()
        removed, _ = clear_cache(self.location)
        self.problem = None
        try:
            self._cache = diskcache.Cache(str(self.directory))
        except STORE_ERRORS as exc:
            self._disable(exc)
        return removed

    def close(self) -> None:
        cache = self._cache
        if cache is not None:
            with contextlib.suppress(STORE_ERRORS):
                cache.close()


def _disk_usage(directory: Path) -> int:
    """Bytes of the files under ``directory`` (what a damaged store still occupies)."""
    total = 0
    for root, _dirs, files in os.walk(directory):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def _reason(exc: BaseException) -> str:
    """An OS or SQLite error on one line, without the path the caller already names."""
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return " ".join(text.split()) or type(exc).__name__
