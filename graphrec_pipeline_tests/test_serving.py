"""Serving (§6, §8): embeddings, per-city indexes, the recommender's two flows, their
filters and explanations, bad queries, stale assets, and the CLI."""

import json
from types import SimpleNamespace
import shutil
import subprocess
import sys

import dagster as dg
import numpy as np
import polars as pl
import pytest
import torch

from graphrec_pipeline.cli import main
from graphrec_pipeline.columns import dense_from_area, dense_from_list
from graphrec_pipeline.defs.resources import RecommenderResource, StorageResource
from graphrec_pipeline.artifacts.graph import load_graph
from graphrec_pipeline.model.graphrec import GraphRec
from graphrec_pipeline.model.inference import embed_in_blocks
from graphrec_pipeline.serving.ann import BACKENDS, HnswSettings, build_index, load_index, recall_at_k
from graphrec_pipeline.serving.city_indexes import IndexSettings, build_city_indexes, load_city_indexes, save_city_indexes
from graphrec_pipeline.artifacts import INDEX_POINTER as CURRENT
from graphrec_pipeline.serving.embeddings import export_embeddings
from graphrec_pipeline.artifacts.embeddings import Embeddings, load_embeddings
from graphrec_pipeline.serving.explain import label
from graphrec_pipeline.serving.query import AssetError, NoCandidatesError, PeopleQuery, PlaceQuery, QueryError
from graphrec_pipeline.serving.recommender import Recommender
from graphrec_pipeline.lineage import stamp_world
from graphrec_pipeline import release_builder
from graphrec_pipeline.release_builder import build_release
from graphrec_pipeline.releases import DataDir
from graphrec_pipeline.storage import Storage
from graphrec_pipeline.taxonomy import COARSE_CATEGORIES, FINE_TAGS, TIME_SLOTS, VIBE_TAGS
from graphrec_pipeline.model.saved import load_model, save_model

USERS = np.arange(0, 1000, 10)


@pytest.fixture(scope="module")
def rec(served) -> Recommender:
    return served["recommender"]


@pytest.mark.parametrize("aggr", ["trained", "attention"])
def test_blockwise_inference_equals_full_forward(trained, aggr):
    from graphrec_pipeline.model.config import ModelConfig

    graph = trained["inputs"].graph
    if aggr == "trained":
        model = trained["result"].model
    else:  # attention normalizes over a node's whole neighbourhood: blocks must not split it
        torch.manual_seed(0)
        model = GraphRec(ModelConfig(n_cities=8, gnn_aggr="attention"))
    model.eval()
    with torch.no_grad():
        zu, zp = model.embed(graph)
    bu, bp = embed_in_blocks(model, graph, max_edges=5_000)
    assert torch.allclose(zu, bu, atol=1e-5) and torch.allclose(zp, bp, atol=1e-5)


def test_pair_heads_equal_the_models_heads(rec, trained):
    model, rng = rec.model, np.random.default_rng(0)
    user = 11
    partners = np.flatnonzero(rec.world.history(user, np.arange(1000)))
    others = np.concatenate([partners, rng.choice(np.setdiff1d(np.arange(1000), partners), 150 - len(partners),
                                                  replace=False)])
    assert 0 < len(partners) < 150
    ctx = rec.place_flow.context(PlaceQuery(time_slot=2, categories=(3,), tags=(8, 40)))
    friend_ctx = rec.people_flow.context(PeopleQuery(target_place_id=5, activity_tags=(1,)))
    n = len(others)
    graph = trained["inputs"].graph  # descriptors, tastes and sides from the graph, as in training;
    descriptors = model.describe(graph["place"].x)  # serving reads them from the tables
    tastes = model.tastes(graph["user"].x)
    s_user, s_place = model.user_sides(graph["user"].x), model.place_sides(graph["place"].x)
    with torch.no_grad():
        e_user, e_place = model.id_rows(graph)
        expected = model.place_score(rec.z_user[user].expand(n, -1), rec.z_place[others],
                                     torch.from_numpy(ctx).expand(n, -1), descriptors[others],
                                     s_user[user].expand(n, -1), s_place[others], e_user[user].expand(n, -1),
                                     e_place[others]).numpy()
        compat, attend = model.friend_scores(rec.z_user[user].expand(n, -1), rec.z_user[others],
                                             torch.from_numpy(friend_ctx).expand(n, -1), tastes[user].expand(n, -1),
                                             tastes[others], torch.from_numpy(rec.world.history(user, others)))
        retrieval = model.retrieval_score(rec.z_user[user].expand(n, -1), rec.z_place[others],
                                          s_user[user].expand(n, -1), s_place[others], e_user[user].expand(n, -1),
                                          e_place[others]).numpy()
    np.testing.assert_allclose(rec.place_flow.scores(np.array([user]), others[None], ctx)[0], expected, atol=1e-5)
    np.testing.assert_allclose(rec.emb.r_place[others] @ rec.emb.q_user[user], retrieval, atol=1e-4)  # the index's
    # several users in one call, and a second context after the first (kept per context)
    users, none = np.array([user, 3, 500]), np.zeros_like(ctx)
    batch = rec.place_flow.scores(users, np.stack([others, others[::-1], others]), none)
    for row, (u, items) in enumerate(zip(users, [others, others[::-1], others])):
        with torch.no_grad():
            want = model.place_score(rec.z_user[u].expand(n, -1), rec.z_place[items.copy()],
                                     torch.from_numpy(none).expand(n, -1), descriptors[items.copy()],
                                     s_user[u].expand(n, -1), s_place[items.copy()], e_user[u].expand(n, -1),
                                     e_place[items.copy()]).numpy()
        np.testing.assert_allclose(batch[row], want, atol=1e-5)
    np.testing.assert_allclose(rec.place_flow.scores(np.array([user]), others[None], ctx)[0], expected, atol=1e-5)
    s_compat, p_attend, _, _ = (x[0] for x in rec.people_flow.scores(np.array([user]), others[None], friend_ctx))
    np.testing.assert_allclose(s_compat, torch.sigmoid(compat).numpy(), atol=1e-6)
    np.testing.assert_allclose(p_attend, torch.sigmoid(attend).numpy(), atol=1e-6)


