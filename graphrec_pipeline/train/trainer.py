"""Joint training of the place and friend heads (§5), seeded and deterministic on CPU.

Every step re-draws which training edges are supervised: a ``supervision_fraction`` of the
interaction edges become the step's place examples and are removed from the graph the
step propagates over, and the social edges of the step's friend-label pairs are removed
too, so no loss is ever computed on an edge that carried a message in the same step. The
default ``minibatch`` mode propagates over a 2-hop neighbour sample around the step's
nodes (``fanouts`` per hop, mean aggregation sees an unbiased sample of each
neighbourhood); a step costs a third of a full-graph one at the default scale, so
training takes three times the steps in the same time. ``full`` propagates over a random
``message_keep`` share of the remaining edges (DropEdge). The learning rate warms up
linearly, then decays (cosine) to a floor, after which validation flattens and patience
ends the run.

Place examples are BPR triples (user, positive, negative) with the negative drawn from
the positive's city (optionally of the same coarse category, and a ``cross_city_rate``
share from anywhere so that other cities rank low too), never a place the user has a
training edge to. The query context is the interaction's time slot and the positive's
categories and tags, each part dropped with ``context_dropout`` so queries without
context are trained too; the mismatching context of the in-context loss replaces each
part given by another slot or the negative's categories and tags. Friend examples take
as context a place the pair went to together in training (none if they never did).
Early stopping watches validation NDCG@20 of the serving flow (top-M by the retrieval
score, re-scored by the head), with and without each visit's time slot.

With ID embeddings, each step also propagates them over the whole training graph minus
the step's supervised edges and held-out ties (``model/collaborative.py``) and adds a BPR
on the ID parts alone over ``id_examples`` supervised pairs, at ``id_learning_rate``.
"""

from __future__ import annotations

import copy
import math
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from graphrec_pipeline.defaults import RETRIEVAL_CANDIDATES
from graphrec_pipeline.compute_threads import use_compute_threads
from graphrec_pipeline.constants import N_TIME_SLOTS
from graphrec_pipeline.graph.build import pair_key
from graphrec_pipeline.artifacts.graph import PU, UP, UU
from graphrec_pipeline.model.collaborative import IdGraph
from graphrec_pipeline.model.config import ModelConfig
from graphrec_pipeline.model.context import context_raw, describe_places
from graphrec_pipeline.model.graphrec import GraphRec
from graphrec_pipeline.progress import Progress
from graphrec_pipeline.train.data import (
    TrainingData,
    as_tensor,
    pair_history_before,
    pair_places,
    sample_negatives,
    sample_people,
)
from graphrec_pipeline.train.ranks import Ranks, peak_rss_gb
from graphrec_pipeline.train.pair_terms import fit_pair_terms
from graphrec_pipeline.train.sampler import NeighborSampler


@dataclass(frozen=True)
class TrainConfig:
    max_epochs: int = 40
    steps_per_epoch: int = 30
    place_examples: int = 4_096  # BPR triples per step
    friend_examples: int = 1_024  # labelled pairs per step
    partner_examples: int = 1_024  # people triples per step: (user, training-period partner, other person)
    partner_min_outings: int = 2  # distinct places a pair went to together to count as partners
    partner_neighbor_rate: float = 0.5  # share of the other people drawn from the user's social neighbours
    partner_past_rate: float = 0.3  # share drawn from the user's other training-period partners
    pair_terms: Literal["fit", "learn"] = "fit"  # the friend logits' linear terms: fit by L-BFGS first, then held (train/pair_terms.py), or learn by Adam with the rest
    pair_fit_examples: int = 65_536  # labelled pairs and people triples each for that fit
    supervision_fraction: float = 0.2
    id_examples: int = 65_536  # BPR pairs per step on the ID parts alone (supervised edges, drawn with replacement)
    message_keep: float = 0.3  # full mode: share of the other training edges a step propagates over (DropEdge)
    hard_negative_rate: float = 0.0  # share of negatives from the positive's coarse category
    cross_city_rate: float = 0.1  # share of negatives from any city
    context_dropout: float = 0.5
    max_grad_norm: float = 5.0
    warmup_steps: int = 30  # linear warm-up of the learning rate
    decay_steps: int = 240  # then cosine decay to min_lr_ratio x lr by this step, flat after
    min_lr_ratio: float = 0.1
    mode: Literal["full", "minibatch"] = "minibatch"  # 2-hop neighbour-sampled subgraphs; full: the whole graph
    fanouts: tuple[int, ...] = (10, 5)
    eval_users: int = 1_000
    retrieval_candidates: int = RETRIEVAL_CANDIDATES
    patience: int = 2  # epochs without a gain of at least min_gain before stopping
    min_gain: float = 0.025  # relative to the best validation NDCG so far: a world's NDCG scale does not matter
    max_minutes: float = 15.0  # a safety net; the stopping rule is patience (the cap depends on the machine: 8 bound on a slow 2-core one)
    seed: int = 0
    ranks: int = 1  # data-parallel processes (train/distributed.py); the batch sizes above are global
    backend: Literal["auto", "gloo", "nccl"] = "auto"  # auto: nccl with GPUs, else gloo


