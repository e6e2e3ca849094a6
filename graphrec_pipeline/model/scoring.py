"""Scores from a trained model over dense blocks of (users x places) or user pairs.

``embed_all`` runs one full forward pass over the training graph (§6.1); the scorer then
answers ``dot(users, places)`` (retrieval, ``z_u . z_p``), ``head(users, places, ctx)``
(the place head over every pair of the block) and ``friend(u, v, ctx)`` for aligned pairs,
all without gradients and in bounded chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from graphrec_pipeline.model.context import D_CONTEXT_RAW
from graphrec_pipeline.model.graphrec import GraphRec

PAIRS_PER_CHUNK = 65_536


def _ids(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(x, dtype=np.int64))


@torch.no_grad()
def embed_all(model: GraphRec, graph) -> tuple[torch.Tensor, torch.Tensor]:
    model.eval()
    return model.embed(graph)


@dataclass
class Scorer:
    model: GraphRec
    z_user: torch.Tensor
    z_place: torch.Tensor
    place_desc: torch.Tensor  # (n_places, 112) descriptors d_p

    @classmethod
    def from_graph(cls, model: GraphRec, graph) -> "Scorer":
        z_user, z_place = embed_all(model, graph)
        return cls(model, z_user, z_place, GraphRec.describe(graph["place"].x))

    @torch.no_grad()
    def dot(self, users: np.ndarray, places: np.ndarray) -> np.ndarray:
        return (self.z_user[_ids(users)] @ self.z_place[_ids(places)].T).numpy()

    @torch.no_grad()
    def head(self, users: np.ndarray, places: np.ndarray, ctx_raw: np.ndarray | None = None) -> np.ndarray:
        """(len(users), len(places)) place-head logits; ``ctx_raw`` is one (112,) context or None."""
        self.model.eval()
        ctx = torch.zeros(D_CONTEXT_RAW) if ctx_raw is None else torch.as_tensor(ctx_raw, dtype=torch.float32)
        uu = np.repeat(users, len(places))
        pp = np.tile(places, len(users))
        out = np.empty(len(uu), dtype=np.float32)
        for s in range(0, len(uu), PAIRS_PER_CHUNK):
            u = _ids(uu[s : s + PAIRS_PER_CHUNK])
            p = _ids(pp[s : s + PAIRS_PER_CHUNK])
            c = ctx.expand(len(u), -1)
            out[s : s + len(u)] = self.model.place_score(self.z_user[u], self.z_place[p], c, self.place_desc[p]).numpy()
        return out.reshape(len(users), len(places))

    @torch.no_grad()
    def head_candidates(self, users: np.ndarray, candidates: np.ndarray, ctx_raw: np.ndarray | None = None) -> np.ndarray:
        """(n, m) place-head logits of each user's own candidate row."""
        self.model.eval()
        n, m = candidates.shape
        ctx = torch.zeros(D_CONTEXT_RAW) if ctx_raw is None else torch.as_tensor(ctx_raw, dtype=torch.float32)
        u = _ids(np.repeat(users, m))
        p = _ids(candidates.ravel())
        out = np.empty(n * m, dtype=np.float32)
        for s in range(0, n * m, PAIRS_PER_CHUNK):
            sl = slice(s, s + PAIRS_PER_CHUNK)
            out[sl] = self.model.place_score(self.z_user[u[sl]], self.z_place[p[sl]], ctx.expand(len(u[sl]), -1),
                                               self.place_desc[p[sl]]).numpy()
        return out.reshape(n, m)

    @torch.no_grad()
    def friend(self, u: np.ndarray, v: np.ndarray, ctx_raw: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(compatibility probability, attendance probability) for aligned pairs."""
        self.model.eval()
        ctx = torch.zeros(len(u), D_CONTEXT_RAW) if ctx_raw is None else torch.as_tensor(ctx_raw, dtype=torch.float32)
        compat, attend = self.model.friend_scores(self.z_user[_ids(u)], self.z_user[_ids(v)], ctx)
        return torch.sigmoid(compat).numpy(), torch.sigmoid(attend).numpy()