def test_embedding_tables_in_duckdb(served):
    con = served["data"].connect()
    types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE place_embeddings)").fetchall())
    assert types["embedding"] == "FLOAT[128]"
    n, dim = con.execute("SELECT count(*), max(array_length(embedding)) FROM user_embeddings").fetchone()
    assert (n, dim) == (1000, 128)
    row = np.array(con.execute("SELECT embedding FROM user_embeddings WHERE user_id = ?", [17]).fetchone()[0])
    np.testing.assert_allclose(row, served["emb"].z_user[17], rtol=1e-6)


def _eligible_places(world, user: int, city: int | None = None, categories=(), max_price: int | None = None) -> int:
    """Counted from the world's tables, not through the recommender's filters."""
    home = world["users"].filter(pl.col("user_id") == user)["home_city_id"][0]
    places = world["places"].filter(pl.col("city_id") == (home if city is None else city))
    if categories:
        ids = [COARSE_CATEGORIES.index(c) for c in categories]
        places = places.filter(pl.col("category_ids").list.eval(pl.element().is_in(ids)).list.any())
    if max_price is not None:
        places = places.filter(pl.col("price_band") <= max_price)
    return len(places.join(world["interactions"].filter(pl.col("user_id") == user), on="place_id", how="anti"))


def _eligible_people(world, user: int) -> int:
    users, blocks = world["users"], world["user_blocks"]
    home = users.filter(pl.col("user_id") == user)["home_city_id"][0]
    blocked = pl.concat([blocks.filter(pl.col("user_id") == user)["blocked_user_id"],
                         blocks.filter(pl.col("blocked_user_id") == user)["user_id"]])
    return len(users.filter((pl.col("home_city_id") == home) & (pl.col("user_id") != user)
                            & ~pl.col("user_id").is_in(blocked.implode())))


def _ids(results) -> np.ndarray:
    return np.array([r.place_id for r in results], dtype=np.int64)


def test_tags_and_time_slot_shift_ranking_toward_matching_places(rec):
    w = rec.world
    place_slot = w.place_slot
    tag_gain, slot_gain = [], []
    for i, u in enumerate(USERS):
        tag = (7 * i) % len(FINE_TAGS)
        base = rec.recommend_places(int(u), k=10)
        tagged = rec.recommend_places(int(u), k=10, tags=[FINE_TAGS[tag]])
        tag_gain.append((w.place_tags[_ids(tagged), tag] > 0).mean() - (w.place_tags[_ids(base), tag] > 0).mean())
        slot = i % len(TIME_SLOTS)
        timed = rec.recommend_places(int(u), k=10, time_slot=TIME_SLOTS[slot])
        slot_gain.append((place_slot[_ids(timed)] == slot).mean() - (place_slot[_ids(base)] == slot).mean())
    # The model alone (serving adds no boost). Measured on this 1k model: tag +0.028 to
    # +0.030 (standard error 0.005; 27 of 100 users gain, none loses), slot +0.33 to +0.36.
    # Another CPU rounds differently, so assert a third of the measurement, or less.
    assert np.mean(tag_gain) > 0.01
    assert np.mean(slot_gain) > 0.08


def test_hard_filters_and_visited_are_respected(rec, served):
    w = rec.world
    for u in USERS[:30]:
        got = rec.recommend_places(int(u), k=20, categories=["dining", "culture"], max_price=1)
        ids = np.array([r.place_id for r in got])
        assert len(got) == min(20, _eligible_places(served["world"], int(u), categories=["dining", "culture"],
                                                 max_price=1))
        assert (w.place_price[ids] <= 1).all()
        assert w.place_categories[ids][:, [COARSE_CATEGORIES.index("dining"), COARSE_CATEGORIES.index("culture")]].any(1).all()
        assert not np.isin(ids, w.visited_by(int(u))).any()
        assert (w.place_city[ids] == w.user_city[u]).all()


def test_other_city_and_widening_when_filters_are_strict(rec, served):
    w = rec.world
    u = int(USERS[3])
    other = (int(w.user_city[u]) + 1) % 8
    got = rec.recommend_places(u, k=50, city_id=other, categories=["outdoors"], max_price=0)
    assert all(r.city_id == other for r in got)
    assert len(got) == min(50, _eligible_places(served["world"], u, other, ["outdoors"], 0))


