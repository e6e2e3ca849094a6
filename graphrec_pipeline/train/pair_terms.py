"""The friend logits' linear terms, fitted to convergence before training.

Both friend logits add a learned match of the two users' tastes (one weight per profile:
coarse categories, fine tags, vibes; ``model/taste.py``) and a learned weight on the pair's
past co-attendance (``GraphRec.history_terms``): eight numbers. Left to Adam inside the
joint training, a few hundred steps move each of them by about the learning rate per step
whatever its gradient says, so they grow alike: the coarse-category cosine ended at a
third of the fine-tag weight, although the world pairs people by their fine tags alone,
and blurred the ranking of new partners (``docs/benchmarks.md``, ninth pass).

:func:`fit_pair_terms` fits them instead as what they are, a logistic model with eight
weights: the same compatibility and attendance BCE and people BPR as training, with the
same weights (``ModelConfig.lambda_*``), over many more examples than one step sees, the
rest of each logit held at zero; L-BFGS solves it in seconds. Training then holds them
fixed and the pair MLPs learn what the embeddings add to them.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from graphrec_pipeline.model.graphrec import HISTORY_SCALE, GraphRec
from graphrec_pipeline.model.taste import SCALE as TASTE_SCALE
from graphrec_pipeline.train.data import TrainingData


@dataclasses.dataclass(frozen=True)
class PairTermExamples:
    """Features of the fit: taste cosines (n, 3) and ``log(1 + n_uv)`` (n,) of the
    labelled pairs with their labels, and of the people triples' partner and other person."""

    label_cos: Tensor
    label_history: Tensor
    compat: Tensor
    attend: Tensor
    partner_cos: Tensor
    partner_history: Tensor
    other_cos: Tensor
    other_history: Tensor


def fit_logistic_terms(ex: PairTermExamples, lambdas: tuple[float, float, float], fit_history: bool = True,
                       max_iter: int = 200) -> tuple[Tensor, Tensor]:
    """((2, 3) taste weights, (2,) history weights) of the compatibility and attendance
    logits that minimise ``l_c BCE_c + l_a BCE_a + l_p (BPR_c + BPR_a)`` (each BCE with a
    bias of its own, which the BPR does not see); history weights stay 0 unless
    ``fit_history``."""
    l_c, l_a, l_p = lambdas
    w = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    h = torch.zeros(2, dtype=torch.float64, requires_grad=fit_history)
    b = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    params = [w, b] + ([h] if fit_history else [])
    d = {f.name: getattr(ex, f.name).double() for f in dataclasses.fields(ex)}
    diff_cos, diff_hist = d["partner_cos"] - d["other_cos"], d["partner_history"] - d["other_history"]
    if not len(d["compat"]) and not len(diff_hist):  # no social data (a log without friends): no terms
        return w.detach().float(), h.detach().float()
    opt = torch.optim.LBFGS(params, max_iter=max_iter, tolerance_grad=1e-9, tolerance_change=1e-12,
                            line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = w.new_zeros(())
        if len(d["compat"]):
            logits = d["label_cos"] @ w.T + d["label_history"][:, None] * h + b
            loss = loss + (l_c * F.binary_cross_entropy_with_logits(logits[:, 0], d["compat"])
                           + l_a * F.binary_cross_entropy_with_logits(logits[:, 1], d["attend"]))
        if len(diff_hist):
            margin = diff_cos @ w.T + diff_hist[:, None] * h
            loss = loss + l_p * F.softplus(-margin).mean(0).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().float(), h.detach().float()


def pair_term_examples(model: GraphRec, data: TrainingData, friend_batch: dict[str, Tensor],
                       people_batch: dict[str, Tensor]) -> PairTermExamples:
    """The fit's features from a friend batch and a people batch as training builds them
    (``trainer.friend_examples`` / ``trainer.partner_examples``)."""
    t = model.tastes(data.graph["user"].x)
    cosines = model.taste_match.cosines
    empty = torch.zeros(0)
    fu, fv = friend_batch["u"], friend_batch["v"]
    history = friend_batch.get("history", torch.zeros(len(fu)))
    if people_batch:
        u, v, neg = people_batch["u"], people_batch["v"], people_batch["neg"]
        people = dict(partner_cos=cosines(t[u], t[v]), partner_history=torch.log1p(people_batch["history_v"]),
                      other_cos=cosines(t[u], t[neg]), other_history=torch.log1p(people_batch["history_neg"]))
    else:
        people = dict(partner_cos=empty.reshape(0, 3), partner_history=empty, other_cos=empty.reshape(0, 3),
                      other_history=empty)
    return PairTermExamples(label_cos=cosines(t[fu], t[fv]), label_history=torch.log1p(history.float()),
                            compat=friend_batch["compat"], attend=friend_batch["attend"], **people)


@torch.no_grad()
def set_pair_terms(model: GraphRec, taste: Tensor, history: Tensor) -> None:
    """Write fitted values (in logit units) into the model's parameters and hold them fixed."""
    model.taste_match.weight.copy_(taste / TASTE_SCALE)
    model.pair_history.copy_(history / HISTORY_SCALE)
    model.taste_match.weight.requires_grad_(False)
    model.pair_history.requires_grad_(False)


def fit_pair_terms(model: GraphRec, data: TrainingData, friend_batch: dict[str, Tensor],
                   people_batch: dict[str, Tensor]) -> dict[str, list]:
    """Fit the eight linear terms (module doc), set them in ``model`` and freeze them;
    returns the values for the log."""
    cfg = model.cfg
    ex = pair_term_examples(model, data, friend_batch, people_batch)
    taste, history = fit_logistic_terms(ex, (cfg.lambda_friend, cfg.lambda_attend, cfg.lambda_partner),
                                        fit_history=cfg.pair_history)
    set_pair_terms(model, taste, history)
    return {"taste": np.round(taste.double().numpy(), 3).tolist(), "history": np.round(history.double().numpy(), 3).tolist()}
