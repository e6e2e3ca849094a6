"""Data-parallel training on N processes with ``torch.distributed`` (``gloo`` on CPU,
``nccl`` where GPUs exist).

Every rank holds the whole model and the training graph, samples its own seed edges and
labelled pairs (a 1/N share of the global batch, from its own random stream) and its own
2-hop neighbourhood; after the backward pass the gradients are averaged over the ranks in
one all-reduce, so every rank applies the same update and the model stays identical
everywhere. Each epoch rank 0 has its weights validated by the launching process (which
holds the validator) and broadcasts the figure (and the elapsed time) that the
stopping rule reads, so all ranks stop at the same epoch. :func:`train_parallel` starts the
ranks from the calling process (the model asset) and returns rank 0's result.
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue as queues
import socket
import tempfile

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from graphrec_pipeline.compute_threads import compute_threads
from graphrec_pipeline.artifacts.graph import graph_from_tensors, graph_to_tensors
from graphrec_pipeline.model.config import ModelConfig
from graphrec_pipeline.model.graphrec import GraphRec
from graphrec_pipeline.train.data import TrainingData
from graphrec_pipeline.train.ranks import Ranks
from graphrec_pipeline.train.trainer import TrainConfig, TrainResult, Validation, train


def backend_for(name: str) -> str:
    if name == "auto":
        return "nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"
    return name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _save_inputs(path: str, model_cfg, data, cfg) -> None:
    """The ranks' inputs as safetensors (the training graph and every array of
    ``TrainingData``) with the two configs as JSON metadata: nothing a rank loads can run
    code, and no rank keeps a second, serialized copy in memory while it trains."""
    from safetensors.torch import save_file


    tensors = {f"graph/{k}": v for k, v in graph_to_tensors(data.graph).items()}
    for f in dataclasses.fields(data):
        if f.name != "graph":
            tensors[f"data/{f.name}"] = torch.from_numpy(np.ascontiguousarray(getattr(data, f.name)))
    save_file(tensors, path, metadata={"model_cfg": model_cfg.to_json(),
                                       "train_cfg": json.dumps(dataclasses.asdict(cfg))})


def _load_inputs(path: str):
    from safetensors import safe_open
    from safetensors.torch import load_file


    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(path)
    graph = graph_from_tensors({k[len("graph/"):]: v for k, v in tensors.items() if k.startswith("graph/")})
    data = TrainingData(graph=graph, **{k[len("data/"):]: v.numpy() for k, v in tensors.items() if k.startswith("data/")})
    raw = json.loads(meta["train_cfg"])
    cfg = TrainConfig(**{**raw, "fanouts": tuple(raw["fanouts"])})
    return ModelConfig.from_json(meta["model_cfg"]), data, cfg


def _state_bytes(model: torch.nn.Module) -> bytes:
    from safetensors.torch import save

    return save({k: v.detach().contiguous() for k, v in model.state_dict().items()})


class _ValidateInLauncher:
    """Rank 0's validation: the weights go to the launching process, which holds the
    validator (validation data never has to reach the ranks), and the figure comes back."""

    def __init__(self, out, back):
        self.out, self.back = out, back

    def __call__(self, model) -> Validation:
        self.out.put(("validate", (_state_bytes(model), model.cfg.to_json())))
        score, parts = json.loads(self.back.get())
        return Validation(score, parts)


def _rank_main(rank: int, world: int, port: int, backend: str, job: str, out, back) -> None:
    model_cfg, data, cfg = _load_inputs(job)
    os.environ["GRAPHREC_THREADS"] = str(max(1, compute_threads() // world))  # the ranks share the cores
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        log = (lambda message: out.put(("log", message))) if rank == 0 else (lambda message: None)
        result = train(model_cfg, data, cfg, _ValidateInLauncher(out, back), log=log, ranks=Ranks(rank, world))
        if rank == 0:
            fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result) if f.name != "model"}
            out.put(("result", (_state_bytes(result.model), result.model.cfg.to_json(),
                                json.dumps(fields, default=float))))
    finally:
        dist.destroy_process_group()


def _model(state: bytes, cfg_json: str):
    from safetensors.torch import load


    model = GraphRec(ModelConfig.from_json(cfg_json))
    model.load_state_dict(load(state))
    return model


def train_parallel(model_cfg, data, cfg, validate, log=print):
    """Train on ``cfg.ranks`` local processes; the returned :class:`TrainResult` is rank
    0's (all ranks end with the same weights: ``result.ranks_agree``). ``validate`` runs
    here, on the weights rank 0 sends each epoch."""
    ctx = mp.get_context("spawn")
    out, back = ctx.Queue(), ctx.Queue()
    with tempfile.TemporaryDirectory(prefix="graphrec-ranks-") as folder:
        job = os.path.join(folder, "inputs.safetensors")
        _save_inputs(job, model_cfg, data, cfg)
        procs = mp.start_processes(_rank_main, nprocs=cfg.ranks, join=False, start_method="spawn",
                                   args=(cfg.ranks, _free_port(), backend_for(cfg.backend), job, out, back))
        found = None
        while found is None:
            try:
                kind, payload = out.get(timeout=1.0)
            except queues.Empty:
                if procs.join(timeout=0):  # raises if a rank failed
                    raise RuntimeError("the training ranks ended without a result") from None
                continue
            if kind == "log":
                log(payload)
            elif kind == "validate":
                checked = Validation.of(validate(_model(*payload).eval()))
                back.put(json.dumps([checked.score, checked.parts], default=float))
            else:
                found = payload
        while not procs.join(timeout=5):
            pass
    state, cfg_json, fields = found
    return TrainResult(model=_model(state, cfg_json), **json.loads(fields))
