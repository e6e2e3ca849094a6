"""Audit a staged table: its exact Parquet types, then its model and rules against the
tables it references (themselves already audited, since the checks are blocking)."""

from __future__ import annotations

import pyarrow as pa

from graphrec_pipeline.storage import Storage
from graphrec_pipeline.tables import SCHEMAS, same_type
from graphrec_pipeline.validation.rules import References
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


def audit_staged(storage: Storage, name: str, n_cities: int, neighborhoods_per_city: int) -> list[RuleFailure]:
    """Every rule the staged table ``name`` breaks (empty when it passes)."""
    failures = parquet_type_failures(name, storage.parquet_schema(name, staged=True))
    frame = storage.read_table(name, staged=True)
    ref = References(n_cities=n_cities, neighborhoods_per_city=neighborhoods_per_city)
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
