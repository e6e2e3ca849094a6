"""The executor, chosen by run config with Dagster's own shapes: in one process, as local
processes (the default), on a Dask cluster (``dagster-dask``) or as one Kubernetes job per
step (``dagster-k8s``), with the same Definitions.

    execution: {config: {multiprocess: {}}}                                             # default
    execution: {config: {multiprocess: {max_concurrent: 1, start_method: {spawn: {}}}}}
    execution: {config: {in_process: {}}}
    execution: {config: {dask: {cluster: {local: {n_workers: 2, threads_per_worker: 1}}}}}
    execution: {config: {dask: {cluster: {existing: {address: "tcp://scheduler:8786"}}}}}
    execution: {config: {k8s: {job_namespace: graphrec, ...}}}                       # deploy/

``multiprocess`` and ``in_process`` take exactly the config of Dagster's default executor.
Two things differ when the run config leaves them out:

* ``start_method``: step processes start from a forkserver that has imported the
  definitions once; with ``spawn`` (Dagster's default) every step starts a fresh
  interpreter that imports torch, PyG and faiss again (seconds per step, dozens of steps).
* ``tag_concurrency_limits``: at most one step tagged :data:`TORCH_STEP` runs at a time.
  Each computes with every core (``compute_threads.py``); two side by side oversubscribe
  the cores and each runs far slower than half speed (docs/benchmarks.md).

Dask and the multiprocess executor need a persistent Dagster instance (``DAGSTER_HOME``);
``in_process`` runs on any instance. ``configs/dask.yaml`` is the local Dask example.
"""

import dagster as dg
from dagster._config import process_config
from dagster._core.definitions.executor_definition import (
    IN_PROC_CONFIG,
    MULTI_PROC_CONFIG,
    multiple_process_executor_requirements,
)

from graphrec_pipeline.extras import require

DEFINITIONS_MODULE = "graphrec_pipeline.definitions"
# What every step process imports beside the definitions: Dagster's CLI (the main module a
# child re-imports) and the SQL instance storage. Preloaded once in the forkserver, they
# cost a step nothing instead of about half a second each (a name that no longer exists in
# another Dagster release is skipped by the forkserver).
STEP_PRELOAD = ["dagster._cli", "dagster._core.storage.sqlite_storage",
                "dagster._core.storage.event_log.polling_event_watcher"]
DEFAULT_START = {"forkserver": {"preload_modules": [DEFINITIONS_MODULE, *STEP_PRELOAD]}}
TORCH_STEP = {"graphrec/compute": "torch"}  # op tags of the steps that compute with every core
DEFAULT_LIMITS = [{"key": "graphrec/compute", "value": "torch", "limit": 1}]
CRITICAL = {"dagster/priority": "10"}  # op tags of a step the rest of the run waits for: it starts first
# LightGCN is ready with training (both read the graph) and is short: run first, it has the
# cores to itself; run after training, it shares them with the index steps and the
# evaluation waits for the slower of the two
BEFORE_CRITICAL = {"dagster/priority": "20"}
SINGLE_PROCESS = "in_process"


def _delegate(executor_def: dg.ExecutorDefinition, raw: dict, init_context: dg.InitExecutorContext):
    """Build ``executor_def``'s executor from ``raw`` config, validated by its own schema."""
    resolved = process_config(executor_def.config_schema.config_type, raw)
    if not resolved.success:
        raise dg.DagsterInvalidConfigError(f"invalid {executor_def.name} executor config", resolved.errors, raw)
    context = dg.InitExecutorContext(job=init_context.job, executor_def=executor_def,
                                     executor_config=resolved.value, instance=init_context.instance)
    return executor_def.executor_creation_fn(context)


def _requirements(executor_config: dict):
    """Steps in other processes need a reconstructable job and a persistent instance;
    ``in_process`` needs neither (as with Dagster's default executor)."""
    return [] if SINGLE_PROCESS in executor_config else multiple_process_executor_requirements()


@dg.executor(
    name="graphrec",
    config_schema=dg.Field(
        dg.Selector({
            "multiprocess": MULTI_PROC_CONFIG,
            SINGLE_PROCESS: IN_PROC_CONFIG,
            "dask": dg.Field(dg.Permissive(), is_required=False,
                             description="dagster-dask's config: {cluster: {local: {...}}} or {cluster: {existing: {address}}}."),
            "k8s": dg.Field(dg.Permissive(), is_required=False,
                            description="dagster-k8s's k8s_job_executor config: one Kubernetes job per step."),
        }),
        default_value={"multiprocess": {}},
    ),
    requirements=_requirements,
)
def executor(init_context: dg.InitExecutorContext):
    ((kind, config),) = init_context.executor_config.items()
    if kind == "dask":
        return _delegate(require("dagster_dask", "dask").dask_executor, config, init_context)
    if kind == "k8s":
        return _delegate(require("dagster_k8s", "k8s").k8s_job_executor, config, init_context)
    if kind == SINGLE_PROCESS:
        return _delegate(dg.in_process_executor, config, init_context)
    return _delegate(dg.multiprocess_executor, {**config, "start_method": config.get("start_method") or DEFAULT_START,
                                                "tag_concurrency_limits": config.get("tag_concurrency_limits")
                                                or DEFAULT_LIMITS}, init_context)
