"""Training mechanics: no supervised edge carries a message in its own step, early stopping
restores the best state, the time cap stops, settings come from one place."""

import copy

import dagster as dg
import numpy as np
import pytest
import torch

from graphrec_pipeline.graph.build import pair_key
from graphrec_pipeline.artifacts.graph import PU, UP, UU
from graphrec_pipeline.model.config import ModelConfig
from graphrec_pipeline.model.graphrec import GraphRec
from graphrec_pipeline.train.sampler import NeighborSampler
from graphrec_pipeline.train.trainer import TrainConfig, train, train_step
from graphrec_pipeline_tests.conftest import TINY


def _model(data=None) -> GraphRec:
    """Without ``data``: no ID embeddings; with it, ID embeddings sized to its graph."""
    torch.manual_seed(0)
    sizes = {} if data is None else {"n_users": data.n_users, "n_places": data.n_places}
    return GraphRec(ModelConfig(n_cities=TINY.n_cities, **sizes))


def _global(g, kind: str, local: torch.Tensor) -> np.ndarray:
    return (g[kind].n_id[local] if "n_id" in g[kind] else local).numpy()


@pytest.mark.parametrize("mode", ["full", "minibatch"])
def test_supervised_edges_carry_no_message_in_their_step(tiny_data, mode):
    """Neither the GNN's messages nor the ID embeddings' propagation use an edge that the
    step supervises."""
    cfg = TrainConfig(place_examples=512, friend_examples=256, mode=mode, fanouts=(10, 5))
    model = _model(tiny_data)
    seen = {}
    embed, loss, id_table = model.embed, model.loss, model.id_table
    model.embed = lambda g, ids=None: (seen.update(graph=g), embed(g, ids))[1]
    model.id_table = lambda adj: (seen.update(adj=adj), id_table(adj))[1]
    model.loss = lambda zu, zp, xu, xp, places, friends, people, *ids: (
        seen.update(places=places, friends=friends, people=people), loss(zu, zp, xu, xp, places, friends, people, *ids))[1]
    sampler = NeighborSampler(tiny_data.graph, cfg.fanouts) if mode == "minibatch" else None
    opt = torch.optim.AdamW(model.parameters())
    for _ in range(3):
        train_step(model, opt, tiny_data, cfg, np.random.default_rng(0), sampler)
        g, places, friends, people = seen["graph"], seen["places"], seen["friends"], seen["people"]
        n_u, n_p = g["user"].num_nodes, g["place"].num_nodes
        up = g[UP].edge_index.numpy()
        message = up[0].astype(np.int64) * n_p + up[1]
        supervised = places["user"].numpy().astype(np.int64) * n_p + places["pos"].numpy()
        assert len(supervised) > 0 and not np.isin(supervised, message).any()
        pu = g[PU].edge_index.numpy()
        assert not np.isin(supervised, pu[1].astype(np.int64) * n_p + pu[0]).any()
        uu = g[UU].edge_index.numpy()
        pairs = pair_key(friends["u"].numpy(), friends["v"].numpy(), n_u)
        assert len(pairs) > 0 and not np.isin(pair_key(uu[0], uu[1], n_u), pairs).any()
        for other in ("v", "neg"):  # the partner's tie, and the other person's
            pairs = pair_key(people["u"].numpy(), people[other].numpy(), n_u)
            assert len(pairs) > 0 and not np.isin(pair_key(uu[0], uu[1], n_u), pairs).any()
        adj = seen["adj"].to_dense()
        users, pos = _global(g, "user", places["user"]), _global(g, "place", places["pos"]) + tiny_data.n_users
        assert (adj[users, pos] == 0).all() and (adj[pos, users] == 0).all()
        fu, fv = _global(g, "user", friends["u"]), _global(g, "user", friends["v"])
        assert (adj[fu, fv] == 0).all() and (adj[fv, fu] == 0).all()
        assert (adj > 0).sum() > 0.5 * 2 * len(tiny_data.edge_user)  # the rest of the graph is there


