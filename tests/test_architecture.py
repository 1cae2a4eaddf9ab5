"""Issue 16's contracts: a cheap start, typed options, the pipeline's stages, batch-stopping errors
as a property of the error class, and the command line's conventions."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from conftest import SEEDS, pdf

import llm_extract
from llm_extract import (
    BatchError,
    Determination,
    InvalidOptionsError,
    LetterIsDirectoryError,
    LLMOptions,
    LocalOptions,
    RulesOptions,
    UnknownBackendError,
    UnsupportedFileTypeError,
    errors,
    extract,
    extract_many,
)
from llm_extract.backends import BACKENDS, register
from llm_extract.pipeline import RulesBackend
from llm_extract.schema import FlagCode

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
#: What the rules path must never import (the LLM stack, a batch's pool and lock, tables, the cache).
NOT_ON_THE_RULES_PATH = ("openai", "instructor", "jinja2", "pebble", "filelock", "pyarrow", "diskcache", "rich")


def _modules_after(code: str, *args: str) -> set[str]:
    probe = f"import sys, atexit\natexit.register(lambda: print(' '.join(sys.modules), file=sys.stderr))\n{code}"
    proc = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=120)
    return set(proc.stderr.split())


# --------------------------------------------------------------------------------------------------
# Start-up
# --------------------------------------------------------------------------------------------------


def test_importing_the_package_loads_no_stage() -> None:
    loaded = _modules_after("import llm_extract; print(llm_extract.__version__)")
    assert "llm_extract.pipeline" not in loaded and "pydantic" not in loaded
    assert not loaded & set(NOT_ON_THE_RULES_PATH)


def test_a_one_letter_cli_run_never_pays_for_the_llm_stack_or_a_pool() -> None:
    code = "from llm_extract.cli import main; sys.argv = ['llm-extract', 'extract', sys.argv[1]]; main()"
    loaded = _modules_after(f"import sys\n{code}", str(pdf("CM16-0230651")))
    assert "llm_extract.pipeline" in loaded  # it did extract
    assert not loaded & set(NOT_ON_THE_RULES_PATH), loaded & set(NOT_ON_THE_RULES_PATH)


def test_the_public_names_resolve_lazily_and_list_in_dir() -> None:
    for name in llm_extract.__all__:
        assert getattr(llm_extract, name) is not None
    assert set(llm_extract.__all__) <= set(dir(llm_extract))
    with pytest.raises(AttributeError):
        llm_extract.no_such_name  # noqa: B018


def test_no_module_reaches_up_to_the_package_root() -> None:
    for path in (ROOT / "llm_extract").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "from . import __version__" not in text and "from .. import __version__" not in text, path


# --------------------------------------------------------------------------------------------------
# One rules letter: no pool, the same guarantees (a fork of this process)
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def misbehaving(monkeypatch: pytest.MonkeyPatch) -> Any:
    sys.path.insert(0, str(TESTS))
    import misbehaving as module

    from llm_extract import pipeline

    monkeypatch.setattr(pipeline, "extract", module.extract)
    return module


@pytest.mark.parametrize(("kind", "code"), [("sigkill", "worker_crashed"), ("segfault", "worker_crashed"), ("hang", "timeout")])
def test_a_single_letter_is_killed_at_its_budget_and_a_crash_is_isolated(
    misbehaving: Any, tmp_path: Path, kind: str, code: str
) -> None:
    letter = tmp_path / f"letter-{kind}.txt"
    shutil.copy(SEEDS[0], letter)
    (outcome,) = extract_many([letter], timeout=2)
    assert isinstance(outcome, BatchError) and outcome.error == code, outcome
    assert outcome.letter == str(letter) and outcome.sha256 is not None


def test_a_single_letter_whose_first_process_dies_is_tried_again(misbehaving: Any, tmp_path: Path) -> None:
    letter = tmp_path / "letter-once.txt"
    shutil.copy(SEEDS[0], letter)
    (outcome,) = extract_many([letter], timeout=30)
    assert isinstance(outcome, Determination) and letter.with_suffix(".crashed").exists()


def test_a_single_letter_is_the_same_result_as_in_a_pool() -> None:
    one = list(extract_many([pdf("CM16-0230651")]))
    pooled = list(extract_many([pdf("CM16-0230651"), SEEDS[0]], jobs=1))
    assert one[0] == pooled[0] == extract(pdf("CM16-0230651"))
    (bad,) = extract_many([SEEDS[0].parent / "missing.txt"])
    assert isinstance(bad, BatchError) and bad.error == "not_found"


# --------------------------------------------------------------------------------------------------
# Typed options
# --------------------------------------------------------------------------------------------------


def test_a_bad_option_is_one_typed_line_before_the_letter_is_read(tmp_path: Path) -> None:
    missing = tmp_path / "not-there.pdf"  # never read: the options are checked first
    with pytest.raises(InvalidOptionsError) as info:
        extract(missing, model="x")
    assert info.value.code == "invalid_options" and "'model' is not an option" in str(info.value)
    assert "\n" not in str(info.value) and isinstance(info.value, TypeError)  # what callers caught before
    with pytest.raises(InvalidOptionsError, match=r"max_retries=-1.*greater than or equal to 0"):
        extract(missing, backend="openai", model="m", max_retries=-1)
    with pytest.raises(InvalidOptionsError, match="strategy="):
        extract(missing, backend="openai", model="m", strategy="sideways")
    with pytest.raises(InvalidOptionsError, match="'base_url' is not an option"):
        extract(missing, backend="local", base_url="http://x")
    with pytest.raises(UnknownBackendError):
        extract(missing, backend="nope")


def test_extract_many_checks_options_at_the_call() -> None:
    with pytest.raises(InvalidOptionsError):
        extract_many([SEEDS[0]], bogus=1)  # raised by the call, not at the first next()
    with pytest.raises(InvalidOptionsError):
        extract_many([SEEDS[0]], backend="openai", model="m", max_in_flight=0)


def test_an_options_object_is_accepted_and_must_be_the_backends() -> None:
    assert extract(SEEDS[0], options=RulesOptions()) == extract(SEEDS[0])
    with pytest.raises(InvalidOptionsError, match="takes RulesOptions, not LLMOptions"):
        extract(SEEDS[0], options=LLMOptions(model="m"))
    with pytest.raises(InvalidOptionsError, match="not both"):
        extract(SEEDS[0], backend="openai", options=LLMOptions(model="m"), temperature=0.5)


def test_cache_keys_come_from_the_options_model_and_never_hold_the_key() -> None:
    options = LLMOptions.parse({"model": "m", "api_key": "sk-SECRET", "base_url": "http://u:TOKEN123@h/v1", "timeout": 5})
    fields = options.cache_fields()
    assert "api_key" not in fields and "timeout" not in fields and fields["model"] == "m"
    assert "SECRET" not in repr(options)
    letter = llm_extract.load(SEEDS[0])
    parts = BACKENDS["openai"].cache_parts(letter, options)
    text = json.dumps(parts, default=str)
    assert "sk-SECRET" not in text and "TOKEN123" not in text and parts["version"] == llm_extract.__version__
    local = BACKENDS["local"].cache_parts(letter, LocalOptions.parse({"threads": 2}))
    assert local["version"] == llm_extract.__version__ and "threads" not in local["options"]
    # what changes an answer changes the key; what does not, does not
    same = LLMOptions.parse({"model": "m", "api_key": "other", "base_url": "http://u:TOKEN123@h/v1", "timeout": 50})
    hotter = LLMOptions.parse({"model": "m", "base_url": "http://u:TOKEN123@h/v1", "temperature": 1.0})
    assert BACKENDS["openai"].cache_parts(letter, same) == parts
    assert BACKENDS["openai"].cache_parts(letter, hotter) != parts


# --------------------------------------------------------------------------------------------------
# The pipeline's stages, and backends registered by name
# --------------------------------------------------------------------------------------------------


class DroppingBackend(RulesBackend):
    """A test backend that is not the parser: the parser's result minus its last item."""

    name = "dropping"
    crosschecked = True

    def run(self, letter: Any, parsed: Any, options: Any) -> Determination:
        result = super().run(letter, parsed, options)
        return result.model_copy(update={"items": result.items[:-1], "evidence": {}})


