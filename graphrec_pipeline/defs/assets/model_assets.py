"""Stage 4, the model (§4, §5) and stage 5, its evaluation against the oracle and baselines."""

import dataclasses
import datetime as dt

import dagster as dg
import polars as pl

from graphrec_pipeline.defs.executor import BEFORE_CRITICAL, CRITICAL, TORCH_STEP
from graphrec_pipeline.defs.metadata import code_version, file_version, parquet_metadata, table_value, value_version
from graphrec_pipeline.defs.resources import RecommenderResource, StorageResource, WorldResource
from graphrec_pipeline.defs.settings import build, config_from
from graphrec_pipeline.compute_threads import compute_threads
from graphrec_pipeline.evaluation.baselines import LightGCNSettings, train_lightgcn, training_key
from graphrec_pipeline.artifacts.lightgcn import current_lightgcn, load_lightgcn, save_lightgcn
from graphrec_pipeline.artifacts import LIGHTGCN_FILE
from graphrec_pipeline.evaluation.run import EvalSettings, evaluate_all, pre_test_keys, summary_tables, training_history
from graphrec_pipeline.lineage import stamp_model
from graphrec_pipeline.model.config import ModelConfig
from graphrec_pipeline.model.taste import SCALE as TASTE_SCALE
from graphrec_pipeline.plots import evaluation_chart, training_curves
from graphrec_pipeline.profiles import markdown_table
from graphrec_pipeline.progress import heartbeat
from graphrec_pipeline.train.fit import Inputs, fit
from graphrec_pipeline.artifacts import MODEL_WEIGHTS
from graphrec_pipeline.model.saved import load_model, save_model
from graphrec_pipeline.evaluation.two_stage import validator
from graphrec_pipeline.train.trainer import TrainConfig

HISTORY = "model/history"
CODE = code_version("model", "train", "graph/build", "graph/features")
LIGHTGCN_CODE = code_version("evaluation/baselines", "evaluation/two_stage", "train/data", "metrics", "progress")
EVAL_CODE = code_version("evaluation", "metrics", "simple_rankers", "serving", "world/oracle", "world/social",
                         "world/interactions")


TrainingSettings = config_from(
    "TrainingSettings",
    "Model (§4.1, ``ModelConfig``) and training (§5, ``TrainConfig``) knobs; the defaults are theirs.",
    ModelConfig,
    TrainConfig,
    exclude=frozenset({"n_cities", "neighborhoods_per_city", "n_users", "n_places",  # from the world / the data
                       "n_categories", "n_tags", "n_vibes"}),
)


def sparkline(values: list[float]) -> str:
    """A one-line plot of a curve (the UI shows markdown, not images)."""
    bars = "▁▂▃▄▅▆▇█"
    lo, hi = min(values), max(values)
    return "".join(bars[int((v - lo) / (hi - lo + 1e-12) * (len(bars) - 1))] for v in values)


def friend_linear_terms(model, train_cfg: TrainConfig) -> dict:
    """The friend logits' weights on the taste cosines and on past outings, in logit units,
    and how they were set (``TrainConfig.pair_terms``)."""
    taste = (TASTE_SCALE * model.taste_match.weight.detach()).tolist()
    history = model.history_weights().detach().tolist()
    return {"set_by": train_cfg.pair_terms} | {
        logit: dict(zip(("coarse_categories", "fine_tags", "vibes", "log1p_past_outings"), [*w, h], strict=True))
        for logit, w, h in zip(("compatibility", "attendance"), taste, history, strict=True)}


@dg.asset(group_name="model", code_version=CODE, deps=["training_graph"], kinds={"pytorch", "safetensors"},
          op_tags={**TORCH_STEP, **CRITICAL})
def graphrec_model(
    context: dg.AssetExecutionContext, config: TrainingSettings, storage: StorageResource, world: WorldResource
) -> dg.MaterializeResult:
    """The GraphRec-style GNN trained jointly on places (BPR, same-city negatives, plus a
    BPR on the retrieval score) and friends (BCE compatibility and attendance), early-stopped on
    validation NDCG@20 of the serving flow. Saved as safetensors + JSON config."""
    store = storage.for_run(context)
    model_cfg = build(ModelConfig, config, n_cities=world.cities(store), neighborhoods_per_city=world.neighborhoods_per_city)
    train_cfg = build(TrainConfig, config)
    inputs = Inputs.load(store)
    data = inputs.training_data(world.positive_rating)
    result = fit(data, model_cfg, train_cfg, validator(inputs, data, train_cfg, world.positive_rating),
                 log=context.log.info)
    if not result.ranks_agree:
        raise dg.Failure(f"the {result.ranks} training ranks ended with different weights")
    save_model(store, result.model)
    stamp_model(store)
    history = pl.DataFrame(result.history)
    store.write_table(HISTORY, history.to_arrow(), staged=False)
    return dg.MaterializeResult(
        metadata={
            "best_epoch": result.best_epoch,
            "best_val_ndcg20": result.best_val_ndcg,
            "epochs_run": len(result.history),
            "train_seconds": round(result.seconds, 1),
            "stopped_by": result.stopped_by,
            "ranks": result.ranks,
            "peak_rss_gb_per_rank": ", ".join(str(gb) for gb in result.peak_rss_gb),
            "parameters": sum(p.numel() for p in result.model.parameters()),
            "friend_linear_terms": dg.MetadataValue.json(friend_linear_terms(result.model, train_cfg)),
            "loss_curve": dg.MetadataValue.md(
                training_curves(result.history) + "\n\n"
                f"total loss `{sparkline(history['total'].to_list())}`\n\n"
                f"val NDCG@20 `{sparkline(history['val_ndcg20'].to_list())}`\n\n"
                + markdown_table(history.select(pl.all().round(4)))
            ),
            "final_loss": float(history["total"][-1]),
            "config": dg.MetadataValue.json(dataclasses.asdict(model_cfg) | {"train": dataclasses.asdict(train_cfg)}),
        },
        data_version=file_version(store, MODEL_WEIGHTS),
    )


