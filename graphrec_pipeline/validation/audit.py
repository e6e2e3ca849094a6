"""Audit a staged table: its exact Parquet types, then its model and rules against the
tables it references (themselves already audited, since the checks are blocking)."""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from graphrec_pipeline.storage import Storage, UnreadableFile
from graphrec_pipeline.tables import SCHEMAS, same_type
from graphrec_pipeline.validation.rules import References
from graphrec_pipeline.widths import Widths
from graphrec_pipeline.validation.validate import (
    RuleFailure,
    TableValidationError,
    label_references,
    validate_table,
)

REFERENCED = {
    "interactions": ("users", "places"),
    "user_user_edges": ("users",),
    "friend_labels": ("users", "user_user_edges"),
    "user_blocks": ("users",),
}


def parquet_type_failures(name: str, schema: pa.Schema) -> list[RuleFailure]:
    """Columns whose Parquet type differs from the contract (§2.2-§2.6)."""
    wrong = [
        f"{f.name}: found {schema.field(f.name).type}, expected {f.type}"
        for f in SCHEMAS[name]
        if f.name in schema.names and not same_type(schema.field(f.name).type, f.type)
    ]
    if not wrong:
        return []
    return [RuleFailure("parquet_types", "columns have exactly the contract's Parquet types", 0, "\n".join(wrong))]


def file_failures(storage: Storage, name: str, may_be_empty: bool = False) -> tuple[list[RuleFailure], pl.DataFrame | None]:
    """Rules on the file itself: readable Parquet, every contract column, at least one row
    (unless ``may_be_empty``), the contract's Parquet types. Returns the failures and the
    frame (None if unreadable)."""
    path = storage.table_url(name, staged=True)
    try:
        schema = storage.parquet_schema(name, staged=True)
        frame = storage.read_table(name, staged=True)
    except (UnreadableFile, pa.ArrowException, pl.exceptions.PolarsError, OSError) as err:
        return [RuleFailure("readable_parquet", f"{path} is a readable Parquet file", 0,
                            f"found: {type(err).__name__}: {err}")], None
    failures = parquet_type_failures(name, schema)
    missing = [f.name for f in SCHEMAS[name] if f.name not in schema.names]
    if missing:
        failures.append(RuleFailure("missing_columns", f"{path} has every column of the contract", 0,
                                    f"missing: {', '.join(missing)}; found: {', '.join(schema.names) or 'no columns'}"))
    if len(frame) == 0 and not may_be_empty:
        failures.append(RuleFailure("not_empty", f"{path} has at least one row", 0, "found: 0 rows"))
    return failures, frame


def audit_staged(storage: Storage, name: str, n_cities: int, neighborhoods_per_city: int, widths: Widths,
                 may_be_empty: bool = False) -> list[RuleFailure]:
    """Every rule the staged table ``name`` breaks (empty when it passes), its vectors held
    to ``widths``. A file that is unreadable, empty (unless ``may_be_empty``: a log without
    friends or blocks) or lacks columns is judged by those rules alone."""
    failures, frame = file_failures(storage, name, may_be_empty)
    if frame is None or any(f.rule in ("missing_columns", "not_empty") for f in failures):
        return failures
    ref = References(n_cities=n_cities, neighborhoods_per_city=neighborhoods_per_city, widths=widths)
    needs = REFERENCED.get(name, ())
    if "users" in needs:
        users = storage.read_table("users", staged=True)
        ref.user_ids = users["user_id"]
    if "places" in needs:
        ref.place_ids = storage.read_table("places", staged=True, columns=["place_id"])["place_id"]
    if name == "friend_labels":
        edges = storage.read_table("user_user_edges", staged=True)
        ref.label_overlap, ref.label_coattendance = label_references(users, edges, frame)
    try:
        validate_table(name, frame, ref)
    except TableValidationError as err:
        failures += err.failures
    return failures
