"""Typed errors for bad input and bad configuration.

Every error carries a one-line, human message (``str(err)``) that the CLI prints as
is, so callers never need a traceback to know what was wrong with a letter.

Each :class:`ExtractionError` class says what it means for a batch: ``stops_batch`` is true for
errors that would fail every letter the same way (a bad option, an unknown backend, a missing
model or key, refused credentials, an unusable cache): the batch stops at the first one, the
command line exits 2 (the command must change, not the letters) and ``evals.run`` reports a usage
error. Batch records carry only the ``code``; :func:`stops_batch` reads the class back from it.
"""

from __future__ import annotations

from typing import ClassVar

#: Every ExtractionError class by its code (filled as the classes are defined, all in this module).
_BY_CODE: dict[str, type[ExtractionError]] = {}


class ExtractionError(ValueError):
    """Base class: the letter could not be turned into a Determination."""

    code: ClassVar[str] = "extraction_error"
    #: Every letter would fail the same way: stop the batch, exit 2 (see the module docstring).
    stops_batch: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        _BY_CODE.setdefault(cls.code, cls)

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.source = source
        one_line = " ".join(message.split())
        super().__init__(f"{source}: {one_line}" if source else one_line)


_BY_CODE[ExtractionError.code] = ExtractionError


def stops_batch(code: str) -> bool:
    """Whether an error ``code`` (a batch record's) stops the batch: its class's ``stops_batch``."""
    cls = _BY_CODE.get(code)
    return cls is not None and cls.stops_batch


class InvalidOptionsError(ExtractionError, TypeError):
    """Options the backend does not take, or values it cannot use (``model=3``, ``max_retries=-1``).

    Raised before any letter is read, by ``extract``, ``extract_many`` and the command line alike.
    Also a ``TypeError``, which is what a wrong keyword argument used to raise.
    """

    code = "invalid_options"
    stops_batch = True


class EmptyLetterError(ExtractionError):
    """The input is empty or holds only whitespace."""

    code = "empty"


class BinaryInputError(ExtractionError):
    """The input is binary or cannot be decoded as text."""

    code = "binary"


class UnsupportedFileTypeError(BinaryInputError):
    """The input is a document or image of a type the toolkit does not read (a Word .docx or .doc,
    an OpenDocument or RTF file, a PNG, JPEG, TIFF, ... scan): the message names the type."""

    code = "unsupported_file_type"


class NotAnIMRLetterError(ExtractionError):
    """The text decodes fine but is not an IMR determination letter."""

    code = "not_imr"


class UnreadablePDFError(ExtractionError):
    """The PDF is corrupt, password-protected beyond the empty password, or unreadable."""

    code = "unreadable_pdf"


class PDFTooComplexError(UnreadablePDFError):
    """Reading the PDF's text broke the sandbox's limits (memory, CPU time) or crashed the PDF
    engine: a "PDF bomb" (self-referencing or fanned-out forms, compressed-text bombs) or a
    pathological file. See ``llm_extract.pdftext`` for the limits and how to change them."""

    code = "pdf_too_complex"


class ImageOnlyPDFError(UnreadablePDFError):
    """The PDF opens but carries no text layer (a scan): OCR it first."""

    code = "image_only_pdf"


class InputTooLargeError(ExtractionError):
    """The input exceeds the size limit; IMR letters are a few pages."""

    code = "too_large"


class UnreadableFileError(ExtractionError):
    """The path names something that cannot be read as a letter file: a directory, a FIFO, a
    device, a file without read permission, or one whose read failed."""

    code = "unreadable_file"


class LetterIsDirectoryError(UnreadableFileError):
    """``extract()`` was given a directory: one call reads one letter (``extract_many`` takes many)."""

    code = "directory"


class InternalExtractionError(ExtractionError):
    """An unexpected failure inside the extractor (a bug): the message names the cause, so an
    unattended pipeline still gets a typed error it can record and move past."""

    code = "internal"


class LetterNotFoundError(ExtractionError):
    """A path was given (a Path, or a string that looks like a file name) but no file is there."""

    code = "not_found"


class UnknownBackendError(ExtractionError):
    """The requested backend does not exist."""

    code = "unknown_backend"
    stops_batch = True


class LLMError(ExtractionError):
    """The language-model endpoint could not produce a result."""

    code = "llm_error"


class LLMConfigError(LLMError):
    """The LLM backend is not configured (no model, no key for a hosted endpoint)."""

    code = "llm_config"
    stops_batch = True


class LLMAuthError(LLMError):
    """The endpoint refused the credentials (401/403): fix the API key."""

    code = "llm_auth"
    stops_batch = True


class LLMRequestError(LLMError):
    """The endpoint rejected the request (400/404/422): fix the model name, URL or options."""

    code = "llm_request"
    stops_batch = True


class LocalModelError(LLMError):
    """The local model is not installed, fails its checksum, or its server does not start."""

    code = "local_model"
    stops_batch = True


class LLMUnavailableError(LLMError):
    """The endpoint kept failing transiently (429/5xx/timeouts) past the retry limit."""

    code = "llm_unavailable"


class OutputError(Exception):
    """A batch's output cannot be used or written. Not an ExtractionError: no letter is at fault.

    The message is one line naming the file and the cause, as the CLI prints it.
    """


class OutputUnusableError(OutputError):
    """The output cannot be opened: a directory, no permission, a read-only place, unreadable records.

    Raised before any letter is extracted, so the command line treats it as bad usage (exit 2).
    """


class OutputLockedError(OutputUnusableError):
    """Another run holds the output's lock: two runs must never interleave records in one file."""


class OutputWriteError(OutputError):
    """Writing failed during the run (a full disk, an I/O error); records already written are whole."""


class MissingExtraError(ExtractionError):
    """An optional dependency a feature needs is not installed (pyarrow for Parquet, pandas)."""

    code = "missing_extra"


class ResultsFileError(ExtractionError):
    """A results file (JSONL, JSON, CSV, Parquet) cannot be read as extraction results."""

    code = "results_file"


class CacheError(ExtractionError):
    """The cache location cannot be used safely: a file, a symlink, another user's, open to others, read-only."""

    code = "cache"
    stops_batch = True
