"""The GraphRec-style model: encoders, edge-aware backbone, place head and friend head.

.. math::
    f_{ab} = [z_a, z_b, z_a \\odot z_b, |z_a - z_b|, c]

    s_{place} = \\mathrm{MLP}_{place}(f_{up}) + \\tfrac{1}{\\sqrt{d}} (M c_{raw})^\\top z_p
              + \\textstyle\\sum_i w_i \\, c_{raw,i} \\, d_{p,i} + m_0(s_u, s_p), \\quad
    r(u, p) = \\tfrac{1}{\\sqrt{d}} z_u^\\top z_p + m_1(s_u, s_p)

    s_{compat} = \\mathrm{MLP}_{compat}(f_{uv}) + m_c(t_u, t_v) + h_c \\log(1 + n_{uv}), \\quad
    p_{attend} = \\sigma(\\mathrm{MLP}_{attend}(f_{uv}) + m_a(t_u, t_v) + h_a \\log(1 + n_{uv}))

    s_{final} = \\alpha \\, \\sigma(s_{compat}) + (1 - \\alpha) \\, p_{attend}

(the compatibility logit goes through a sigmoid so that both terms of ``s_final`` are
probabilities). The place score adds two learned context terms: a bilinear match ``M``
between the raw query context (tags, categories, time slot) and the place embedding, and
a weight ``w_i`` per context dimension on what the place offers in the same layout
(``d_p``: its tags, categories and typical slot; :class:`~graphrec_pipeline.model.context.ContextMatch`),
and a learned match ``m`` of what the user states with what the place offers (categories,
tags, home city and neighbourhood, popularity; :class:`~graphrec_pipeline.model.preference.PreferenceMatch`),
which the retrieval score ``r`` shares with its own weights.
The friend logits add a learned match of the two users' stated tastes ``t``
(:class:`~graphrec_pipeline.model.taste.TasteMatch`) and a learned weight ``h`` on the
pair's past co-attendance ``n_{uv}`` (places they went to together before the cut).
The 16 context dimensions inside the MLP are few beside 512 pair features, and a context
that shifts every place's logit alike cancels in a ranking. Losses (§5): BPR on the place head, an in-context BPR
(the same user and place under their own context above a mismatching one), BCE on
compatibility and attendance, an auxiliary BPR on the retrieval score ``r`` so that
retrieval ranks well too, and a people BPR: both friend logits rank a user's
training-period outing partner above another person of their city.

Which edges do what: :meth:`embed` propagates messages over the edges it is given (the
training graph, minus the edges supervised in the current step); the heads score pairs
that must not be among those message edges.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import HeteroData

from graphrec_pipeline.model.backbone import GraphRecBackbone
from graphrec_pipeline.model.collaborative import IdGraph, propagate
from graphrec_pipeline.model.config import ModelConfig
from graphrec_pipeline.model.context import ContextEncoder, ContextMatch, describe_places
from graphrec_pipeline.model.dropout import Dropout
from graphrec_pipeline.model.encoders import PlaceEncoder, UserEncoder
from graphrec_pipeline.model.preference import PreferenceMatch, place_sides, user_sides
from graphrec_pipeline.model.taste import TasteMatch, user_tastes
from graphrec_pipeline.widths import PLACE_CITY, PLACE_NEIGHBORHOOD, USER_CITY, USER_NEIGHBORHOOD

HISTORY_SCALE = 10.0

def mlp(d_in: int, hidden: tuple[int, ...], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(d_in, h), nn.ReLU(), Dropout(dropout)]
        d_in = h
    layers.append(nn.Linear(d_in, 1))
    return nn.Sequential(*layers)


def pair_features(a: Tensor, b: Tensor, ctx: Tensor) -> Tensor:
    return torch.cat([a, b, a * b, (a - b).abs(), ctx], dim=-1)


class GraphRec(nn.Module):
    r"""The GraphRec-style heterogeneous GNN with a place head and a friend head (§4).

    Raw features are encoded to ``d`` dims, then :class:`GraphRecBackbone` propagates
    ``L`` layers over interacts, rev_interacts and social edges:

    .. math::
        h^{(0)}_u = \mathrm{Enc}_{user}(x_u), \quad h^{(0)}_p = \mathrm{Enc}_{place}(x_p),
        \quad z = h^{(L)}

    and pairs are scored from ``f_{ab} = [z_a, z_b, z_a \odot z_b, |z_a - z_b|, c]``:

    .. math::
        s_{place}(u, p \mid c) = \mathrm{MLP}_{place}(f_{up})
            + \tfrac{1}{\sqrt{d}} (M c)^\top z_p + \textstyle\sum_i w_i c_i d_{p,i} + m_0(s_u, s_p)

        s_{final}(u, v \mid c) = \alpha \, \sigma(\mathrm{MLP}_{compat}(f_{uv}) + m_c(t_u, t_v) + h_c \log(1 + n_{uv}))
            + (1 - \alpha) \, \sigma(\mathrm{MLP}_{attend}(f_{uv}) + m_a(t_u, t_v) + h_a \log(1 + n_{uv}))

    with ``c`` the raw query context (tags, categories, time slot; the MLPs see it through
    a learned 16-dim encoding), ``d_p`` what the place offers in the same layout and ``m``
    a learned match of the two users' stated tastes ``t`` (``model/taste.py``), ``m_0`` a
    learned match of the user's stated preferences and home with the place's tags,
    categories, city, neighbourhood and popularity (``model/preference.py``), ``n_{uv}``
    the number of places the pair went to together before the cut and ``h`` its learned
    weights (``pair_history``; training fits ``m_c``, ``m_a`` and ``h`` before it starts,
    ``train/pair_terms.py``).
    Retrieval ranks places by ``d^{-1/2} z_u . z_p + m_1(s_u, s_p)`` and people by the taste match
    (:meth:`~graphrec_pipeline.model.taste.TasteMatch.people_vectors`).

    Args:
        cfg: the hyperparameters (:class:`~graphrec_pipeline.model.config.ModelConfig`):
            widths, layers, aggregation (mean, sum or attention), head sizes, dropout,
            loss weights and ``alpha``.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.user_encoder = UserEncoder(cfg)
        self.place_encoder = PlaceEncoder(cfg)
        self.backbone = GraphRecBackbone(cfg)
        self.widths = w = cfg.widths
        self.place_context = ContextEncoder(w.context, cfg.d_ctx_place)
        self.friend_context = ContextEncoder(w.context, cfg.d_ctx_friend)
        d_pair = 4 * cfg.d_model
        self.place_head = mlp(d_pair + cfg.d_ctx_place, cfg.place_head_hidden, cfg.head_dropout)
        self.place_match = nn.Linear(w.context, cfg.d_model, bias=False)
        nn.init.zeros_(self.place_match.weight)
        self.context_match = ContextMatch(w.context)
        self.preference_match = PreferenceMatch(2, cfg.n_cities, cfg.neighborhoods_per_city, w)  # head, retrieval
        self.has_ids = cfg.id_embeddings and cfg.n_users > 0 and cfg.n_places > 0  # sizes come from training
        if self.has_ids:
            self.user_id = nn.Embedding(cfg.n_users, cfg.d_model)
            self.place_id = nn.Embedding(cfg.n_places, cfg.d_model)
            for table in (self.user_id, self.place_id):
                nn.init.normal_(table.weight, std=0.1)
            self.register_buffer("user_known", torch.zeros(cfg.n_users, dtype=torch.bool))
            self.register_buffer("place_known", torch.zeros(cfg.n_places, dtype=torch.bool))
        self.compat_head = mlp(d_pair + cfg.d_ctx_friend, cfg.friend_head_hidden, cfg.head_dropout)
        self.attend_head = mlp(d_pair + cfg.d_ctx_friend, cfg.friend_head_hidden, cfg.head_dropout)
        self.taste_match = TasteMatch(2, w)  # compatibility, attendance
        self.pair_history = nn.Parameter(torch.zeros(2), requires_grad=cfg.pair_history)  # h_c, h_a

    def id_table(self, id_adj: Tensor | None) -> Tensor:
        """(n_users + n_places, d) ID parts, users first: each node's own embedding (zero
        for nodes without training edges) propagated ``id_layers`` times over ``id_adj``
        (:class:`~graphrec_pipeline.model.collaborative.IdGraph`)."""
        own = torch.cat([self.user_id.weight * self.user_known[:, None], self.place_id.weight * self.place_known[:, None]])
        return propagate(id_adj, own, self.cfg.id_layers) if self.cfg.id_layers > 0 else own

    def whole_graph_ids(self, graph: HeteroData) -> Tensor | None:
        """The :meth:`id_table` over ``graph``'s own edges (the whole training graph), None
        without ID embeddings: computed once, it serves :meth:`embed` and :meth:`id_rows`."""
        if not self.has_ids:
            return None
        if "n_id" in graph["user"]:
            raise ValueError("a sampled subgraph needs the whole graph's ID table")
        return self.id_table(IdGraph.of(graph).adjacency() if self.cfg.id_layers > 0 else None)

    def encode(self, data: HeteroData, ids: Tensor | None = None) -> dict[str, Tensor]:
        """Layer-0 states: encoded features, plus the ID part of nodes when
        ``id_embeddings`` (``data[t].n_id``: global ids of a sampled subgraph). ``ids``:
        the :meth:`id_table` to read them from (None: the table over ``data``'s own edges,
        which must then be the whole graph)."""
        h = {"user": self.user_encoder(data["user"].x), "place": self.place_encoder(data["place"].x)}
        if self.has_ids:
            for t, part in zip(("user", "place"), self.id_rows(data, ids), strict=True):
                if self.training:
                    part = part * (torch.rand(len(part)) >= self.cfg.id_dropout)[:, None]
                h[t] = h[t] + part
        return h

    def id_rows(self, data: HeteroData, ids: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(e_user, e_place): the ID parts of ``data``'s user and place rows (``ids`` as in
        :meth:`encode`); zero-width without ID embeddings. Both place scores add
        ``e_u . e_p``, the collaborative term (``model/collaborative.py``)."""
        n_u, n_p = data["user"].num_nodes, data["place"].num_nodes
        if not self.has_ids:
            return torch.zeros(n_u, 0), torch.zeros(n_p, 0)
        if ids is None:
            ids = self.whole_graph_ids(data)
        rows = {t: data[t].n_id if "n_id" in data[t] else torch.arange(data[t].num_nodes) for t in ("user", "place")}
        return ids[: self.cfg.n_users][rows["user"]], ids[self.cfg.n_users :][rows["place"]]

    def embed(self, data: HeteroData, ids: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(z_user, z_place) after message passing over ``data``'s edges (``ids`` as in
        :meth:`encode`); for a sampled subgraph, exact for its seed nodes only."""
        hops = {rel: data[rel].edge_hop for rel in data.edge_types if "edge_hop" in data[rel]}
        h = self.backbone(self.encode(data, ids), data.edge_index_dict, data.edge_attr_dict, hops)
        return h["user"], h["place"]

    def id_loss(self, ids: Tensor, batch: dict[str, Tensor]) -> Tensor:
        """BPR on the ID parts' inner product, ``e_u . e_p`` above ``e_u . e_n``: trains the
        collaborative part at the pace of LightGCN, on many more (user, place) pairs per
        step than the heads see (``batch``: user, pos, neg, global ids)."""
        e_u, places = ids.index_select(0, batch["user"]), ids[self.cfg.n_users :]
        # one product with the difference of the two places: the loss reads only pos - neg
        margin = (e_u * (places.index_select(0, batch["pos"]) - places.index_select(0, batch["neg"]))).sum(-1)
        return self.bpr_loss(margin, torch.zeros_like(margin))

    def describe(self, x_place: Tensor) -> Tensor:
        """(n, 112) place descriptors ``d_p`` from raw place features (§3.2 layout)."""
        return describe_places(x_place, self.widths)

    def tastes(self, x_user: Tensor) -> Tensor:
        """(n, 136) tastes ``t_u`` from raw user features (§3.2 layout; ``model/taste.py``)."""
        w = self.widths
        return user_tastes(x_user[:, w.user_cat_pref], x_user[:, w.user_fine_pref], x_user[:, w.user_vibe_pref])

    def user_sides(self, x_user: Tensor) -> Tensor:
        """Users' sides of the preference match (``model/preference.py``) from raw features."""
        c, w = self.cfg, self.widths
        return user_sides(x_user[:, w.user_cat_pref], x_user[:, w.user_fine_pref], x_user[:, USER_CITY],
                          x_user[:, USER_NEIGHBORHOOD], c.n_cities, c.neighborhoods_per_city)

    def place_sides(self, x_place: Tensor) -> Tensor:
        """Places' sides of the preference match from raw features."""
        c, w = self.cfg, self.widths
        return place_sides(x_place[:, w.place_category], x_place[:, w.place_fine], x_place[:, PLACE_CITY],
                           x_place[:, PLACE_NEIGHBORHOOD], x_place[:, w.place_popularity][:, 0], c.n_cities,
                           c.neighborhoods_per_city)

    def place_score(self, z_u: Tensor, z_p: Tensor, ctx_raw: Tensor, d_p: Tensor, s_u: Tensor, s_p: Tensor,
                    e_u: Tensor, e_p: Tensor) -> Tensor:
        """Relevance logit ``s_place(u, p | ctx)`` for aligned rows; ``d_p``: the places'
        descriptors (:meth:`describe`), ``s_u`` / ``s_p``: the sides (:meth:`user_sides`,
        :meth:`place_sides`), ``e_u`` / ``e_p``: the ID parts (:meth:`id_rows`)."""
        head = self.place_head(pair_features(z_u, z_p, self.place_context(ctx_raw))).squeeze(-1)
        bilinear = (self.place_match(ctx_raw) * z_p).sum(-1) * self.cfg.d_model**-0.5
        return (head + bilinear + self.context_match(ctx_raw, d_p) + self.preference_match(s_u, s_p)[..., 0]
                + (e_u * e_p).sum(-1))

    def retrieval_score(self, z_u: Tensor, z_p: Tensor, s_u: Tensor, s_p: Tensor, e_u: Tensor, e_p: Tensor) -> Tensor:
        """What place retrieval ranks by, ``d^{-1/2} z_u . z_p + m_1(u, p) + e_u . e_p``: one
        inner product (:meth:`~graphrec_pipeline.model.preference.PreferenceMatch.query_vectors`)."""
        return (z_u * z_p).sum(-1) * self.cfg.d_model**-0.5 + self.preference_match(s_u, s_p)[..., 1] + (e_u * e_p).sum(-1)

    def friend_scores(self, z_u: Tensor, z_v: Tensor, ctx_raw: Tensor, t_u: Tensor, t_v: Tensor,
                      history: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(compatibility logit, attendance logit) for aligned rows; ``t``: the users' tastes
        (:meth:`tastes`); ``history``: each pair's past co-attendance count ``n_uv`` (None:
        no term, as for pairs that never went out together)."""
        f = pair_features(z_u, z_v, self.friend_context(ctx_raw))
        match = self.taste_match(t_u, t_v)
        if history is not None:
            match = match + self.history_terms(history)
        return self.compat_head(f).squeeze(-1) + match[:, 0], self.attend_head(f).squeeze(-1) + match[:, 1]

    def history_weights(self) -> Tensor:
        """(2,) ``h_c, h_a``: the parameter through a fixed scale, as in ``model/taste.py``
        (fitted before training by default, ``train/pair_terms.py``; left to Adam,
        unscaled, a few hundred steps left both near 0.15 where the attendance ceiling wants
        about 2)."""
        return HISTORY_SCALE * self.pair_history

    def history_terms(self, history: Tensor) -> Tensor:
        """(..., 2) ``h log(1 + n_uv)`` of both friend logits for past co-attendance counts (...)."""
        return torch.log1p(history.float())[..., None] * self.history_weights()

    @staticmethod
    def bpr_loss(pos: Tensor, neg: Tensor) -> Tensor:
        """Mean of ``-log σ(pos - neg)`` over the pairs (softplus form, numerically stable)."""
        return F.softplus(neg - pos).mean()

    def loss(
        self,
        z_user: Tensor,
        z_place: Tensor,
        x_user: Tensor,
        x_place: Tensor,
        place_batch: dict[str, Tensor],
        friend_batch: dict[str, Tensor],
        people_batch: dict[str, Tensor] | None = None,
        e_user: Tensor | None = None,
        e_place: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Joint loss of §5.3 with its parts. ``x_user`` / ``x_place``: the raw features of
        ``z_user``'s and ``z_place``'s rows; ``place_batch``: user, pos, neg, their
        descriptors pos_desc and neg_desc, ctx, ctx_wrong (a mismatching context for the
        positive) and has_ctx (rows whose ctx says anything); ``friend_batch``: u, v,
        compat, attend, ctx and, optionally, history (past co-attendance counts);
        ``people_batch`` (optional): u, v (the partner of an outing), neg (another person),
        ctx, and optionally history_v and history_neg (the pairs' counts before that
        outing): both friend logits rank the partner above the other person (BPR), with
        the embeddings held fixed. ``e_user`` / ``e_place``: the rows' ID parts
        (:meth:`id_rows`; None: no collaborative term)."""
        cfg = self.cfg
        if e_user is None:
            e_user, e_place = z_user.new_zeros(len(z_user), 0), z_place.new_zeros(len(z_place), 0)
        zu, eu = z_user[place_batch["user"]], e_user[place_batch["user"]]
        zp, zn = z_place[place_batch["pos"]], z_place[place_batch["neg"]]
        ep, en = e_place[place_batch["pos"]], e_place[place_batch["neg"]]
        ctx, d_pos = place_batch["ctx"], place_batch["pos_desc"]
        su = self.user_sides(x_user[place_batch["user"]])
        sp, sn = self.place_sides(x_place[place_batch["pos"]]), self.place_sides(x_place[place_batch["neg"]])
        pos_score = self.place_score(zu, zp, ctx, d_pos, su, sp, eu, ep)
        place = self.bpr_loss(pos_score, self.place_score(zu, zn, ctx, place_batch["neg_desc"], su, sn, eu, en))
        has = place_batch["has_ctx"]
        context = (self.bpr_loss(pos_score[has], self.place_score(zu[has], zp[has], place_batch["ctx_wrong"][has],
                                                                  d_pos[has], su[has], sp[has], eu[has], ep[has]))
                   if bool(has.any()) else pos_score.new_zeros(()))
        dot = self.bpr_loss(self.retrieval_score(zu, zp, su, sp, eu, ep), self.retrieval_score(zu, zn, su, sn, eu, en))
        t_user = self.tastes(x_user)
        fu, fv = friend_batch["u"], friend_batch["v"]
        compat_logit, attend_logit = self.friend_scores(z_user[fu], z_user[fv], friend_batch["ctx"], t_user[fu], t_user[fv],
                                                        friend_batch.get("history"))
        if len(fu):
            compat = F.binary_cross_entropy_with_logits(compat_logit, friend_batch["compat"])
            attend = F.binary_cross_entropy_with_logits(attend_logit, friend_batch["attend"])
        else:  # no friend labels (a log without social data): the friend heads learn nothing
            compat = attend = place.new_zeros(())
        partner = compat.new_zeros(())
        if people_batch:
            u, v, neg, ctx = (people_batch[k] for k in ("u", "v", "neg", "ctx"))
            z = z_user.detach()  # trains the heads and the taste match, not the embeddings (config doc)
            pos_c, pos_a = self.friend_scores(z[u], z[v], ctx, t_user[u], t_user[v], people_batch.get("history_v"))
            neg_c, neg_a = self.friend_scores(z[u], z[neg], ctx, t_user[u], t_user[neg], people_batch.get("history_neg"))
            partner = self.bpr_loss(pos_c, neg_c) + self.bpr_loss(pos_a, neg_a)
        total = (cfg.lambda_place * place + cfg.lambda_context * context + cfg.lambda_dot * dot
                 + cfg.lambda_friend * compat + cfg.lambda_attend * attend + cfg.lambda_partner * partner)
        return {"total": total, "place": place, "context": context, "dot": dot, "compat": compat, "attend": attend,
                "partner": partner}

    def __repr__(self) -> str:
        c = self.cfg
        return (f"GraphRec(d_model={c.d_model}, layers={c.num_gnn_layers}, aggr={c.gnn_aggr!r}, "
                f"params={sum(p.numel() for p in self.parameters()):,})")
