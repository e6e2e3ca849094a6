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
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from graphrec_pipeline.compute_threads import compute_threads


@dataclass(frozen=True)
class Ranks:
    """This process's place in a data-parallel group."""

    rank: int = 0
    world: int = 1

    @property
    def parallel(self) -> bool:
        return self.world > 1

    def share(self, n: int) -> int:
        """This rank's part of a global batch of ``n`` (the parts add up to ``n``)."""
        return n // self.world + (1 if self.rank < n % self.world else 0)

    def average_gradients(self, parameters) -> None:
        """Replace every gradient by its mean over the ranks (one flat all-reduce; a
        parameter without a gradient on this rank counts as zero)."""
        if not self.parallel:
            return
        params = list(parameters)
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset: offset + n].view_as(p).clone()
            offset += n

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """The mean of each value over the ranks (the step's loss for the log)."""
        if not self.parallel:
            return values
        t = torch.tensor(list(values.values()), dtype=torch.float64)
        dist.all_reduce(t)
        return dict(zip(values, (t / self.world).tolist()))

    def from_rank0(self, *values: float) -> list[float]:
        """Rank 0's ``values`` on every rank."""
        if not self.parallel:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64)
        dist.broadcast(t, 0)
        return t.tolist()

    def gather(self, value: float) -> list[float]:
        """``value`` from every rank, in rank order."""
        if not self.parallel:
            return [value]
        parts = [torch.zeros(1, dtype=torch.float64) for _ in range(self.world)]
        dist.all_gather(parts, torch.tensor([value], dtype=torch.float64))
        return [float(p) for p in parts]

    def sync_parameters(self, module: torch.nn.Module) -> None:
        """Start every rank from rank 0's weights and buffers."""
        if self.parallel:
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t.data, 0)

    def agree(self, module: torch.nn.Module) -> bool:
        """Whether every rank holds exactly the same parameters."""
        if not self.parallel:
            return True
        flat = torch.cat([p.detach().reshape(-1).double() for p in module.parameters()])
        lo, hi = flat.clone(), flat.clone()
        dist.all_reduce(lo, op=dist.ReduceOp.MIN)
        dist.all_reduce(hi, op=dist.ReduceOp.MAX)
        return bool(torch.equal(lo, hi))


def peak_rss_gb() -> float:
    """This process's own peak resident memory. ``VmHWM`` is per address space; the
    ``ru_maxrss`` of a spawned rank would still count its parent's peak from before exec."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


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

    from graphrec_pipeline.graph.build import graph_to_tensors

    tensors = {f"graph/{k}": v for k, v in graph_to_tensors(data.graph).items()}
    for f in dataclasses.fields(data):
        if f.name != "graph":
            tensors[f"data/{f.name}"] = torch.from_numpy(np.ascontiguousarray(getattr(data, f.name)))
    save_file(tensors, path, metadata={"model_cfg": model_cfg.to_json(),
                                       "train_cfg": json.dumps(dataclasses.asdict(cfg))})


def _load_inputs(path: str):
    from safetensors import safe_open
    from safetensors.torch import load_file

    from graphrec_pipeline.graph.build import graph_from_tensors
    from graphrec_pipeline.model.config import ModelConfig
    from graphrec_pipeline.train.data import TrainingData
    from graphrec_pipeline.train.trainer import TrainConfig

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
        self.out, self.back, self.last = out, back, {}

    def __call__(self, model) -> float:
        self.out.put(("validate", (_state_bytes(model), model.cfg.to_json())))
        ndcg, self.last = json.loads(self.back.get())
        return ndcg


def _rank_main(rank: int, world: int, port: int, backend: str, job: str, out, back) -> None:
    from graphrec_pipeline.train.trainer import train

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

    from graphrec_pipeline.model.config import ModelConfig
    from graphrec_pipeline.model.graphrec import GraphRec

    model = GraphRec(ModelConfig.from_json(cfg_json))
    model.load_state_dict(load(state))
    return model


def train_parallel(model_cfg, data, cfg, validate, log=print):
    """Train on ``cfg.ranks`` local processes; the returned :class:`TrainResult` is rank
    0's (all ranks end with the same weights: ``result.ranks_agree``). ``validate`` runs
    here, on the weights rank 0 sends each epoch."""
    from graphrec_pipeline.train.trainer import TrainResult

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
                ndcg = float(validate(_model(*payload).eval()))
                back.put(json.dumps([ndcg, getattr(validate, "last", {})], default=float))
            else:
                found = payload
        while not procs.join(timeout=5):
            pass
    state, cfg_json, fields = found
    return TrainResult(model=_model(state, cfg_json), **json.loads(fields))