def test_people_never_self_nor_blocked_either_way(rec, served):
    blocks = served["world"]["user_blocks"]
    blockers = np.unique(np.concatenate([blocks["user_id"].to_numpy(), blocks["blocked_user_id"].to_numpy()]))
    assert len(blockers) > 0
    pairs = set(zip(blocks["user_id"].to_list(), blocks["blocked_user_id"].to_list(), strict=True))
    for u in blockers[:40]:
        got = [r.user_id for r in rec.recommend_people(int(u), k=200)]
        assert int(u) not in got
        assert not any((int(u), v) in pairs or (v, int(u)) in pairs for v in got)
        assert len(got) == min(200, _eligible_people(served["world"], int(u)))


def test_batch_answers_equal_single_answers(rec):
    users = np.concatenate([USERS[:30], USERS[:3]])
    query = {"k": 15, "time_slot": "weekend_night", "tags": ["techno"], "categories": ["clubs", "dining"], "max_price": 2}
    for user, got in zip(users, rec.recommend_places_batch(users, **query), strict=True):
        single = rec.recommend_places(int(user), **query)
        assert [r.place_id for r in got] == [r.place_id for r in single]
        np.testing.assert_allclose([r.score for r in got], [r.score for r in single], rtol=1e-5, atol=1e-5)
        assert [r.explanations for r in got] == [r.explanations for r in single]
    target = int(np.flatnonzero(rec.world.place_city == 1)[0])
    for user, got in zip(users, rec.recommend_people_batch(users, k=12, city_id=1, target_place_id=target), strict=True):
        assert [r.user_id for r in got] == [r.user_id for r in rec.recommend_people(int(user), k=12, city_id=1,
                                                                                      target_place_id=target)]
    with pytest.raises(QueryError, match="unknown user id 1000"):
        rec.recommend_places_batch([1, 1000, 2000])


def test_people_scores_combine_with_alpha(rec):
    u = int(USERS[5])
    target = int(np.flatnonzero(rec.world.place_city == rec.world.user_city[u])[0])
    got = rec.recommend_people(u, k=10, target_place_id=target, activity_tags="jazz,hiking")
    for r in got:
        assert r.s_final == pytest.approx(rec.alpha * r.s_compat + (1 - rec.alpha) * r.p_attend, abs=1e-6)
    assert [r.s_final for r in got] == sorted((r.s_final for r in got), reverse=True)


def test_place_explanations_name_what_both_sides_have(rec, served):
    w = rec.world
    users = served["world"]["users"].sort("user_id")
    cat_pref = dense_from_list(users["cat_pref"], 6)
    area = dense_from_area(users["area_freqs"], 15)
    kinds, explained = set(), []
    for i, u in enumerate(USERS[:40]):
        asked = ["jazz", "techno", "hiking"][: i % 3]
        slot = i % 7 - 1
        for r in rec.recommend_places(int(u), k=10, tags=asked or None, time_slot=slot if slot >= 0 else None):
            explained.append(bool(r.explanations))
            for e in r.reasons:
                kinds.add(e.kind)
                if e.kind == "query_tags":
                    assert all(FINE_TAGS[t] in asked and w.place_tags[r.place_id, t] > 0 for t in e.ids)
                elif e.kind == "time_slot":
                    assert e.ids == (slot,) and w.place_slot[r.place_id] == slot
                elif e.kind == "tags":
                    assert all(w.fine_pref[u, t] >= 1 / w.widths.tags and w.place_tags[r.place_id, t] > 0 for t in e.ids)
                    assert all(label(FINE_TAGS[t]) in e.text for t in e.ids)
                elif e.kind == "category":
                    assert all(cat_pref[u, c] >= 1 / w.widths.categories and w.place_categories[r.place_id, c] for c in e.ids)
                else:
                    (h,) = e.ids
                    assert e.kind == "neighborhood" and w.place_neighborhood[r.place_id] == h and area[u, h] > 0
                    assert w.place_city[r.place_id] == w.user_city[u]
    assert {"tags", "neighborhood", "query_tags", "time_slot"} <= kinds
    assert np.mean(explained) > 0.9


def test_people_explanations_name_what_both_sides_have(rec):
    w = rec.world
    kinds = set()
    for i, u in enumerate(USERS[:40]):
        same_city = np.flatnonzero(w.place_city == w.user_city[u])
        target = int(same_city[i % len(same_city)]) if i % 2 else None
        asked = ["jazz", "hiking", "brunch"][: i % 3]
        outing = set(np.flatnonzero(w.place_tags[target] > 0)) if target is not None else set()
        outing |= {FINE_TAGS.index(t) for t in asked}
        for r in rec.recommend_people(int(u), k=10, target_place_id=target, activity_tags=asked or None):
            v = r.user_id
            for e in r.reasons:
                kinds.add(e.kind)
                if e.kind == "activity":
                    assert all(t in outing and w.fine_pref[v, t] >= 1 / w.widths.tags for t in e.ids)
                elif e.kind == "tags":
                    assert all(min(w.fine_pref[u, t], w.fine_pref[v, t]) >= 1 / w.widths.tags for t in e.ids)
                elif e.kind == "vibes":
                    assert all(min(w.vibe_pref[u, t], w.vibe_pref[v, t]) >= 1 / w.widths.vibes for t in e.ids)
                    assert all(label(VIBE_TAGS[t]) in e.text for t in e.ids)
                elif e.kind == "history":
                    assert e.ids == (int(w.history(u, v)),) and e.ids[0] > 0
                else:
                    (h,) = e.ids
                    assert w.area[u, h] > 0 and w.area[v, h] > 0 and w.user_city[u] == w.user_city[v]
    assert {"tags", "vibes", "neighborhood", "activity", "history"} <= kinds


