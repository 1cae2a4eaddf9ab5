"""Results as tables: one row per item, for CSV, Parquet, pandas and DuckDB.

:data:`COLUMNS` is the table's one schema (name, type, meaning); :func:`to_rows` flattens results
(Determinations, failed-letter records, or their JSON dicts) into plain dicts in that order, with no
third-party import. A letter's fields repeat on each of its items' rows; a letter with no items is
one row with the item columns empty; a letter that failed is one row with its ``error``.

Citations are flattened per side (``claims_administrator``, ``maximus``) and source (``mtus``,
``odg``, ``acoem``, ``other``): ``<side>_<source>_cited`` (did that side cite that source for this
item), ``..._titles`` and ``..._pages``. List values are Python lists in rows and Parquet (a DuckDB
``LIST``), and joined with :data:`LIST_SEPARATOR` in CSV.

Readers and writers for the formats live here too, so the ``stats`` command and the batch outputs
(``outputs.CsvOutput``, ``outputs.ParquetOutput``: ``-o results.csv``) share one definition:
:func:`read_results` reads any results file (JSONL, JSON, CSV, Parquet) back as rows;
:func:`write_csv` / :func:`write_parquet` write whole files of rows; :func:`rows_by_letter` groups
rows back into one record per letter (what a resumable output needs to know what is done).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal

from .errors import MissingExtraError, ResultsFileError
from .records import Record, read_records
from .schema import CITATION_SIDES, Case

ColumnType = Literal["str", "int", "bool", "date", "list"]

#: Lists in a CSV cell ("Chronic Pain | Low Back"): letters' titles, pages and diagnoses never contain it
#: (diagnoses are split on semicolons, so "; " would not round-trip).
LIST_SEPARATOR = " | "
SOURCES = ("MTUS", "ODG", "ACOEM", "other")
#: The header's fields as the schema orders them (priority gets its own column after the dates).
CASE_FIELDS = tuple(name for name in Case.model_fields if name != "priority")
DRUG_FIELDS: tuple[tuple[str, ColumnType], ...] = (
    ("name", "str"),
    ("as_written", "str"),
    ("strength", "str"),
    ("form", "str"),
    ("quantity", "int"),
    ("amount", "str"),
    ("refills", "int"),
    ("supply_days", "int"),
    ("ingredients", "list"),
)


def _columns() -> tuple[tuple[str, ColumnType, str], ...]:
    cols: list[tuple[str, ColumnType, str]] = [
        ("file", "str", "the letter's path or name (source.name; a failed letter: the path given)"),
        ("sha256", "str", "sha256 of the letter's bytes"),
        ("ok", "bool", "extracted with no error flag (false: flagged, or failed)"),
        ("error", "str", "a failed letter's error code (empty otherwise)"),
        ("error_message", "str", "a failed letter's message"),
    ]
    cols += [(f, "date" if f != "case_number" else "str", f"case.{f}") for f in CASE_FIELDS]
    cols += [
        ("decision_year", "int", "year of case.decision_date"),
        ("priority", "str", "case.priority"),
        ("reviewer_licensure", "list", "reviewer.licensure"),
        ("reviewer_specialties", "list", "reviewer.specialties"),
        ("patient_age", "int", "patient.age"),
        ("patient_sex", "str", "patient.sex"),
        ("diagnoses", "list", "diagnoses[].name"),
        ("layout", "str", "source.layout"),
        ("backend", "str", "source.backend"),
        ("model", "str", "source.model"),
        ("letter_flags", "list", "codes of the letter's flags that concern no one item"),
        ("item_index", "int", "position of the item in the letter (0-based)"),
        ("item", "str", "items[].item"),
        ("decision", "str", "upheld, overturned or partial"),
        ("original_request", "str", "partial authorisations: the original request"),
        ("authorized", "str", "partial authorisations: what the claims administrator authorised"),
        ("category", "str", "DWC request category"),
        ("subcategory", "str", "DWC request subcategory (Pharmaceuticals: the drug class)"),
    ]
    cols += [(f"drug_{name}", kind, f"items[].drug.{name}") for name, kind in DRUG_FIELDS]
    for side in CITATION_SIDES:
        for source in SOURCES:
            key = f"{side}_{source.lower()}"
            cols += [
                (f"{key}_cited", "bool", f"{side} cited {source} for this item"),
                (f"{key}_titles", "list", f"{side} {source} titles"),
                (f"{key}_pages", "list", f"{side} {source} pages"),
            ]
    cols += [
        ("conclusion", "str", "the rationale's concluding sentence, verbatim"),
        ("summary", "str", "items[].rationale_summary"),
        ("flags", "list", "codes of the flags on this item"),
    ]
    return tuple(cols)


#: The table schema: (column, type, meaning), in row order.
COLUMNS = _columns()
COLUMN_TYPES: dict[str, ColumnType] = {name: kind for name, kind, _ in COLUMNS}
ITEM_COLUMNS = tuple(name for name, _, _ in COLUMNS[COLUMNS.index(next(c for c in COLUMNS if c[0] == "item_index")) :])


# --------------------------------------------------------------------------------------------------
# Results -> rows
# --------------------------------------------------------------------------------------------------


def _as_dict(result: Any) -> dict:
    if isinstance(result, dict):
        return result
    dump = getattr(result, "model_dump", None)
    if dump is None:
        raise TypeError(f"not an extraction result: {type(result).__name__}")
    return dump(mode="json")


def _year(value: Any) -> int | None:
    if isinstance(value, dt.date):
        return value.year
    if isinstance(value, str) and len(value) >= 4 and value[:4].isdigit():
        return int(value[:4])
    return None


def _conclusion(item: dict) -> str | None:
    """The text of the item's ``conclusion`` quote (null where the rationale states none)."""
    conclusion = item.get("conclusion")
    return conclusion.get("text") if isinstance(conclusion, dict) else None