def test_people_examples_pair_a_partner_with_someone_else_of_the_city(tiny_data):
    from graphrec_pipeline.train.trainer import partner_examples

    data = tiny_data
    cfg = TrainConfig(partner_examples=2_000, partner_neighbor_rate=0.5, partner_past_rate=0.0)
    batch = partner_examples(data, cfg, np.random.default_rng(0))
    u, v, neg = (batch[k].numpy() for k in ("u", "v", "neg"))
    keys, counts = np.unique(data.outing_keys, return_counts=True)
    went_out = dict(zip(keys.tolist(), counts.tolist()))
    assert all(went_out.get(int(k), 0) >= cfg.partner_min_outings for k in pair_key(u, v, data.n_users))
    went_with = np.isin(pair_key(u, neg, data.n_users), keys) | (neg == u)
    assert went_with.mean() < 0.01, "the other person is almost never the user or someone they went out with"
    assert (data.user_city[neg] == data.user_city[u]).all()
    social = np.isin(pair_key(u, neg, data.n_users), data.social_keys)
    assert 0.2 < social.mean() < 0.9, "about half the other people are the user's social neighbours"
    assert (u == v).sum() == 0 and 0.3 < (u < v).mean() < 0.7, "both orientations of a pair"
    # one outing each, drawn uniformly: a pair turns up as often as it went out
    partner_counts = counts[counts >= cfg.partner_min_outings]
    per_outing = (partner_counts**2).sum() / partner_counts.sum()
    drawn = np.array([went_out[int(k)] for k in pair_key(u, v, data.n_users)]).mean()
    assert abs(drawn - per_outing) < 0.25 * (per_outing - partner_counts.mean()), (drawn, per_outing, partner_counts.mean())


def test_people_examples_rank_one_outing_against_other_partners_with_the_counts_before_it(tiny_data):
    """With ``partner_past_rate``, part of the other people are the user's other partners
    (never the outing's partner), and both sides carry how many places the user had been
    to with them before the outing: fewer than the pair's training total for the partner,
    more than nothing for some, and nothing for people the user never went out with."""
    from graphrec_pipeline.train.trainer import partner_examples

    data = tiny_data
    batch = partner_examples(data, TrainConfig(partner_examples=2_000, partner_past_rate=0.5), np.random.default_rng(0))
    u, v, neg = (batch[k].numpy() for k in ("u", "v", "neg"))
    history_v, history_neg = batch["history_v"].numpy(), batch["history_neg"].numpy()
    keys, counts = np.unique(data.outing_keys, return_counts=True)
    total = dict(zip(keys.tolist(), counts.tolist()))
    total_v = np.array([total[int(k)] for k in pair_key(u, v, data.n_users)])
    total_neg = np.array([total.get(int(k), 0) for k in pair_key(u, neg, data.n_users)])
    assert (neg != v).all()
    assert 0.1 < (total_neg > 0).mean() < 0.6, "a share of the other people are the user's other partners"
    assert (history_v >= 0).all() and (history_v < total_v).all(), "only outings before this one count"
    assert (history_v > 0).mean() > 0.2
    assert (history_neg <= total_neg).all() and (history_neg[total_neg == 0] == 0).all()
    assert (history_neg > 0).any()


