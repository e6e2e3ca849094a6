"""The rules an imported log must follow, and the one error that reports a broken one.

A :class:`BadInput` names the rule, the file and up to five offending rows, so that a
user can find them; the import stops before anything is staged, and the live release
is untouched.
"""

from __future__ import annotations

import polars as pl

SAMPLE_ROWS = 5
SPLIT_VALUES = {"train": "train", "valid": "val", "test": "test"}  # the log's spelling -> the pipeline's


class BadInput(ValueError):
    """One broken rule of an imported log."""

    def __init__(self, rule: str, file: str, detail: str, rows: pl.DataFrame | None = None):
        self.rule, self.file, self.rows = rule, file, rows
        sample = ""
        if rows is not None and rows.height:
            sample = f"; {rows.height:,} rows, e.g. {rows.head(SAMPLE_ROWS).to_dicts()}"
        super().__init__(f"rule {rule!r} broken in {file}: {detail}{sample}")


def require(rule: str, file: str, frame: pl.DataFrame, ok: pl.Expr, detail: str) -> None:
    """Raise :class:`BadInput` with the rows of ``frame`` where ``ok`` is not true."""
    rows = frame if "row" in frame.columns else frame.with_row_index("row")  # the file's row numbers
    bad = rows.filter(~ok.fill_null(False))
    if bad.height:
        raise BadInput(rule, file, detail, bad)


def no_null_keys(frame: pl.DataFrame, file: str, keys: tuple[str, ...]) -> None:
    require("key_present", file, frame, pl.all_horizontal(pl.col(k).str.strip_chars().str.len_chars() > 0 for k in keys),
            f"every row names its {' and '.join(keys)}")


def unique_key(frame: pl.DataFrame, file: str, key: str) -> None:
    require("duplicate_key", file, frame, ~pl.col(key).is_duplicated(), f"each {key} appears once")


def split_values(events: pl.DataFrame, file: str) -> None:
    require("split_value", file, events, pl.col("split").is_in(list(SPLIT_VALUES)),
            f"split is one of {', '.join(SPLIT_VALUES)}")


def known(frame: pl.DataFrame, file: str, col: str, keys: pl.Series, target: str) -> None:
    require("unknown_key", file, frame, pl.col(col).is_in(keys.implode()), f"every {col} exists in {target}")
