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

from .command import build_page, review_command
from .inputs import (
    Entry,
    LetterFileError,
    LetterFiles,
    Rejected,
    ReviewInputError,
    letter_paths,
    load_eval_report,
    load_gold_dir,
    load_results,
    read_letter_bytes,
)
from .page import build_review_data, build_review_html, content_security_policy, page_script
from .server import DEFAULT_PORT, HOST, SECURITY_HEADERS, allowed_hosts, make_server, serve
from .verdicts import FLAG_FIELD, VERDICT_FIELDS

__all__ = [
    "DEFAULT_PORT",
    "FLAG_FIELD",
    "HOST",
    "SECURITY_HEADERS",
    "VERDICT_FIELDS",
    "Entry",
    "LetterFileError",
    "LetterFiles",
    "Rejected",
    "ReviewInputError",
    "allowed_hosts",
    "build_page",
    "build_review_data",
    "build_review_html",
    "content_security_policy",
    "letter_paths",
    "load_eval_report",
    "load_gold_dir",
    "load_results",
    "make_server",
    "page_script",
    "read_letter_bytes",
    "review_command",
    "serve",
]
