"""llm_extract: IMR determination letters to strict, verified, structured data."""

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

__all__ = [
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
