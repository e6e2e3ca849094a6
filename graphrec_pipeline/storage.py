"""All file and database access of the pipeline: :class:`Storage`, one directory of files.

A :class:`Storage` is rooted at one release (``releases.py`` says how a run gets its own
and how a release goes live); inside it::

    staging/<table>.parquet   written by an asset, audited by its asset checks
    <table>.parquet           the published table (promoted after the checks pass)
    <table>/<part>.parquet    a table appended in parts (e.g. eval_metrics, one per run)
    graph/, model/, serving/  safetensors tensors, JSON configs and manifests, id maps
    indexes/<version>/        per-city ANN indexes; ``indexes/CURRENT.json`` names them
    world_manifest.json       how the world was made (source, config, table digests)

Every write goes to a temporary file in the destination folder and is renamed into
place, so readers see the old file or the new one, never half of one. DuckDB: the
database holds views, not data, over exactly one release's published tables; it is built
in a temporary file and swapped in by rename (:func:`build_duckdb`), so the pipeline
never holds a lock on the file users open.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

DATA_DIR_ENV = "GRAPHREC_DATA_DIR"
SAFE_NAME = re.compile(r"^[a-z0-9_]+$")
FOLDER_TABLES = ("eval_metrics",)  # tables kept as one Parquet part per run
DEFAULT_DATA_DIR = "data"
DUCKDB_FILE = "graphrec.duckdb"
STAGING = "staging"


def resolve_data_dir(data_dir: str | None = None) -> Path:
    """Explicit setting, else ``$GRAPHREC_DATA_DIR``, else ``./data``."""
    return Path(data_dir or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR).expanduser().resolve()


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB chunks (releases run to hundreds of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def atomic_path(dest: Path):
    """A temporary path beside ``dest`` to write to; renamed over ``dest`` when the block
    succeeds, removed when it fails (readers see the old file or the new one, never half)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_atomic(dest: Path, payload: bytes) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(payload)


def _ident(name: str) -> str:
    """A SQL identifier, quoted (DDL takes no bound parameters)."""
    return '"' + name.replace('"', '""') + '"'


def maps_as_lists(frame: pl.DataFrame) -> pl.DataFrame:
    """Polars reads Parquet maps as ``Map``; the pipeline works on ``list<struct<key, value>>``."""
    casts = [
        pl.col(name).cast(pl.List(pl.Struct({"key": dtype.key, "value": dtype.value})))
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.Map)
    ]
    return frame.with_columns(casts) if casts else frame


def _view_columns(path: Path) -> str:
    """``*``, with fixed-size float lists (e.g. embeddings) cast back to DuckDB arrays:
    Parquet stores them as plain lists, so ``FLOAT[128]`` would otherwise read as ``FLOAT[]``."""
    file = path if path.is_file() else next(iter(sorted(path.parent.glob(path.name))))
    casts = [
        f"CAST({_ident(f.name)} AS FLOAT[{int(f.type.list_size)}]) AS {_ident(f.name)}"
        for f in pq.read_schema(file)
        if pa.types.is_fixed_size_list(f.type) and pa.types.is_float32(f.type.value_type)
    ]
    return f"* REPLACE ({', '.join(casts)})" if casts else "*"


