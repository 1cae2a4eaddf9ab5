"""Talking to an OpenAI-compatible endpoint: configuration, instructor modes, one retry policy.

``tenacity`` owns retries: 429 (honouring ``Retry-After``), 5xx, connection errors and timeouts
are retried with exponential backoff and jitter up to a limit; other 4xx fail at once with a
typed error that says what to fix. The openai client's own retry loop is switched off
(``max_retries=0``) so there is exactly one retry policy. Instructor's ``max_retries`` is used
only for re-asking after validation failures.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import instructor
import openai
from instructor.core import InstructorRetryException
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from ..errors import LLMAuthError, LLMConfigError, LLMRequestError, LLMUnavailableError
from ..redact import protect_logs, redact, redact_url, split_credentials, url_secrets
from ..schema import Usage

log = logging.getLogger("llm_extract.llm")
T = TypeVar("T")

OPENAI_HOST = "api.openai.com"
OPENAI_URL = "https://api.openai.com/v1"
#: The key sent to servers that need none (llama.cpp, Ollama, vLLM accept any).
NO_KEY = "not-needed"
#: Transient failures retried per request before giving up.
DEFAULT_MAX_RETRIES = 5
#: Re-asks after the model's answer fails validation against the letter.
DEFAULT_MAX_REASKS = 2
DEFAULT_TIMEOUT_S = 120.0
#: Backoff: first wait and cap (seconds); a server's Retry-After is honoured up to MAX_RETRY_AFTER_S.
BACKOFF_INITIAL_S = 1.0
BACKOFF_MAX_S = 30.0
MAX_RETRY_AFTER_S = 120.0
DEFAULT_MAX_TOKENS = 2048

MODES = {
    "tools": instructor.Mode.TOOLS,
    "json_schema": instructor.Mode.JSON_SCHEMA,
    "json": instructor.Mode.JSON,
    "md_json": instructor.Mode.MD_JSON,
}

#: USD per million tokens (input, output) for cost estimates; local models cost nothing.
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
}


_clients: dict[tuple[Any, ...], instructor.Instructor] = {}
_clients_lock = threading.Lock()


@dataclass
class Endpoint:
    """Where and how to ask: built from options, then the environment, like the openai SDK.

    ``base_url`` may carry credentials (``user:token@``, ``?api_key=``): they reach the server
    and nothing else. What is shown, stored or logged is :attr:`shown` (redacted).
    """

    model: str
    base_url: str | None
    api_key: str = field(repr=False)
    mode: str
    timeout: float = DEFAULT_TIMEOUT_S
    max_retries: int = DEFAULT_MAX_RETRIES
    max_reasks: int = DEFAULT_MAX_REASKS
    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = 0.0
    backoff_initial: float = BACKOFF_INITIAL_S
    backoff_max: float = BACKOFF_MAX_S
    local: bool = False

    @classmethod
    def from_options(
        cls,
        *,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        mode: str | None = None,
        **tuning: Any,
    ) -> Endpoint:
        model = model or os.environ.get("LLM_EXTRACT_MODEL")
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        api_key = api_key or os.environ.get("OPENAI_API_KEY")
        if not model:
            raise LLMConfigError("no model configured: pass model=/--model or set LLM_EXTRACT_MODEL")
        try:
            host = urlsplit(split_credentials(base_url).url or OPENAI_URL).hostname
        except ValueError as exc:
            raise LLMConfigError(f"base URL {redact_url(base_url)!r} is not usable: {redact(str(exc))}") from None
        hosted = host == OPENAI_HOST
        if not api_key:
            if hosted:
                raise LLMConfigError(
                    "no API key for api.openai.com: set OPENAI_API_KEY (api_key= in Python) or pass --base-url"
                )
            api_key = NO_KEY
        chosen = mode or ("tools" if hosted else "json_schema")
        if chosen not in MODES:
            raise LLMConfigError(f"unknown mode {chosen!r}; choose one of: {', '.join(MODES)}")
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(tuning) - known
        if unknown:
            raise TypeError(f"unknown LLM options: {', '.join(sorted(unknown))}")
        return cls(model=model, base_url=base_url, api_key=api_key, mode=chosen, **tuning)

    def __repr__(self) -> str:
        return f"Endpoint(model={self.model!r}, base_url={self.shown!r}, mode={self.mode!r}, local={self.local})"

    @property
    def shown(self) -> str:
        """The endpoint as it may be shown, stored or logged: credentials redacted."""
        return redact_url(self.base_url) or OPENAI_URL

    def secrets(self) -> tuple[str, ...]:
        """What must never appear in a message: the URL's credentials and the API key."""
        key = () if self.api_key == NO_KEY or self.local else (self.api_key,)
        return (*url_secrets(self.base_url), *key)

    def hide(self, text: str) -> str:
        """``text`` (e.g. an error from the HTTP stack) with this endpoint's secrets redacted."""
        return redact(text, self.secrets())

    def client(self) -> instructor.Instructor:
        """One instructor client per endpoint and process, reused by every letter (and thread): its HTTP
        connections stay open between requests instead of a new client per letter. The URL it sees
        (and its HTTP stack logs) carries no credentials."""
        key = (self.base_url, self.api_key, self.timeout, self.mode)
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                split = split_credentials(self.base_url)
                raw = openai.OpenAI(
                    base_url=split.url,
                    api_key=self.api_key,
                    timeout=self.timeout,
                    max_retries=0,
                    default_headers=dict(split.headers) or None,
                    default_query=dict(split.query) or None,
                )
                protect_logs(self.secrets())
                client = _clients[key] = instructor.from_openai(raw, mode=MODES[self.mode])
            return client

    def cost(self, usage: Usage) -> float | None:
        if self.local:
            return 0.0
        price = PRICES_PER_MTOK.get(self.model)
        if price is None:
            return None
        return round((usage.prompt_tokens * price[0] + usage.completion_tokens * price[1]) / 1e6, 6)


