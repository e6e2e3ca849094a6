"""The Dagster code location: assets grouped by stage, checks, resources, job, schedule."""

import dagster as dg

from graphrec_pipeline.defs.asset_checks import CONTRACT_CHECKS
from graphrec_pipeline.defs.assets import graph_assets, model_assets, warehouse_assets, world_assets
from graphrec_pipeline.defs.jobs import daily_pipeline_schedule, full_pipeline_job, world_tables_job
from graphrec_pipeline.defs.resources import StorageResource, WorldResource

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([world_assets, warehouse_assets, graph_assets, model_assets]),
    asset_checks=[*CONTRACT_CHECKS, graph_assets.training_graph_has_no_leakage],
    resources={"storage": StorageResource(), "world": WorldResource()},
    jobs=[full_pipeline_job, world_tables_job],
    schedules=[daily_pipeline_schedule],
)