@dataclass(frozen=True)
class Validation:
    """What a validator may return instead of a bare float: ``score`` (validation NDCG@20)
    is what early stopping reads, ``parts`` are reported beside it in the history."""

    score: float
    parts: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, value: "float | Validation") -> "Validation":
        return value if isinstance(value, Validation) else cls(float(value))


@dataclass
class TrainResult:
    model: GraphRec
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_val_ndcg: float = 0.0
    seconds: float = 0.0
    stopped_by: str = "max_epochs"  # or "patience" or "time cap"
    ranks: int = 1
    ranks_agree: bool = True  # every rank ended with the same weights
    peak_rss_gb: list[float] = field(default_factory=list)  # per rank
    pair_terms: dict[str, list] = field(default_factory=dict)  # fitted before training (cfg.pair_terms == "fit")


def _drop_edges(graph, keep_up: torch.Tensor, keep_uu: torch.Tensor):
    step = graph.__class__()
    for t in ("user", "place"):
        step[t].x = graph[t].x
    step[UP].edge_index = graph[UP].edge_index[:, keep_up]
    step[UP].edge_attr = graph[UP].edge_attr[keep_up]
    step[PU].edge_index = graph[PU].edge_index[:, keep_up]
    step[PU].edge_attr = graph[PU].edge_attr[keep_up]
    step[UU].edge_index = graph[UU].edge_index[:, keep_uu]
    step[UU].edge_attr = graph[UU].edge_attr[keep_uu]
    return step


def place_examples(data: TrainingData, edges: np.ndarray, cfg: TrainConfig, rng) -> dict[str, torch.Tensor]:
    user, pos = data.edge_user[edges], data.edge_place[edges]
    neg = sample_negatives(data, user, pos, rng, cfg.cross_city_rate)
    if cfg.hard_negative_rate > 0:
        hard = rng.random(len(pos)) < cfg.hard_negative_rate
        tries = sample_negatives(data, user[hard], pos[hard], rng)
        same_cat = (data.place_category[tries] * data.place_category[pos[hard]]).sum(1) > 0
        neg[np.flatnonzero(hard)[same_cat]] = tries[same_cat]
    n = len(edges)
    keep = [rng.random(n) >= cfg.context_dropout for _ in range(3)]  # slot, categories, tags
    slot = np.where(keep[0], data.edge_slot[edges], -1)
    other = (data.edge_slot[edges] + rng.integers(1, N_TIME_SLOTS, n)) % N_TIME_SLOTS
    ctx = context_raw(data.widths, n, time_slot=slot, categories=data.place_category[pos] * keep[1][:, None],
                      tags=data.place_tags[pos] * keep[2][:, None])
    wrong = context_raw(data.widths, n, time_slot=np.where(keep[0], other, -1),
                        categories=data.place_category[neg] * keep[1][:, None], tags=data.place_tags[neg] * keep[2][:, None])
    x_place = data.graph["place"].x
    return {"user": as_tensor(user), "pos": as_tensor(pos), "neg": as_tensor(neg),
            "pos_desc": describe_places(x_place[as_tensor(pos)], data.widths),
            "neg_desc": describe_places(x_place[as_tensor(neg)], data.widths),
            "ctx": as_tensor(ctx, torch.float32),
            "ctx_wrong": as_tensor(wrong, torch.float32), "has_ctx": torch.from_numpy(keep[0] | keep[1] | keep[2])}