def _blank() -> dict[str, Any]:
    return {name: ([] if kind == "list" else False if kind == "bool" else None) for name, kind, _ in COLUMNS}


def _clean_text(value: Any) -> Any:
    """One line per value: whitespace runs collapsed (quotes keep their words, CSV keeps one record
    per line, which is what makes a torn last line repairable)."""
    return " ".join(value.split()) if isinstance(value, str) else value


def letter_rows(result: Any) -> list[dict[str, Any]]:
    """The rows of one result (a Determination, a failed letter's record, or their dicts)."""
    record = _as_dict(result)
    row = _blank()
    if record.get("ok") is False:  # a failed letter
        row.update(
            file=record.get("letter"),
            sha256=record.get("sha256"),
            ok=False,
            error=record.get("error") or "error",
            error_message=_clean_text(record.get("message")),
        )
        return [row]
    if "source" not in record or "items" not in record:
        raise ResultsFileError("not an extraction result (no 'source' or 'items')")
    source, case = record.get("source") or {}, record.get("case") or {}
    reviewer, patient = record.get("reviewer") or {}, record.get("patient") or {}
    flags = record.get("flags") or []
    row.update(
        file=source.get("name"),
        sha256=source.get("sha256"),
        ok=not any(f.get("severity") == "error" for f in flags),
        decision_year=_year(case.get("decision_date")),
        priority=case.get("priority"),
        reviewer_licensure=list(reviewer.get("licensure") or []),
        reviewer_specialties=list(reviewer.get("specialties") or []),
        patient_age=patient.get("age"),
        patient_sex=patient.get("sex"),
        diagnoses=[_clean_text(d.get("name")) for d in record.get("diagnoses") or []],
        layout=source.get("layout"),
        backend=source.get("backend"),
        model=source.get("model"),
        letter_flags=list(dict.fromkeys(f["code"] for f in flags if f.get("item") is None)),
    )
    for field in CASE_FIELDS:
        row[field] = case.get(field)
    items = record.get("items") or []
    if not items:
        return [row]
    rows = []
    for index, item in enumerate(items):
        r = dict(row)
        drug = item.get("drug") or {}
        r.update(
            item_index=index,
            item=_clean_text(item.get("item")),
            decision=item.get("decision"),
            original_request=_clean_text(item.get("original_request")),
            authorized=_clean_text(item.get("authorized")),
            category=item.get("category"),
            subcategory=item.get("subcategory"),
            conclusion=_clean_text(_conclusion(item)),
            summary=_clean_text(item.get("rationale_summary")),
            flags=list(dict.fromkeys(f["code"] for f in flags if f.get("item") == index)),
        )
        for name, _ in DRUG_FIELDS:
            value = drug.get(name)
            if name == "ingredients":
                value = [i.get("name") for i in value or []]
            r[f"drug_{name}"] = _clean_text(value)
        for side, field in CITATION_SIDES.items():
            cited = item.get(field) or []
            for source_name in SOURCES:
                mine = [c for c in cited if c.get("source") == source_name]
                key = f"{side}_{source_name.lower()}"
                r[f"{key}_cited"] = bool(mine)
                r[f"{key}_titles"] = list(dict.fromkeys(c["title"] for c in mine if c.get("title")))
                r[f"{key}_pages"] = list(dict.fromkeys(p for c in mine for p in c.get("pages") or []))
        rows.append(r)
    return rows


