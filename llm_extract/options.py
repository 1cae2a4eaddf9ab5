"""Backend options: one pydantic model per backend, validated once where a call comes in.

``extract(letter, backend=..., **options)``, ``extract_many`` and the command line all turn what
they were given into the backend's options model (:meth:`BackendOptions.parse`) before any letter
is read: a misspelt name or an unusable value is an :class:`~llm_extract.errors.InvalidOptionsError`
with one line naming every problem, and past that boundary every layer sees typed fields, never
``**options``. The cache key is built from :meth:`BackendOptions.cache_fields`: the fields that can
change an answer, never the API key. This module imports pydantic only, so validating options
never loads the LLM stack.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from .errors import InvalidOptionsError

#: instructor modes, by the names the options take (``llm/client.py`` maps them to instructor's).
Mode = Literal["tools", "json_schema", "json", "md_json"]
#: How an LLM backend asks (``llm/backend.py`` documents each).
Strategy = Literal["per-item", "per-item-brief", "whole-letter", "whole-letter-brief"]
#: Characters of a rejected value shown in an option error.
SHOWN_VALUE_CHARS = 60

Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class BackendOptions(BaseModel):
    """Base of every backend's options: strict (unknown names are errors) and immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=False)

    #: The backend's name, for messages.
    backend: ClassVar[str] = "?"
    #: Fields that never change an answer, so they stay out of the cache key.
    NOT_IN_CACHE_KEY: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def parse(cls, given: BackendOptions | dict[str, Any] | None = None, /, **more: Any) -> BackendOptions:
        """This backend's options from an instance of them or from keyword arguments.

        Raises :class:`InvalidOptionsError` naming every unknown option and every bad value.
        """
        if isinstance(given, BackendOptions):
            if not isinstance(given, cls):
                raise InvalidOptionsError(
                    f"the {cls.backend} backend takes {cls.__name__}, not {type(given).__name__}"
                )
            if more:
                raise InvalidOptionsError("pass options either as an options object or as keywords, not both")
            return given
        values = {**(given or {}), **more}
        try:
            return cls(**values)
        except ValidationError as err:
            raise InvalidOptionsError(cls._describe(err)) from None

    @classmethod
    def _describe(cls, err: ValidationError) -> str:
        problems = []
        for error in err.errors():
            name = ".".join(str(part) for part in error["loc"]) or "options"
            if error["type"] == "extra_forbidden":
                problems.append(f"{name!r} is not an option of this backend")
                continue
            shown = repr(error.get("input"))
            if len(shown) > SHOWN_VALUE_CHARS:
                shown = shown[: SHOWN_VALUE_CHARS - 1] + "\u2026"
            problems.append(f"{name}={shown}: {error['msg']}")
        known = ", ".join(cls.model_fields) or "none"
        return f"invalid options for the {cls.backend} backend: {'; '.join(problems)} (its options: {known})"

    def given(self) -> dict[str, Any]:
        """The options the caller set (the rest take the backend's defaults)."""
        return {name: getattr(self, name) for name in self.model_fields_set}

    def cache_fields(self) -> dict[str, Any]:
        """What the cache key covers: every field that can change an answer, as JSON-able values."""
        return self.model_dump(mode="json", exclude=set(self.NOT_IN_CACHE_KEY))


class RulesOptions(BackendOptions):
    """The rules backend takes no options: it is deterministic and never cached."""

    backend: ClassVar[str] = "rules"


class ModelOptions(BackendOptions):
    """What every language-model backend takes (``openai`` and ``local``)."""

    model: str | None = Field(default=None, min_length=1, description="model name (default $LLM_EXTRACT_MODEL)")
    mode: Mode | None = Field(default=None, description="instructor mode (default: tools hosted, json_schema elsewhere)")
    strategy: Strategy | None = Field(default=None, description="how the model is asked (the backend's default if unset)")
    cache: bool = Field(default=True, description="use the result cache")
    cache_dir: Path | None = Field(default=None, description="cache location (default $LLM_EXTRACT_CACHE_DIR)")
    timeout: Seconds | None = Field(default=None, description="seconds per request")
    max_retries: Annotated[int, Field(ge=0)] | None = Field(default=None, description="retries of transient failures")
    max_reasks: Annotated[int, Field(ge=0)] | None = Field(default=None, description="re-asks after failed validation")
    max_tokens: Annotated[int, Field(gt=0)] | None = Field(default=None, description="output bound per request")
    temperature: Annotated[float, Field(ge=0, le=2)] | None = Field(default=None, description="sampling temperature")
    backoff_initial: Seconds | None = Field(default=None, description="first wait before a retry")
    backoff_max: Seconds | None = Field(default=None, description="longest wait between retries")
    log_prompts: bool = Field(default=False, description="log rendered prompts at DEBUG (they hold letter text)")
    max_in_flight: Annotated[int, Field(gt=0)] | None = Field(
        default=None, description="requests in flight across a batch's threads (default: jobs)"
    )

    NOT_IN_CACHE_KEY: ClassVar[frozenset[str]] = frozenset(
        {
            "cache",
            "cache_dir",
            "timeout",
            "max_retries",
            "backoff_initial",
            "backoff_max",
            "log_prompts",
            "max_in_flight",
        }
    )
    #: Fields the HTTP endpoint is built from (``llm.client.Endpoint``); the rest steer the backend.
    ENDPOINT_FIELDS: ClassVar[tuple[str, ...]] = (
        "model",
        "mode",
        "timeout",
        "max_retries",
        "max_reasks",
        "max_tokens",
        "temperature",
        "backoff_initial",
        "backoff_max",
    )

    def endpoint_fields(self) -> dict[str, Any]:
        """The endpoint settings the caller gave (``Endpoint.from_options`` fills in the rest)."""
        return {name: getattr(self, name) for name in self.ENDPOINT_FIELDS if getattr(self, name) is not None}

    def prompts_logged(self) -> bool:
        """``log_prompts``, or ``$LLM_EXTRACT_LOG_PROMPTS`` set."""
        return self.log_prompts or bool(os.environ.get("LLM_EXTRACT_LOG_PROMPTS"))


class LLMOptions(ModelOptions):
    """``backend="openai"``: any OpenAI-compatible endpoint."""

    backend: ClassVar[str] = "openai"

    base_url: str | None = Field(default=None, min_length=1, description="endpoint (default $OPENAI_BASE_URL)")
    api_key: SecretStr | None = Field(default=None, description="API key (default $OPENAI_API_KEY); never cached")

    NOT_IN_CACHE_KEY: ClassVar[frozenset[str]] = ModelOptions.NOT_IN_CACHE_KEY | {"api_key", "base_url"}
    ENDPOINT_FIELDS: ClassVar[tuple[str, ...]] = (*ModelOptions.ENDPOINT_FIELDS, "base_url")

    def endpoint_fields(self) -> dict[str, Any]:
        fields = super().endpoint_fields()
        if self.api_key is not None:
            fields["api_key"] = self.api_key.get_secret_value()
        return fields


class LocalOptions(ModelOptions):
    """``backend="local"``: the embedded model; ``model`` is its key (``qwen2.5-coder-1.5b``, ...)."""

    backend: ClassVar[str] = "local"

    threads: Annotated[int, Field(gt=0)] | None = Field(
        default=None, description="CPU threads of the model server (default: all cores)"
    )

    NOT_IN_CACHE_KEY: ClassVar[frozenset[str]] = ModelOptions.NOT_IN_CACHE_KEY | {"threads"}