def test_counts_before_an_hour_match_the_co_attendance_table(tiny_world, tiny_data):
    """``pair_history_before`` against places first co-attended before the hour, counted
    with Polars from the training interactions."""
    import polars as pl

    from graphrec_pipeline import coattendance
    from graphrec_pipeline.graph.split import SplitConfig, interaction_split
    from graphrec_pipeline.train.data import pair_history_before

    inter = tiny_world["interactions"]
    train = inter.filter(interaction_split(inter, SplitConfig())["split"] == "train")
    table = coattendance.co_attended_places(train).with_columns(hour=pl.col("first").dt.epoch("s") // 3600)
    rng = np.random.default_rng(0)
    pick = table.sample(300, seed=0)
    hours = pick["hour"].to_numpy() + rng.integers(-200, 200, len(pick))
    queries = pick.select("user_u", "user_v").with_columns(at=pl.Series(hours), row=pl.int_range(pl.len()))
    expected = (queries.join(table, on=["user_u", "user_v"]).filter(pl.col("hour") < pl.col("at"))
                .group_by("row").len().join(queries, on="row", how="right").sort("row")["len"].fill_null(0))
    u, v = queries["user_u"].to_numpy(), queries["user_v"].to_numpy()
    got = pair_history_before(tiny_data, v, u, hours)  # either order
    assert got.tolist() == expected.to_list()
    assert 0 < np.count_nonzero(got) < len(got)
    assert pair_history_before(tiny_data, u, u, hours).sum() == 0


def test_friend_examples_carry_each_pairs_training_period_outings(tiny_data):
    from graphrec_pipeline.train.trainer import friend_examples

    data = tiny_data
    rows = np.arange(len(data.label_u))
    batch = friend_examples(data, rows, TrainConfig(), np.random.default_rng(0))
    keys, counts = np.unique(data.outing_keys, return_counts=True)
    went_out = dict(zip(keys.tolist(), counts.tolist()))
    expected = [went_out.get(int(k), 0) for k in pair_key(batch["u"].numpy(), batch["v"].numpy(), data.n_users)]
    assert batch["history"].tolist() == expected
    assert 0 < np.count_nonzero(expected) < len(expected)


def test_early_stopping_restores_the_best_state(tiny_data):
    scores = iter([0.1, 0.3, 0.2, 0.15, 0.9])
    states = []

    def validate(model):
        states.append(copy.deepcopy(model.state_dict()))
        return next(scores)

    cfg = TrainConfig(max_epochs=5, steps_per_epoch=1, place_examples=256, friend_examples=128, patience=2)
    result = train(ModelConfig(n_cities=TINY.n_cities), tiny_data, cfg, validate, log=lambda m: None)
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4]  # two epochs without gain, then stop
    assert result.best_epoch == 2 and result.best_val_ndcg == pytest.approx(0.3)
    best, last = states[1], states[3]
    final = result.model.state_dict()
    assert all(torch.equal(final[k], best[k]) for k in best)
    assert any(not torch.equal(final[k], last[k]) for k in last)


@pytest.mark.parametrize("scale", [1.0, 0.01])
def test_gains_below_min_gain_do_not_keep_training_going(tiny_data, scale):
    """The rule is relative: the same run of scores stops alike whatever the NDCG scale."""
    scores = iter([scale * s for s in (0.3, 0.306, 0.312, 0.5)])  # gains of 2% and 1.96%, then a jump
    cfg = TrainConfig(max_epochs=4, steps_per_epoch=1, place_examples=256, friend_examples=128, patience=2,
                      min_gain=0.025)
    result = train(ModelConfig(n_cities=TINY.n_cities), tiny_data, cfg, lambda m: next(scores), log=lambda m: None)
    assert len(result.history) == 3 and result.stopped_by == "patience"
    assert result.best_epoch == 3  # the best state is kept even though its gain was too small to go on



def test_a_validation_s_parts_reach_the_history_and_only_its_score_decides(tiny_data):
    from graphrec_pipeline.train.trainer import Validation

    checks = iter([Validation(0.2, {"val_a": 0.9}), Validation(0.5, {"val_a": 0.1}), Validation(0.4, {"val_a": 0.99})])
    cfg = TrainConfig(max_epochs=3, steps_per_epoch=1, place_examples=256, friend_examples=128, patience=5)
    result = train(ModelConfig(n_cities=TINY.n_cities), tiny_data, cfg, lambda m: next(checks), log=lambda m: None)
    assert [h["val_a"] for h in result.history] == [0.9, 0.1, 0.99]
    assert [h["val_ndcg20"] for h in result.history] == [0.2, 0.5, 0.4] and result.best_epoch == 2

