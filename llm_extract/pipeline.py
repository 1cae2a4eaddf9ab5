"""The flow behind :func:`extract`, one stage a line:

    ingest -> (cache lookup) -> parse -> backend -> cross-check -> enrich -> verify -> cache

- **ingest** (:mod:`~llm_extract.ingest`): text, a path or bytes become a :class:`Letter`;
- **parse** (:mod:`~llm_extract.layouts`): the layout parser segments it (every backend gets the parse);
- **backend**: the rules (:mod:`~llm_extract.rules`) or a language model (:mod:`~llm_extract.llm`),
  registered here lazily by name (``"module:Class"``), each with its options model
  (:mod:`~llm_extract.options`), validated before any letter is read;
- **cross-check** (:mod:`~llm_extract.crosscheck`): a model's answer against the layout parser's,
  every disagreement a flag (for backends that are not the parser: ``crosschecked``);
- **enrich** (:mod:`~llm_extract.classify`): DWC request category, drug, diagnoses, for every backend;
- **verify** (:mod:`~llm_extract.verify`): every quote, citation and value located in the letter;
- **cache** (:mod:`~llm_extract.cache`): verified results without error flags, for cacheable backends.

So no backend can hand a caller an ungrounded quote, and the cache only ever holds verified
results. The cache and the LLM stack are imported only by the backends that use them.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Protocol

from . import layouts, rules
from .backends import BACKENDS as BACKENDS  # re-exported: the registry's one home is backends.py
from .backends import get_backend
from .classify import enrich
from .crosscheck import crosscheck
from .errors import (
    ExtractionError,
    InternalExtractionError,
)
from .ingest import Letter, LetterInput, load
from .layouts import Parsed
from .options import BackendOptions, RulesOptions
from .schema import Determination, Flag, FlagCode
from .verify import verify

log = logging.getLogger(__name__)

#: Characters of an unexpected exception's message kept in the internal error's one line.
CAUSE_MAX_CHARS = 300


class Backend(Protocol):
    """What a backend is: a name, its options model, and a run from a parsed letter to a result."""

    name: str
    #: Its options model: ``extract``'s keyword arguments are validated into it.
    Options: ClassVar[type[BackendOptions]]
    #: Results go through the result cache (worth it when a run costs more than a read).
    cacheable: bool
    #: Results are cross-checked against the layout parser's (backends other than the parser).
    crosschecked: bool

    def run(self, letter: Letter, parsed: Parsed, options: Any) -> Determination: ...

    def cache_parts(self, letter: Letter, options: Any) -> dict[str, Any]: ...

    def prepare_batch(self, options: Any, jobs: int) -> None:
        """Called once by ``extract_many`` before its letters: shared state such as a rate gate."""


class RulesBackend:
    """The layout parser alone: offline, deterministic, fast; never cached (it is cheaper than a read)."""

    name = "rules"
    Options = RulesOptions
    cacheable = False
    crosschecked = False

    def run(self, letter: Letter, parsed: Parsed, options: RulesOptions) -> Determination:
        return rules.build(letter, parsed)

    def cache_parts(self, letter: Letter, options: RulesOptions) -> dict[str, Any]:
        return {}

    def prepare_batch(self, options: RulesOptions, jobs: int) -> None:
        pass


def backend_options(
    backend: str, options: BackendOptions | None = None, /, **given: Any
) -> tuple[Backend, BackendOptions]:
    """The backend and its validated options: the one boundary check ``extract``, ``extract_many``
    and the command line share (:class:`InvalidOptionsError`, :class:`UnknownBackendError`)."""
    chosen = get_backend(backend)
    return chosen, chosen.Options.parse(options, **given)


def extract(
    letter: LetterInput | Letter, *, backend: str = "rules", options: BackendOptions | None = None, **given: Any
) -> Determination:
    """Turn one IMR determination letter into a verified :class:`Determination`.

    ``letter`` is letter text, a path to a .txt/.pdf (a ``Path`` or a string naming an existing
    file), or the bytes of either. Bad input raises a typed ``ExtractionError``; anything doubtful
    in a good letter is returned as flags, never dropped.

    Options are the backend's (:mod:`llm_extract.options`): keyword arguments (``model=``,
    ``strategy=``, ...) or one ``options=`` object (``LLMOptions(model=...)``). The rules backend
    takes none; ``openai`` takes :class:`~llm_extract.options.LLMOptions`, ``local``
    :class:`~llm_extract.options.LocalOptions`. A name the backend does not take or a value it
    cannot use is an :class:`InvalidOptionsError` before the letter is read.

    Whatever the letter holds, the outcome is a Determination or a typed ``ExtractionError``: an
    unexpected exception inside parsing, a backend or the verifier (a bug) is re-raised as
    :class:`InternalExtractionError` (code ``internal``) naming the cause, with the original
    exception chained and logged at DEBUG, so an unattended pipeline records it and moves on.
    """
    chosen, opts = backend_options(backend, options, **given)
    loaded = load(letter)
    store = key = None
    if chosen.cacheable and getattr(opts, "cache", False):  # only parsed letters are cached: a hit needs no parse
        from .cache import cache_key, open_cache

        key = cache_key(chosen.cache_parts(loaded, opts))
        store = open_cache(getattr(opts, "cache_dir", None))
        hit = store.get(key, loaded)
        if hit is not None:
            return hit
    try:
        parsed = layouts.parse(loaded.text)
        result = chosen.run(loaded, parsed, opts)
        if chosen.crosschecked:
            result = crosschecked(result, loaded, parsed)
        result = verify(enrich(result, loaded), loaded)
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


def crosschecked(result: Determination, letter: Letter, parsed: Parsed) -> Determination:
    """The cross-check stage: the layout parser's result beside the backend's, every disagreement a
    flag. Where the parser does not know the layout the result stands alone, and says so."""
    known = parsed.layout != "unknown" and bool(parsed.items)
    parser = rules.build(letter, parsed) if known else None
    return result.model_copy(update={"flags": [*result.flags, *crosscheck(result, parser, letter.text)]})


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
