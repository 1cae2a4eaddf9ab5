"""The backend registry: backends by name, each a ``"module:Class"`` string imported on first use.

Like google/langextract's provider registry and simonw/llm's plugin hook, registering a backend
costs nothing: listing the names (the CLI's help, ``name in BACKENDS``) imports no backend, so
commands that never extract with a model (``stats``, ``schema``) never load the openai/instructor
stack, and the rules path never does. A third-party backend registers with :func:`register`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .errors import UnknownBackendError

if TYPE_CHECKING:
    from .pipeline import Backend


class _Registry(dict):
    """Backends by name, each built on first use from its ``"module:Class"`` string."""

    def __init__(self, factories: dict[str, str]) -> None:
        super().__init__({name: None for name in factories})
        self._factories = dict(factories)

    def register(self, name: str, target: str) -> None:
        self._factories[name] = target
        super().__setitem__(name, None)

    def __getitem__(self, name: str) -> Backend:
        backend = super().__getitem__(name)
        if backend is None:
            module, _, cls = self._factories[name].partition(":")
            backend = getattr(import_module(module, __package__), cls)()
            super().__setitem__(name, backend)
        return backend

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self else default  # noqa: SIM401 (dict.get would skip the build)

    def values(self) -> list[Backend]:  # type: ignore[override]
        return [self[name] for name in self]

    def items(self) -> list[tuple[str, Backend]]:  # type: ignore[override]
        return [(name, self[name]) for name in self]


BACKENDS: dict[str, Backend] = _Registry(
    {"rules": ".pipeline:RulesBackend", "openai": ".llm.backend:LLMBackend", "local": ".llm.local:LocalBackend"}
)


def register(name: str, target: str) -> None:
    """Add a backend: ``target`` is ``"package.module:Class"`` (imported when first used). The
    class has a ``name``, an ``Options`` model, ``cacheable``, ``crosschecked``, ``run``,
    ``cache_parts`` and ``prepare_batch`` (see :class:`llm_extract.pipeline.Backend`)."""
    BACKENDS.register(name, target)  # type: ignore[attr-defined]


def get_backend(name: str) -> Backend:
    """The backend called ``name``, built on first use; :class:`UnknownBackendError` names the choices."""
    if not isinstance(name, str) or name not in BACKENDS:
        raise UnknownBackendError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    return BACKENDS[name]
