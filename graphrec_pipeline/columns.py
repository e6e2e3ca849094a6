"""Conversions between dense NumPy arrays and the list / map columns of the tables.

Vectors are stored as ``list<float>`` and ``area_freqs`` as ``map<int32, float>`` (§2.2);
in Polars a map reads as ``list<struct<key, value>>``. Every stage that needs the vectors
as matrices goes through these helpers, so the conversion is written (and tested) once.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

AREA_STRUCT = pl.Struct({"key": pl.Int32, "value": pl.Float32})


def list_from_dense(name: str, values: np.ndarray) -> pl.Series:
    """(n, d) array -> ``list<float32>`` column with one length-d list per row."""
    return pl.Series(name, np.ascontiguousarray(values, dtype=np.float32)).cast(pl.List(pl.Float32))


def dense_from_list(column: pl.Series, width: int | None = None) -> np.ndarray:
    """``list<float>`` column -> (n, width) float32 array; raises if a row has another
    length (``width`` None: the first row's, whatever the world's widths are)."""
    lengths = column.list.len()
    if width is None:
        width = int(lengths[0]) if len(column) else 0
    if len(column) and (lengths.min() != width or lengths.max() != width):
        raise ValueError(f"column {column.name!r}: expected lists of length {width}")
    flat = column.explode().to_numpy().astype(np.float32, copy=False)
    return flat.reshape(len(column), width)


def ragged_list(name: str, values: np.ndarray, offsets: np.ndarray, dtype: pl.DataType) -> pl.Series:
    """Variable-length list column from a flat array and (n + 1) offsets."""
    arr = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(values))
    return pl.Series(name, pl.from_arrow(arr)).cast(pl.List(dtype))


def area_column(name: str, keys: np.ndarray, weights: np.ndarray, offsets: np.ndarray) -> pl.Series:
    """``list<struct<key: int32, value: float32>>`` (a map in Parquet) from flat arrays."""
    structs = pa.StructArray.from_arrays(
        [pa.array(keys.astype(np.int32)), pa.array(weights.astype(np.float32))], names=["key", "value"]
    )
    arr = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), structs)
    return pl.Series(name, pl.from_arrow(arr)).cast(pl.List(AREA_STRUCT))


def dense_from_area(column: pl.Series, n_slots: int) -> np.ndarray:
    """Map column -> (n, n_slots) float32 matrix of weights keyed by neighborhood id."""
    entries = (
        pl.DataFrame({"area": column})
        .with_row_index("row")
        .explode("area")
        .drop_nulls("area")
        .unnest("area")
    )
    out = np.zeros((len(column), n_slots), dtype=np.float32)
    np.add.at(
        out,
        (entries["row"].to_numpy().astype(np.int64), entries["key"].to_numpy().astype(np.int64)),
        entries["value"].to_numpy(),
    )
    return out