def friend_examples(data: TrainingData, rows: np.ndarray, cfg: TrainConfig, rng) -> dict[str, torch.Tensor]:
    """Context: a place the pair went to together in training, as the outing's target;
    history: how many places they went to together in training."""
    u, v = data.label_u[rows], data.label_v[rows]
    target = pair_places(data, u, v, rng)
    has = (target >= 0) & (rng.random(len(u)) >= cfg.context_dropout)
    target = np.maximum(target, 0)
    ctx = context_raw(data.widths, len(u), categories=data.place_category[target] * has[:, None],
                      tags=data.place_tags[target] * has[:, None])
    return {
        "u": as_tensor(u), "v": as_tensor(v), "ctx": as_tensor(ctx, torch.float32),
        "compat": as_tensor(data.label_compat[rows], torch.float32),
        "attend": as_tensor(data.label_attend[rows], torch.float32),
        "history": as_tensor(data.history(u, v), torch.float32),
    }


def partner_examples(data: TrainingData, cfg: TrainConfig, rng) -> dict[str, torch.Tensor]:
    """People triples for one outing of the training period, drawn uniformly from the
    outings of pairs who went out at ``partner_min_outings`` places or more (so a pair
    counts as often as it went out): a user, the partner they went with, and another person
    of their city (``sample_people``: some of them the user's other partners); context: the
    outing's place; history: how many places the user had been to with each of the two
    before that outing. The people flow ranks exactly this way."""
    outings = data.partner_outings(cfg.partner_min_outings)
    if len(outings) == 0 or cfg.partner_examples == 0:
        return {}
    outing = outings[rng.integers(0, len(outings), cfg.partner_examples)]
    a, b = data.outing_keys[outing] // data.n_users, data.outing_keys[outing] % data.n_users
    flip = rng.random(len(outing)) < 0.5
    u, v = np.where(flip, b, a), np.where(flip, a, b)
    neg = sample_people(data, u, v, rng, cfg.partner_neighbor_rate, cfg.partner_past_rate)
    target, hour = data.outing_places[outing], data.outing_hours[outing]
    has = rng.random(len(u)) >= cfg.context_dropout
    ctx = context_raw(data.widths, len(u), categories=data.place_category[target] * has[:, None],
                      tags=data.place_tags[target] * has[:, None])
    return {"u": as_tensor(u), "v": as_tensor(v), "neg": as_tensor(neg), "ctx": as_tensor(ctx, torch.float32),
            "history_v": as_tensor(pair_history_before(data, u, v, hour), torch.float32),
            "history_neg": as_tensor(pair_history_before(data, u, neg, hour), torch.float32)}


def _localize(batch: dict[str, torch.Tensor], keys: tuple[str, ...], nodes: np.ndarray) -> dict[str, torch.Tensor]:
    return {k: (torch.from_numpy(np.searchsorted(nodes, v.numpy())) if k in keys else v) for k, v in batch.items()}


