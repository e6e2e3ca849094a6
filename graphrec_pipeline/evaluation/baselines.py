"""Learned baselines the GNN is measured against, trained on training data only (the
taste-free and content ones are in ``simple_rankers.py``).

* ``lightgcn``: PyG's :class:`~torch_geometric.nn.models.LightGCN` trained with BPR on the
  training interaction edges, negatives from the positive's city.

Fair tuning: LightGCN gets the GNN's stopping rule: validation NDCG@20 (of ``z_u . z_p``
over the home city, the same validation visits and seen places) every ``eval_every``
steps, early stopping after ``patience`` checks without a gain, the best state kept, and a
wall-time cap as a safety net. Its learning rate was picked on that validation at the
default scale (``benchmarks/lightgcn_tuning.py``, docs/benchmarks.md).

The trained embeddings are an artifact of their own (``baselines/lightgcn.safetensors``
with a manifest naming the training graph they were trained on), made by the
``lightgcn_baseline`` asset, so an evaluation reads them instead of training again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch_geometric.nn import LightGCN
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import to_torch_csr_tensor

from graphrec_pipeline.compute_threads import use_compute_threads
from graphrec_pipeline.artifacts import GRAPH_FILE
from graphrec_pipeline.model.collaborative import propagate as symmetric_propagate
from graphrec_pipeline.progress import Progress
from graphrec_pipeline.storage import Storage
from graphrec_pipeline.train.data import TrainingData, sample_same_city

LIGHTGCN_LR = 1e-2


@dataclass(frozen=True)
class LightGCNSettings:
    """Args:
        embedding_dim: width of the ID embeddings.
        num_layers: propagation layers over the user-place graph.
        steps: the most BPR steps.
        batch: positive edges per step.
        lr: Adam's learning rate (picked on validation, module doc).
        eval_every: steps between validation checks.
        patience: checks without a validation gain before stopping.
        max_minutes: a wall-time safety net; the stopping rule is patience.
        seed: torch and NumPy seed.
    """

    embedding_dim: int = 64
    num_layers: int = 2
    steps: int = 3_000
    batch: int = 16_384
    lr: float = LIGHTGCN_LR
    eval_every: int = 25
    patience: int = 4
    max_minutes: float = 15.0
    seed: int = 0


@dataclass
class LightGCNResult:
    """The best embeddings and how training went."""

    user: np.ndarray
    place: np.ndarray
    best_val_ndcg: float | None
    best_step: int
    steps: int
    stopped_by: str  # "patience", "time cap" or "steps"
    seconds: float

    def summary(self) -> dict:
        """How training went, for the embeddings' manifest (``artifacts/lightgcn.py``)."""
        return {"best_val_ndcg20": self.best_val_ndcg, "best_step": self.best_step, "steps": self.steps,
                "stopped_by": self.stopped_by, "seconds": round(self.seconds, 1)}


def propagate(model: LightGCN, adj: torch.Tensor) -> torch.Tensor:
    """The model's node embeddings, ``LightGCN.get_embedding`` with the normalized
    symmetric adjacency ``adj``, by a sparse product whose backward reuses ``adj``
    (``model/collaborative.py``)."""
    return symmetric_propagate(adj, model.embedding.weight, model.num_layers, model.alpha)


def train_lightgcn(
    data: TrainingData,
    settings: LightGCNSettings = LightGCNSettings(),
    validate: Callable[[np.ndarray, np.ndarray], float] | None = None,
    log=lambda msg: None,
    clock: Callable[[], float] = time.perf_counter,
) -> LightGCNResult:
    """(user, place) LightGCN embeddings after BPR steps on positive edges: the best on
    ``validate(user_emb, place_emb)`` (checked every ``eval_every`` steps, stopping after
    ``patience`` checks without a gain), or the last after ``steps`` steps without it.
    ``clock`` times the safety cap."""
    s = settings
    use_compute_threads()  # a product's last bits depend on how many threads split it
    torch.use_deterministic_algorithms(True)  # CPU index_put/scatter otherwise sum in thread order
    torch.manual_seed(s.seed)
    rng = np.random.default_rng(s.seed)
    n_users = data.n_users
    u = torch.from_numpy(data.edge_user)
    p = torch.from_numpy(data.edge_place) + n_users
    n = n_users + data.n_places
    edge_index = torch.stack([torch.cat([u, p]), torch.cat([p, u])])
    # Normalize once and propagate with a sparse matmul: LGConv would redo gcn_norm each call.
    edge_index, weight = gcn_norm(edge_index, num_nodes=n, add_self_loops=False)
    adj = to_torch_csr_tensor(edge_index.flip(0), weight, size=(n, n))
    model = LightGCN(n, s.embedding_dim, s.num_layers, normalize=False)
    opt = torch.optim.Adam(model.parameters(), lr=s.lr)
    positives = np.flatnonzero(data.edge_positive)
    max_seconds = 60 * s.max_minutes
    start, best, best_emb, best_step, since, stopped_by = clock(), -np.inf, None, 0, 0, "steps"
    progress = Progress("LightGCN", s.steps, log, deadline_seconds=max_seconds, clock=clock)
    step = 0
    for step in range(1, s.steps + 1):
        progress.update()
        pick = rng.choice(positives, size=min(s.batch, len(positives)), replace=False)
        users = torch.from_numpy(data.edge_user[pick])
        pos = torch.from_numpy(data.edge_place[pick]) + n_users
        neg = torch.from_numpy(sample_same_city(data, data.edge_place[pick], rng)) + n_users
        emb = propagate(model, adj)
        pos_score = (emb[users] * emb[pos]).sum(-1)
        neg_score = (emb[users] * emb[neg]).sum(-1)
        loss = model.recommendation_loss(pos_score, neg_score, node_id=torch.cat([users, pos, neg]), lambda_reg=1e-4)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if validate is not None and (step % s.eval_every == 0 or step == s.steps):
            with torch.no_grad():
                emb = propagate(model, adj).numpy()
            ndcg = validate(emb[:n_users], emb[n_users:])
            log(f"lightgcn step {step}: loss {float(loss.detach()):.4f} val NDCG@20 {ndcg:.4f}")
            if ndcg > best:
                best, best_emb, best_step, since = ndcg, emb, step, 0
            else:
                since += 1
            if since >= s.patience:
                stopped_by = "patience"
                break
            if clock() - start > max_seconds:
                stopped_by = "time cap"
                break
    if best_emb is None:
        with torch.no_grad():
            best_emb, best_step = propagate(model, adj).numpy(), step
    return LightGCNResult(best_emb[:n_users], best_emb[n_users:], None if validate is None else float(best),
                          best_step, step, stopped_by, clock() - start)


def training_key(store: Storage, settings: LightGCNSettings, code_version: str, threads: int,
                 positive_rating: float) -> dict:
    """What the trained embeddings are a function of: training is seeded and deterministic
    for the same graph bytes, settings, positive rating (which visits validate it), code
    and torch thread count."""
    return {"graph_sha256": store.digest(GRAPH_FILE), "settings": asdict(settings),
            "positive_rating": positive_rating, "code_version": code_version, "threads": threads}


def dot_scorer(user_emb: np.ndarray, place_emb: np.ndarray):
    return lambda u, p: user_emb[u] @ place_emb[p].T