def test_the_time_cap_stops_training(tiny_data):
    """The cap reads the injected clock: 40 s an epoch against a one-minute cap."""
    cfg = TrainConfig(max_epochs=50, steps_per_epoch=1, place_examples=256, friend_examples=128, patience=50,
                      max_minutes=1.0)
    ticks = iter(np.linspace(0.1, 0.9, 50))
    clock = iter(np.arange(0.0, 10_000.0, 20.0))  # two readings an epoch (the step's progress, the check)
    result = train(ModelConfig(n_cities=TINY.n_cities), tiny_data, cfg, lambda m: next(ticks), log=lambda m: None,
                   clock=lambda: next(clock))
    assert len(result.history) == 2 and result.stopped_by == "time cap"


def test_a_mistyped_mode_is_rejected_before_anything_runs():
    from graphrec_pipeline.definitions import defs

    job = defs.resolve_job_def("full_pipeline")
    with pytest.raises(dg.DagsterInvalidConfigError, match="minbatch"):
        dg.validate_run_config(job, {"ops": {"graphrec_model": {"config": {"mode": "minbatch"}}}})
    dg.validate_run_config(job, {"ops": {"graphrec_model": {"config": {"mode": "minibatch", "fanouts": [5, 5]}}}})


def test_training_settings_defaults_are_the_dataclasses_own():
    from graphrec_pipeline.defs.assets.model_assets import TrainingSettings
    from graphrec_pipeline.defs.settings import build

    settings = TrainingSettings()
    assert build(TrainConfig, settings) == TrainConfig()
    assert build(ModelConfig, settings) == ModelConfig()
    changed = TrainingSettings(fanouts=[4, 3], gnn_aggr="sum", patience=7)
    assert build(TrainConfig, changed).fanouts == (4, 3) and build(TrainConfig, changed).patience == 7
    assert build(ModelConfig, changed).gnn_aggr == "sum"


def test_learning_rate_warms_up_then_decays_to_its_floor():
    from graphrec_pipeline.train.trainer import lr_factor

    cfg = TrainConfig(warmup_steps=10, decay_steps=50, min_lr_ratio=0.1)
    rates = np.array([lr_factor(s, cfg) for s in range(80)])
    assert np.all(np.diff(rates[:10]) > 0) and rates[9] == pytest.approx(1.0)
    assert np.all(np.diff(rates[10:51]) < 0)
    assert rates[50:] == pytest.approx(np.full(30, 0.1))


def test_id_embeddings_shape_known_nodes_and_new_nodes_take_the_feature_path(tiny_data):
    torch.manual_seed(0)
    cfg = ModelConfig(n_cities=TINY.n_cities, id_embeddings=True, n_users=tiny_data.n_users,
                      n_places=tiny_data.n_places, id_layers=0)
    model = GraphRec(cfg).eval()
    new, old = 3, 4
    model.user_known.fill_(True)
    model.place_known.fill_(True)
    model.place_known[new] = False  # as if place 3 had no training edges
    with torch.no_grad():
        before = model.encode(tiny_data.graph)["place"]
        model.place_id.weight[[new, old]] += 1.0
        after = model.encode(tiny_data.graph)["place"]
    assert torch.equal(before[new], after[new])  # a place without training edges: features only
    assert not torch.allclose(before[old], after[old])