def test_past_partners_rank_higher_unless_the_query_asks_for_new_people(rec):
    """The friend head weighs a pair's past outings (a learned, positive weight), so people
    the user went out with climb; ``new_people`` leaves every one of them out."""
    from graphrec_pipeline.coattendance import PairHistory

    w = rec.world
    assert rec.model.history_weights()[1] > 0, "attendance rises with past outings in the world (§2.6)"
    users = [int(u) for u in USERS[:80] if np.any(w.history(u, np.arange(w.n_users)) > 0)]
    assert len(users) > 20
    known = w.history

    def past_partners_shown(**query) -> int:
        return sum(int(np.count_nonzero(known(u, np.array([r.user_id for r in rec.recommend_people(u, k=20, **query)]))))
                   for u in users)

    shown, new = past_partners_shown(), past_partners_shown(new_people=True)
    w.history = PairHistory(pl.DataFrame(schema={"user_u": pl.Int64, "user_v": pl.Int64,
                                                 "co_attendance_count": pl.Int32}), w.n_users)
    try:
        blind = past_partners_shown()
    finally:
        w.history = known
    print(f"past partners in the top 20 of {len(users)} users: {shown}, blind to history {blind}, new_people {new}")
    assert new == 0
    assert shown > blind


@pytest.mark.parametrize("backend", BACKENDS)
def test_index_save_and_load_return_the_same_results(served, tmp_path, backend):
    emb = served["emb"]
    ids = np.flatnonzero(emb.place_city == 0)
    queries = emb.z_user[:50]
    index = build_index(backend, emb.z_place[ids], ids, HnswSettings())
    store = Storage(tmp_path)
    index.save(store, f"x.{backend}")
    loaded = load_index(backend, store, f"x.{backend}", HnswSettings(), emb.dim)
    a, sa = index.search(queries, 20)
    b, sb = loaded.search(queries, 20)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(sa, sb, rtol=1e-5)
    assert np.isin(a, ids).all()


def test_backends_agree_with_exact_search(served):
    emb = served["emb"]
    ids = np.flatnonzero(emb.place_city == 1)
    queries = emb.z_user[emb.user_city == 1]
    exact_ids, exact_scores = build_index("exact", emb.z_place[ids], ids, HnswSettings()).search(queries, 10)
    np.testing.assert_allclose(exact_scores, np.sort(queries @ emb.z_place[ids].T, axis=1)[:, ::-1][:, :10], rtol=1e-5)
    for backend in ("faiss", "hnswlib"):
        got, scores = build_index(backend, emb.z_place[ids], ids, HnswSettings()).search(queries, 10)
        assert recall_at_k(got, exact_ids) >= 0.99
        np.testing.assert_allclose(scores[:, 0], exact_scores[:, 0], rtol=1e-3, atol=1e-3)


def timing_table(exact: dict[int, float], approximate: float):
    """A query timer that answers fixed figures: exact search by the index's size, any
    approximate index ``approximate`` ms (the backend choice without reading a clock)."""

    def timer(index, queries, k) -> float:
        return exact[len(index.ids)] if index.backend == "exact" else approximate

    return timer


def test_auto_backend_follows_the_timings_and_reports_them(served):
    """``auto`` keeps exact search within budget, tries an approximate index above it and
    keeps it only where it is faster; the report shows the figures the choice read."""
    emb = served["emb"]
    sizes = sorted({int((emb.place_city == c).sum()) for c in np.unique(emb.place_city)}
                   | {int((emb.user_city == c).sum()) for c in np.unique(emb.user_city)})
    small, large = sizes[0], sizes[-1]
    exact = {n: (0.01 if n == small else 0.5 if n == large else 0.2) for n in sizes}
    settings = IndexSettings(exact_budget_ms=0.1, approximate_backend="faiss")
    built, report = build_city_indexes(emb, settings, log=lambda m: None, timer=timing_table(exact, approximate=0.3))
    for row in report.iter_rows(named=True):
        assert row["exact_ms"] == exact[row["items"]]
        if row["items"] == small:  # within budget: exact, no approximate index tried
            assert row["backend"] == "exact" and row["approximate_ms"] is None and row["recall@200"] == 1.0
        elif row["items"] == large:  # over budget, and faiss (0.3) beats exact (0.5): kept
            assert row["backend"] == "faiss" and row["approximate_ms"] == 0.3 and row["recall@200"] >= 0.99
        else:  # over budget, but faiss (0.3) is slower than exact (0.2): exact kept
            assert row["backend"] == "exact" and row["approximate_ms"] == 0.3
        assert built.get(row["kind"], row["city_id"]).backend == row["backend"]
    assert set(report["backend"]) == {"exact", "faiss"} and set(report["kind"]) == {"place", "user"}
    at_the_budget = timing_table({n: 0.1 for n in sizes}, approximate=0.0)
    assert set(build_city_indexes(emb, settings, log=lambda m: None, timer=at_the_budget)[1]["backend"]) == {"exact"}
    tried = build_city_indexes(emb, IndexSettings(exact_budget_ms=0.0), log=lambda m: None,
                               timer=timing_table({n: 1.0 for n in sizes}, approximate=0.5))[1]
    assert set(tried["backend"]) == {"hnswlib"} and (tried["recall@200"] >= 0.99).all()
    with pytest.raises(ValueError, match="ef_search"):
        IndexSettings(hnsw=HnswSettings(ef_search=50))


