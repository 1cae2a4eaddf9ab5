"""Credentials never leave the process: the one place that finds them and hides them.

A base URL may carry secrets: ``https://user:token@host/v1`` (HTTP basic auth) or
``https://host/v1?api_key=...``. The URL is recorded in every result (``source.endpoint``),
named in error messages, part of the cache key and logged by the HTTP stack, so each of those
goes through :func:`redact_url` (or :func:`redact` for free text); the client gets the
credentials split off the URL (:func:`split_credentials`) so the URL it logs carries none; and
a logging filter (:func:`protect_logs`) hides any secret a third-party logger still prints.

Cheap to import (standard library only): the rules path imports it too.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

REDACTED = "***"
#: Query parameters known to carry no secret: kept, so a redacted URL still names the API version.
PUBLIC_QUERY_PARAMS = frozenset({"api-version", "api_version"})
#: Free-text redaction ignores shorter strings: they are not credible secrets, and replacing them
#: would garble every message. URLs are redacted structurally, whatever the length.
MIN_SECRET_CHARS = 4
#: Loggers (and their children) the filter is attached to: ours and the HTTP stack's. Prefixes,
#: so vendored or renamed packages (``httpx2``) are covered too.
PROTECTED_LOGGER_PREFIXES = ("llm_extract", "openai", "httpx", "httpcore", "instructor")

#: Fallback for a string ``urlsplit`` rejects: anything between ``//`` and ``@`` is userinfo.
_USERINFO = re.compile(r"(?<=//)[^/?#@\s]{1,2048}@")
#: ... and any ``?``/``&`` parameter's value.
_QUERY_VALUE = re.compile(r"([?&][^=&#\s]{1,256}=)[^&#\s]{1,4096}")


def redact_url(url: str | None) -> str | None:
    """``url`` with its userinfo and every query value (but the API version) replaced by ``***``.

    Keeps the scheme, host, port and path, so the result still says where a request went.
    """
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # e.g. a non-numeric port: redact by pattern
        return _QUERY_VALUE.sub(rf"\1{REDACTED}", _USERINFO.sub(f"{REDACTED}@", url))
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@" + (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = "&".join(
            f"{quote(k, safe='-_.')}={v if k.lower() in PUBLIC_QUERY_PARAMS else REDACTED}" for k, v in pairs
        )
    fragment = REDACTED if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


@dataclass(frozen=True)
class SplitURL:
    """A base URL with its credentials taken out: what an HTTP client may see, log and print."""

    url: str | None
    #: ``Authorization`` header for ``user:password@`` (what httpx would derive from the URL).
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: Query parameters, sent with every request instead of being glued into the path.
    query: Mapping[str, str] = field(default_factory=dict, repr=False)
    secrets: tuple[str, ...] = field(default=(), repr=False)


def split_credentials(url: str | None) -> SplitURL:
    """Split ``userinfo`` and the query off ``url``; raise ``ValueError`` if it is not a URL."""
    if url is None:
        return SplitURL(None)
    parts = urlsplit(url)
    parts.port  # noqa: B018 - raises ValueError for a bad port
    host = parts.hostname or ""
    if not parts.scheme or not host:
        raise ValueError("a base URL needs a scheme and a host (http://host:port/v1)")
    secrets: list[str] = []
    headers: dict[str, str] = {}
    if parts.username is not None or parts.password is not None:
        user, password = unquote(parts.username or ""), unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        headers["Authorization"] = f"Basic {token}"
        secrets += [parts.username or "", user, parts.password or "", password, token]
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    for key, value in query.items():
        if key.lower() not in PUBLIC_QUERY_PARAMS:
            secrets += [value, quote(value, safe=""), urlencode({key: value}).split("=", 1)[1]]
    netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    clean = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return SplitURL(clean, headers, query, _usable(secrets))


def url_secrets(url: str | None) -> tuple[str, ...]:
    """The secrets a URL carries (for :func:`redact`); none for a URL that does not parse."""
    try:
        return split_credentials(url).secrets
    except ValueError:
        return ()


def _usable(secrets: Iterable[str]) -> tuple[str, ...]:
    """Distinct secrets long enough to look for, longest first (a secret may contain another)."""
    return tuple(sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True))


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret (and any credential-bearing URL in it) replaced by ``***``."""
    for secret in _usable(secrets):
        text = text.replace(secret, REDACTED)
    return _USERINFO.sub(f"{REDACTED}@", text) if "@" in text else text


# --------------------------------------------------------------------------------------------
# Logs
# --------------------------------------------------------------------------------------------


class RedactingFilter(logging.Filter):
    """Rewrites a log record whose message (or exception text) contains a registered secret."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def add(self, secrets: Iterable[str]) -> None:
        with self._lock:
            self._secrets = _usable((*self._secrets, *secrets))

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self._secrets
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the handler's problem, not ours
            return True
        clean = redact(message, secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, secrets)
        return True


_filter = RedactingFilter()


def protect_logs(secrets: Iterable[str] = ()) -> None:
    """Register ``secrets`` and attach the redacting filter to every protected logger that exists.

    A logger's filters see only the records it creates (not its children's), so the filter goes
    on each logger by name; calling this again (each new client does) covers loggers created since.
    """
    _filter.add(secrets)
    manager = logging.Logger.manager
    names = [n for n in list(manager.loggerDict) if n.startswith(PROTECTED_LOGGER_PREFIXES)]
    for name in names + list(PROTECTED_LOGGER_PREFIXES[:1]):
        logger = logging.getLogger(name)
        if _filter not in logger.filters:
            logger.addFilter(_filter)
