"""Hyperparameters of the GNN (§4.1); saved beside the weights so serving rebuilds it."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, fields
from typing import Literal

from graphrec_pipeline import constants as K
from graphrec_pipeline.widths import Widths


@dataclass(frozen=True)
class ModelConfig:
    """§4.1 in lower case, plus what the encoders need to size their embeddings.

    Args:
        d_model: width of encoders, message passing and embeddings (128).
        gnn_aggr: ``mean``, ``sum`` or ``attention`` (GraphRec-style attention over a node's
            interactions and friends).
        alpha: weight of the compatibility probability in ``s_final`` (§4.3.2).
        lambda_dot: weight of the auxiliary BPR on the retrieval score (``z_u . z_p / sqrt(d)``
            plus its preference match, ``model/preference.py``) that trains what the ANN
            index searches.
        lambda_context: weight of the in-context BPR: the same (user, place) scored under
            its own context above a mismatching one, so only the context separates them.
        lambda_partner: weight of the people BPR: both friend logits rank a user's
            training-period outing partner above another person of their city (the
            people flow's task; the labels' negatives alone are too easy to rank by). It
            trains the heads and the taste match, not the embeddings: through the backbone
            it cost place validation NDCG@20 4% (0.107 against 0.111).
        id_embeddings: add a learned per-node embedding to the encoded features of every
            user and place with training edges (``n_users`` / ``n_places`` set by training).
            Nodes without training edges take the feature-only path (their ID embedding is
            zero), which training also practises by zeroing a random ``id_dropout`` share.
        id_layers: LightGCN-style propagation of the ID embeddings over interaction and
            social edges before they join the features (``model/collaborative.py``): a
            user's ID part is the mean of their own and their places' and friends' (0:
            each node's own ID embedding alone).
        id_learning_rate: Adam's learning rate for the ID tables, under the same warm-up and
            decay as the rest (docs/benchmarks.md: at LightGCN's 1e-2 the ID parts were still
            learning when the decay ended; 2e-2 reaches the same validation three epochs
            sooner, 3e-2 overfits the training edges).
        lambda_id: weight of the BPR on the ID parts' inner product (``GraphRec.id_loss``),
            drawn from the step's supervised edges (``TrainConfig.id_examples`` per step).
        n_users, n_places: sizes of the ID tables (set by training).
        n_categories, n_tags, n_vibes: the world's feature widths (``widths.py``; set by
            training from the tables, so an imported vocabulary sizes the encoders).
        pair_history: add ``h log(1 + n_uv)`` to both friend logits, ``n_uv`` the number of
            places the pair went to together before the cut (training: the training
            period; serving: what the release knows), with one learned weight ``h`` per
            logit. The world draws attendance from past co-attendance (§2.6), which the
            node embeddings cannot show for a pair that is no social edge. Trained by the
            label BCE and by the people BPR, which ranks the partner of one training-period
            outing above another person (often another partner) with the counts before
            that outing on both sides.
    """

    n_cities: int = K.N_CITIES
    neighborhoods_per_city: int = K.N_NEIGHBORHOODS_PER_CITY
    d_model: int = 128
    city_embed_dim: int = 16
    neighborhood_embed_dim: int = 32
    price_embed_dim: int = 8
    time_slot_embed_dim: int = 8
    num_gnn_layers: int = 2
    gnn_dropout: float = 0.1
    gnn_aggr: Literal["mean", "sum", "attention"] = "mean"
    place_head_hidden: tuple[int, ...] = (256, 128)
    friend_head_hidden: tuple[int, ...] = (256, 128)
    head_dropout: float = 0.2
    d_ctx_place: int = 16
    d_ctx_friend: int = 16
    learning_rate: float = 3e-3
    weight_decay: float = 1e-5
    lambda_place: float = 1.0
    lambda_friend: float = 0.5
    lambda_attend: float = 0.3
    lambda_dot: float = 0.5
    lambda_context: float = 0.5
    lambda_partner: float = 0.5
    alpha: float = 0.7
    id_embeddings: bool = True
    id_dropout: float = 0.2
    id_layers: int = 2
    id_learning_rate: float = 2e-2
    lambda_id: float = 1.0
    pair_history: bool = True
    n_users: int = 0
    n_places: int = 0
    n_categories: int = K.C_COARSE
    n_tags: int = K.C_FINE
    n_vibes: int = K.C_VIBE

    @property
    def widths(self) -> Widths:
        """The feature widths the model reads (set by training from the world's tables)."""
        return Widths(self.n_categories, self.n_tags, self.n_vibes)

    def with_widths(self, widths: Widths) -> "ModelConfig":
        return dataclasses.replace(self, n_categories=widths.categories, n_tags=widths.tags, n_vibes=widths.vibes)

    def __post_init__(self) -> None:
        if self.gnn_aggr not in ("mean", "sum", "attention"):
            raise ValueError(f"gnn_aggr must be mean, sum or attention, not {self.gnn_aggr!r}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError("alpha must be in [0, 1]")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        raw = json.loads(text)
        for key in ("place_head_hidden", "friend_head_hidden"):
            raw[key] = tuple(raw[key])
        known = {f.name for f in fields(cls)}  # older files may carry fields since removed
        return cls(**{k: v for k, v in raw.items() if k in known})
