"""Edge features shape messages; the graph holds no held-out data; training learns."""


import numpy as np
import polars as pl
import pytest
import torch

from graphrec_pipeline.metrics import pair_keys, ranking_metrics
from graphrec_pipeline.evaluation.two_stage import two_stage_top_k
from graphrec_pipeline.graph.build import build_graph, pair_key
from graphrec_pipeline.artifacts.graph import UP, UU, graph_from_tensors, graph_to_tensors
from graphrec_pipeline.graph.leakage import leakage_report
from graphrec_pipeline.model.config import ModelConfig
from graphrec_pipeline.model.context import context_raw
from graphrec_pipeline.model.conv import EdgeAwareConv
from graphrec_pipeline.model.dropout import Dropout
from graphrec_pipeline.model.graphrec import GraphRec
from graphrec_pipeline.model.preference import SCALE, PreferenceMatch, place_sides, retrieval_vectors, user_sides
from graphrec_pipeline.model.scoring import Scorer
from graphrec_pipeline.storage import Storage
from graphrec_pipeline.model.saved import load_model, save_model
from graphrec_pipeline.widths import Widths


@pytest.mark.parametrize("aggr", ["mean", "sum", "attention"])
def test_changing_one_edge_changes_its_endpoints_only(aggr):
    torch.manual_seed(0)
    conv = EdgeAwareConv((8, 8), 8, edge_dim=3, aggr=aggr)
    x_src, x_dst = torch.randn(5, 8), torch.randn(4, 8)
    edge_index = torch.tensor([[0, 1, 2, 3, 4], [0, 0, 1, 2, 3]])
    attr = torch.rand(5, 3)
    before = conv((x_src, x_dst), edge_index, attr)
    attr2 = attr.clone()
    attr2[1] += 1.0  # edge 1 -> 0
    after = conv((x_src, x_dst), edge_index, attr2)
    assert not torch.allclose(before[0], after[0])
    torch.testing.assert_close(before[1:], after[1:])


@pytest.mark.parametrize("aggr", ["mean", "attention"])
def test_edge_features_reach_both_endpoints_in_the_model(trained, aggr):
    graph = trained["inputs"].graph
    torch.manual_seed(0)
    model = GraphRec(ModelConfig(n_cities=trained["cfg"].n_cities, gnn_aggr=aggr)).eval()
    with torch.no_grad():
        zu, zp = model.embed(graph)
        changed = graph_from_tensors({k: v.clone() for k, v in graph_to_tensors(graph).items()})
        u, p = (int(i) for i in changed[UP].edge_index[:, 0])
        changed[UP].edge_attr[0] = 1.0 - changed[UP].edge_attr[0]
        rev = int(((changed["place", "rev_interacts", "user"].edge_index[0] == p)
                   & (changed["place", "rev_interacts", "user"].edge_index[1] == u)).nonzero()[0])
        changed["place", "rev_interacts", "user"].edge_attr[rev] = changed[UP].edge_attr[0]
        zu2, zp2 = model.embed(changed)
    assert not torch.allclose(zu[u], zu2[u]) and not torch.allclose(zp[p], zp2[p])


def test_training_graph_holds_no_heldout_pairs(trained):
    inputs = trained["inputs"]
    report = _leakage(trained, graph_to_tensors(inputs.graph))
    assert report == {k: 0 for k in report}
    assert inputs.graph[UU].edge_index.shape[1] > 0


def _leakage(trained, tensors):
    inputs = trained["inputs"]
    return leakage_report(tensors, inputs.users, inputs.interactions, inputs.split, inputs.labels, inputs.edges,
                          inputs.friend_split, trained["cfg"].neighborhoods_per_city)


