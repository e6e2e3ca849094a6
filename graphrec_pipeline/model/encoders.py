"""Input encoders (§4.2): raw user (148) and place (114) features to ``d_model`` (the
widths of a generated world; ``ModelConfig.widths`` sizes them for any other).

Neighborhood ids are per city, so the neighborhood embedding is keyed on
``city * neighborhoods_per_city + neighborhood`` (NOTES.md), while the raw feature
columns stay as §3.2 specifies.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from graphrec_pipeline.constants import N_PRICE_BANDS, N_TIME_SLOTS
from graphrec_pipeline.model.config import ModelConfig
from graphrec_pipeline.model.dropout import Dropout
from graphrec_pipeline.widths import PLACE_CITY, PLACE_NEIGHBORHOOD, USER_CITY, USER_NEIGHBORHOOD


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
        self.continuous = cfg.widths.user_continuous
        d_in = cfg.city_embed_dim + cfg.neighborhood_embed_dim + (cfg.widths.user_raw - 2)
        self.mlp = projection(d_in, cfg.d_model)

    def forward(self, x: Tensor) -> Tensor:
        loc = self.location(x[:, USER_CITY], x[:, USER_NEIGHBORHOOD])
        return self.mlp(torch.cat([loc, x[:, self.continuous]], dim=1))


class PlaceEncoder(nn.Module):
    """(N, 114) raw place features -> (N, d_model)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.location = _LocationEmbedding(cfg)
        self.price = nn.Embedding(N_PRICE_BANDS, cfg.price_embed_dim)
        self.time_slot = nn.Embedding(N_TIME_SLOTS, cfg.time_slot_embed_dim)
        self.widths = w = cfg.widths
        d_in = (
            cfg.city_embed_dim + cfg.neighborhood_embed_dim + cfg.price_embed_dim + cfg.time_slot_embed_dim
            + (w.place_raw - 4)  # the row less city, neighbourhood, price and slot, which are embedded
        )
        self.mlp = projection(d_in, cfg.d_model)

    def forward(self, x: Tensor) -> Tensor:
        w = self.widths
        parts = [
            self.location(x[:, PLACE_CITY], x[:, PLACE_NEIGHBORHOOD]),
            self.price(x[:, w.place_price].long()),
            self.time_slot(x[:, w.place_slot].long()),
            x[:, w.place_category],
            x[:, w.place_fine],
            x[:, w.place_popularity],
        ]
        return self.mlp(torch.cat(parts, dim=1))