def test_query_ms_is_a_median_of_single_queries(served):
    """The real timer: a positive median over single-row searches (no figure asserted)."""
    from graphrec_pipeline.serving.city_indexes import query_ms

    emb = served["emb"]
    ids = np.flatnonzero(emb.place_city == 0)
    inner, calls = build_index("exact", emb.r_place[ids], ids, HnswSettings()), []

    class Counting:
        def search(self, q, k):
            calls.append(q.shape)
            return inner.search(q, k)

    assert query_ms(Counting(), emb.q_user[:7], 5, repeats=20) > 0
    assert len(calls) == 25 and set(calls) == {(1, emb.q_user.shape[1])}


def test_hnsw_search_beam_is_raised_until_recall_is_met(tmp_path):
    rng = np.random.default_rng(0)
    vectors = lambda n, d: rng.normal(size=(n, d)).astype(np.float32)  # noqa: E731
    emb = Embeddings(vectors(300, 8), vectors(3000, 8), vectors(300, 24), vectors(300, 16), vectors(3000, 16),
                     np.zeros(300, np.int64), np.zeros(3000, np.int64), "test", vectors(300, 0), vectors(3000, 0))
    weak = HnswSettings(m=8, ef_construction=32, ef_search=200)
    untuned = build_city_indexes(emb, IndexSettings(backend="hnswlib", hnsw=weak, target_recall=0.0), log=lambda m: None)[1]
    built, report = build_city_indexes(emb, IndexSettings(backend="hnswlib", hnsw=weak, target_recall=0.995),
                                       log=lambda m: None)
    place = report.filter(report["kind"] == "place").row(0, named=True)
    assert untuned["recall@200"][0] < 0.995 <= place["recall@200"] and place["ef_search"] > 200
    store = Storage(tmp_path)
    built.manifest["model_sha256"] = "test"
    save_city_indexes(store, built)
    loaded = load_city_indexes(store).get("place", 0)
    assert loaded.settings.ef_search == place["ef_search"]
    # a manifest written before index rows recorded their own dim still loads (with its one dim)
    from graphrec_pipeline.artifacts.indexes import live_version, manifest_file

    name = manifest_file(live_version(store))
    manifest = store.read_json(name)
    store.write_json(name, {**manifest, "dim": 16, "indexes": [{k: v for k, v in r.items() if k != "dim"}
                                                               for r in manifest["indexes"] if r["kind"] == "place"]})
    assert load_city_indexes(store).get("place", 0).search(emb.q_user[:2], 5)[0].shape == (2, 5)
    np.testing.assert_array_equal(loaded.search(emb.q_user[:20], 200)[0], built.get("place", 0).search(emb.q_user[:20], 200)[0])


BAD_QUERIES = [
    ("places", {"user_id": 10_000}, "unknown user id 10000"),
    ("places", {"user_id": -1}, "unknown user id"),
    ("places", {"user_id": 1, "tags": ["jaz"]}, "closest: jazz"),
    ("places", {"user_id": 1, "categories": "dinning"}, "closest: dining"),
    ("places", {"user_id": 1, "time_slot": "noon"}, "invalid time slot 'noon'"),
    ("places", {"user_id": 1, "k": 0}, "k must be an integer in 1..200"),
    ("places", {"user_id": 1, "k": 201}, "k must be an integer in 1..200"),
    ("places", {"user_id": 1, "city_id": 99}, "unknown city id 99"),
    ("places", {"user_id": 1, "max_price": 7}, "max_price must be a price band"),
    ("people", {"user_id": 1, "target_place_id": 5000}, "unknown place id 5000"),
    ("people", {"user_id": 1, "activity_tags": "zzzz"}, "unknown tag 'zzzz'"),
]


@pytest.mark.parametrize(("kind", "query", "message"), BAD_QUERIES)
def test_bad_queries_raise_clear_errors(rec, kind, query, message):
    with pytest.raises(QueryError, match=message.replace("(", r"\(")):
        getattr(rec, f"recommend_{kind}")(**query)


def test_city_without_candidates(rec, monkeypatch):
    monkeypatch.delitem(rec.indexes.indexes["place"], 2)
    with pytest.raises(NoCandidatesError, match="city 2 has no places"):
        rec.recommend_places(1, city_id=2)


def _cli(args, data_dir):
    return main(["--data-dir", str(data_dir), *args])