def test_the_cross_check_is_a_stage_of_the_pipeline_for_any_backend_that_is_not_the_parser() -> None:
    register("dropping", "tests.test_architecture:DroppingBackend")
    try:
        result = extract(SEEDS[1], backend="dropping")
    finally:
        BACKENDS.pop("dropping")
    codes = [f.code for f in result.flags]
    assert FlagCode.CROSSCHECK_MISSING_ITEM in codes
    assert FlagCode.CROSSCHECK_MISSING_ITEM not in [f.code for f in extract(SEEDS[1]).flags]


def test_stopping_a_batch_is_a_property_of_the_error_class() -> None:
    stopping = {code for code, cls in errors._BY_CODE.items() if cls.stops_batch}
    assert stopping == {"invalid_options", "unknown_backend", "llm_config", "llm_auth", "llm_request", "local_model", "cache"}
    assert errors.stops_batch("llm_config") and not errors.stops_batch("empty") and not errors.stops_batch("timeout")


# --------------------------------------------------------------------------------------------------
# Inputs named for what they are
# --------------------------------------------------------------------------------------------------


def _docx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<Types><Override PartName="/word/document.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>',
        )
        archive.writestr("word/document.xml", "<w:document>Independent Medical Review</w:document>")
    return buffer.getvalue()


