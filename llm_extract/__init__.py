"""llm_extract: IMR determination letters to strict, verified, structured data."""

__version__ = "0.1.0"

from .errors import (
    BinaryInputError,
    EmptyLetterError,
    ExtractionError,
    ImageOnlyPDFError,
    InputTooLargeError,
    LetterNotFoundError,
    NotAnIMRLetterError,
    UnknownBackendError,
    UnreadablePDFError,
)
from .ingest import Letter, load
from .pipeline import BACKENDS, extract
from .schema import (
    Case,
    Citation,
    Determination,
    Flag,
    FlagCode,
    Item,
    Patient,
    Quote,
    Reviewer,
    SourceInfo,
    json_schema,
)
from .verify import Verifier, verify

__all__ = [
    "BACKENDS",
    "Case",
    "Citation",
    "Determination",
    "Flag",
    "FlagCode",
    "Item",
    "Patient",
    "Quote",
    "Reviewer",
    "SourceInfo",
    "Verifier",
    "__version__",
    "extract",
    "json_schema",
    "verify",
    "BinaryInputError",
    "EmptyLetterError",
    "ExtractionError",
    "ImageOnlyPDFError",
    "InputTooLargeError",
    "Letter",
    "LetterNotFoundError",
    "NotAnIMRLetterError",
    "UnknownBackendError",
    "UnreadablePDFError",
    "load",
]
