"""The Dagster code location: assets grouped by stage, checks, resources, job, schedule."""

import dagster as dg

from graphrec_pipeline.defs.assets import (
    graph_assets,
    model_assets,
    release_assets,
    serving_assets,
    warehouse_assets,
    world_assets,
)
from graphrec_pipeline.defs.executor import executor
from graphrec_pipeline.defs.io_managers import STEP_OUTPUTS, step_outputs
from graphrec_pipeline.defs.jobs import (
    daily_pipeline_schedule,
    full_pipeline_job,
    serving_job,
    source_files_changed,
    world_tables_job,
)
from graphrec_pipeline.defs.resources import RecommenderResource, StorageResource, WorldResource

storage = StorageResource.configure_at_launch()


defs = dg.Definitions(
    assets=dg.load_assets_from_modules(
        [world_assets, warehouse_assets, graph_assets, model_assets, serving_assets, release_assets]
    ),
    asset_checks=[
        serving_assets.ann_indexes_recall,
        serving_assets.recommender_answers_queries,
        release_assets.release_gate,
    ],
    resources={"storage": storage, "world": WorldResource(), "recommender": RecommenderResource(storage=storage),
               STEP_OUTPUTS: step_outputs},
    jobs=[full_pipeline_job, world_tables_job, serving_job],
    schedules=[daily_pipeline_schedule],
    sensors=[source_files_changed],
    executor=executor,
)