UNSUPPORTED = {
    "letter.docx": (_docx(), "Word document (.docx)"),
    "letter.doc": (bytes.fromhex("D0CF11E0A1B11AE1") + b"\0" * 1024, "Word 97-2003 document (.doc)"),
    "letter.rtf": (b"{\\rtf1\\ansi Independent Medical Review}", "RTF document (.rtf)"),
    "scan.png": (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "PNG image"),
    "scan.jpg": (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\0" * 64, "JPG image"),
    "scan.tif": (b"II*\x00" + b"\0" * 64, "TIF image"),
}


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_an_unsupported_file_type_is_named_as_such(tmp_path: Path, name: str) -> None:
    data, what = UNSUPPORTED[name]
    path = tmp_path / name
    path.write_bytes(data)
    for given in (path, data):
        with pytest.raises(UnsupportedFileTypeError, match=r"unsupported file type: .*" + what.replace("(", r"\(").replace(")", r"\)")):
            extract(given)
    proc = subprocess.run([sys.executable, "-m", "llm_extract", "extract", str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and what in proc.stderr, proc.stderr


def test_a_directory_says_so_and_points_to_extract_many(tmp_path: Path) -> None:
    for given in (tmp_path, str(tmp_path)):
        with pytest.raises(LetterIsDirectoryError, match="is a directory.*extract_many") as info:
            extract(given)
        assert info.value.code == "directory"


# --------------------------------------------------------------------------------------------------
# Command-line conventions
# --------------------------------------------------------------------------------------------------


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "llm_extract", *args], capture_output=True, text=True, timeout=120, env=env
    )


COMMANDS = (("extract",), ("schema",), ("stats",), ("review",), ("serve",), ("cache",), ("cache", "stats"), ("cache", "clear"), ("version",))


@pytest.mark.parametrize("command", [(), *COMMANDS], ids=lambda c: " ".join(c) or "top")
def test_h_and_version_work_everywhere(command: tuple[str, ...]) -> None:
    short, long = cli(*command, "-h"), cli(*command, "--help")
    assert short.returncode == long.returncode == 0 and short.stdout == long.stdout and "Usage" in short.stdout
    assert "<bool>" not in short.stdout  # a flag shows no metavar
    version = cli(*command, "--version")
    assert version.returncode == 0 and version.stdout.strip() == llm_extract.__version__


def test_exit_2_for_usage_and_configuration_errors(tmp_path: Path) -> None:
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("LLM_EXTRACT_MODEL", "OPENAI_API_KEY")}
    env["LLM_EXTRACT_CACHE_DIR"] = str(tmp_path / "cache")
    for args in (
        ("extract", str(SEEDS[0]), "--model", "m"),  # the rules backend takes no options
        ("extract", str(SEEDS[0]), "--backend", "openai", "--mode", "telepathy"),  # a bad value
        ("extract", str(SEEDS[0]), "--backend", "openai"),  # no model configured
        ("extract", str(SEEDS[0]), str(SEEDS[1]), "--backend", "openai", "--model", "m"),  # no key for api.openai.com
        ("extract", str(SEEDS[0]), "--backend", "nope"),
    ):
        proc = cli(*args, env=env)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_exit_1_for_a_letter_that_failed_and_0_for_one_that_did_not(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("not a letter at all")
    assert cli("extract", str(bad)).returncode == 1
    assert cli("extract", str(SEEDS[0])).returncode == 0