LightGCNConfig = config_from(
    "LightGCNConfig",
    "LightGCN baseline (``LightGCNSettings``), validated on the GNN's validation visits. "
    "``retrain``: train even where the release already holds what training would make.",
    LightGCNSettings,
    eval_users=(int, TrainConfig.eval_users),
    retrain=(bool, False),
)


@dg.asset(group_name="evaluation", code_version=LIGHTGCN_CODE, deps=["training_graph"], kinds={"pytorch", "safetensors"},
          op_tags={**TORCH_STEP, **BEFORE_CRITICAL})
def lightgcn_baseline(context: dg.AssetExecutionContext, config: LightGCNConfig,
                      storage: StorageResource, world: WorldResource) -> dg.MaterializeResult:
    """PyG's LightGCN trained with BPR on the training graph's interaction edges, stopped by
    validation patience (``evaluation/baselines.py``): the collaborative baseline that
    ``eval_metrics`` ranks beside the GNN. An asset of its own, trained again only when the
    graph, its code or its settings change: training is deterministic, so embeddings that
    the live release already holds for the same graph bytes, code, settings and thread
    count are kept (``retrain: true`` trains anyway)."""
    store = storage.for_run(context)
    settings = build(LightGCNSettings, config)
    key = training_key(store, settings, LIGHTGCN_CODE, compute_threads(), world.positive_rating)
    kept = None if config.retrain else current_lightgcn(store, key)
    if kept is not None:
        context.log.info(f"LightGCN embeddings of this graph, code and settings kept from release {kept['release']}")
        result_meta = {k: kept.get(k) for k in ("best_val_ndcg20", "best_step", "steps", "stopped_by")}
    else:
        inputs = Inputs.load(store)
        data = inputs.training_data(world.positive_rating)
        val = validator(inputs, data, TrainConfig(eval_users=config.eval_users, seed=settings.seed),
                        world.positive_rating)
        result = train_lightgcn(data, settings, validate=val.dot_ndcg, log=context.log.info)
        save_lightgcn(store, result.user, result.place, {**key, **result.summary()})
        result_meta = {k: v for k, v in result.summary().items() if k != "seconds"}
        context.log.info(f"LightGCN: best val NDCG@20 {result.best_val_ndcg:.4f} at step {result.best_step}, "
                         f"stopped by {result.stopped_by} after {result.steps} steps")
    return dg.MaterializeResult(
        metadata={**result_meta, "trained_in": kept["release"] if kept else store.release,
                  "reused": kept is not None, "settings": dg.MetadataValue.json(key["settings"])},
        data_version=file_version(store, LIGHTGCN_FILE),
    )


EvaluationSettings = config_from("EvaluationSettings", "Which test users the evaluation samples.", EvalSettings)


@dg.asset(group_name="evaluation", code_version=EVAL_CODE, deps=[graphrec_model, lightgcn_baseline, "ann_indexes"],
          kinds={"duckdb", "parquet"})
def eval_metrics(
    context: dg.AssetExecutionContext,
    config: EvaluationSettings,
    storage: StorageResource,
    world: WorldResource,
    recommender: RecommenderResource,
) -> dg.MaterializeResult:
    """Test-split metrics (``evaluation/run.py``): places (all, solo, outing positives, all
    cities), the served flow, the time-slot context task, the people task and friend
    classification, for the model, LightGCN, content, popularity, random and the oracles.
    Appended to the DuckDB table ``eval_metrics`` one part per run."""
    store = storage.for_run(context)
    inputs = Inputs.load(store)
    with heartbeat("evaluating", context.log.info):
        metrics = evaluate_all(
            inputs, load_model(store), world.positive_rating, world=world.world_config() if world.generated else None,
            max_users=config.max_users, seed=config.seed,
            recommender=recommender.build(visited_keys=pre_test_keys(inputs), store=store,
                                          pair_history=training_history(inputs)),
            lightgcn=load_lightgcn(store), log=context.log.info, derived_labels=world.imported_log,
        )
    table = metrics.select(
        pl.lit(context.run_id).alias("run_id"),
        pl.lit(dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)).alias("created_at"),
        "model", "task", "metric", "k", "value",
    )
    store.append_table("eval_metrics", context.run_id, table.to_arrow())
    numeric = {
        f"{r['model']}_{r['task']}_{r['metric']}{'' if r['k'] is None else r['k']}": float(r["value"])
        for r in metrics.iter_rows(named=True)
    }
    tables = {name: table_value(frame) for name, frame in summary_tables(metrics).items()}
    chart = {"chart": dg.MetadataValue.md(evaluation_chart(metrics))}
    return dg.MaterializeResult(metadata={**parquet_metadata(store, "eval_metrics", f"eval_metrics/{context.run_id}.parquet"), **chart, **tables, **numeric},
                                data_version=value_version(metrics.write_csv()))