def test_leakage_check_catches_a_leaky_graph(trained):
    inputs = trained["inputs"]
    everything = inputs.split.with_columns(split=pl.lit("train"))
    all_friends = inputs.friend_split.with_columns(split=pl.lit("train"))
    leaky = build_graph(inputs.users, inputs.places, inputs.interactions, everything, trained["world"]["user_user_edges"],
                        all_friends, trained["cfg"].neighborhoods_per_city)
    report = _leakage(trained, graph_to_tensors(leaky))
    assert report["heldout_interactions_as_interacts_edges"] > 0
    assert report["heldout_friend_pairs_as_social_edges"] > 0


def test_leakage_check_catches_full_horizon_co_attendance_in_one_feature(trained):
    """The old graph: social edges with the world table's co-attendance, counted over the
    whole horizon. Only the feature values leak; the check must still fail."""
    inputs = trained["inputs"]
    tensors = graph_to_tensors(inputs.graph)
    world_edges = inputs.edges
    uu = tensors["user__social__user.edge_index"].numpy()
    n = len(inputs.users)
    keys = pair_key(world_edges["user_u"].to_numpy(), world_edges["user_v"].to_numpy(), n)
    order = np.argsort(keys)
    pos = order[np.searchsorted(keys, pair_key(uu[0], uu[1], n), sorter=order)]
    leaky_attr = tensors["user__social__user.edge_attr"].clone()
    leaky_attr[:, 1] = torch.from_numpy(np.minimum(world_edges["co_attendance_count"].to_numpy()[pos] / 10.0, 1.0)
                                        .astype(np.float32))
    changed = int((leaky_attr[:, 1] != tensors["user__social__user.edge_attr"][:, 1]).sum())
    assert changed > 0, "the 1k world should have co-attendance in held-out time"
    report = _leakage(trained, {**tensors, "user__social__user.edge_attr": leaky_attr})
    assert report["social_features_not_from_training"] == changed
    assert report["heldout_friend_pairs_as_social_edges"] == 0


def _val_ndcg(trained, scorer_like) -> float:
    inputs = trained["inputs"]
    n_places = len(inputs.places)
    data = inputs.training_data(trained["split_cfg"].positive_rating)
    train = inputs.train_pairs()
    seen = np.sort(pair_keys(train["user_id"].to_numpy(), train["place_id"].to_numpy(), n_places))
    val = trained["val"]
    keep = data.user_city[val["user_id"].to_numpy()] == data.place_city[val["place_id"].to_numpy()]
    val = val.filter(pl.Series(keep))
    relevant = np.sort(pair_keys(val["user_id"].to_numpy(), val["place_id"].to_numpy(), n_places))
    n_rel = np.bincount(val["user_id"].to_numpy(), minlength=len(data.user_city))
    users = np.flatnonzero(n_rel > 0)
    ranked = two_stage_top_k(scorer_like, users, data.user_city, data.place_city, seen)
    return ranking_metrics(ranked, users, relevant, n_rel[users], n_places, 20)["ndcg"]


def test_training_lowers_loss_and_beats_random(trained):
    history = trained["result"].history
    assert history[-1]["total"] < 0.8 * history[0]["total"]
    learned = _val_ndcg(trained, Scorer.from_graph(trained["result"].model, trained["inputs"].graph))
    rng = np.random.default_rng(0)

    class RandomScorer:
        def dot(self, u, p):
            return rng.random((len(u), len(p)))

        def head_candidates(self, u, c, ctx=None):
            return rng.random(c.shape)

    # Measured on the 1k world: 0.128 against random's 0.060 with the preference match (0.106
    # before it, 0.100 vs 0.073 with lr 1e-3); assert a third of the smallest gap.
    assert learned > _val_ndcg(trained, RandomScorer()) + 0.009


def test_save_and_load_give_identical_scores(trained, tmp_path):
    store = Storage(tmp_path)
    model = trained["result"].model
    save_model(store, model)
    loaded = load_model(store)
    graph = trained["inputs"].graph
    a, b = Scorer.from_graph(model, graph), Scorer.from_graph(loaded, graph)
    users, places = np.arange(50), np.arange(200)
    np.testing.assert_array_equal(a.head(users, places), b.head(users, places))
    np.testing.assert_array_equal(a.friend(users, users[::-1])[0], b.friend(users, users[::-1])[0])


