"""All file and database access of the pipeline: :class:`Storage`, one folder of files
on the local disk or on an S3-compatible object store (:mod:`.location` says how each
keeps writes atomic).

A :class:`Storage` is rooted at one release (``releases.py`` says how a run gets its own
and how a release goes live); inside it::

    staging/<table>.parquet   written by an asset, audited by its asset checks
    <table>.parquet           the published table (promoted after the checks pass)
    <table>/<part>.parquet    a table appended in parts (e.g. eval_metrics, one per run)
    graph/, model/, serving/  safetensors tensors, JSON configs and manifests, id maps
    indexes/<version>/        per-city ANN indexes; ``indexes/CURRENT.json`` names them
    world_manifest.json       how the world was made (source, config, table digests)

Readers see a file's old bytes or its new ones, never half. DuckDB (``warehouse.py``):
the database holds views, not data, over exactly one release's published tables.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from graphrec_pipeline.storage.location import (
    DATA_DIR_ENV,
    DEFAULT_DATA_DIR,
    LocalDir,
    Location,
    ObjectStore,
    StorageUnavailable,
    UnreadableFile,
    local_root,
    location,
    sha256_file,
)

SAFE_NAME = re.compile(r"^[a-z0-9_]+$")
FOLDER_TABLES = ("eval_metrics",)  # tables kept as one Parquet part per run
DUCKDB_FILE = "graphrec.duckdb"
STAGING = "staging"

__all__ = ["DATA_DIR_ENV", "DEFAULT_DATA_DIR", "DUCKDB_FILE", "FOLDER_TABLES", "STAGING", "LocalDir", "Location",
           "ObjectStore", "Storage", "StorageUnavailable", "UnreadableFile", "location", "maps_as_lists",
           "sha256_file"]


def parquet_error(url: str, err: Exception) -> UnreadableFile:
    return UnreadableFile(f"{url}: not readable as Parquet ({str(err).splitlines()[0]})")


def maps_as_lists(frame: pl.DataFrame) -> pl.DataFrame:
    """Polars reads Parquet maps as ``Map``; the pipeline works on ``list<struct<key, value>>``."""
    casts = [
        pl.col(name).cast(pl.List(pl.Struct({"key": dtype.key, "value": dtype.value})))
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.Map)
    ]
    return frame.with_columns(casts) if casts else frame


def glob_literal(path: str) -> str:
    """``path`` as a DuckDB glob that matches only itself: each of ``[ * ?`` becomes a
    one-character class (``[[]``, ``[*]``, ``[?]``)."""
    return path.replace("[", "[[]").replace("*", "[*]").replace("?", "[?]")


class Storage:
    """Reads and writes the pipeline's tables and files under one folder (a release:
    ``release`` is its id, None for a plain folder), local or on an object store."""

    def __init__(self, data_dir: str | Path | Location | None = None, release: str | None = None):
        self.location = location(data_dir)
        self.release = release

    def __repr__(self) -> str:
        return f"Storage({self.location.url()!r}, release={self.release!r})"

    @property
    def root(self) -> Path:
        """The folder on the local disk (a local data dir only; for tests and tools)."""
        return local_root(self.location)

    # -- tables ------------------------------------------------------------------------
    @staticmethod
    def table_file(name: str, staged: bool = False) -> str:
        return f"{STAGING}/{name}.parquet" if staged else f"{name}.parquet"

    def table_url(self, name: str, staged: bool = False) -> str:
        return self.location.url(self.table_file(name, staged))

    def table_path(self, name: str, staged: bool = False) -> Path:
        return self.root / self.table_file(name, staged)

    def exists(self, name: str, staged: bool = False) -> bool:
        return self.location.exists(self.table_file(name, staged))

    def write_table(self, name: str, table: pa.Table, staged: bool = True) -> str:
        """Atomically write an Arrow table as Parquet (deterministic bytes for equal input)."""
        with self.location.write(self.table_file(name, staged)) as tmp:
            pq.write_table(table, tmp, compression="zstd", row_group_size=1_000_000)
        return self.table_url(name, staged)

    def stage_file(self, name: str, payload: bytes) -> str:
        """Stage a table's file byte for byte, unparsed (an import its check must judge)."""
        self.location.write_bytes(self.table_file(name, staged=True), payload)
        return self.table_url(name, staged=True)

    def _parquet_source(self, file: str):
        """What Parquet readers take: a local path, or the object's bytes."""
        if isinstance(self.location, LocalDir):
            return self.location.root / file
        return io.BytesIO(self.location.read_bytes(file))

    def read_table(self, name: str, staged: bool = False, columns: Iterable[str] | None = None) -> pl.DataFrame:
        file = self.table_file(name, staged)
        if not self.location.exists(file):
            where = "staged" if staged else "published"
            raise FileNotFoundError(f"no {where} table {name!r} at {self.location.url(file)}; materialize the "
                                    f"{name!r} asset first")
        try:
            frame = pl.read_parquet(self._parquet_source(file), columns=list(columns) if columns else None)
        except (pl.exceptions.PolarsError, pa.ArrowException, OSError) as err:
            raise parquet_error(self.location.url(file), err) from None
        return maps_as_lists(frame)

    def read_arrow(self, name: str, staged: bool = False) -> pa.Table:
        """The table as Arrow (``pa.ArrowException`` on bytes that are not Parquet: an
        imported file's contract check reports that itself)."""
        return pq.read_table(self._parquet_source(self.table_file(name, staged)))

    def parquet_metadata(self, name: str, staged: bool = False) -> pq.FileMetaData:
        """The footer (schema, row count) of a table, without reading its rows."""
        return self.footer(self.table_file(name, staged))

    def footer(self, file: str) -> pq.FileMetaData:
        """The footer of any stored Parquet file."""
        try:
            if isinstance(self.location, LocalDir):
                return pq.read_metadata(self.location.root / file)
            with self.location.open(file) as f:
                return pq.read_metadata(f)
        except (pa.ArrowException, IsADirectoryError, NotADirectoryError) as err:
            raise parquet_error(self.location.url(file), err) from None

    def parquet_schema(self, name: str, staged: bool = False) -> pa.Schema:
        return self.parquet_metadata(name, staged).schema.to_arrow_schema()

    def publish(self, names: Iterable[str]) -> None:
        """Promote staged tables to their published paths (in this release)."""
        for name in names:
            src = self.table_file(name, staged=True)
            if not self.location.exists(src):
                raise FileNotFoundError(f"no staged table {name!r} in this run ({self.location.url(src)}); "
                                        f"materialize the {name!r} asset in the same run as published_tables")
            self.location.copy(src, self.table_file(name))

    def append_table(self, name: str, part: str, table: pa.Table) -> str:
        """Add one Parquet part to the folder table ``<root>/<name>/`` (e.g. one per run)."""
        with self.location.write(f"{name}/{part}.parquet") as tmp:
            pq.write_table(table, tmp, compression="zstd")
        return self.location.url(f"{name}/{part}.parquet")

    def folder_parts(self, name: str) -> list[str]:
        return [f"{name}/{f}" for f in self.location.list(name) if f.endswith(".parquet")]

    def read_folder_table(self, name: str) -> pl.DataFrame:
        parts = self.folder_parts(name)
        if not parts:
            raise FileNotFoundError(f"no parts of {name!r} under {self.location.url(name)}")
        try:
            return pl.concat([pl.read_parquet(self._parquet_source(p)) for p in parts], how="vertical_relaxed")
        except (pl.exceptions.PolarsError, pa.ArrowException, OSError) as err:
            raise parquet_error(self.location.url(name), err) from None

    # -- bytes and tensors ---------------------------------------------------------------
    def write_bytes(self, name: str, payload: bytes) -> str:
        self.location.write_bytes(name, payload)
        return self.location.url(name)

    @contextmanager
    def write_via_path(self, name: str):
        """A temporary local path to write ``name`` through (for libraries that only save to
        a path, such as hnswlib); it becomes ``name`` when the block succeeds."""
        with self.location.write(name) as tmp:
            yield tmp

    def local_path(self, name: str) -> Path:
        """A local path to read ``name`` from (for libraries that only load from a path)."""
        return self.location.local_copy(name)

    def has(self, name: str) -> bool:
        return self.location.exists(name)

    def digest(self, name: str) -> str:
        """SHA-256 of a stored file: how serving tells whether its inputs are from one run."""
        if not self.location.exists(name):
            raise FileNotFoundError(f"{self.location.url(name)} does not exist; materialize the asset that writes it first")
        return self.location.sha256(name)

    def mtime(self, name: str) -> float:
        return self.location.mtime(name)

    def remove(self, name: str) -> None:
        """Delete a stored file or folder (e.g. an index version that is no longer live)."""
        self.location.remove(name)

    def list_dir(self, name: str) -> list[str]:
        return self.location.list(name)

    def read_bytes(self, name: str) -> bytes:
        try:
            return self.location.read_bytes(name)
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.location.url(name)} does not exist; materialize the asset that writes it "
                                    "first") from None

    def write_tensors(self, name: str, tensors: dict) -> str:
        """A dict of tensors as safetensors: loading it can never run code."""
        from safetensors.torch import save

        return self.write_bytes(name, save(tensors))

    def read_tensors(self, name: str) -> dict:
        from safetensors import SafetensorError
        from safetensors.torch import load

        try:
            return load(self.read_bytes(name))
        except SafetensorError as err:
            raise UnreadableFile(f"{self.location.url(name)}: not readable as safetensors ({err})") from None

    # -- json --------------------------------------------------------------------------
    def write_json(self, name: str, payload: dict) -> str:
        return self.write_bytes(name, json.dumps(payload, indent=2, sort_keys=True, default=str).encode())

    def read_json(self, name: str) -> dict | None:
        try:
            payload = json.loads(self.location.read_bytes(name))
        except FileNotFoundError:
            return None
        except ValueError as err:  # UnreadableFile and UnicodeDecodeError too
            raise UnreadableFile(f"{self.location.url(name)}: not readable as JSON ({err})") from None
        if not isinstance(payload, dict):
            raise UnreadableFile(f"{self.location.url(name)}: not a JSON object")
        return payload

    def published_views(self) -> list[tuple[str, str, list[str]]]:
        """(view name, DuckDB glob, the files behind it) of every published table of this
        folder: top-level ``<table>.parquet`` files and the folder tables, safe names only.
        The folder's own path is escaped (:func:`glob_literal`): a data directory named
        ``a[1]`` must not read ``a1``."""
        files = [(f[: -len(".parquet")], glob_literal(self.location.url(f)), [f]) for f in self.location.list()
                 if f.endswith(".parquet")]
        folders = [(n, glob_literal(self.location.url(n)) + "/*.parquet", parts) for n in FOLDER_TABLES
                   if (parts := self.folder_parts(n))]
        return [v for v in files + folders if SAFE_NAME.match(v[0])]