def test_cli_json_matches_the_resource(served, capsys):
    data_dir = served["data"].root
    assert _cli(["recommend", "places", "--user-id", "42", "-k", "5", "--time-slot", "evening", "--tags", "jazz",
                 "--json"], data_dir) == 0
    places = json.loads(capsys.readouterr().out)
    expected = served["recommender"].recommend_places(42, k=5, time_slot="evening", tags="jazz")
    assert [p["place_id"] for p in places] == [r.place_id for r in expected]
    assert set(places[0]) == {"place_id", "place_key", "name", "city_id", "score", "explanations"}
    w = served["recommender"].world
    target = int(np.flatnonzero(w.place_city == w.user_city[42])[0])
    assert _cli(["recommend", "people", "--user-id", "42", "--target-place-id", str(target), "--json"], data_dir) == 0
    people = json.loads(capsys.readouterr().out)
    assert len(people) == 10 and set(people[0]) == {"user_id", "user_key", "s_compat", "p_attend", "s_final", "explanations"}
    assert _cli(["recommend", "places", "--user-id", "42"], data_dir) == 0
    assert "place_id" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["places", "--user-id", "5000"], "unknown user id 5000"),
        (["places", "--user-id", "1", "--tags", "tehcno"], "closest: techno"),
        (["places", "--user-id", "1", "--time-slot", "brunch"], "invalid time slot"),
        (["places", "--user-id", "1", "-k", "500"], "k must be"),
        (["places", "--user-id", "abc"], "invalid int value"),
        (["people", "--user-id", "1", "--target-place-id", "-3"], "unknown place id"),
        (["people", "--user-id", "1", "--city-id", "0", "--target-place-id", "PLACE_OF_CITY_1"], "not in the query's city 0"),
    ],
)
def test_cli_bad_queries_exit_2_with_one_line(served, capsys, args, message):
    w = served["recommender"].world
    args = [str(np.flatnonzero(w.place_city == 1)[0]) if a == "PLACE_OF_CITY_1" else a for a in args]
    try:
        code = _cli(["recommend", *args], served["data"].root)
    except SystemExit as exit_:  # argparse's own errors exit from inside the parser
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_lists_names_and_prints_people_tables(served, capsys):
    assert main(["list", "time-slots"]) == 0
    assert capsys.readouterr().out.split() == TIME_SLOTS
    assert _cli(["recommend", "people", "--user-id", "8", "-k", "4"], served["data"].root) == 0
    table = capsys.readouterr().out
    for r in served["recommender"].recommend_people(8, k=4):
        assert str(r.user_id) in table