def test_propagated_id_embeddings_reach_the_neighbourhood_and_no_further(tiny_data):
    """With ``id_layers`` = 1, a place's ID embedding moves its visitors' layer-0 states
    and nobody else's; a user's own embedding reaches their friends."""
    torch.manual_seed(0)
    g = tiny_data.graph
    cfg = ModelConfig(n_cities=TINY.n_cities, n_users=tiny_data.n_users, n_places=tiny_data.n_places, id_layers=1)
    model = GraphRec(cfg).eval()
    model.user_known.fill_(True)
    model.place_known.fill_(True)
    place, user = 7, int(g[UU].edge_index[0, 0])
    visitors = np.unique(g[UP].edge_index[0, g[UP].edge_index[1] == place].numpy())
    friends = np.unique(g[UU].edge_index[1, g[UU].edge_index[0] == user].numpy())
    with torch.no_grad():
        before = model.encode(g)
        model.place_id.weight[place] += 1.0
        model.user_id.weight[user] += 1.0
        after = model.encode(g)
    moved = (before["user"] - after["user"]).abs().sum(1) > 0
    assert len(visitors) > 0 and moved[visitors].all() and moved[friends].all()
    assert set(np.flatnonzero(moved.numpy())) == set(visitors) | set(friends) | {user}


def test_a_sampled_subgraph_carries_its_global_ids(tiny_data):
    sampler = NeighborSampler(tiny_data.graph, (4, 2))
    seeds = {"user": np.array([3, 5]), "place": np.array([7])}
    allowed = {rel: np.ones(tiny_data.graph[rel].num_edges, bool) for rel in (UP, PU, UU)}
    sub, nodes = sampler.subgraph(seeds, allowed, np.random.default_rng(0))
    for t in ("user", "place"):
        assert torch.equal(sub[t].n_id, torch.from_numpy(nodes[t]))
        assert torch.equal(sub[t].x, tiny_data.graph[t].x[sub[t].n_id])



def test_the_last_layer_skips_edges_no_seed_reads(tiny_data):
    """Edges drawn at the second hop lead into nodes whose last-layer state no seed reads:
    the last layer skips them, and the seeds' embeddings are exactly those of passing every
    edge to every layer."""
    sampler = NeighborSampler(tiny_data.graph, (4, 2))
    seeds = {"user": np.arange(0, 40, 3), "place": np.arange(0, 30, 4)}
    allowed = {rel: np.ones(tiny_data.graph[rel].num_edges, bool) for rel in (UP, PU, UU)}
    sub, nodes = sampler.subgraph(seeds, allowed, np.random.default_rng(0))
    model = _model(tiny_data).eval()
    ids = model.whole_graph_ids(tiny_data.graph)
    passed = []
    convs = [conv.convs[UU] for conv in model.backbone.convs]
    for conv in convs:
        forward = conv.forward
        conv.forward = lambda x, edge_index, edge_attr, forward=forward: (passed.append(edge_index.shape[1]),
                                                                           forward(x, edge_index, edge_attr))[1]
    with torch.no_grad():
        trimmed = model.embed(sub, ids)
        hops = {rel: sub[rel].edge_hop for rel in (UP, PU, UU)}
        for rel in hops:
            del sub[rel].edge_hop
        whole = model.embed(sub, ids)
    n_social = len(hops[UU])
    assert passed == [n_social, int((hops[UU] == 1).sum()), n_social, n_social]
    assert 0 < passed[1] < n_social
    for kind, z_trimmed, z_whole in zip(("user", "place"), trimmed, whole):
        local = np.searchsorted(nodes[kind], np.unique(seeds[kind]))
        assert torch.equal(z_trimmed[local], z_whole[local])
        assert not torch.equal(z_trimmed, z_whole)  # others differ: their last-layer states are not computed

def _logistic_world(n: int, rng):
    """Taste cosines where the coarse profile echoes the fine one but says nothing itself."""
    fine = rng.random(n)
    cos = np.stack([0.7 * fine + 0.3 * rng.random(n), fine, rng.random(n)], axis=1)
    return torch.tensor(cos, dtype=torch.float32)


