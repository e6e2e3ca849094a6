"""The trained heads, evaluated for users against many candidates at speed (serving, and
the evaluation and validation that rank whole cities).

A head is an MLP on ``f = [z_a, z_b, z_a * z_b, |z_a - z_b|, ctx]``. Its first layer
``W f + b`` splits by the blocks of ``W = [A | B | C | D | E]``:

.. math::
    W f + b = \\underbrace{A z_a}_{\\text{per user}}
            + \\underbrace{E\\,ctx + b}_{\\text{per context}}
            + \\underbrace{B z_b}_{\\text{per item, at load}}
            + (C \\operatorname{diag}(z_a))\\, z_b + D\\, |z_a - z_b|

so a query multiplies two (m, d) matrices instead of one (m, 4d + c), and heads that share
their input (compatibility and attendance) run as one matrix product. The place score's
context terms, ``(M c) . z_b / sqrt(d)`` and ``sum_i w_i c_i d_{b,i}``, are one product per
query each, and the preference match (``model/preference.py``) one product of the
item's side with the user's weighted side per row. What depends on the context alone
(``E ctx + b``, ``M c / sqrt(d)``, ``w * c``) is kept for the last contexts seen: most queries repeat a few ("none" above all). The
output equals the model's scores (tested to float tolerance); the model itself stays the
reference.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

from graphrec_pipeline.model.context import ContextEncoder, ContextMatch

CONTEXTS_KEPT = 256


class PairHeads:
    """Heads sharing one context encoder and one item table, scored for one ``z_a`` per row.

    Args:
        heads: the MLPs (``nn.Sequential`` starting with a ``Linear`` on ``4 d + c`` inputs).
        context: the context encoder whose output is the ``ctx`` block.
        items: (n, d) embeddings of everything that can be a ``z_b``.
        match: the bilinear context match ``M`` added to every head's logit, if any.
        context_match: the per-dimension match on item descriptors, with ``descriptors``
            (n, 112), if any.
        sides: (n, side_dim) the items' sides of a preference match, if any; each call then
            passes the users' weighted sides.
    """

    def __init__(self, heads: list[nn.Sequential], context: ContextEncoder, items: Tensor,
                 match: nn.Linear | None = None, context_match: ContextMatch | None = None,
                 descriptors: Tensor | None = None, sides: Tensor | None = None):
        d = items.shape[1]
        self.d, self.context, self.items, self.match = d, context, items, match
        self.context_match, self.descriptors, self.sides = context_match, descriptors, sides
        firsts = [h[0] for h in heads]
        weight = torch.cat([f.weight.detach() for f in firsts])  # (sum h, 4d + c)
        self.sizes = [f.out_features for f in firsts]
        self.a_t, self.e = weight[:, :d].T.contiguous(), weight[:, 4 * d :].contiguous()
        self.c_t = weight[:, 2 * d : 3 * d].T.contiguous()
        self.d_t = weight[:, 3 * d : 4 * d].T.contiguous()
        self.bias = torch.cat([f.bias.detach() for f in firsts])
        with torch.inference_mode():
            self.item_part = items @ weight[:, d : 2 * d].T  # (n, sum h)
        self.rests = [[(m.weight.detach().T.contiguous(), m.bias.detach()) for m in h[1:] if isinstance(m, nn.Linear)]
                      for h in heads]
        self._contexts: OrderedDict[bytes, tuple[Tensor, Tensor | None, Tensor | None]] = OrderedDict()

    def __repr__(self) -> str:
        return f"PairHeads(heads={len(self.sizes)}, hidden={self.sizes}, d={self.d}, items={len(self.item_part)})"

    @torch.inference_mode()
    def context_terms(self, ctx_raw: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """For one raw context (112,): ``E ctx + b`` (sum h,), the bilinear match's item
        weights ``M c / sqrt(d)`` (d,) and the descriptor weights ``w * c`` (112,) (None
        for terms the heads lack), kept for the last ``CONTEXTS_KEPT`` contexts."""
        key = ctx_raw.numpy().tobytes()
        found = self._contexts.get(key)
        if found is not None:
            self._contexts.move_to_end(key)
            return found
        first = self.e @ self.context(ctx_raw[None])[0] + self.bias
        match = self.match(ctx_raw) * self.d**-0.5 if self.match is not None else None
        described = ctx_raw * self.context_match.weight if self.context_match is not None else None
        self._contexts[key] = found = (first, match, described)
        if len(self._contexts) > CONTEXTS_KEPT:
            self._contexts.popitem(last=False)
        return found

    @torch.inference_mode()
    def __call__(self, z_a: Tensor, ctx_raw: Tensor, items: Tensor, side_a: Tensor | None = None) -> list[Tensor]:
        """Logits of each head, (b, m): row i scores ``z_a[i]`` against the items ``items[i]``
        of the item table, all under one raw context (112,); ``side_a`` (b, side_dim): the
        users' weighted sides when the heads have a preference match. The heads' layers are
        Linear + ReLU (dropout is the identity at inference)."""
        b, m = items.shape
        flat_items = items.reshape(-1)
        first, match, described = self.context_terms(ctx_raw)
        z_b = self.items.index_select(0, flat_items).view(b, m, self.d)
        bonus = (z_b @ match) if match is not None else 0.0
        if described is not None:
            bonus = bonus + (self.descriptors.index_select(0, flat_items) @ described).view(b, m)
        if side_a is not None:
            bonus = bonus + torch.bmm(self.sides.index_select(0, flat_items).view(b, m, -1), side_a[:, :, None])[..., 0]
        flat = self.item_part.index_select(0, flat_items)  # (b m, sum h)
        hidden = flat.view(b, m, -1)
        hidden.add_(torch.addmm(first, z_a, self.a_t)[:, None, :])
        hidden.baddbmm_(z_b, z_a[:, :, None] * self.c_t)  # C diag(z_a) z_b
        flat.addmm_(z_b.sub_(z_a[:, None, :]).abs_().view(b * m, self.d), self.d_t)
        out = []
        for layers, h in zip(self.rests, flat.split(self.sizes, dim=1), strict=True):
            h = h.relu()
            for i, (w_t, bias) in enumerate(layers):
                h = torch.addmm(bias, h, w_t)
                if i < len(layers) - 1:
                    h = h.relu_()
            out.append(h.view(b, m) + bonus)
        return out