def _root(exc: BaseException) -> BaseException:
    """The openai error behind instructor's wrapper, if any."""
    seen = exc
    while isinstance(seen, InstructorRetryException) and seen.__cause__ is not None:
        seen = seen.__cause__
    return seen


def is_transient(exc: BaseException) -> bool:
    root = _root(exc)
    if isinstance(root, (openai.RateLimitError, openai.APIConnectionError, openai.InternalServerError)):
        return True  # APITimeoutError is an APIConnectionError
    return isinstance(root, openai.APIStatusError) and root.status_code >= 500


def retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait (Retry-After as seconds or an HTTP date)."""
    root = _root(exc)
    response = getattr(root, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    if not value:
        return None
    try:
        return min(MAX_RETRY_AFTER_S, max(0.0, float(value)))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return min(MAX_RETRY_AFTER_S, max(0.0, parsed.timestamp() - time.time()))


def typed_error(exc: BaseException, endpoint: Endpoint) -> Exception:
    """A non-transient failure as a typed error that says what to fix (never a credential)."""
    root = _root(exc)
    where = endpoint.shown
    if isinstance(root, (openai.AuthenticationError, openai.PermissionDeniedError)):
        in_url = " or the user:password in the base URL" if split_credentials(endpoint.base_url).headers else ""
        return LLMAuthError(
            f"{where} refused the credentials ({root.status_code}): check the key in $OPENAI_API_KEY "
            f"(api_key= in Python){in_url}"
        )
    if isinstance(root, openai.NotFoundError):
        return LLMRequestError(
            f"{where} answered 404: check the model name {endpoint.model!r} and the base URL"
        )
    if isinstance(root, openai.APIStatusError):
        return LLMRequestError(
            f"{where} rejected the request ({root.status_code}): {_short(root, endpoint)}; "
            "check --mode and the model's capabilities"
        )
    return LLMUnavailableError(f"{where}: {type(root).__name__}: {_short(root, endpoint)}")


#: Characters of a server's error text kept in a message (it may echo a whole request).
ERROR_TEXT_CHARS = 160


def _short(exc: BaseException, endpoint: Endpoint) -> str:
    """The error's text on one line, secrets redacted (a server may echo the request), bounded."""
    return endpoint.hide(" ".join(str(exc).split()))[:ERROR_TEXT_CHARS]


#: Requests in flight at once across a process's threads unless a batch sets its own cap.
DEFAULT_MAX_IN_FLIGHT = 8


class RateGate:
    """Shared by all threads of a process: a cap on calls in flight and a common pause after 429.

    When one worker hears "429, retry after N s", every worker holds off for N s instead of each
    hammering the endpoint on its own schedule.
    """

    def __init__(self, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT) -> None:
        self.max_in_flight = max_in_flight
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._lock = threading.Lock()
        self._paused_until = 0.0

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def _delay(self) -> float:
        with self._lock:
            return self._paused_until - time.monotonic()

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Wait out any pause, take a slot, and re-check: a pause may start while we queue."""
        while True:
            delay = self._delay()
            if delay > 0:
                time.sleep(delay)
                continue
            self._slots.acquire()
            if self._delay() > 0:
                self._slots.release()
                continue
            break
        try:
            yield
        finally:
            self._slots.release()


_gate = RateGate()


def configure_gate(max_in_flight: int) -> RateGate:
    """Replace the process's gate (a batch sets its cap before it starts)."""
    global _gate
    if max_in_flight < 1:
        raise ValueError("max_in_flight must be at least 1")
    if _gate.max_in_flight != max_in_flight:
        _gate = RateGate(max_in_flight)
    return _gate


def gate() -> RateGate:
    return _gate


def with_retries(
    call: Callable[[], T], endpoint: Endpoint, *, on_retry: Callable[[float], None] | None = None
) -> T:
    """Run ``call`` under the one retry policy; raise typed errors for what retrying cannot fix."""
    backoff = wait_exponential_jitter(
        multiplier=endpoint.backoff_initial, max=endpoint.backoff_max, jitter=endpoint.backoff_initial
    )

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        asked = retry_after(exc) if exc else None
        seconds = asked if asked is not None else backoff(state)
        if exc is not None and isinstance(_root(exc), openai.RateLimitError):
            _gate.pause(seconds)  # everyone waits, not just this worker
        if on_retry:
            on_retry(seconds)
        log.info(
            "transient failure (%s); retrying in %.1fs", type(_root(exc)).__name__ if exc else "?", seconds
        )
        return seconds

    retrying = Retrying(
        retry=retry_if_exception(is_transient),
        wait=wait,
        stop=stop_after_attempt(endpoint.max_retries + 1),
        reraise=True,
    )

    def gated() -> T:
        with _gate.slot():
            try:
                return call()
            except Exception as exc:
                if isinstance(_root(exc), openai.RateLimitError):  # pause others before freeing the slot
                    _gate.pause(retry_after(exc) or endpoint.backoff_initial)
                raise

    try:
        return retrying(gated)
    except Exception as exc:
        root = _root(exc)
        if isinstance(root, openai.APIError):
            if is_transient(exc):
                raise LLMUnavailableError(
                    f"{endpoint.shown} still failing after {endpoint.max_retries + 1} "
                    f"attempts: {_short(root, endpoint)}"
                ) from exc
            raise typed_error(exc, endpoint) from exc
        raise