def train_step(
    model: GraphRec, opt, data: TrainingData, cfg: TrainConfig, rng, sampler: NeighborSampler | None = None,
    ranks: Ranks = Ranks(), id_graph: IdGraph | None = None,
) -> dict[str, float]:
    """One optimizer step. ``id_graph``: the training graph's ID adjacency when the model
    propagates ID embeddings (``model/collaborative.py``); the step's supervised
    interaction edges and held-out social ties carry no ID messages either."""
    n_edges = len(data.edge_user)
    supervised = rng.random(n_edges) < cfg.supervision_fraction
    candidates = np.flatnonzero(supervised & data.edge_positive)
    edges = rng.choice(candidates, size=min(cfg.place_examples, len(candidates)), replace=False)
    rows = rng.choice(len(data.label_u), size=min(cfg.friend_examples, len(data.label_u)), replace=False)
    places_b = place_examples(data, edges, cfg, rng)
    friends_b = friend_examples(data, rows, cfg, rng)
    people_b = partner_examples(data, cfg, rng)
    held = [pair_key(data.label_u[rows], data.label_v[rows], data.n_users)]
    if people_b:  # neither the partner's nor the other person's tie may carry a message
        u = people_b["u"].numpy()
        held += [pair_key(u, people_b["v"].numpy(), data.n_users), pair_key(u, people_b["neg"].numpy(), data.n_users)]
    keep_uu = ~np.isin(data.social_keys, np.concatenate(held))

    model.train()
    if id_graph is None and model.has_ids and model.cfg.id_layers > 0:
        id_graph = IdGraph.of(data.graph)
    ids = None if id_graph is None else model.id_table(id_graph.adjacency(np.concatenate([~supervised, keep_uu])))
    if sampler is None:
        message = ~supervised & (rng.random(n_edges) < cfg.message_keep)
        keep_uu &= rng.random(len(keep_uu)) < cfg.message_keep
        z_user, z_place = model.embed(_drop_edges(data.graph, torch.from_numpy(message), torch.from_numpy(keep_uu)),
                                      ids)
        x_user, x_place = data.graph["user"].x, data.graph["place"].x
    else:
        seeds = {
            "user": np.concatenate([places_b["user"].numpy(), friends_b["u"].numpy(), friends_b["v"].numpy(),
                                    *(t.numpy() for t in (people_b.get(k) for k in ("u", "v", "neg")) if t is not None)]),
            "place": np.concatenate([places_b["pos"].numpy(), places_b["neg"].numpy()]),
        }
        allowed = {UP: ~supervised, PU: ~supervised, UU: keep_uu}
        sub, nodes = sampler.subgraph(seeds, allowed, rng)
        z_user, z_place = model.embed(sub, ids)
        x_user, x_place = sub["user"].x, sub["place"].x
        places_b = _localize(_localize(places_b, ("user",), nodes["user"]), ("pos", "neg"), nodes["place"])
        friends_b = _localize(friends_b, ("u", "v"), nodes["user"])
        people_b = _localize(people_b, ("u", "v", "neg"), nodes["user"])
    e_user, e_place = model.id_rows(sub if sampler is not None else data.graph, ids)
    losses = model.loss(z_user, z_place, x_user, x_place, places_b, friends_b, people_b, e_user, e_place)
    if ids is not None and cfg.id_examples > 0:
        losses["id"] = model.id_loss(ids, id_examples(data, candidates, cfg.id_examples, rng))
        losses["total"] = losses["total"] + model.cfg.lambda_id * losses["id"]
    opt.zero_grad()
    losses["total"].backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    ranks.average_gradients(trainable)
    torch.nn.utils.clip_grad_norm_(trainable, cfg.max_grad_norm)
    opt.step()
    return ranks.mean({k: float(v.detach()) for k, v in losses.items()})


def id_examples(data: TrainingData, positives: np.ndarray, size: int, rng) -> dict[str, torch.Tensor]:
    """BPR triples for the ID parts: the step's supervised positive edges (``positives``,
    edge ids, drawn with replacement) and a negative of the positive's city the user never
    went to."""
    picked = rng.choice(positives, size=size)
    user, pos = data.edge_user[picked], data.edge_place[picked]
    return {"user": as_tensor(user), "pos": as_tensor(pos), "neg": as_tensor(sample_negatives(data, user, pos, rng))}


def parameter_groups(model: GraphRec) -> list[dict]:
    """The ID tables learn at ``id_learning_rate`` (each row moves only through its own
    neighbourhood, as LightGCN's do), everything else at ``learning_rate``."""
    ids = [p for name, p in model.named_parameters() if name in ("user_id.weight", "place_id.weight")]
    rest = [p for name, p in model.named_parameters()
            if p.requires_grad and name not in ("user_id.weight", "place_id.weight")]
    return [{"params": rest}] + ([{"params": ids, "lr": model.cfg.id_learning_rate}] if ids else [])


PAIR_FIT_STREAM = 1 << 20  # a random stream of its own, apart from every rank's ([seed, rank])