def to_rows(results: Iterable[Any]) -> list[dict[str, Any]]:
    """One plain dict per item (see :data:`COLUMNS`), for any iterable of results.

    Takes Determinations, :class:`~llm_extract.BatchError` records, or their JSON dicts (a JSONL
    results file's lines), so ``to_rows(extract_many(paths))`` and ``to_rows(map(json.loads, f))``
    both work.
    """
    return [row for result in results for row in letter_rows(result)]


def to_dataframe(results: Iterable[Any]) -> Any:
    """:func:`to_rows` as a pandas DataFrame: dates as datetime64, counts as nullable Int64, lists
    as Python lists. Needs pandas (``pip install 'llm_extract[tables]'``)."""
    try:
        import pandas as pd
    except ImportError:
        raise MissingExtraError(
            "to_dataframe needs pandas: pip install 'llm_extract[tables]' (or use to_rows, which needs nothing)"
        ) from None
    frame = pd.DataFrame(to_rows(results), columns=[name for name, _, _ in COLUMNS])
    for name, kind, _ in COLUMNS:
        if kind == "date":
            frame[name] = pd.to_datetime(frame[name], errors="coerce")
        elif kind == "int":
            frame[name] = frame[name].astype("Int64")
        elif kind == "bool":
            frame[name] = frame[name].astype("boolean")
    return frame


def rows_by_letter(rows: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Consecutive rows of the same letter (file and sha256), as one list per letter."""
    group: list[dict[str, Any]] = []
    for row in rows:
        if group and (row.get("file"), row.get("sha256")) != (group[0].get("file"), group[0].get("sha256")):
            yield group
            group = []
        group.append(row)
    if group:
        yield group


# --------------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------------


def _cell(value: Any, kind: ColumnType) -> str:
    if value is None:
        return ""
    if kind == "list":
        return LIST_SEPARATOR.join(str(v) for v in value)
    if kind == "bool":
        return "true" if value else "false"
    return str(value)


def _typed(text: str, kind: ColumnType) -> Any:
    if kind == "list":
        return [v for v in text.split(LIST_SEPARATOR) if v] if text else []
    if kind == "bool":
        return text.strip().lower() in ("true", "1", "yes")
    if text == "":
        return None
    if kind == "int":
        try:
            return int(text)
        except ValueError:
            return None
    return text


def csv_header() -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow([name for name, _, _ in COLUMNS])
    return out.getvalue()


def csv_lines(rows: Iterable[dict[str, Any]]) -> str:
    """Rows as CSV lines (no header), one line per row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        writer.writerow([_cell(row.get(name), kind) for name, kind, _ in COLUMNS])
    return out.getvalue()


def write_csv(rows: Iterable[dict[str, Any]], handle: Any) -> None:
    """A whole CSV file (header + rows) to a binary ``handle``."""
    handle.write(csv_header().encode("utf-8"))
    for group in rows_by_letter(rows):
        handle.write(csv_lines(group).encode("utf-8"))


def read_csv(source: Path | BinaryIO) -> list[dict[str, Any]]:
    """Rows of a CSV written by :func:`write_csv` (a path or a binary handle; unknown columns ignored)."""
    shown = str(source) if isinstance(source, Path) else getattr(source, "name", "<csv>")
    try:
        handle = source.open("rb") if isinstance(source, Path) else source
        try:
            reader = csv.DictReader(io.TextIOWrapper(handle, encoding="utf-8", newline=""))
            if not reader.fieldnames or "file" not in reader.fieldnames:
                raise ResultsFileError(f"{shown}: not an llm-extract results CSV (no 'file' column)")
            return [{name: _typed(raw.get(name) or "", kind) for name, kind, _ in COLUMNS} for raw in reader]
        finally:
            if isinstance(source, Path):
                handle.close()
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ResultsFileError(f"cannot read {shown}: {exc}") from exc


# --------------------------------------------------------------------------------------------------
# Parquet (pyarrow, an optional extra)
# --------------------------------------------------------------------------------------------------


def _pyarrow() -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingExtraError("Parquet needs pyarrow: pip install 'llm_extract[parquet]'") from None
    return pa, pq


def arrow_schema() -> Any:
    """The pyarrow schema of :data:`COLUMNS` (dates as date32, lists as list<string>)."""
    pa, _ = _pyarrow()
    types = {"str": pa.string(), "int": pa.int64(), "bool": pa.bool_(), "date": pa.date32(), "list": pa.list_(pa.string())}
    return pa.schema([pa.field(name, types[kind]) for name, kind, _ in COLUMNS])


def _arrow_value(value: Any, kind: ColumnType) -> Any:
    if kind == "date" and isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return None
    return value


def write_parquet(rows: Iterable[dict[str, Any]], handle: Any, *, row_group_letters: int = 1000) -> None:
    """A whole Parquet file of ``rows`` to a binary ``handle``, one row group per
    ``row_group_letters`` letters (memory stays bounded however many rows)."""
    pa, pq = _pyarrow()
    schema = arrow_schema()
    with pq.ParquetWriter(handle, schema, compression="zstd") as writer:
        batch: list[dict[str, Any]] = []
        letters = 0
        for group in rows_by_letter(rows):
            batch += [{n: _arrow_value(r.get(n), k) for n, k, _ in COLUMNS} for r in group]
            letters += 1
            if letters >= row_group_letters:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                batch, letters = [], 0
        if batch:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))