def test_weights_of_another_model_version_are_refused_by_name(trained, tmp_path):
    from graphrec_pipeline.artifacts import MODEL_WEIGHTS
    from graphrec_pipeline.model.saved import ModelMismatchError

    store = Storage(tmp_path)
    save_model(store, trained["result"].model)
    older = {k: v for k, v in store.read_tensors(MODEL_WEIGHTS).items() if not k.startswith("taste_match.")}
    store.write_tensors(MODEL_WEIGHTS, older)
    with pytest.raises(ModelMismatchError, match=r"missing \['taste_match.weight'\].*materialize 'graphrec_model'"):
        load_model(store)


def test_preference_match_reads_each_block_and_keys_neighbourhoods_on_their_city():
    """m(u, p) = w_cat <cat_u / |cat_u|, cat_p / sum> + w_tag cos + w_city [same city]
    + w_home [same (city, neighbourhood)] + w_pop pop_p; neighbourhood 2 of another city is
    not home. The query and retrieval vectors' inner product is the second output."""
    match = PreferenceMatch(2, n_cities=2, n_per_city=3, widths=Widths())
    with torch.no_grad():
        match.weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 5.0, 7.0], [0.5, 1.0, 0.0, 0.0, 2.0]]) / SCALE)
    cat_u, fine_u = np.zeros((1, 6), np.float32), np.zeros((1, 100), np.float32)
    cat_u[0, 1], fine_u[0, [4, 9]] = 2.0, 1.0
    user = user_sides(cat_u, fine_u, [1], [2], 2, 3)
    cats, tags = np.zeros((4, 6), np.float32), np.zeros((4, 100), np.float32)
    cats[:, 1], cats[1, 3], tags[:, 4] = 1.0, 1.0, 1.0
    places = place_sides(cats, tags, [1, 1, 0, 1], [2, 0, 2, 2], [0.5, 0.0, 0.0, 1.0], 2, 3)
    got = match(user, places)
    cos, home_city = 2**-0.5, torch.tensor([1.0, 1.0, 0.0, 1.0])
    want = (torch.tensor([1.0, 0.5, 1.0, 1.0]) * 1.0 + 2.0 * cos + 3.0 * home_city
            + 5.0 * torch.tensor([1.0, 0.0, 0.0, 1.0]) + 7.0 * torch.tensor([0.5, 0.0, 0.0, 1.0]))
    torch.testing.assert_close(got[:, 0], want)
    z_u, z_p = torch.randn(1, 8), torch.randn(4, 8)
    dot = (match.query_vectors(z_u, user) @ retrieval_vectors(z_p, places).T)[0]
    torch.testing.assert_close(dot, (z_u @ z_p.T)[0] / 8**0.5 + got[:, 1].detach())


def test_scorer_head_equals_the_models_place_score(trained):
    """Evaluation and validation rank with the factorized heads: the same logits as
    ``place_score`` on concatenated pair features, for a block and for candidate rows."""
    scorer = Scorer.from_graph(trained["result"].model, trained["inputs"].graph)
    model, rng = scorer.model, np.random.default_rng(1)
    users, places = rng.choice(1000, 40, replace=False), rng.choice(1000, 70, replace=False)
    ctx = context_raw(Widths(), 1, time_slot=np.array([3]), tags=np.eye(100, dtype=np.float32)[[7]])[0]
    uu, pp = torch.from_numpy(np.repeat(users, 70)), torch.from_numpy(np.tile(places, 40))
    with torch.no_grad():
        want = model.place_score(scorer.z_user[uu], scorer.z_place[pp], torch.from_numpy(ctx).expand(len(uu), -1),
                                 scorer.place_desc[pp], scorer.s_user[uu], scorer.s_place[pp], scorer.e_user[uu],
                                 scorer.e_place[pp]).numpy().reshape(40, 70)
        retrieval = model.retrieval_score(scorer.z_user[uu], scorer.z_place[pp], scorer.s_user[uu], scorer.s_place[pp],
                                          scorer.e_user[uu], scorer.e_place[pp])
    assert scorer.e_user.shape[1] > 0 and scorer.e_user.abs().sum() > 0  # the collaborative term is in both
    np.testing.assert_allclose(scorer.dot(users, places), retrieval.numpy().reshape(40, 70), atol=1e-5)
    np.testing.assert_allclose(scorer.head(users, places, ctx), want, atol=1e-5)
    rows = np.stack([rng.permutation(places) for _ in users])
    got = scorer.head_candidates(users, rows, ctx)
    np.testing.assert_allclose(got, np.take_along_axis(want, np.argsort(places)[np.searchsorted(np.sort(places), rows)], 1),
                               atol=1e-5)


