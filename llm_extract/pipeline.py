"""The flow behind :func:`extract`: ingest -> parse (rules | LLM) -> enrich -> verify -> cache.

Backends register here by name. Whatever a backend returns is enriched (DWC request category, drug,
diagnoses: :mod:`llm_extract.classify`) and verified against the letter
before it is returned or cached, so no backend can hand a caller an ungrounded quote, and the
cache only ever holds verified results without error flags.
"""

from __future__ import annotations

import logging
from importlib import import_module
from typing import Any, Protocol

from . import layout, rules
from .cache import cache_key, open_cache
from .classify import enrich
from .errors import ExtractionError, InternalExtractionError, UnknownBackendError
from .ingest import Letter, LetterInput, load
from .layout import Parsed
from .schema import Determination, Flag, FlagCode
from .verify import verify

log = logging.getLogger(__name__)

#: Characters of an unexpected exception's message kept in the internal error's one line.
CAUSE_MAX_CHARS = 300


class Backend(Protocol):
    name: str
    cacheable: bool

    def run(self, letter: Letter, parsed: Parsed, **options: Any) -> Determination: ...

    def cache_parts(self, letter: Letter, **options: Any) -> dict[str, Any]: ...


class RulesBackend:
    """The layout parser alone: offline, deterministic, fast; never cached (it is cheaper than a read)."""

    name = "rules"
    cacheable = False

    def check_options(self, options: dict[str, Any]) -> None:
        """Reject options before any work: a wrong call is the caller's TypeError, not a letter's."""
        if options:
            raise TypeError(f"the rules backend takes no options, got: {', '.join(sorted(options))}")

    def run(self, letter: Letter, parsed: Parsed, **options: Any) -> Determination:
        self.check_options(options)
        return rules.build(letter, parsed)

    def cache_parts(self, letter: Letter, **options: Any) -> dict[str, Any]:
        return {}


class _Registry(dict):
    """Backends by name, each built on first use: listing the names (CLI help, ``in``) imports
    nothing, so commands that never extract with a model (``stats``, ``schema``) never load the
    openai/instructor stack."""

    def __init__(self, factories: dict[str, str]) -> None:
        super().__init__({name: None for name in factories})
        self._factories = factories

    def __getitem__(self, name: str) -> Backend:
        backend = super().__getitem__(name)
        if backend is None:
            module, _, cls = self._factories[name].partition(":")
            backend = getattr(import_module(module, __package__), cls)()
            super().__setitem__(name, backend)
        return backend

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self else default  # noqa: SIM401 (dict.get would skip the build)

    def values(self) -> list[Backend]:  # type: ignore[override]
        return [self[name] for name in self]

    def items(self) -> list[tuple[str, Backend]]:  # type: ignore[override]
        return [(name, self[name]) for name in self]


BACKENDS: dict[str, Backend] = _Registry(
    {"rules": ".pipeline:RulesBackend", "openai": ".llm.backend:LLMBackend", "local": ".llm.local:LocalBackend"}
)


def get_backend(name: str) -> Backend:
    try:
        return BACKENDS[name]
    except KeyError:
        raise UnknownBackendError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}") from None


def extract(letter: LetterInput | Letter, *, backend: str = "rules", **options: Any) -> Determination:
    """Turn one IMR determination letter into a verified :class:`Determination`.

    ``letter`` is letter text, a path to a .txt/.pdf (a ``Path`` or a string naming an existing
    file), or the bytes of either. Bad input raises a typed ``ExtractionError``; anything doubtful
    in a good letter is returned as flags, never dropped.

    LLM backends take ``model``, ``base_url``, ``api_key``, ``mode`` (tools, json_schema, json,
    md_json), ``strategy`` (per-item, whole-letter), ``cache`` (default True), ``cache_dir``,
    ``timeout``, ``max_retries``, ``max_reasks``, ``max_tokens``, ``temperature``, ``log_prompts``.

    Whatever the letter holds, the outcome is a Determination or a typed ``ExtractionError``: an
    unexpected exception inside parsing, a backend or the verifier (a bug) is re-raised as
    :class:`InternalExtractionError` (code ``internal``) naming the cause, with the original
    exception chained and logged at DEBUG, so an unattended pipeline records it and moves on.
    """
    chosen = get_backend(backend)
    check = getattr(chosen, "check_options", None)
    if check is not None:
        check(options)
    use_cache = bool(options.pop("cache", True)) and chosen.cacheable
    cache_dir = options.pop("cache_dir", None)
    loaded = load(letter)
    store = key = None
    if use_cache:  # only letters that parsed are ever cached, so a hit needs no parse
        key = cache_key(chosen.cache_parts(loaded, **options))
        store = open_cache(cache_dir)
        hit = store.get(key, loaded)
        if hit is not None:
            return hit
    try:
        parsed = layout.parse(loaded.text)
        result = verify(enrich(chosen.run(loaded, parsed, **options), loaded), loaded)
        if loaded.replaced:
            result = result.model_copy(update={"flags": [*result.flags, _replaced_flag(loaded)]})
    except ExtractionError:
        raise
    except Exception as err:  # the last resort: a bug must still end in a typed error
        log.debug("internal error extracting %s", loaded.name or "a letter", exc_info=True)
        raise InternalExtractionError(
            f"internal error ({type(err).__name__}: {str(err)[:CAUSE_MAX_CHARS]}); please report it with the letter",
            source=loaded.name,
        ) from err
    if store is not None and key is not None:
        store.put(key, result)
    return result


def _replaced_flag(letter: Letter) -> Flag:
    """Ingest replaced lone surrogates (see ``ingest.REPLACEMENT_CHAR``): say so, once per letter."""
    at = letter.first_replaced
    return Flag(
        code=FlagCode.INVALID_CHARACTERS,
        severity="warning",
        start=at,
        end=None if at is None else at + 1,
        message=f"{letter.replaced:,} lone surrogate code point(s) (not valid Unicode: a lossy decode?) "
        "were replaced by U+FFFD, one for one, so offsets are unchanged",
    )