def test_the_pair_term_fit_recovers_the_weights_that_drew_the_labels():
    from graphrec_pipeline.train.pair_terms import PairTermExamples, fit_logistic_terms

    rng = np.random.default_rng(0)
    n = 40_000
    true_w = torch.tensor([[0.0, 6.0, 0.0], [0.0, 4.0, -1.0]])
    true_h = torch.tensor([1.5, 0.8])
    cos, other = _logistic_world(n, rng), _logistic_world(n, rng)
    history = torch.log1p(torch.tensor(rng.poisson(1.0, n), dtype=torch.float32))
    logits = cos @ true_w.T + history[:, None] * true_h - 3.0
    labels = torch.bernoulli(torch.sigmoid(logits), generator=torch.Generator().manual_seed(0))
    partner_history = torch.log1p(torch.tensor(rng.poisson(1.0, n), dtype=torch.float32))
    other_history = torch.log1p(torch.tensor(rng.poisson(1.0, n), dtype=torch.float32))
    first = torch.rand(n, generator=torch.Generator().manual_seed(1)) < torch.sigmoid(
        (cos - other) @ true_w[0] + (partner_history - other_history) * true_h[0])
    pick = lambda a, b: torch.where(first[:, None] if a.dim() == 2 else first, a, b)  # noqa: E731
    ex = PairTermExamples(label_cos=cos, label_history=history, compat=labels[:, 0], attend=labels[:, 1],
                          partner_cos=pick(cos, other), partner_history=pick(partner_history, other_history),
                          other_cos=pick(other, cos), other_history=pick(other_history, partner_history))
    w, h = fit_logistic_terms(ex, (1.0, 1.0, 0.0))  # the labels alone: each logit its own weights
    assert torch.allclose(w, true_w, atol=0.6) and torch.allclose(h, true_h, atol=0.2), (w, h)
    w, h = fit_logistic_terms(ex, (0.0, 0.0, 1.0))  # the people ranking alone: both logits the partner's rule
    assert torch.allclose(w, true_w[[0, 0]], atol=0.6) and torch.allclose(h, true_h[[0, 0]], atol=0.2), (w, h)
    assert w[:, 0].abs().max() < 0.6 < 5.0 < w[:, 1].min()  # the echo of the fine profile earns no weight
    w, h = fit_logistic_terms(ex, (1.0, 1.0, 0.0), fit_history=False)
    assert h.abs().max() == 0.0


@pytest.mark.parametrize("how", ["fit", "learn"])
def test_fitted_pair_terms_are_held_while_learned_ones_move(tiny_data, how):
    cfg = TrainConfig(max_epochs=1, steps_per_epoch=3, place_examples=256, friend_examples=128,
                      partner_examples=128, pair_terms=how, pair_fit_examples=4_096)
    result = train(ModelConfig(n_cities=TINY.n_cities), tiny_data, cfg, lambda m: 0.1, log=lambda m: None)
    model = result.model
    weights = 100.0 * model.taste_match.weight.detach()
    if how == "fit":
        assert torch.allclose(weights, torch.tensor(result.pair_terms["taste"]), atol=1e-3)  # held through 3 steps
        assert (weights[:, 1] > 0).all() and model.history_weights()[1] > 0  # people alike in fine tags, past outings
        assert not model.taste_match.weight.requires_grad
    else:
        assert result.pair_terms == {} and weights.abs().sum() > 0  # Adam moved them from zero


def test_lightgcn_propagation_and_its_gradient_equal_pygs():
    """The symmetric sparse product (its backward reuses the matrix) computes what PyG's
    ``LightGCN.get_embedding`` does, value and gradient."""
    from torch_geometric.nn import LightGCN
    from torch_geometric.nn.conv.gcn_conv import gcn_norm
    from torch_geometric.utils import to_torch_csr_tensor, to_undirected

    from graphrec_pipeline.evaluation.baselines import propagate

    torch.manual_seed(0)
    edge_index = to_undirected(torch.randint(0, 30, (2, 120)), num_nodes=30)
    edge_index, weight = gcn_norm(edge_index, num_nodes=30, add_self_loops=False)
    adj = to_torch_csr_tensor(edge_index, weight, size=(30, 30))
    model = LightGCN(30, 8, 3, normalize=False)
    target = torch.randn(30, 8)

    ours = propagate(model, adj)
    (ours * target).sum().backward()
    ours_grad, model.embedding.weight.grad = model.embedding.weight.grad.clone(), None
    theirs = model.get_embedding(adj)
    (theirs * target).sum().backward()
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(ours_grad, model.embedding.weight.grad)
    assert ours_grad.abs().sum() > 0


