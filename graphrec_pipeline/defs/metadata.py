"""What every asset reports to Dagster beside its own figures: the standard table metadata
(row count, column schema, table name, URI), a ``data_version`` taken from its content, and
a ``code_version`` taken from the source of the modules that make it.

Content data versions make staleness mean something: the world is deterministic, so a
same-seed re-run writes the same bytes, reports the same versions, and leaves everything
downstream up to date in the UI.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import dagster as dg
import polars as pl
import pyarrow as pa

import graphrec_pipeline
from graphrec_pipeline.storage import Storage

DUCKDB_CATALOG = "graphrec"  # the database file graphrec.duckdb, attached under its stem
PACKAGE = Path(graphrec_pipeline.__file__).parent


def table_metadata(name: str, schema: pa.Schema, rows: int, url: str) -> dict:
    """``dagster/row_count``, ``dagster/column_schema``, ``dagster/table_name`` (the DuckDB
    view the table is published as) and ``dagster/uri`` of a Parquet table."""
    return {
        "dagster/row_count": rows,
        "dagster/column_schema": dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in schema]),
        "dagster/table_name": f"{DUCKDB_CATALOG}.main.{name}",
        "dagster/uri": url if "://" in url else Path(url).as_uri(),
        "path": dg.MetadataValue.path(url),
    }


def parquet_metadata(store: Storage, name: str, file: str | None = None) -> dict:
    """:func:`table_metadata` read from the footer of the published table ``name`` (or of
    the stored Parquet ``file``)."""
    file = file or store.table_file(name)
    meta = store.footer(file)
    return table_metadata(name, meta.schema.to_arrow_schema(), meta.num_rows, store.location.url(file))


def file_version(store: Storage, *names: str) -> dg.DataVersion:
    """A data version from the bytes of one or more stored files."""
    if len(names) == 1:
        return dg.DataVersion(store.digest(names[0])[:16])
    return value_version(" ".join(store.digest(n) for n in names))


def value_version(value: str) -> dg.DataVersion:
    return dg.DataVersion(hashlib.sha256(value.encode()).hexdigest()[:16])


def code_version(*parts: str) -> str:
    """A digest of the package's source files under ``parts`` (modules or subpackages,
    relative to the package), so that a change to the code that makes an asset marks it
    (and what is downstream) stale."""
    h = hashlib.sha256()
    for part in parts:
        target = PACKAGE / part
        files = sorted(target.rglob("*.py")) if target.is_dir() else [target.with_suffix(".py")]
        for f in files:
            h.update(f.relative_to(PACKAGE).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:12]


def table_value(frame: pl.DataFrame) -> dg.TableMetadataValue:
    """A frame as a table the Dagster UI renders, sorts and compares between runs (floats
    rounded to 4 places)."""
    kinds = {c: "float" if frame[c].dtype.is_float() else "int" if frame[c].dtype.is_integer() else "string"
             for c in frame.columns}
    rows = frame.with_columns(pl.selectors.float().round(4)).to_dicts()
    return dg.MetadataValue.table(
        records=[dg.TableRecord(r) for r in rows],
        schema=dg.TableSchema(columns=[dg.TableColumn(c, kinds[c]) for c in frame.columns]))
