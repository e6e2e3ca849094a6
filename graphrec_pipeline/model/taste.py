"""How alike two users' stated tastes are, as the friend head reads it.

A user's taste is their three preference profiles (coarse categories 6, fine tags 100,
vibes 30), each scaled to unit length. :class:`TasteMatch` gives each friend logit a
learned weight per profile on the cosine of the two users' profiles,

.. math::
    m_k(u, v) = \\textstyle\\sum_b W_{k,b} \\cos(t_{u,b}, t_{v,b}).

People go out with those whose tastes they share (the world draws outing partners from
the most similar users of a city); the pair MLP sees the two embeddings after message
passing, where a user's own preferences are mixed with their places', and learns such a
fine similarity slowly. One weight per profile rather than per dimension: a hundred
per-tag weights learned from a few hundred steps ranked worse than the plain cosine they
could express (the term alone, people Recall@10 0.27 against 0.29 per profile; cosine
0.34). Training fits the six weights, with the past-outings weights, to convergence before
it starts and then holds them (``train/pair_terms.py``): left to Adam they grew alike and
the coarse-category weight ended at a third of the fine-tag one, which blurred the ranking
of new partners. With ``pair_terms: learn`` they start at zero and act through a fixed
``SCALE`` (in effect a larger learning rate for six numbers; unscaled, a few hundred steps
left them near 0.2).

The people flow also retrieves by the match: :meth:`TasteMatch.people_vectors` scales each
profile by the square root of its weight, so the dot product of two users' vectors is the
match (averaged over the two logits, negative weights counted as zero) and an inner-product
index over them returns the best-matching people of a city.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphrec_pipeline.widths import Widths

SCALE = 100.0
N_PROFILES = 3  # categories, tags, vibes


def user_tastes(cat_pref: Tensor, fine_pref: Tensor, vibe_pref: Tensor) -> Tensor:
    """(n, 136) tastes: each preference profile scaled to unit length (zero stays zero)."""
    return torch.cat([F.normalize(p.float(), dim=-1) for p in (cat_pref, fine_pref, vibe_pref)], dim=-1)


class TasteMatch(nn.Module):
    """One learned weight per profile and output logit (module doc)."""

    def __init__(self, n_out: int, widths: Widths):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_out, N_PROFILES))
        blocks = torch.repeat_interleave(torch.arange(N_PROFILES), torch.tensor(widths.profiles))
        self.register_buffer("profile_sum", nn.functional.one_hot(blocks).float(), persistent=False)  # (136, 3)

    def cosines(self, t_a: Tensor, t_b: Tensor) -> Tensor:
        """(..., 3) cosines of the two users' profiles, for broadcastable (..., 136) tastes."""
        return (t_a * t_b) @ self.profile_sum

    def forward(self, t_a: Tensor, t_b: Tensor) -> Tensor:
        """(..., n_out) for broadcastable ``t_a`` and ``t_b`` (..., 136)."""
        return self.cosines(t_a, t_b) @ (SCALE * self.weight).T

    @torch.no_grad()
    def people_vectors(self, tastes: Tensor) -> Tensor:
        """(n, 136) retrieval vectors: ``r_u . r_v`` is the match averaged over the outputs,
        each profile's weight clipped at zero (module doc)."""
        weight = (SCALE * self.weight).mean(0).clamp_min(0.0)  # (3,)
        return tastes * (self.profile_sum @ weight.sqrt())
