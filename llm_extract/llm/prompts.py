"""Rendering the prompt templates (``prompts/*.j2``, installed as ``llm_extract.prompts``).

The letter is always a template *variable*, never template source: a letter containing
``{{ }}`` or ``{% %}`` renders as those characters. It is fenced between markers derived from
the letter's hash, and any marker-like text inside the letter is defused, so a letter cannot
close the fence early and speak as the instructions.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import re
from functools import lru_cache

import jinja2

from ..prompts import PROMPT_VERSION
from .views import MAX_QUOTES, SUMMARY_MAX_CHARS

TEMPLATES = ("system.j2", "letter.j2", "item.j2")
_FENCE_LIKE = re.compile(r"<<<|>>>")


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    files = importlib.resources.files("llm_extract.prompts")
    sources = {name: files.joinpath(name).read_text(encoding="utf-8") for name in TEMPLATES}
    return jinja2.Environment(
        loader=jinja2.DictLoader(sources),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
    )


@lru_cache(maxsize=1)
def template_hash() -> str:
    """Hash of the template sources: part of the cache key, with PROMPT_VERSION."""
    files = importlib.resources.files("llm_extract.prompts")
    digest = hashlib.sha256()
    for name in TEMPLATES:
        digest.update(name.encode() + b"\0" + files.joinpath(name).read_bytes())
    return digest.hexdigest()[:16]


def prompt_id() -> str:
    return f"{PROMPT_VERSION}+{template_hash()}"


def _fences(sha256: str) -> dict[str, str]:
    tag = f"LETTER-{sha256[:12]}"
    return {"fence_open": f"<<<BEGIN {tag}>>>", "fence_close": f"<<<END {tag}>>>"}


def _defuse(text: str) -> str:
    """Letter text with fence-like markers broken up; the model still sees the words."""
    return _FENCE_LIKE.sub(lambda m: m.group(0)[0] + " " + m.group(0)[1:], text)


def system_prompt() -> str:
    """The same for every letter and item, so llama.cpp can reuse its KV cache for this prefix."""
    return _environment().get_template("system.j2").render(summary_max_chars=SUMMARY_MAX_CHARS)


def letter_prompt(text: str, sha256: str) -> str:
    return _environment().get_template("letter.j2").render(letter=_defuse(text), **_fences(sha256))


def item_prompt(item: str, block: str, sha256: str, *, citations: bool = True) -> str:
    """One item's prompt; ``citations=False`` for the brief view (the parser supplies them)."""
    return (
        _environment()
        .get_template("item.j2")
        .render(
            item=_defuse(item),
            block=_defuse(block),
            max_quotes=MAX_QUOTES,
            citations=citations,
            **_fences(sha256),
        )
    )
