"""The flow behind :func:`extract`: ingest -> parse (rules | LLM) -> verify.

Backends register here by name. Whatever a backend returns is verified against the letter
before it is returned, so no backend can hand a caller an ungrounded quote.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import layout, rules
from .errors import UnknownBackendError
from .ingest import Letter, LetterInput, load
from .layout import Parsed
from .schema import Determination
from .verify import verify

Backend = Callable[..., Determination]


def _rules_backend(letter: Letter, parsed: Parsed, **options: Any) -> Determination:
    if options:
        raise TypeError(f"the rules backend takes no options, got: {', '.join(sorted(options))}")
    return rules.build(letter, parsed)


BACKENDS: dict[str, Backend] = {"rules": _rules_backend}


def extract(letter: LetterInput | Letter, *, backend: str = "rules", **options: Any) -> Determination:
    """Turn one IMR determination letter into a verified :class:`Determination`.

    ``letter`` is letter text, a path to a .txt/.pdf (a ``Path`` or a string naming an existing
    file), or the bytes of either. Bad input raises a typed ``ExtractionError``; anything doubtful
    in a good letter is returned as flags, never dropped.
    """
    try:
        run = BACKENDS[backend]
    except KeyError:
        raise UnknownBackendError(
            f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}"
        ) from None
    loaded = load(letter)
    parsed = layout.parse(loaded.text)
    return verify(run(loaded, parsed, **options), loaded)
