"""Learned baselines the GNN is measured against, trained on training data only (the
taste-free and content ones are in ``simple_rankers.py``).

* ``lightgcn``: PyG's :class:`~torch_geometric.nn.models.LightGCN` trained with BPR on the
  training interaction edges, negatives from the positive's city.

Fair tuning: LightGCN gets the GNN's stopping rule and budget: validation NDCG@20 (of
``z_u . z_p`` over the home city, the same validation visits and seen places) every
``eval_every`` steps, early stopping with the same patience, the best state kept, and at
most the GNN's wall-time cap. Its learning rate was picked on that validation at the
default scale (``benchmarks/lightgcn_tuning.py``, docs/benchmarks.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
from torch_geometric.nn import LightGCN
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import to_torch_csr_tensor

from graphrec_pipeline.progress import Progress
from graphrec_pipeline.train.data import TrainingData, sample_same_city


LIGHTGCN_LR = 1e-2


def train_lightgcn(
    data: TrainingData,
    embedding_dim: int = 64,
    num_layers: int = 2,
    steps: int = 3_000,
    batch: int = 16_384,
    lr: float = LIGHTGCN_LR,
    seed: int = 0,
    validate: Callable[[np.ndarray, np.ndarray], float] | None = None,
    eval_every: int = 25,
    patience: int = 3,
    max_seconds: float = float("inf"),
    log=lambda msg: None,
) -> tuple[np.ndarray, np.ndarray]:
    """(user, place) LightGCN embeddings after BPR steps on positive edges: the best on
    ``validate(user_emb, place_emb)`` (checked every ``eval_every`` steps, stopping after
    ``patience`` checks without a gain), or the last after ``steps`` steps without it."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n_users = data.n_users
    u = torch.from_numpy(data.edge_user)
    p = torch.from_numpy(data.edge_place) + n_users
    n = n_users + data.n_places
    edge_index = torch.stack([torch.cat([u, p]), torch.cat([p, u])])
    # Normalize once and propagate with a sparse matmul: LGConv would redo gcn_norm each call.
    edge_index, weight = gcn_norm(edge_index, num_nodes=n, add_self_loops=False)
    adj = to_torch_csr_tensor(edge_index.flip(0), weight, size=(n, n))
    model = LightGCN(n, embedding_dim, num_layers, normalize=False)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    positives = np.flatnonzero(data.edge_positive)
    start, best, best_emb, since = time.perf_counter(), -np.inf, None, 0
    progress = Progress("LightGCN", steps, log, deadline_seconds=max_seconds if max_seconds < float("inf") else None)
    for step in range(1, steps + 1):
        progress.update()
        pick = rng.choice(positives, size=min(batch, len(positives)), replace=False)
        users = torch.from_numpy(data.edge_user[pick])
        pos = torch.from_numpy(data.edge_place[pick]) + n_users
        neg = torch.from_numpy(sample_same_city(data, data.edge_place[pick], rng)) + n_users
        emb = model.get_embedding(adj)
        pos_score = (emb[users] * emb[pos]).sum(-1)
        neg_score = (emb[users] * emb[neg]).sum(-1)
        loss = model.recommendation_loss(pos_score, neg_score, node_id=torch.cat([users, pos, neg]), lambda_reg=1e-4)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if validate is not None and (step % eval_every == 0 or step == steps):
            with torch.no_grad():
                emb = model.get_embedding(adj).numpy()
            ndcg = validate(emb[:n_users], emb[n_users:])
            log(f"lightgcn step {step}: loss {float(loss.detach()):.4f} val NDCG@20 {ndcg:.4f}")
            if ndcg > best:
                best, best_emb, since = ndcg, emb, 0
            else:
                since += 1
            if since >= patience or time.perf_counter() - start > max_seconds:
                break
    if best_emb is None:
        with torch.no_grad():
            best_emb = model.get_embedding(adj).numpy()
    return best_emb[:n_users], best_emb[n_users:]


def dot_scorer(user_emb: np.ndarray, place_emb: np.ndarray):
    return lambda u, p: user_emb[u] @ place_emb[p].T
