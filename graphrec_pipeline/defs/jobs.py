"""Jobs, the schedule and the sensor."""

import dagster as dg

from graphrec_pipeline.defs.resources import WorldResource
from graphrec_pipeline.ingest.read import fingerprint
from graphrec_pipeline.storage import location

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


@dg.sensor(job=full_pipeline_job, default_status=dg.DefaultSensorStatus.STOPPED, minimum_interval_seconds=60,
           description="Run the whole pipeline when the files in an imported world's source_dir change (stopped "
           "until turned on; nothing to watch for a generated world).")
def source_files_changed(context: dg.SensorEvaluationContext, world: WorldResource):
    if world.generated or not world.source_dir:
        return dg.SkipReason("the world is generated: no source_dir to watch")
    current = fingerprint(location(world.source_dir))
    if context.cursor is None:  # the first look only records what is there
        context.update_cursor(current)
        return dg.SkipReason(f"watching {world.source_dir}")
    if current == context.cursor:
        return dg.SkipReason(f"no change in {world.source_dir}")
    context.update_cursor(current)
    return dg.RunRequest(run_key=current)
