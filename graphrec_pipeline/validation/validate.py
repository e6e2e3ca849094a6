"""Run a table's model and rules; on failure raise one error naming every broken rule."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pandera.errors as pa_errors
import pandera.polars as pa
import polars as pl

from graphrec_pipeline.validation.models import MODELS
from graphrec_pipeline.validation.rules import RULES, References, Rule
from graphrec_pipeline.world.social import fine_pref_unit, pair_overlap

SAMPLE_ROWS = 5


@dataclass(frozen=True)
class RuleFailure:
    rule: str
    description: str
    n_rows: int  # offending rows (0 for a schema-level failure such as a missing column)
    sample: pl.DataFrame | str


class TableValidationError(ValueError):
    """A table broke one or more rules; ``failures`` holds each rule with sample rows."""

    def __init__(self, table: str, failures: list[RuleFailure]):
        self.table = table
        self.failures = failures
        lines = [f"table {table!r} failed {len(failures)} validation rule(s):"]
        for f in failures:
            count = f" ({f.n_rows} rows)" if f.n_rows else ""
            lines.append(f"- {f.rule}: {f.description}{count}; e.g.\n{f.sample}")
        super().__init__("\n".join(lines))

    @property
    def rules(self) -> list[str]:
        return [f.rule for f in self.failures]


def _check(rule: Rule) -> pa.Check:
    expr = rule.expr.fill_null(False)
    return pa.Check(lambda data: data.lazyframe.select(expr.alias(rule.name)), name=rule.name, error=rule.name)


def table_schema(name: str, ref: References, n_rows: int) -> tuple[pa.DataFrameSchema, dict[str, str]]:
    """The pandera schema of a table (model + rules) and each rule's description."""
    base = MODELS[name].to_schema()  # cached by pandera: never mutate it
    rules = RULES[name](ref, n_rows)
    schema = copy.copy(base)
    schema.checks = list(base.checks) + [_check(r) for r in rules]
    return schema, {r.name: r.description for r in rules}


def validate_table(name: str, frame: pl.DataFrame, ref: References) -> None:
    """Validate an eager frame (so every row is checked, not only the schema)."""
    schema, descriptions = table_schema(name, ref, len(frame))
    try:
        schema.validate(frame, lazy=True)
    except pa_errors.SchemaErrors as err:
        raise TableValidationError(name, _failures(err.failure_cases, frame, descriptions)) from None


def _failures(cases: pl.DataFrame, frame: pl.DataFrame, descriptions: dict[str, str]) -> list[RuleFailure]:
    out = []
    cases = cases.with_columns(rule=pl.col("check").str.replace(r"^dtype\('(.*)'\)$", "dtype")).filter(
        # A rule on a missing column errors; required_columns already reports that column.
        ~pl.col("failure_case").str.starts_with("ColumnNotFoundError")
    )
    for (rule, column), group in cases.group_by(["rule", "column"], maintain_order=True):
        idx = group["index"].drop_nulls().unique(maintain_order=True)
        if len(idx):
            sample = frame[idx.head(SAMPLE_ROWS).cast(pl.Int64).to_list()].with_row_index("row")
            sample = sample.with_columns(pl.Series("row", idx.head(SAMPLE_ROWS).cast(pl.UInt32)))
        else:
            sample = ", ".join(group["failure_case"].cast(pl.String).head(SAMPLE_ROWS).to_list())
        description = descriptions.get(rule) or _builtin_description(rule, column, group)
        out.append(RuleFailure(rule=_builtin_name(rule, column), description=description, n_rows=len(idx), sample=sample))
    return out


def _builtin_name(rule: str, column: str) -> str:
    names = {
        "column_in_dataframe": "required_columns",
        "column_in_schema": "no_extra_columns",
        "dtype": f"dtype_{column}",
        "not_nullable": f"no_nulls_{column}",
        "field_uniqueness": f"unique_{column}",
        "multiple_fields_uniqueness": "unique_key",
    }
    return names.get(rule, rule)


def _builtin_description(rule: str, column: str, group: pl.DataFrame) -> str:
    if rule == "column_in_dataframe":
        return "every contract column is present (missing: " + ", ".join(group["failure_case"].to_list()) + ")"
    if rule == "column_in_schema":
        return "no columns beyond the contract (extra: " + ", ".join(group["failure_case"].to_list()) + ")"
    if rule == "dtype":
        return f"column {column} has the contract's type (found {group['failure_case'][0]})"
    if rule == "not_nullable":
        return f"column {column} has no nulls or NaN"
    return {"field_uniqueness": f"{column} is unique", "multiple_fields_uniqueness": "one row per key"}.get(rule, rule)


def label_references(users: pl.DataFrame, edges: pl.DataFrame, labels: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each label pair's fine_pref cosine and its co-attendance count (0 if not an edge)."""
    unit = fine_pref_unit(users)
    n = len(unit)
    u = labels["user_u"].to_numpy()
    v = labels["user_v"].to_numpy()
    ok = (u >= 0) & (u < n) & (v >= 0) & (v < n)
    overlap = np.zeros(len(labels), dtype=np.float32)
    overlap[ok] = pair_overlap(unit, u[ok], v[ok])
    coatt = (
        labels.select("user_u", "user_v")
        .join(edges.select("user_u", "user_v", "co_attendance_count"), on=["user_u", "user_v"], how="left",
              maintain_order="left")["co_attendance_count"]
        .fill_null(0)
        .to_numpy()
    )
    return overlap, coatt
