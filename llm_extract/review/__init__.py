"""The reviewer page: one self-contained HTML file to inspect flagged results and record verdicts.

In parts, by job:

- :mod:`.inputs`   — what it reads: results files (through :mod:`llm_extract.records`, the one
  reader of results), the letters they came from (only files the user named, matched by
  sha256), gold files and an evaluation report;
- :mod:`.verdicts` — what a reviewer judges: gold against predicted, scored by
  :mod:`llm_extract.compare` (the evaluation's rules), and the field a verdict corrects;
- :mod:`.page`     — the page: letter text cut into highlighted segments (quotes, citations,
  flags, mismatches, every value's evidence), the queue and the HTML with its strict policy;
- :mod:`.server`   — ``--serve``: the page on 127.0.0.1, rebuilt on every request;
- :mod:`.command`  — ``llm-extract review``: files in, the page out (mode 0600) or served.

Verdicts are kept in the browser (``localStorage``, keyed by the letter's sha256) and exported as
the JSON list that ``python -m evals.run --verdicts FILE`` reads (:data:`VERDICT_FIELDS`).
"""

from __future__ import annotations

import importlib
from typing import Any

#: The public names, by the module that defines them; imported on first use, so
#: ``llm-extract`` starts without the page's machinery.
_EXPORTS = {
    "command": ("build_page", "review_command"),
    "inputs": (
        "Entry",
        "LetterFileError",
        "LetterFiles",
        "Rejected",
        "ReviewInputError",
        "letter_paths",
        "load_eval_report",
        "load_gold_dir",
        "load_results",
        "read_letter_bytes",
    ),
    "page": ("build_review_data", "build_review_html", "content_security_policy", "page_script"),
    "server": ("DEFAULT_PORT", "HOST", "SECURITY_HEADERS", "allowed_hosts", "make_server", "serve"),
    "verdicts": ("FLAG_FIELD", "VERDICT_FIELDS"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