def test_matching_time_slot_raises_the_score(trained):
    """Asking for a time slot lifts places whose typical slot it is, relative to the rest.

    (Under BPR a context's main effect on all places cancels, so only the relative lift is
    identifiable; it is what changes a ranking.)"""
    scorer = Scorer.from_graph(trained["result"].model, trained["inputs"].graph)
    slots = trained["inputs"].places.sort("place_id")["typical_time_slot"].to_numpy()
    users = np.arange(0, 1000, 5)
    sample = np.random.default_rng(0).choice(len(slots), 500, replace=False)
    base = scorer.head(users, sample)
    lifts = []
    for slot in range(6):
        delta = scorer.head(users, sample, context_raw(Widths(), 1, time_slot=np.array([slot]))[0]) - base
        own = slots[sample] == slot
        lifts.append(delta[:, own].mean() - delta[:, ~own].mean())
    assert np.mean(lifts) > 0 and sum(lift > 0 for lift in lifts) >= 5, lifts


def test_friend_head_separates_compatible_pairs(trained):
    from graphrec_pipeline.metrics import roc_auc

    inputs = trained["inputs"]
    val = inputs.labels.with_columns(split=inputs.friend_split["split"]).filter(pl.col("split") != "train")
    scorer = Scorer.from_graph(trained["result"].model, inputs.graph)
    compat, _ = scorer.friend(val["user_u"].to_numpy(), val["user_v"].to_numpy())
    assert roc_auc(val["label_compat"].to_numpy(), compat) > 0.8


@pytest.mark.xfail(strict=True, reason=(
    "known regression in the latent-taste world: co-attending pairs are alike in latent taste, often not in "
    "stated taste, and the additive history term ranks them above stated-alike pairs the §2.6 rule prefers "
    "(default scale: 0.595 with the term, 0.605 without, ceiling 0.641; docs/benchmarks.md)"))
def test_past_outings_lift_attendance_of_held_out_pairs(trained):
    """The learned weight on a pair's training-period co-attendance is positive and ranks
    attendance among compatible held-out pairs better than the same model without it
    (the world draws attendance from co-attendance, §2.6)."""
    from graphrec_pipeline.evaluation.run import training_history
    from graphrec_pipeline.metrics import roc_auc

    inputs = trained["inputs"]
    labels = inputs.labels.with_columns(split=inputs.friend_split["split"]).filter(
        (pl.col("split") != "train") & (pl.col("label_compat") == 1))
    u, v, y = (labels[c].to_numpy() for c in ("user_u", "user_v", "label_attend"))
    scorer = Scorer.from_graph(trained["result"].model, inputs.graph)
    history = training_history(inputs)(u, v)
    with_history = roc_auc(y, scorer.friend(u, v, history=history)[1])
    without = roc_auc(y, scorer.friend(u, v)[1])
    print(f"attendance AUC within compatible held-out pairs: {with_history:.3f} with past outings, {without:.3f} "
          f"without; weights {trained['result'].model.history_weights().tolist()}; {np.mean(history > 0):.2f} went out")
    assert trained["result"].model.history_weights()[1] > 0
    assert with_history > without


