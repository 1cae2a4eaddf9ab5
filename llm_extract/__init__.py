"""llm_extract: IMR determination letters to strict, verified, structured data."""

__version__ = "0.1.0"

from .batch import BatchError, extract_many
from .cache import ResultCache
from .errors import (
    BinaryInputError,
    EmptyLetterError,
    ExtractionError,
    ImageOnlyPDFError,
    InputTooLargeError,
    LetterNotFoundError,
    LLMAuthError,
    LLMConfigError,
    LLMError,
    LLMRequestError,
    LLMUnavailableError,
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
    Grounding,
    Item,
    Patient,
    Quote,
    Reviewer,
    SourceInfo,
    json_schema,
)
from .verify import Verifier, verify

__all__ = [
    "BatchError",
    "extract_many",
    "BACKENDS",
    "Case",
    "Citation",
    "Determination",
    "Flag",
    "FlagCode",
    "Grounding",
    "Item",
    "Patient",
    "Quote",
    "ResultCache",
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
    "LLMAuthError",
    "LLMConfigError",
    "LLMError",
    "LLMRequestError",
    "LLMUnavailableError",
    "Letter",
    "LetterNotFoundError",
    "NotAnIMRLetterError",
    "UnknownBackendError",
    "UnreadablePDFError",
    "load",
]
