"""Prompt templates for the LLM backend (installed as ``llm_extract.prompts``).

Bump PROMPT_VERSION whenever a template's meaning changes; the cache key also covers a hash
of the template files, so an edited template never serves stale cached answers.
"""

PROMPT_VERSION = "2026-11-24.2"
