"""Learned baselines the GNN is measured against, trained on training data only (the
taste-free and content ones are in ``simple_rankers.py``).

* ``lightgcn``: PyG's :class:`~torch_geometric.nn.models.LightGCN` trained with BPR on the
  training interaction edges, negatives from the positive's city.
"""

from __future__ import annotations

import numpy as np
import torch
from torch_geometric.nn import LightGCN
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import to_torch_csr_tensor

from graphrec_pipeline.train.data import TrainingData, sample_same_city


def train_lightgcn(
    data: TrainingData,
    embedding_dim: int = 64,
    num_layers: int = 2,
    steps: int = 150,
    batch: int = 16_384,
    lr: float = 5e-3,
    seed: int = 0,
    log=lambda msg: None,
) -> tuple[np.ndarray, np.ndarray]:
    """Final (user, place) LightGCN embeddings after ``steps`` BPR steps on positive edges."""
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
    for step in range(steps):
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
        if step % 50 == 0:
            log(f"lightgcn step {step}: loss {float(loss.detach()):.4f}")
    with torch.no_grad():
        emb = model.get_embedding(adj).numpy()
    return emb[:n_users], emb[n_users:]


def dot_scorer(user_emb: np.ndarray, place_emb: np.ndarray):
    return lambda u, p: user_emb[u] @ place_emb[p].T
