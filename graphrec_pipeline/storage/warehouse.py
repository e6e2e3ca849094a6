"""The DuckDB database users query: views, not data, over one release's published tables.

The file is built in a temporary local file and put in place in one step (rename on disk,
one PUT on an object store), so the pipeline never holds a lock on the file users open.
On an object store the views read ``s3://`` URLs: :func:`connect` opens a local copy of the
file and registers the store's ``fsspec`` filesystem with DuckDB, so they work without
the ``httpfs`` extension (which needs a download); DuckDB users with ``httpfs`` can attach
the file directly (docs/releases.md).
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from graphrec_pipeline.storage import DUCKDB_FILE, Storage, UnreadableFile, parquet_error
from graphrec_pipeline.storage.location import LocalDir, Location, ObjectStore


def _ident(name: str) -> str:
    """A SQL identifier, quoted (DDL takes no bound parameters)."""
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _view_columns(schema: pa.Schema) -> str:
    """``*``, with fixed-size float lists (e.g. embeddings) cast back to DuckDB arrays:
    Parquet stores them as plain lists, so ``FLOAT[128]`` would otherwise read as ``FLOAT[]``."""
    casts = [
        f"CAST({_ident(f.name)} AS FLOAT[{int(f.type.list_size)}]) AS {_ident(f.name)}"
        for f in schema
        if pa.types.is_fixed_size_list(f.type) and pa.types.is_float32(f.type.value_type)
    ]
    return f"* REPLACE ({', '.join(casts)})" if casts else "*"


def _schema(store: Storage, file: str) -> pa.Schema:
    try:
        with store.location.open(file) as f:
            return pq.read_schema(f)
    except pa.ArrowException as err:
        raise parquet_error(store.location.url(file), err) from None


def build_duckdb(store: Storage, into: Location, name: str = DUCKDB_FILE) -> str:
    """Write ``into/name`` with one view per published table of ``store`` (and a ``release``
    view naming it). View names are restricted to ``[a-z0-9_]`` and quoted; columns are
    quoted; paths are string literals with quotes doubled."""
    with into.write(name) as tmp:
        tmp.unlink(missing_ok=True)  # DuckDB makes its own file
        con = duckdb.connect(str(tmp))
        try:
            if isinstance(store.location, ObjectStore):  # CREATE VIEW reads the files' schemas
                con.register_filesystem(store.location.fs)
            for view, url, files in store.published_views():
                con.execute(f"CREATE VIEW {_ident(view)} AS SELECT {_view_columns(_schema(store, files[0]))} "
                            f"FROM read_parquet({_literal(url)})")
            if store.release is not None:  # which release, and where: a copied data dir is rebuilt
                con.execute(f"CREATE VIEW release AS SELECT {_literal(store.release)} AS release_id, "
                            f"{_literal(into.url(''))} AS data_dir")
            con.execute("CHECKPOINT")
        finally:
            con.close()
            tmp.with_name(tmp.name + ".wal").unlink(missing_ok=True)
    return into.url(name)


def connect(where: Location, name: str = DUCKDB_FILE) -> duckdb.DuckDBPyConnection:
    """A read-only connection to ``where/name``; on an object store, over a local copy with
    the store registered so that the views' ``s3://`` paths read through it."""
    if not where.exists(name):
        raise FileNotFoundError(f"{where.url(name)} does not exist; materialize the pipeline first")
    try:
        con = duckdb.connect(str(where.local_copy(name)), read_only=True)
    except duckdb.Error as err:
        raise UnreadableFile(f"{where.url(name)}: not readable as a DuckDB database ({str(err).splitlines()[0]}); "
                             "remove it and graphrec rebuilds it") from None
    if isinstance(where, ObjectStore):
        con.register_filesystem(where.fs)
    elif not isinstance(where, LocalDir):
        raise TypeError(f"cannot open DuckDB views over {where}")
    return con
