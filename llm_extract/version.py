"""The package version, in a module of its own.

Every module that stamps results with the extractor version imports it from here, never from the
package root: ``llm_extract/__init__.py`` re-exports the public API lazily, and a module reaching
up to it would import the whole API. ``pyproject.toml`` reads the version from here too.
"""

__version__ = "0.1.0"
