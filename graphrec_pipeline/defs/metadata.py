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
import pyarrow as pa
import pyarrow.parquet as pq

import graphrec_pipeline
from graphrec_pipeline.storage import sha256_file

DUCKDB_CATALOG = "graphrec"  # the database file graphrec.duckdb, attached under its stem
PACKAGE = Path(graphrec_pipeline.__file__).parent


def table_metadata(name: str, schema: pa.Schema, rows: int, path: Path) -> dict:
    """``dagster/row_count``, ``dagster/column_schema``, ``dagster/table_name`` (the DuckDB
    view the table is published as) and ``dagster/uri`` of a Parquet table."""
    return {
        "dagster/row_count": rows,
        "dagster/column_schema": dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in schema]),
        "dagster/table_name": f"{DUCKDB_CATALOG}.main.{name}",
        "dagster/uri": path.resolve().as_uri(),
        "path": dg.MetadataValue.path(str(path)),
    }


def parquet_metadata(name: str, path: Path) -> dict:
    """:func:`table_metadata` read from the file's footer."""
    meta = pq.read_metadata(path)
    return table_metadata(name, meta.schema.to_arrow_schema(), meta.num_rows, path)


def file_version(*paths: Path) -> dg.DataVersion:
    """A data version from the bytes of one or more files."""
    if len(paths) == 1:
        return dg.DataVersion(sha256_file(paths[0])[:16])
    return value_version(" ".join(sha256_file(p) for p in paths))


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