class Storage:
    """Reads and writes the pipeline's tables and files under one directory (a release:
    ``release`` is its id, None for a plain directory)."""

    def __init__(self, data_dir: str | Path | None = None, release: str | None = None):
        self.root = resolve_data_dir(str(data_dir) if data_dir else None)
        self.release = release

    def __repr__(self) -> str:
        return f"Storage(root={str(self.root)!r}, release={self.release!r})"

    # -- paths -------------------------------------------------------------------------
    def table_path(self, name: str, staged: bool = False) -> Path:
        return (self.root / STAGING if staged else self.root) / f"{name}.parquet"

    def exists(self, name: str, staged: bool = False) -> bool:
        return self.table_path(name, staged).exists()

    # -- tables ------------------------------------------------------------------------
    def write_table(self, name: str, table: pa.Table, staged: bool = True) -> Path:
        """Atomically write an Arrow table as Parquet (deterministic bytes for equal input)."""
        dest = self.table_path(name, staged)
        with atomic_path(dest) as tmp:
            pq.write_table(table, tmp, compression="zstd", row_group_size=1_000_000)
        return dest

    def stage_file(self, name: str, payload: bytes) -> Path:
        """Stage a table's file byte for byte, unparsed (an import its check must judge)."""
        dest = self.table_path(name, staged=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(dest, payload)
        return dest

    def read_table(self, name: str, staged: bool = False, columns: Iterable[str] | None = None) -> pl.DataFrame:
        path = self.table_path(name, staged)
        if not path.exists():
            where = "staged" if staged else "published"
            raise FileNotFoundError(f"no {where} table {name!r} at {path}; materialize the {name!r} asset first")
        return maps_as_lists(pl.read_parquet(path, columns=list(columns) if columns else None))

    def parquet_schema(self, name: str, staged: bool = False) -> pa.Schema:
        return pq.read_schema(self.table_path(name, staged))

    def publish(self, names: Iterable[str]) -> None:
        """Promote staged tables to their published paths (in this release)."""
        for name in names:
            src, dest = self.table_path(name, staged=True), self.table_path(name)
            if not src.exists():
                raise FileNotFoundError(f"no staged table {name!r} in this run ({src}); materialize the {name!r} asset "
                                        "in the same run as published_tables")
            with atomic_path(dest) as tmp:
                shutil.copyfile(src, tmp)

    def append_table(self, name: str, part: str, table: pa.Table) -> Path:
        """Add one Parquet part to the folder table ``<root>/<name>/`` (e.g. one per run)."""
        dest = self.root / name / f"{part}.parquet"
        with atomic_path(dest) as tmp:
            pq.write_table(table, tmp, compression="zstd")
        return dest

    def read_folder_table(self, name: str) -> pl.DataFrame:
        folder = self.root / name
        if not folder.exists() or not any(folder.glob("*.parquet")):
            raise FileNotFoundError(f"no parts of {name!r} under {folder}")
        return pl.read_parquet(folder / "*.parquet")

    # -- bytes and tensors ---------------------------------------------------------------
    def write_bytes(self, name: str, payload: bytes) -> Path:
        dest = self.root / name
        with atomic_path(dest) as tmp:
            tmp.write_bytes(payload)
        return dest

    @contextmanager
    def write_via_path(self, name: str):
        """A temporary local path to write ``name`` through (for libraries that only save to
        a path, such as hnswlib); it is renamed into place when the block succeeds."""
        with atomic_path(self.root / name) as tmp:
            yield tmp

    def local_path(self, name: str) -> Path:
        """A local path to read ``name`` from (for libraries that only load from a path)."""
        path = self.root / name
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist; materialize the asset that writes it first")
        return path

    def digest(self, name: str) -> str:
        """SHA-256 of a stored file: how serving tells whether its inputs are from one run."""
        return sha256_file(self.local_path(name))

    def remove(self, name: str) -> None:
        """Delete a stored file or folder (e.g. an index version that is no longer live)."""
        path = self.root / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()

    def list_dir(self, name: str) -> list[str]:
        folder = self.root / name
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def read_bytes(self, name: str) -> bytes:
        path = self.root / name
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist; materialize the asset that writes it first")
        return path.read_bytes()

    def write_tensors(self, name: str, tensors: dict) -> Path:
        """A dict of tensors as safetensors: loading it can never run code."""
        from safetensors.torch import save

        return self.write_bytes(name, save(tensors))

    def read_tensors(self, name: str) -> dict:
        from safetensors.torch import load

        return load(self.read_bytes(name))

    # -- json --------------------------------------------------------------------------
    def write_json(self, name: str, payload: dict) -> Path:
        dest = self.root / name
        with atomic_path(dest) as tmp:
            tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
        return dest

    def read_json(self, name: str) -> dict | None:
        path = self.root / name
        return json.loads(path.read_text()) if path.exists() else None

    def published_views(self) -> list[tuple[str, Path]]:
        """(view name, Parquet path or glob) of every published table of this directory:
        top-level ``<table>.parquet`` files and the folder tables, with safe names only."""
        files = [(p.stem, p) for p in sorted(self.root.glob("*.parquet"))]
        folders = [(n, self.root / n / "*.parquet") for n in FOLDER_TABLES if any((self.root / n).glob("*.parquet"))]
        return [(name, path) for name, path in files + folders if SAFE_NAME.match(name)]


def build_duckdb(dest: Path, store: Storage) -> Path:
    """Build ``dest`` with one view per published table of ``store`` and swap it in by rename.
    View names are restricted to ``[a-z0-9_]`` and quoted; columns are quoted; paths are
    string literals with quotes doubled."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex}.tmp"
    try:
        con = duckdb.connect(str(tmp))
        try:
            for name, path in store.published_views():
                literal = str(path).replace("'", "''")
                con.execute(f"CREATE VIEW {_ident(name)} AS SELECT {_view_columns(path)} FROM read_parquet('{literal}')")
            if store.release is not None:  # which release these views show
                release = store.release.replace("'", "''")
                con.execute(f"CREATE VIEW release AS SELECT '{release}' AS release_id")
            con.execute("CHECKPOINT")
        finally:
            con.close()
        os.replace(tmp, dest)
    finally:
        for leftover in (tmp, Path(f"{tmp}.wal")):
            if leftover.exists():
                leftover.unlink()
    return dest
