"""The Dagster code location: assets grouped by stage, checks, resources, job, schedule."""

import dagster as dg

from graphrec_pipeline.defs.asset_checks import CONTRACT_CHECKS
from graphrec_pipeline.defs.assets import warehouse_assets, world_assets
from graphrec_pipeline.defs.jobs import daily_pipeline_schedule, full_pipeline_job
from graphrec_pipeline.defs.resources import StorageResource, WorldResource

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([world_assets, warehouse_assets]),
    asset_checks=CONTRACT_CHECKS,
    resources={"storage": StorageResource(), "world": WorldResource()},
    jobs=[full_pipeline_job],
    schedules=[daily_pipeline_schedule],
)
