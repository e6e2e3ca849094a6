"""The executor, chosen by run config: Dagster's multiprocess executor (the default), a
Dask cluster (``dagster-dask``) or one Kubernetes job per step (``dagster-k8s``), with the
same Definitions.

    execution: {config: {multiprocess: {start_method: forkserver, max_concurrent: 0}}}   # default
    execution: {config: {dask: {cluster: {local: {n_workers: 2, threads_per_worker: 1}}}}}
    execution: {config: {dask: {cluster: {existing: {address: "tcp://scheduler:8786"}}}}}
    execution: {config: {k8s: {job_namespace: graphrec, ...}}}                       # deploy/

Multiprocess steps start from a forkserver that has imported the definitions once. With
``spawn`` (Dagster's default) every step starts a fresh interpreter that imports torch,
PyG and faiss again: about 10 s per step, 174 s for the small pipeline on 2 cores; forked,
under 1 s per step and 61 s. Dask needs a persistent Dagster instance (``DAGSTER_HOME``)
and workers that can import this package; ``configs/dask.yaml`` is the local example.
"""

import dagster as dg
from dagster._config import process_config
from dagster._core.definitions.executor_definition import multiple_process_executor_requirements

DEFINITIONS_MODULE = "graphrec_pipeline.definitions"

MULTIPROCESS = {
    "max_concurrent": dg.Field(int, default_value=0, description="Steps at once (0: one per CPU)."),
    "start_method": dg.Field(dg.Enum("StartMethod", [dg.EnumValue("forkserver"), dg.EnumValue("spawn")]),
                             default_value="forkserver", description="How step processes start."),
}


def _delegate(executor_def: dg.ExecutorDefinition, raw: dict, init_context: dg.InitExecutorContext):
    """Build ``executor_def``'s executor from ``raw`` config, validated by its own schema."""
    resolved = process_config(executor_def.config_schema.config_type, raw)
    if not resolved.success:
        raise dg.DagsterInvalidConfigError(f"invalid {executor_def.name} executor config", resolved.errors, raw)
    context = dg.InitExecutorContext(job=init_context.job, executor_def=executor_def,
                                     executor_config=resolved.value, instance=init_context.instance)
    return executor_def.executor_creation_fn(context)


@dg.executor(
    name="graphrec",
    config_schema=dg.Field(
        dg.Selector({
            "multiprocess": dg.Field(MULTIPROCESS, is_required=False, description="Steps as local processes."),
            "dask": dg.Field(dg.Permissive(), is_required=False,
                             description="dagster-dask's config: {cluster: {local: {...}}} or {cluster: {existing: {address}}}."),
            "k8s": dg.Field(dg.Permissive(), is_required=False,
                            description="dagster-k8s's k8s_job_executor config: one Kubernetes job per step."),
        }),
        default_value={"multiprocess": {}},
    ),
    requirements=multiple_process_executor_requirements(),
)
def executor(init_context: dg.InitExecutorContext):
    ((kind, config),) = init_context.executor_config.items()
    if kind == "dask":
        from dagster_dask import dask_executor

        return _delegate(dask_executor, config, init_context)
    if kind == "k8s":
        from dagster_k8s import k8s_job_executor

        return _delegate(k8s_job_executor, config, init_context)
    method = config["start_method"]
    start = {"preload_modules": [DEFINITIONS_MODULE]} if method == "forkserver" else {}
    return _delegate(dg.multiprocess_executor,
                     {"max_concurrent": config["max_concurrent"], "start_method": {method: start}}, init_context)
