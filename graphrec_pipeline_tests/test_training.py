"""Training mechanics: no supervised edge carries a message in its own step, early stopping
restores the best state, the time cap stops, settings come from one place."""

import copy

import dagster as dg
import numpy as np
import pytest
import torch

from graphrec_pipeline.graph.build import PU, UP, UU, pair_key
from graphrec_pipeline.model.config import ModelConfig
from graphrec_pipeline.model.graphrec import GraphRec
from graphrec_pipeline.train.sampler import NeighborSampler
from graphrec_pipeline.train.trainer import TrainConfig, train, train_step
from graphrec_pipeline_tests.conftest import TINY


def _model() -> GraphRec:
    torch.manual_seed(0)
    return GraphRec(ModelConfig(n_cities=TINY.n_cities))


@pytest.mark.parametrize("mode", ["full", "minibatch"])
def test_supervised_edges_carry_no_message_in_their_step(tiny_data, mode):
    cfg = TrainConfig(place_examples=512, friend_examples=256, mode=mode, fanouts=(10, 5))
    model = _model()
    seen = {}
    embed, loss = model.embed, model.loss
    model.embed = lambda g: (seen.__setitem__("graph", g), embed(g))[1]
    model.loss = lambda zu, zp, xu, xp, places, friends, people: (
        seen.update(places=places, friends=friends, people=people), loss(zu, zp, xu, xp, places, friends, people))[1]
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


def test_people_examples_pair_a_partner_with_someone_else_of_the_city(tiny_data):
    from graphrec_pipeline.train.trainer import partner_examples

    data = tiny_data
    cfg = TrainConfig(partner_examples=2_000, partner_neighbor_rate=0.5)
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


def test_gains_below_min_delta_do_not_keep_training_going(tiny_data):
    scores = iter([0.3, 0.3004, 0.3008, 0.5])
    cfg = TrainConfig(max_epochs=4, steps_per_epoch=1, place_examples=256, friend_examples=128, patience=2,
                      min_delta=1e-3)
    result = train(ModelConfig(n_cities=TINY.n_cities), tiny_data, cfg, lambda m: next(scores), log=lambda m: None)
    assert len(result.history) == 3 and result.stopped_by == "patience"
    assert result.best_epoch == 3  # the best state is kept even though its gain was too small to go on


def test_the_time_cap_stops_training(tiny_data):
    cfg = TrainConfig(max_epochs=50, steps_per_epoch=1, place_examples=256, friend_examples=128, patience=50,
                      max_minutes=1e-6)
    ticks = iter(np.linspace(0.1, 0.9, 50))
    result = train(ModelConfig(n_cities=TINY.n_cities), tiny_data, cfg, lambda m: next(ticks), log=lambda m: None)
    assert len(result.history) == 1 and result.stopped_by == "time cap"


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
                      n_places=tiny_data.n_places)
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


def test_a_sampled_subgraph_carries_its_global_ids(tiny_data):
    sampler = NeighborSampler(tiny_data.graph, (4, 2))
    seeds = {"user": np.array([3, 5]), "place": np.array([7])}
    allowed = {rel: np.ones(tiny_data.graph[rel].num_edges, bool) for rel in (UP, PU, UU)}
    sub, nodes = sampler.subgraph(seeds, allowed, np.random.default_rng(0))
    for t in ("user", "place"):
        assert torch.equal(sub[t].n_id, torch.from_numpy(nodes[t]))
        assert torch.equal(sub[t].x, tiny_data.graph[t].x[sub[t].n_id])
