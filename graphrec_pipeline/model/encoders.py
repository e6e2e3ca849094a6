"""Input encoders (§4.2): raw user (148) and place (114) features to ``d_model``.

Neighborhood ids are per city, so the neighborhood embedding is keyed on
``city * neighborhoods_per_city + neighborhood`` (NOTES.md), while the raw feature
columns stay as §3.2 specifies.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from graphrec_pipeline.constants import C_COARSE, C_FINE, D_PLACE_RAW, D_USER_RAW, N_PRICE_BANDS, N_TIME_SLOTS
from graphrec_pipeline.graph.features import (
    PLACE_CATEGORY,
    PLACE_CITY,
    PLACE_FINE,
    PLACE_NEIGHBORHOOD,
    PLACE_POPULARITY,
    PLACE_PRICE,
    PLACE_SLOT,
    USER_CITY,
    USER_CONTINUOUS,
    USER_NEIGHBORHOOD,
)
from graphrec_pipeline.model.config import ModelConfig
from graphrec_pipeline.model.dropout import Dropout


def projection(d_in: int, d_model: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(d_in, 2 * d_model),
        nn.LayerNorm(2 * d_model),
        nn.ReLU(),
        Dropout(0.1),
        nn.Linear(2 * d_model, d_model),
        nn.LayerNorm(d_model),
    )


class _LocationEmbedding(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_nb = cfg.neighborhoods_per_city
        self.city = nn.Embedding(cfg.n_cities, cfg.city_embed_dim)
        self.neighborhood = nn.Embedding(cfg.n_cities * cfg.neighborhoods_per_city, cfg.neighborhood_embed_dim)

    def forward(self, city: Tensor, neighborhood: Tensor) -> Tensor:
        city, neighborhood = city.long(), neighborhood.long()
        return torch.cat([self.city(city), self.neighborhood(city * self.n_nb + neighborhood)], dim=1)


class UserEncoder(nn.Module):
    """(N, 148) raw user features -> (N, d_model)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.location = _LocationEmbedding(cfg)
        d_in = cfg.city_embed_dim + cfg.neighborhood_embed_dim + (D_USER_RAW - 2)
        self.mlp = projection(d_in, cfg.d_model)

    def forward(self, x: Tensor) -> Tensor:
        loc = self.location(x[:, USER_CITY], x[:, USER_NEIGHBORHOOD])
        return self.mlp(torch.cat([loc, x[:, USER_CONTINUOUS]], dim=1))


class PlaceEncoder(nn.Module):
    """(N, 114) raw place features -> (N, d_model)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.location = _LocationEmbedding(cfg)
        self.price = nn.Embedding(N_PRICE_BANDS, cfg.price_embed_dim)
        self.time_slot = nn.Embedding(N_TIME_SLOTS, cfg.time_slot_embed_dim)
        d_in = (
            cfg.city_embed_dim + cfg.neighborhood_embed_dim + cfg.price_embed_dim + cfg.time_slot_embed_dim
            + C_COARSE + C_FINE + 4
        )
        assert D_PLACE_RAW == 2 + C_COARSE + C_FINE + 2 + 4
        self.mlp = projection(d_in, cfg.d_model)

    def forward(self, x: Tensor) -> Tensor:
        parts = [
            self.location(x[:, PLACE_CITY], x[:, PLACE_NEIGHBORHOOD]),
            self.price(x[:, PLACE_PRICE].long()),
            self.time_slot(x[:, PLACE_SLOT].long()),
            x[:, PLACE_CATEGORY],
            x[:, PLACE_FINE],
            x[:, PLACE_POPULARITY],
        ]
        return self.mlp(torch.cat(parts, dim=1))