def test_lightgcn_stops_by_patience_and_keeps_its_best_check(tiny_data):
    """A scripted validation: the best check is the second, two without a gain stop it."""
    from graphrec_pipeline.evaluation.baselines import LightGCNSettings, train_lightgcn

    scores = iter([0.10, 0.30, 0.20, 0.25, 0.9])
    kept = []

    def validate(u, p):
        kept.append(u.copy())
        return next(scores)

    settings = LightGCNSettings(steps=500, batch=256, eval_every=5, patience=2)
    result = train_lightgcn(tiny_data, settings, validate=validate)
    assert (result.stopped_by, result.steps, result.best_step, result.best_val_ndcg) == ("patience", 20, 10, 0.30)
    np.testing.assert_array_equal(result.user, kept[1])
    assert result.user.shape == (tiny_data.n_users, 64) and result.place.shape == (tiny_data.n_places, 64)


def test_lightgcn_time_cap_reads_the_injected_clock(tiny_data):
    from graphrec_pipeline.evaluation.baselines import LightGCNSettings, train_lightgcn

    clock = iter(np.arange(0.0, 1000.0, 7.0))  # each reading 7 s after the last
    settings = LightGCNSettings(steps=500, batch=256, eval_every=5, patience=100, max_minutes=0.5)
    result = train_lightgcn(tiny_data, settings, validate=lambda u, p: float(u.sum() % 1), clock=lambda: next(clock))
    assert result.stopped_by == "time cap" and result.steps < 500


def test_lightgcn_embeddings_are_refused_for_another_graph_and_kept_for_the_same(tiny_data, tmp_path):
    from graphrec_pipeline.artifacts.lightgcn import current_lightgcn, load_lightgcn, save_lightgcn
    from graphrec_pipeline.evaluation.baselines import LightGCNSettings, train_lightgcn, training_key
    from graphrec_pipeline.artifacts import GRAPH_FILE
    from graphrec_pipeline.storage import Storage

    store = Storage(tmp_path / "r")
    with pytest.raises(FileNotFoundError, match="materialize lightgcn_baseline"):
        load_lightgcn(store)
    store.write_bytes(GRAPH_FILE, b"graph one")
    settings = LightGCNSettings(steps=3, batch=128)
    key = training_key(store, settings, "code-a", 2, 3.0)
    assert current_lightgcn(store, key) is None
    result = train_lightgcn(tiny_data, settings)
    save_lightgcn(store, result.user, result.place, {**key, **result.summary()})
    user, place = load_lightgcn(store)
    np.testing.assert_array_equal(user, result.user)
    assert result.stopped_by == "steps" and result.best_val_ndcg is None
    assert current_lightgcn(store, key)["steps"] == 3
    for changed in (training_key(store, LightGCNSettings(steps=4, batch=128), "code-a", 2, 3.0),
                    training_key(store, settings, "code-b", 2, 3.0), training_key(store, settings, "code-a", 1, 3.0),
                    training_key(store, settings, "code-a", 2, 4.0)):
        assert current_lightgcn(store, changed) is None
    store.write_bytes(GRAPH_FILE, b"graph two")
    assert current_lightgcn(store, training_key(store, settings, "code-a", 2, 3.0)) is None
    with pytest.raises(ValueError, match="another training graph: materialize lightgcn_baseline"):
        load_lightgcn(store)
