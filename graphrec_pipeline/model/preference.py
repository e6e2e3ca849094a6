"""How well a place fits what a user states, as the place head and retrieval read it.

A user states preference profiles (coarse categories, fine tags) and lives in a home city
and neighbourhood; a place offers categories, tags, a city, a neighbourhood and a
popularity. Both become *sides* of one layout, and :class:`PreferenceMatch` gives each
place logit a learned weight per block on their product,

.. math::
    m_k(u, p) = W_{k,cat} \\langle \\hat c_u, c_p / |c_p|_1 \\rangle
              + W_{k,tag} \\cos(f_u, f_p)
              + W_{k,city} [a_u = a_p] + W_{k,home} [n_u = n_p] + W_{k,pop} \\, \\pi_p

(``a``: the city, ``n``: the (city, neighbourhood) location, ``pi_p``: the place's log
popularity feature).
Everything here is a node feature the encoders already read; the match only gives the
model the products directly. The place head's MLP sees them after encoding and message
passing, mixed into 128 dims, and learned the user-place taste fit slowly: on the default
world its home-city NDCG@20 stayed below the plain cosine of tags on solo visits (0.078
against 0.098). With the match, trained from zero weights, it reaches 0.155, and the
weights land near the world's own (tags about 9, categories about 2). On that world the
match alone ranks as well as the whole model (evaluation's ``graphrec_match``): its
visits come from a feature-based affinity, which leaves message passing little to add.
Which neighbourhoods a user frequents beyond home is left to the graph (NOTES.md: the
user features keep five area weights, not which areas): the GNN sees the visited places.

Two outputs: the place head's term, and the retrieval score's, so that
``d^{-1/2} z_u . z_p + m_1(u, p)`` is one inner product of a user's *place query* with a
place's *retrieval vector* (:meth:`PreferenceMatch.query_vectors`), and an index over the
places of a city returns what the two-stage flow should re-rank.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphrec_pipeline.widths import Widths

SCALE = 100.0  # as in model/taste.py: a larger learning rate for a few numbers
BLOCKS = ("categories", "tags", "city", "home", "popularity")


def side_dim(n_categories: int, n_tags: int, n_cities: int, n_per_city: int) -> int:
    return n_categories + n_tags + n_cities + n_cities * n_per_city + 1


def _sides(cat: Tensor, fine: Tensor, city, neighborhood, n_cities: int, n_per_city: int) -> Tensor:
    """(n, side_dim) with the categories, tags, city and location filled in (the widths
    are those of ``cat`` and ``fine``)."""
    rows, c, t = torch.arange(len(cat)), cat.shape[1], fine.shape[1]
    out = torch.zeros(len(cat), side_dim(c, t, n_cities, n_per_city))
    out[:, :c] = cat
    out[:, c : c + t] = F.normalize(fine, dim=-1)
    out[rows, c + t + _long(city)] = 1.0
    out[rows, c + t + n_cities + _locations(city, neighborhood, n_per_city)] = 1.0
    return out


def _float(x) -> Tensor:
    """A float32 copy of an array or tensor (table columns arrive read-only)."""
    return x.float() if isinstance(x, Tensor) else torch.from_numpy(np.array(x, dtype=np.float32))


def _long(x) -> Tensor:
    return x.long() if isinstance(x, Tensor) else torch.from_numpy(np.array(x, dtype=np.int64))


def _locations(city, neighborhood, n_per_city: int) -> Tensor:
    return _long(city) * n_per_city + _long(neighborhood)


def user_sides(cat_pref, fine_pref, city, neighborhood, n_cities: int, n_per_city: int) -> Tensor:
    """(n, side_dim) users' sides: categories and tags at unit length, the home city and
    location one-hot, and a constant 1 (which carries the popularity weight)."""
    out = _sides(F.normalize(_float(cat_pref), dim=-1), _float(fine_pref), city, neighborhood, n_cities, n_per_city)
    out[:, -1] = 1.0
    return out


def place_sides(categories, tags, city, neighborhood, popularity, n_cities: int, n_per_city: int) -> Tensor:
    """(n, side_dim) places' sides: category shares (summing to 1), tags at unit length, the
    city and location one-hot and the popularity feature."""
    cat = _float(categories)
    out = _sides(cat / cat.sum(-1, keepdim=True).clamp_min(1e-12), _float(tags), city, neighborhood, n_cities, n_per_city)
    out[:, -1] = _float(popularity)
    return out


class PreferenceMatch(nn.Module):
    """One learned weight per block and output logit (module doc); zero at initialisation.

    Args:
        n_out: logits it adds to (the place head and the retrieval score).
        n_cities, n_per_city: cities, and neighbourhoods per city.
        widths: the world's category and tag widths.
    """

    def __init__(self, n_out: int, n_cities: int, n_per_city: int, widths: Widths):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_out, len(BLOCKS)))
        sizes = torch.tensor([widths.categories, widths.tags, n_cities, n_cities * n_per_city, 1])
        blocks = torch.repeat_interleave(torch.arange(len(BLOCKS)), sizes)
        self.register_buffer("block_sum", nn.functional.one_hot(blocks, len(BLOCKS)).float(), persistent=False)

    def forward(self, user_side: Tensor, place_side: Tensor) -> Tensor:
        """(..., n_out) for broadcastable sides (..., side_dim)."""
        return ((user_side * place_side) @ self.block_sum) @ (SCALE * self.weight).T

    @torch.no_grad()
    def weighted(self, user_side: Tensor, out: int) -> Tensor:
        """(n, side_dim) user sides scaled by output ``out``'s weights: their inner product
        with a place side is that output's match."""
        return user_side * (self.block_sum @ (SCALE * self.weight[out]))

    @torch.no_grad()
    def query_vectors(self, z_user: Tensor, user_side: Tensor) -> Tensor:
        """(n, d + side_dim) place queries ``[d^{-1/2} z_u, W_1 s_u]``: with a retrieval vector
        ``[z_p, s_p]`` (:func:`retrieval_vectors`) the inner product is the retrieval score."""
        return torch.cat([z_user * z_user.shape[1] ** -0.5, self.weighted(user_side, 1)], dim=1)


def retrieval_vectors(z_place: Tensor, place_side: Tensor) -> Tensor:
    """(n, d + side_dim) ``[z_p, s_p]``, what a city's place index holds."""
    return torch.cat([z_place, place_side], dim=1)