def read_parquet(source: Path | BinaryIO) -> list[dict[str, Any]]:
    """Rows of a Parquet file written by :func:`write_parquet` (dates back as ISO strings)."""
    _, pq = _pyarrow()
    shown = str(source) if isinstance(source, Path) else getattr(source, "name", "<parquet>")
    try:
        table = pq.read_table(source)
    except (OSError, ValueError) as exc:
        raise ResultsFileError(f"cannot read {shown} as Parquet: {exc}") from exc
    if "file" not in table.column_names:
        raise ResultsFileError(f"{shown}: not an llm-extract results table (no 'file' column)")
    rows = table.to_pylist()
    out = []
    for raw in rows:
        row = _blank()
        for name, kind, _ in COLUMNS:
            value = raw.get(name, row[name])
            if kind == "date" and isinstance(value, dt.date):
                value = value.isoformat()
            row[name] = value if value is not None or kind not in ("list", "bool") else row[name]
        out.append(row)
    return out


# --------------------------------------------------------------------------------------------------
# Any results file
# --------------------------------------------------------------------------------------------------

RESULT_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """Rows from a results file: JSON Lines or JSON (as ``llm-extract extract`` writes them, read by
    :func:`llm_extract.records.read_records`), CSV or Parquet (as :func:`write_csv` /
    :func:`write_parquet` write them). A record that is not JSON is an error naming its line,
    except a torn last line, which is left out (what is whole is read)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ResultsFileError(f"no such results file: {path}")
    if suffix == ".csv":
        return read_csv(path)
    if suffix == ".parquet":
        return read_parquet(path)
    if suffix not in (".jsonl", ".json"):
        raise ResultsFileError(f"{path}: unknown results format (use {', '.join(RESULT_SUFFIXES)})")
    records: list[Any] = []
    try:
        for record in read_records(path):  # the reader of results files the reviewer page uses too
            if isinstance(record, Record):
                records.append(record.value)
            elif not record.torn:  # a torn last line (a run that died mid-write) is left out
                raise ResultsFileError(f"{record.where}: {record.reason}")
    except OSError as exc:
        raise ResultsFileError(f"cannot read {path}: {exc}") from exc
    if not all(isinstance(r, dict) for r in records):
        raise ResultsFileError(f"{path}: not extraction results (a record is not a JSON object)")
    try:
        return to_rows(records)
    except (TypeError, AttributeError, KeyError) as exc:
        raise ResultsFileError(f"{path}: not extraction results ({exc})") from exc