def test_cli_version_is_the_installed_package_s(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"graphrec {version('graphrec-pipeline')}"

@pytest.mark.slow
def test_cli_entry_point_is_installed(served):
    exe = shutil.which("graphrec") or str(__import__("pathlib").Path(sys.executable).parent / "graphrec")
    out = subprocess.run([exe, "--data-dir", str(served["data"].root), "recommend", "people", "--user-id", "3",
                          "-k", "3", "--json"], capture_output=True, text=True, check=True)
    assert [p["user_id"] for p in json.loads(out.stdout)] == [r.user_id for r in served["recommender"].recommend_people(3, k=3)]
    missing = subprocess.run([exe, "--data-dir", "/nonexistent/graphrec", "recommend", "places", "--user-id", "1"],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "no release is live" in missing.stderr and "\n" not in missing.stderr.strip()


def test_stale_assets_name_what_to_materialize(served, tmp_path):
    """A release being made (no RELEASE.json yet) is checked by lineage."""
    shutil.copytree(served["store"].root, tmp_path / "d")
    (tmp_path / "d" / "RELEASE.json").unlink()
    store = Storage(tmp_path / "d", release="in-progress")
    Recommender(store)
    retrained = load_model(store)
    with torch.no_grad():
        retrained.place_head[0].bias.add_(1.0)
    save_model(store, retrained)
    with pytest.raises(AssetError, match="embeddings were made by another model: materialize user_embeddings"):
        Recommender(store)
    emb = served["emb"]
    export_embeddings(store, retrained, load_graph(store), emb.user_city,
                      emb.place_city)
    with pytest.raises(AssetError, match="indexes were built from another model's embeddings: materialize ann_indexes"):
        Recommender(store)
    save_city_indexes(store, build_city_indexes(load_embeddings(store), IndexSettings(), log=lambda m: None)[0])
    Recommender(store)
    users = store.read_table("users")
    store.write_table("users", users.with_columns(users["home_city_id"].reverse()).to_arrow(), staged=False)
    with pytest.raises(AssetError, match="world tables differ from world_manifest.json: materialize published_tables"):
        Recommender(store)
    stamp_world(store, {"source": "generate"})  # what published_tables does for a regenerated world
    with pytest.raises(AssetError, match="training graph was built from another world: materialize interaction_split"):
        Recommender(store)
    store.remove("users.parquet")
    with pytest.raises(AssetError, match="users.parquet"):
        Recommender(store)


def test_failed_index_build_keeps_previous_indexes_live(served, tmp_path, monkeypatch):
    shutil.copytree(served["store"].root, tmp_path / "d")
    (tmp_path / "d" / "RELEASE.json").unlink()
    store = Storage(tmp_path / "d", release="in-progress")
    before = store.read_json(CURRENT)
    built, _ = build_city_indexes(served["emb"], IndexSettings(), log=lambda m: None)
    index = built.indexes["user"][1]
    monkeypatch.setattr(index, "save", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        save_city_indexes(store, built)
    assert store.read_json(CURRENT) == before
    assert len(Recommender(store).recommend_places(5)) == 10


def test_resource_works_outside_dagster(served):
    resource = RecommenderResource(storage=StorageResource(data_dir=str(served["data"].root)))
    got = resource.recommend_places(7, PlaceQuery.parse(k=3, time_slot="night"))
    assert [r.place_id for r in got] == [r.place_id for r in served["recommender"].recommend_places(7, k=3, time_slot="night")]
    assert resource.recommender() is resource.recommender()


def test_smoke_check_fails_on_errors_and_short_answers(served, tmp_path, monkeypatch):
    from graphrec_pipeline.defs.assets.serving_assets import recommender_answers_queries

    def run_check(data_dir, run_id):
        resource = RecommenderResource(storage=StorageResource(data_dir=str(data_dir)))
        context = dg.build_asset_check_context()
        monkeypatch.setattr(type(context), "run", property(lambda self: SimpleNamespace(run_id=run_id)))
        return recommender_answers_queries(context, recommender=resource)

    # a check takes the run's lock, as in a run: on copies, so the shared data stays unlocked
    served_dir, live = tmp_path / "ok", served["store"].release
    shutil.copytree(served["data"].root, served_dir)
    assert run_check(served_dir, live).passed
    with monkeypatch.context() as patch:
        single = Recommender.recommend_people
        patch.setattr(Recommender, "recommend_people", lambda self, *a, **q: single(self, *a, **q)[:-1])
        short = run_check(served_dir, live)
    assert not short.passed and short.metadata["failures"].value == 50
    shutil.copytree(served["data"].root, tmp_path / "d")
    store = Storage(tmp_path / "d" / "releases" / live)
    (store.root / "RELEASE.json").unlink()
    manifest_file = f"indexes/{store.read_json(CURRENT)['version']}/manifest.json"
    manifest = store.read_json(manifest_file)
    manifest["indexes"] = [r for r in manifest["indexes"] if (r["kind"], r["city_id"]) != ("place", 0)]
    store.write_json(manifest_file, manifest)
    broken = run_check(tmp_path / "d", live)
    assert not broken.passed and "city 0 has no places" in broken.metadata["failed"].value


def test_pipeline_materializes_serving_assets(small_world):
    data_dir, result = small_world
    data = DataDir(data_dir)
    store = data.live()
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["recommender_answers_queries"] and checks["ann_indexes_recall"]
    con = data.connect()
    assert con.execute("SELECT count(*) FROM place_embeddings").fetchone()[0] == 1000
    assert len(Recommender(store).recommend_people(0, k=5)) == 5


def test_the_evaluated_served_flow_is_what_the_resource_answers(served):
    from graphrec_pipeline.defs.resources import RecommenderResource, StorageResource
    from graphrec_pipeline.evaluation.run import served_people, served_places

    resource = RecommenderResource(storage=StorageResource(data_dir=str(served["data"].root)))
    users = USERS[:25]
    places = served_places(resource.recommender())(users, 3)
    people = served_people(resource.recommender())(users)
    for i, u in enumerate(users):
        want = [r.place_id for r in resource.recommend_places(int(u), PlaceQuery.parse(k=20, time_slot=3))]
        assert places[i, : len(want)].tolist() == want and (places[i, len(want):] == -1).all()
        assert people[i].tolist() == [r.user_id for r in resource.recommend_people(int(u), PeopleQuery(k=10))]


@pytest.mark.parametrize("build", [lambda: PlaceQuery(k=0), lambda: PlaceQuery(time_slot=6), lambda: PlaceQuery(tags=(-3,)),
                                   lambda: PlaceQuery(categories=(-1,)), lambda: PlaceQuery(max_price=5),
                                   lambda: PeopleQuery(activity_tags=(1.5,)), lambda: PeopleQuery(target_place_id=-2)])
def test_a_query_built_directly_is_validated_too(build):
    with pytest.raises(QueryError):
        build()


@pytest.mark.parametrize("ask", [lambda r: r.recommend_places(0, PlaceQuery(tags=(100,))),
                                 lambda r: r.recommend_places(0, PlaceQuery(categories=(6,))),
                                 lambda r: r.recommend_people(0, PeopleQuery(activity_tags=(200,)))])
def test_slot_indices_are_checked_against_the_worlds_widths(rec, ask):
    """A query names tag and category slots; how many there are is the release's (100 and 6
    in a generated world), so the recommender checks them when it answers."""
    with pytest.raises(QueryError, match=r"index \d+ is not in 0\.\.(99|5)"):
        ask(rec)


def test_served_people_find_test_period_outing_partners(rec, trained):
    """The people flow finds the people a user goes out with in the test period far more
    often than chance, and asked for new people (where past outings cannot help) it finds
    new partners far more often than chance too. (The stated-taste match no longer helps
    there: in the latent-taste world partners are alike in latent taste.)"""
    from graphrec_pipeline import coattendance
    from graphrec_pipeline.evaluation.people import candidate_ranker, evaluate_people, excluded_keys, outing_partners
    from graphrec_pipeline.evaluation.run import served_people, training_history
    from graphrec_pipeline.simple_rankers import random_scorer

    inputs = trained["inputs"]
    rec = Recommender(rec.store, pair_history=training_history(inputs))  # nothing of the test period
    split = inputs.split["split"]
    partners = outing_partners(coattendance.partners(inputs.interactions.filter(split == "train")),
                               inputs.interactions.filter(split == "test"))
    n = len(inputs.users)
    city = inputs.users.sort("user_id")["home_city_id"].to_numpy()

    def recall(ranker, task: str = "people") -> float:
        rows = evaluate_people({"r": ranker}, partners, n, max_users=400)
        return next(r["value"] for r in rows if r["task"] == task and r["metric"] == "recall")

    served = recall(served_people(rec))
    chance = recall(candidate_ranker(random_scorer(0), city, excluded_keys(n, inputs.blocks)))
    served_new = recall(served_people(rec, new_people=True), "people_new")
    chance_new = recall(candidate_ranker(random_scorer(0), city, excluded_keys(n, inputs.blocks)), "people_new")
    print(f"people Recall@10: served {served:.3f}, chance {chance:.3f}; new partners {served_new:.3f}, "
          f"chance {chance_new:.3f}")
    assert served > 2 * chance
    assert served_new > 2 * chance_new


def test_people_vectors_score_pairs_by_the_learned_taste_match(rec, trained):
    """The user index searches people vectors whose dot product is the model's taste match
    (averaged over the two logits, negative profile weights as zero)."""
    from graphrec_pipeline.model.taste import SCALE

    match = rec.model.taste_match
    tastes = rec.model.tastes(trained["inputs"].graph["user"].x)
    u, v = np.arange(0, 60), np.arange(60, 120)
    with torch.no_grad():
        weight = (SCALE * match.weight).mean(0).clamp_min(0.0)
        expected = (match.cosines(tastes[u], tastes[v]) @ weight).numpy()
    assert weight.max() > 0, "training gave some profile a positive weight"
    np.testing.assert_allclose(np.einsum("ij,ij->i", rec.emb.r_user[u], rec.emb.r_user[v]), expected, rtol=1e-4, atol=1e-5)
    index = rec.indexes.get("user", int(rec.emb.user_city[0]))
    same_city = np.flatnonzero(rec.emb.user_city == rec.emb.user_city[0])
    top = index.search(rec.emb.r_user[:1], 5)[0][0]
    best = same_city[np.argsort(-(rec.emb.r_user[same_city] @ rec.emb.r_user[0]), kind="stable")[:5]]
    assert set(top) == set(best)


def test_each_flow_retrieves_its_own_number_of_candidates(served):
    """Places search ``candidates`` items per query, people ``people_candidates`` (a search
    widens from there when too few pass the filters)."""
    rec = Recommender(served["store"], candidates=37, people_candidates=13)
    asked: dict[str, list[int]] = {"place": [], "user": []}
    for kind, city_indexes in rec.indexes.indexes.items():
        for index in city_indexes.values():
            search = index.search
            index.search = lambda q, m, _search=search, _kind=kind: (asked[_kind].append(m), _search(q, m))[1]
    assert len(rec.recommend_places(5, k=5)) == 5 and len(rec.recommend_people(5, k=5)) == 5
    assert asked["place"][0] == 37 and asked["user"][0] == 13


def test_extra_candidates_join_the_retrieved_once_each():
    from graphrec_pipeline.serving.retrieval import with_extra

    got = with_extra(np.array([[5, 3, 9], [1, 2, -1]]), np.array([[3, 7, -1], [2, 2, 4]]))
    assert got.tolist() == [[5, 3, 9, -1, 7, -1], [1, 2, -1, -1, -1, 4]]
    assert with_extra(got, None) is got


def test_past_partners_are_candidates_even_far_from_the_users_tastes(rec):
    """A user's past partners join the people candidates (those of the query's city), so
    the learned history term can lift one the taste index would not retrieve."""
    from graphrec_pipeline.serving.people_flow import PAST_PARTNERS

    w = rec.world
    users = np.array([u for u in USERS if np.any(w.history(u, np.arange(w.n_users)) > 0)])
    partners = w.history.partners(users, 3)
    assert (partners[:, 0] >= 0).all()
    assert (w.history(users[:, None], np.where(partners >= 0, partners, users[:, None])) > 0)[partners >= 0].all()
    counts = w.history(users[:, None], np.maximum(partners, 0))
    assert (np.diff(np.where(partners >= 0, counts, 0), axis=1) <= 0).all(), "most outings first"
    city = int(w.user_city[users[0]])
    extra = rec.people_flow.extra(PeopleQuery(), users[:1], city)
    assert set(extra[extra >= 0]) == {v for v in w.history.partners(users[:1], PAST_PARTNERS)[0] if v >= 0
                                      and w.user_city[v] == city}
    assert rec.people_flow.extra(PeopleQuery(new_people=True), users[:1], city) is None


def test_build_release_makes_a_servable_release_live_or_leaves_the_live_one(trained, tmp_path, monkeypatch):
    """The plain builder (what the ``served`` fixture and a notebook call): a release the
    recommender answers from; a failure part-way leaves the live release and frees the
    data directory for the next build."""
    data = DataDir(tmp_path / "data")
    world, inputs, model = trained["world"], trained["inputs"], trained["result"].model
    args = (data, world, inputs.split, inputs.friend_split, inputs.graph, model)
    first = build_release(*args, log=lambda m: None)
    assert data.live_id() == first and len(Recommender(data.live()).recommend_places(3, k=5)) == 5

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(release_builder, "publish_serving", broken)
    with pytest.raises(OSError, match="disk full"):
        build_release(*args, log=lambda m: None)
    assert data.live_id() == first
    monkeypatch.undo()
    second = build_release(*args, log=lambda m: None)  # the lock was given back
    assert data.live_id() == second != first