@pytest.mark.parametrize("mode", ["full", "minibatch"])
def test_training_is_deterministic_on_cpu(trained, mode):
    from graphrec_pipeline.train.sampler import NeighborSampler
    from graphrec_pipeline.train.trainer import TrainConfig, train_step

    data = trained["inputs"].training_data(trained["split_cfg"].positive_rating)
    cfg = TrainConfig(place_examples=512, friend_examples=256, mode=mode, fanouts=(5, 3))

    def run():
        torch.use_deterministic_algorithms(True)
        torch.manual_seed(0)
        model = GraphRec(ModelConfig(n_cities=trained["cfg"].n_cities))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        rng = np.random.default_rng(0)
        sampler = NeighborSampler(data.graph, cfg.fanouts) if mode == "minibatch" else None
        losses = [train_step(model, opt, data, cfg, rng, sampler)["total"] for _ in range(3)]
        return losses, model.state_dict()

    (la, a), (lb, b) = run(), run()
    assert la == lb
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_training_labels_drop_positives_only_held_out_co_attendance_explains(trained):
    from graphrec_pipeline.train.data import visible_training_labels
    from graphrec_pipeline.world.social import POSITIVE_OVERLAP, fine_pref_unit, pair_overlap

    inputs = trained["inputs"]
    train = inputs.labels.with_columns(split=inputs.friend_split["split"]).filter(pl.col("split") == "train")
    kept = visible_training_labels(inputs.labels, inputs.friend_split, inputs.users, inputs.graph)
    dropped = train.join(kept, on=["user_u", "user_v"], how="anti")
    assert len(dropped) > 0, "the 1k world has pairs that co-attend only after training"
    assert (dropped["label_compat"] == 1).all()
    unit = fine_pref_unit(inputs.users)
    assert (pair_overlap(unit, dropped["user_u"].to_numpy(), dropped["user_v"].to_numpy()) < POSITIVE_OVERLAP).all()
    assert (kept["label_compat"] == 0).sum() == (train["label_compat"] == 0).sum()


def test_dropout_zeroes_p_scales_the_rest_and_follows_the_torch_seed():
    x = torch.ones(400, 500, requires_grad=True)
    drop = Dropout(0.2)
    torch.manual_seed(3)
    y = drop(x)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 0.2) < 0.01 and torch.allclose(y[y != 0], torch.tensor(1.25))
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # the gradient is the mask times the scale
    torch.manual_seed(3)
    assert torch.equal(drop(x), y) and not torch.equal(drop(x), y)  # same seed, same mask; then a new one
    assert drop.eval()(x) is x
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(1.0)


def test_user_segments_split_users_by_activity_and_friends(trained):
    """cold / warm / heavy partition the users by training-period interactions; social
    users are those with at least five friends in the training graph."""
    from graphrec_pipeline.evaluation.run import COLD_MAX_VISITS, HEAVY_MIN_VISITS, segment_groups, user_segments

    inputs = trained["inputs"]
    train = inputs.interactions.filter(inputs.split["split"] == "train")
    seg = user_segments(inputs, train)
    assert (seg["cold"].astype(int) + seg["warm"] + seg["heavy"] == 1).all()
    visits = np.bincount(train["user_id"].to_numpy(), minlength=len(inputs.users))
    assert (visits[seg["cold"]] <= COLD_MAX_VISITS).all() and (visits[seg["heavy"]] >= HEAVY_MIN_VISITS).all()
    friends = np.bincount(inputs.graph[UU].edge_index[0].numpy(), minlength=len(inputs.users))
    assert seg["social"].any() and (friends[seg["social"]] >= 5).all() and (friends[~seg["social"]] < 5).all()
    positives = pl.DataFrame({"user_id": np.arange(len(inputs.users)), "place_id": np.zeros(len(inputs.users), np.int64)})
    groups = segment_groups("place", positives, seg)
    assert len(groups["place_users_social"][0]) == seg["social"].sum()
