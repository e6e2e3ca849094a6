"""The world tables' contracts as blocking checks inside each table's own step: a staged
table must match its contract (exact Parquet types, pandera model, §2.6/§2.7 rules, keys)
before anything downstream runs. Run in the asset's step (``check_specs``), a check costs
its audit and no step of its own; a failure still records the check's result, then fails
the step, so no downstream asset runs and the published tables stay as they were."""


import dagster as dg

from graphrec_pipeline.defs.resources import WorldResource
from graphrec_pipeline.ingest.derive import MAY_BE_EMPTY
from graphrec_pipeline.storage import Storage
from graphrec_pipeline.validation.audit import audit_staged


def contract_name(table: str) -> str:
    return f"{table}_contract"


def contract_spec(table: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        contract_name(table), asset=table, blocking=True,
        description=f"Staged {table} matches the §2 contract; on failure downstream assets do not run "
        "and the published tables stay as they were.",
    )


def contract_result(store: Storage, table: str, world: WorldResource, log) -> dg.AssetCheckResult:
    """Audit the staged ``table``; every failed rule is logged with sample rows."""
    failures = audit_staged(store, table, world.cities(store, staged=True), world.neighborhoods_per_city,
                            world.widths(store, staged=True), may_be_empty=world.imported_log and table in MAY_BE_EMPTY)
    for f in failures:
        log.error(f"{table}: rule {f.rule} failed ({f.description}); {f.n_rows} rows, e.g.\n{f.sample}")
    details = "\n\n".join(f"**{f.rule}**: {f.description} ({f.n_rows} rows)\n```\n{f.sample}\n```" for f in failures)
    return dg.AssetCheckResult(
        check_name=contract_name(table),
        passed=not failures,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "failed_rules": ", ".join(f.rule for f in failures) or "none",
            "offending_rows": sum(f.n_rows for f in failures),
            **({"details": dg.MetadataValue.md(details)} if failures else {}),
        },
    )
