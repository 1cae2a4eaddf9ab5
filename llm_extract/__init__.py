"""llm_extract: IMR determination letters to strict, verified, structured data.

The public API is re-exported here *lazily* (PEP 562): ``import llm_extract`` loads nothing but
this table, and ``from llm_extract import extract`` loads the extraction stages only. So the rules
path never pays for the LLM stack (openai, instructor, jinja2), and the command line's start-up
stays close to the cost of pydantic + pypdfium2 + rapidfuzz (``benchmarks/bench_startup.py``).
"""

from __future__ import annotations

import sys
import types
from importlib import import_module
from typing import Any

from .version import __version__

#: Public name -> the module that defines it (relative to this package).
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("BatchError", "extract_many"), ".batch"),
    "ResultCache": ".cache",
    **dict.fromkeys(
        (
            "BinaryInputError",
            "CacheError",
            "EmptyLetterError",
            "ExtractionError",
            "ImageOnlyPDFError",
            "InputTooLargeError",
            "InternalExtractionError",
            "InvalidOptionsError",
            "LetterIsDirectoryError",
            "LetterNotFoundError",
            "LLMAuthError",
            "LLMConfigError",
            "LLMError",
            "LLMRequestError",
            "LLMUnavailableError",
            "LocalModelError",
            "MissingExtraError",
            "NotAnIMRLetterError",
            "OutputError",
            "OutputLockedError",
            "OutputUnusableError",
            "OutputWriteError",
            "PDFTooComplexError",
            "ResultsFileError",
            "UnknownBackendError",
            "UnreadableFileError",
            "UnreadablePDFError",
            "UnsupportedFileTypeError",
        ),
        ".errors",
    ),
    **dict.fromkeys(("Letter", "load"), ".ingest"),
    "PdfLimits": ".pdftext",
    "BACKENDS": ".backends",
    "extract": ".pipeline",
    **dict.fromkeys(("BackendOptions", "LLMOptions", "LocalOptions", "RulesOptions"), ".options"),
    **dict.fromkeys(
        (
            "Case",
            "Citation",
            "Determination",
            "Diagnosis",
            "Drug",
            "Flag",
            "FlagCode",
            "Grounding",
            "Ingredient",
            "Item",
            "Patient",
            "Quote",
            "Reviewer",
            "SourceInfo",
            "json_schema",
        ),
        ".schema",
    ),
    **dict.fromkeys(("read_results", "to_dataframe", "to_rows"), ".tables"),
    **dict.fromkeys(("Verifier", "verify"), ".verify"),
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use, then keep the name here."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})



class _Package(types.ModuleType):
    """This package's module type: importing a submodule whose name is also a public name
    (``llm_extract.verify``, the module, vs ``verify``, the function) keeps the public name here,
    as the eager ``from .verify import verify`` did."""

    def __setattr__(self, name: str, value: Any) -> None:
        if (
            isinstance(value, types.ModuleType)
            and value.__name__ == f"{__name__}.{name}"
            and _EXPORTS.get(name) == f".{name}"
        ):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
