"""Feature dimensions and the documented column order (§3.2)."""

import numpy as np
import pytest
import polars as pl

from graphrec_pipeline.columns import dense_from_area, dense_from_list
from graphrec_pipeline.constants import D_EDGE_UP, D_EDGE_UU
from graphrec_pipeline.graph.features import (
    encode_interaction_edges,
    encode_places,
    encode_social_edges,
    encode_users,
)
from graphrec_pipeline.widths import Widths
from graphrec_pipeline_tests.conftest import TINY


def test_user_columns(tiny_world):
    users = tiny_world["users"]
    x = encode_users(users, TINY.neighborhoods_per_city, Widths())
    assert x.shape == (len(users), Widths().user_raw) == (len(users), 148)
    np.testing.assert_array_equal(x[:, 0], users["home_city_id"].to_numpy())
    np.testing.assert_array_equal(x[:, 1], users["home_neighborhood_id"].to_numpy())
    np.testing.assert_allclose(x[:, 2:8], dense_from_list(users["cat_pref"], 6))
    np.testing.assert_allclose(x[:, 8:108], dense_from_list(users["fine_pref"], 100))
    np.testing.assert_allclose(x[:, 108:138], dense_from_list(users["vibe_pref"], 30))
    area = dense_from_area(users["area_freqs"], TINY.neighborhoods_per_city)
    np.testing.assert_allclose(x[:, 138], area.max(axis=1))
    assert (np.diff(x[:, 138:143], axis=1) <= 0).all()
    np.testing.assert_allclose(x[:, 143], np.minimum(users["avg_sessions_per_week"].to_numpy() / 10, 1))
    np.testing.assert_allclose(x[:, 147], np.minimum(users["avg_attends_per_month"].to_numpy() / 20, 1))


@pytest.mark.parametrize("widths", [Widths(), Widths(3, 7, 1), Widths(1, 1, 1)])
def test_the_layouts_follow_the_widths(widths):
    """Whatever the widths, the slices tile each row in the documented order, and the user
    row's width gives the widths back."""
    def tiles(parts, end):
        spans = [(p, p + 1) if isinstance(p, int) else (p.start, p.stop) for p in parts]
        assert [a for a, _ in spans] == [b for _, b in [(0, 0)] + spans[:-1]] and spans[-1][1] == end
    w = widths
    tiles([0, 1, w.user_cat_pref, w.user_fine_pref, w.user_vibe_pref, slice(w.user_vibe_pref.stop, w.user_raw)],
          w.user_raw)
    assert w.user_continuous == slice(2, w.user_raw) and w.user_raw - w.user_vibe_pref.stop == 10
    tiles([0, 1, w.place_category, w.place_fine, w.place_price, w.place_slot, w.place_popularity], w.place_raw)
    assert w.place_popularity.stop - w.place_popularity.start == 4
    tiles([w.context_tags, w.context_categories, w.context_slot], w.context)
    assert (w.context_categories.stop - w.context_categories.start, w.context_slot.stop - w.context_slot.start) == (
        w.categories, 6)
    assert Widths.of_rows(w.user_raw, w.categories, w.tags) == w


def test_place_columns(tiny_world):
    places = tiny_world["places"]
    x = encode_places(places, Widths())
    assert x.shape == (len(places), Widths().place_raw) == (len(places), 114)
    np.testing.assert_array_equal(x[:, 0], places["city_id"].to_numpy())
    np.testing.assert_allclose(x[:, 2:8], dense_from_list(places["category_one_hot"], 6))
    np.testing.assert_allclose(x[:, 8:108], dense_from_list(places["fine_tag_vector"], 100))
    np.testing.assert_array_equal(x[:, 108], places["price_band"].to_numpy())
    np.testing.assert_array_equal(x[:, 109], places["typical_time_slot"].to_numpy())
    np.testing.assert_allclose(x[:, 110], np.log1p(places["base_popularity"].to_numpy()) / 5, rtol=1e-6)
    np.testing.assert_allclose(x[:, 113], places["novelty_score"].to_numpy())


def test_edge_columns():
    inter = pl.DataFrame(
        {"implicit_rating": [4.0], "dwell_time": [1e6], "num_likes": [2], "num_saves": [9], "num_shares": [1],
         "attended": [True], "time_of_day_bucket": [2], "day_of_week_bucket": [1]}
    )
    x = encode_interaction_edges(inter)
    assert x.shape == (1, D_EDGE_UP) == (1, 12)
    np.testing.assert_allclose(x[0], [0.8, 1.0, 0.4, 1.0, 0.5, 1.0, 0, 0, 1, 0, 0, 1])
    social = pl.DataFrame({"interest_overlap_score": [0.7], "co_attendance_count": [15], "same_neighborhood_freq": [0.2]})
    np.testing.assert_allclose(encode_social_edges(social), [[0.7, 1.0, 0.2]], rtol=1e-6)
    assert encode_social_edges(social).shape[1] == D_EDGE_UU


def test_affinity_of_per_row_candidates_equals_the_block_form(tiny_world):
    from graphrec_pipeline.world.affinity import WorldFeatures, affinity_block, affinity_pairs

    f = WorldFeatures.from_tables(tiny_world["users"], tiny_world["places"], 15)
    rng = np.random.default_rng(0)
    users = rng.integers(0, len(f.user_city), 40)
    places = rng.integers(0, len(f.place_city), (40, 25))
    block = affinity_block(f, np.unique(users), np.arange(len(f.place_city)))
    want = block[np.searchsorted(np.unique(users), users)[:, None], places]
    np.testing.assert_allclose(affinity_pairs(f, users, places), want, rtol=1e-5, atol=1e-5)


def test_a_pairs_virtual_user_scores_the_mean_of_both_partners(tiny_world):
    from graphrec_pipeline.world.affinity import AffinityWeights, WorldFeatures, affinity_block
    from graphrec_pipeline.world.social import similar_user_candidates

    f = WorldFeatures.from_tables(tiny_world["users"], tiny_world["places"], 15)
    pairs = similar_user_candidates(tiny_world["users"], 5).head(30)
    u, v = pairs["user_u"].to_numpy(), pairs["user_v"].to_numpy()
    places = np.arange(len(f.place_city))
    w = AffinityWeights()
    mean = 0.5 * (affinity_block(f, u, places, w) + affinity_block(f, v, places, w))
    np.testing.assert_allclose(affinity_block(f.pair_means(u, v, w), np.arange(len(u)), places, w), mean,
                               rtol=1e-5, atol=1e-5)
