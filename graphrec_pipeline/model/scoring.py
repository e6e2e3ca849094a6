"""Scores from a trained model over dense blocks of (users x places) or user pairs.

``embed_all`` runs one full forward pass over the training graph (§6.1); the scorer then
answers ``dot(users, places)`` (retrieval, :meth:`GraphRec.retrieval_score`), ``head(users, places, ctx)``
(the place head over every pair of the block) and ``friend(u, v, ctx)`` for aligned pairs,
all without gradients and in bounded chunks.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from graphrec_pipeline.model.graphrec import GraphRec
from graphrec_pipeline.model.pair_heads import PairHeads
from graphrec_pipeline.model.preference import retrieval_vectors

# (user, place) pairs a head scores at once: the head's (pairs x 256) hidden block then stays
# in the CPU's cache between its element-wise steps instead of going out to memory and back.
PAIRS_PER_CHUNK = 8_192


def _ids(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(x, dtype=np.int64))


@torch.no_grad()
def embed_all(model: GraphRec, graph) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(z_user, z_place, e_user, e_place) of the whole graph, its ID table propagated once."""
    model.eval()
    ids = model.whole_graph_ids(graph)
    return (*model.embed(graph, ids), *model.id_rows(graph, ids))


@dataclass
class Scorer:
    model: GraphRec
    z_user: torch.Tensor
    z_place: torch.Tensor
    place_desc: torch.Tensor  # (n_places, 112) descriptors d_p
    t_user: torch.Tensor  # (n_users, 136) tastes t_u
    s_user: torch.Tensor  # (n_users, side_dim) sides of the preference match
    s_place: torch.Tensor  # (n_places, side_dim)
    e_user: torch.Tensor  # (n_users, d or 0) ID parts: both place scores add e_u . e_p
    e_place: torch.Tensor  # (n_places, d or 0)

    @classmethod
    def from_graph(cls, model: GraphRec, graph) -> "Scorer":
        z_user, z_place, e_user, e_place = embed_all(model, graph)
        x_user, x_place = graph["user"].x, graph["place"].x
        return cls(model, z_user, z_place, model.describe(x_place), model.tastes(x_user),
                   model.user_sides(x_user), model.place_sides(x_place), e_user, e_place)

    @cached_property
    def queries(self) -> torch.Tensor:
        """(n_users, d + side_dim + d_e) place queries: their inner product with
        :attr:`targets` is the retrieval score."""
        return torch.cat([self.model.preference_match.query_vectors(self.z_user, self.s_user), self.e_user], dim=1)

    @cached_property
    def targets(self) -> torch.Tensor:
        return torch.cat([retrieval_vectors(self.z_place, self.s_place), self.e_place], dim=1)

    @torch.no_grad()
    def dot(self, users: np.ndarray, places: np.ndarray) -> np.ndarray:
        """Retrieval scores (:meth:`GraphRec.retrieval_score`) of every pair of the block."""
        return (self.queries[_ids(users)] @ self.targets[_ids(places)].T).numpy()

    @torch.no_grad()
    def match(self, users: np.ndarray, places: np.ndarray) -> np.ndarray:
        """The place head's preference match alone (``model/preference.py``), every pair of
        the block: what the score is without the embeddings."""
        return (self.model.preference_match.weighted(self.s_user[_ids(users)], 0) @ self.s_place[_ids(places)].T).numpy()

    @cached_property
    def place_heads(self) -> PairHeads:
        """The place head in the factorized form serving uses (``pair_heads.py``): half the
        first layer's arithmetic and no concatenated pair features; equal to
        :meth:`GraphRec.place_score` to float tolerance. Built from the weights as they are
        when first used (a scorer is made per validation)."""
        self.model.eval()
        m = self.model
        return PairHeads([m.place_head], m.place_context, self.z_place, m.place_match, m.context_match, self.place_desc,
                         torch.cat([self.s_place, self.e_place], dim=1))

    @cached_property
    def head_sides(self) -> torch.Tensor:
        """The users' sides weighted for the place head's preference match, then their ID
        parts: the inner product with ``[s_p, e_p]`` is the match plus ``e_u . e_p``."""
        return torch.cat([self.model.preference_match.weighted(self.s_user, 0), self.e_user], dim=1)

    def head(self, users: np.ndarray, places: np.ndarray, ctx_raw: np.ndarray | None = None) -> np.ndarray:
        """(len(users), len(places)) place-head logits; ``ctx_raw`` is one (112,) context or None."""
        rows = max(1, PAIRS_PER_CHUNK // max(len(places), 1))
        items = _ids(places)
        return self._blocks(users, lambda s, n: items.expand(n, -1), rows, ctx_raw, (len(users), len(places)))

    def head_candidates(self, users: np.ndarray, candidates: np.ndarray, ctx_raw: np.ndarray | None = None) -> np.ndarray:
        """(n, m) place-head logits of each user's own candidate row."""
        rows = max(1, PAIRS_PER_CHUNK // max(candidates.shape[1], 1))
        return self._blocks(users, lambda s, n: _ids(candidates[s : s + n]), rows, ctx_raw, candidates.shape)

    def _blocks(self, users: np.ndarray, items_of, rows: int, ctx_raw: np.ndarray | None, shape) -> np.ndarray:
        ctx = torch.zeros(self.model.widths.context) if ctx_raw is None else torch.as_tensor(ctx_raw, dtype=torch.float32)
        out = np.empty(shape, dtype=np.float32)
        for s in range(0, len(users), rows):
            u = _ids(users[s : s + rows])
            out[s : s + len(u)] = self.place_heads(self.z_user[u], ctx, items_of(s, len(u)), self.head_sides[u])[0].numpy()
        return out

    @torch.no_grad()
    def friend(self, u: np.ndarray, v: np.ndarray, ctx_raw: np.ndarray | None = None,
               history: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(compatibility probability, attendance probability) for aligned pairs;
        ``history``: their past co-attendance counts (None: none)."""
        self.model.eval()
        ctx = torch.zeros(len(u), self.model.widths.context) if ctx_raw is None else torch.as_tensor(ctx_raw, dtype=torch.float32)
        u, v = _ids(u), _ids(v)
        n = None if history is None else torch.as_tensor(np.asarray(history), dtype=torch.float32)
        compat, attend = self.model.friend_scores(self.z_user[u], self.z_user[v], ctx, self.t_user[u], self.t_user[v], n)
        return torch.sigmoid(compat).numpy(), torch.sigmoid(attend).numpy()
