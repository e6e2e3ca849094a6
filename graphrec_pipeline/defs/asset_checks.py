"""Blocking asset checks: every staged world table must pass its contract (exact Parquet
types, pandera model, §2.6/§2.7 rules, keys) before anything downstream runs."""


import dagster as dg

from graphrec_pipeline.defs.resources import StorageResource, WorldResource
from graphrec_pipeline.tables import WORLD_TABLES
from graphrec_pipeline.validation.audit import audit_staged


def contract_check(table: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=table,
        name=f"{table}_contract",
        blocking=True,
        description=f"Staged {table} matches the §2 contract; on failure downstream assets do not run "
        "and the published tables stay as they were.",
    )
    def _check(context: dg.AssetCheckExecutionContext, storage: StorageResource, world: WorldResource) -> dg.AssetCheckResult:
        failures = audit_staged(storage.for_run(context), table, world.n_cities, world.neighborhoods_per_city)
        for f in failures:
            context.log.error(f"{table}: rule {f.rule} failed ({f.description}); {f.n_rows} rows, e.g.\n{f.sample}")
        details = "\n\n".join(
            f"**{f.rule}**: {f.description} ({f.n_rows} rows)\n```\n{f.sample}\n```" for f in failures
        )
        return dg.AssetCheckResult(
            passed=not failures,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "failed_rules": ", ".join(f.rule for f in failures) or "none",
                "offending_rows": sum(f.n_rows for f in failures),
                **({"details": dg.MetadataValue.md(details)} if failures else {}),
            },
        )

    return _check


CONTRACT_CHECKS = [contract_check(t) for t in WORLD_TABLES]