def fit_pair_terms_for(model: GraphRec, data: TrainingData, cfg: TrainConfig) -> dict[str, list]:
    """Fit the friend logits' linear terms (``train/pair_terms.py``) on ``pair_fit_examples``
    labelled pairs and people triples, drawn from a stream of their own so that every rank
    fits the same values."""
    rng = np.random.default_rng([cfg.seed, PAIR_FIT_STREAM])
    n = min(cfg.pair_fit_examples, len(data.label_u))
    friends = friend_examples(data, rng.choice(len(data.label_u), size=n, replace=False), cfg, rng)
    people = partner_examples(data, dataclasses.replace(cfg, partner_examples=cfg.pair_fit_examples), rng)
    return fit_pair_terms(model, data, friends, people)


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of the learning rate at ``step``: linear warm-up, cosine decay, then flat."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    t = min(1.0, (step - cfg.warmup_steps) / max(cfg.decay_steps - cfg.warmup_steps, 1))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def train(
    model_cfg: ModelConfig,
    data: TrainingData,
    cfg: TrainConfig,
    validate: Callable[[GraphRec], "float | Validation"],
    log: Callable[[str], None] = print,
    ranks: Ranks = Ranks(),
    clock: Callable[[], float] = time.perf_counter,
) -> TrainResult:
    """Train until validation NDCG@20 has not gained ``min_gain`` (relative) for ``patience`` epochs
    (a rule that does not depend on the machine's speed, unlike the ``max_minutes`` cap,
    measured on ``clock``), then restore the best state. ``ranks``: this process's place in
    a data-parallel group (``train/distributed.py`` starts the group, each rank running this
    function on its share of every batch)."""
    torch.use_deterministic_algorithms(True)  # CPU scatter/index_add otherwise sum in thread order
    use_compute_threads()  # and the sums of a product depend on how many threads split it
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng([cfg.seed, ranks.rank] if ranks.parallel else cfg.seed)
    step_cfg = dataclasses.replace(cfg, place_examples=ranks.share(cfg.place_examples),
                                   friend_examples=ranks.share(cfg.friend_examples),
                                   partner_examples=ranks.share(cfg.partner_examples))
    model_cfg = model_cfg.with_widths(data.widths)
    if model_cfg.id_embeddings:
        model_cfg = dataclasses.replace(model_cfg, n_users=data.n_users, n_places=data.n_places)
    model = GraphRec(model_cfg)
    if model.has_ids:
        model.user_known.copy_(torch.from_numpy(np.bincount(data.edge_user, minlength=data.n_users) > 0))
        model.place_known.copy_(torch.from_numpy(np.bincount(data.edge_place, minlength=data.n_places) > 0))
    fitted = fit_pair_terms_for(model, data, cfg) if cfg.pair_terms == "fit" else {}
    if fitted:
        log(f"friend logits' linear terms fitted: taste {fitted['taste']}, history {fitted['history']}")
    id_graph = IdGraph.of(data.graph) if model.has_ids and model_cfg.id_layers > 0 else None
    ranks.sync_parameters(model)
    opt = torch.optim.AdamW(parameter_groups(model), lr=model_cfg.learning_rate, weight_decay=model_cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, cfg))
    result = TrainResult(model=model, ranks=ranks.world, pair_terms=fitted)
    sampler = NeighborSampler(data.graph, cfg.fanouts) if cfg.mode == "minibatch" else None
    best_state, since_best = None, 0
    start = clock()
    progress = Progress("training", cfg.max_epochs * cfg.steps_per_epoch, log, deadline_seconds=60 * cfg.max_minutes,
                        clock=clock)
    for epoch in range(1, cfg.max_epochs + 1):
        parts = []
        for _ in range(cfg.steps_per_epoch):
            parts.append(train_step(model, opt, data, step_cfg, rng, sampler, ranks, id_graph))
            schedule.step()
            progress.update(note=f"epoch {epoch}, loss {parts[-1]['total']:.4f}")
        mean = {k: float(np.mean([p[k] for p in parts])) for k in parts[0]}
        checked = Validation.of(validate(model)) if ranks.rank == 0 else Validation(0.0)  # rank 0 decides, for all
        ndcg, elapsed = ranks.from_rank0(checked.score, clock() - start)
        result.history.append({"epoch": epoch, "val_ndcg20": ndcg, **checked.parts,
                               "seconds": elapsed, "lr": opt.param_groups[0]["lr"], **mean})
        parts_text = ", ".join(f"{k} {v:.4f}" for k, v in mean.items() if k != "total")
        log(f"epoch {epoch}: loss {mean['total']:.4f} ({parts_text}) val NDCG@20 {ndcg:.4f} [{elapsed:.0f}s]")
        since_best = 0 if ndcg >= result.best_val_ndcg * (1 + cfg.min_gain) else since_best + 1
        if ndcg > result.best_val_ndcg:  # keep the best state, even when its gain is too small to go on
            result.best_val_ndcg, result.best_epoch = ndcg, epoch
            best_state = copy.deepcopy(model.state_dict())
        if since_best >= cfg.patience:
            result.stopped_by = "patience"
            break
        if elapsed > 60 * cfg.max_minutes:
            result.stopped_by = "time cap"
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    result.ranks_agree = ranks.agree(model)
    result.peak_rss_gb = [round(gb, 2) for gb in ranks.gather(peak_rss_gb())]
    result.seconds = clock() - start
    return result
