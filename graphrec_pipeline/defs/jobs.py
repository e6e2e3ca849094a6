"""Jobs and schedules."""

import dagster as dg

full_pipeline_job = dg.define_asset_job(
    "full_pipeline",
    selection=dg.AssetSelection.all(),
    description="Materialize every asset, world to warehouse, with the blocking contract checks.",
)

world_tables_job = dg.define_asset_job(
    "world_tables",
    selection=dg.AssetSelection.groups("world", "warehouse"),
    description="Generate, audit and report on a world without training. Nothing goes live: a release "
    "needs the graph, model and indexes made from its world.",
)

daily_pipeline_schedule = dg.ScheduleDefinition(
    name="daily_full_pipeline",
    job=full_pipeline_job,
    cron_schedule="0 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Re-materialize the whole pipeline daily at 03:00 UTC (stopped until turned on).",
)

serving_job = dg.define_asset_job(
    "serving",
    selection=dg.AssetSelection.groups("serving", "release"),
    description="Re-export embeddings and rebuild the per-city indexes from the live model, then release them.",
)
