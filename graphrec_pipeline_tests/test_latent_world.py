"""The latent taste of the world: in no table, shared among friends, and what visits follow."""

import dataclasses

import numpy as np
import pytest

from graphrec_pipeline.world.config import WorldConfig
from graphrec_pipeline.world.latent import latent_taste
from graphrec_pipeline.world.social import sample_same_city_pairs
from graphrec_pipeline_tests.conftest import TINY


def _cos(x, u, v):
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return np.einsum("ij,ij->i", x[u], x[v])


def test_friends_latent_tastes_are_closer_than_random_pairs(tiny_world):
    latent = latent_taste(TINY, tiny_world["users"])
    edges = tiny_world["user_user_edges"]
    friends = _cos(latent.user, edges["user_u"].to_numpy(), edges["user_v"].to_numpy()).mean()
    u, v = sample_same_city_pairs(tiny_world["users"], 5_000, np.random.default_rng(0))
    strangers = _cos(latent.user, u, v).mean()
    assert friends > strangers + 0.1, (friends, strangers)


def test_homophily_sets_how_much_of_a_taste_the_community_shares(tiny_world):
    users = tiny_world["users"]
    same = lambda lt: lt.community[:, None] == lt.community[None, :]  # noqa: E731
    for h, low, high in ((0.0, -0.2, 0.2), (0.8, 0.6, 1.0)):
        lt = latent_taste(dataclasses.replace(TINY, homophily=h), users)
        x = lt.user / np.linalg.norm(lt.user, axis=1, keepdims=True)
        cos = x @ x.T
        mates = same(lt) & ~np.eye(len(x), dtype=bool)
        assert low < cos[mates].mean() < high, (h, cos[mates].mean())
    assert latent_taste(dataclasses.replace(TINY, latent_weight=0.0), users) is None


def test_visits_follow_the_latent_taste(tiny_world):
    """Visited places' characters agree with their visitors' latent tastes far more than
    chance; in the literal world they do not."""
    latent = latent_taste(TINY, tiny_world["users"])
    visits = tiny_world["interactions"]
    u, p = visits["user_id"].to_numpy(), visits["place_id"].to_numpy()
    agree = np.einsum("ij,ij->i", latent.user[u], latent.place[p]).mean()
    assert agree > 0.3, agree  # a draw at random averages 0 with std 1 per visit


@pytest.mark.parametrize("field,value", [("latent_weight", -1.0), ("latent_dim", 0), ("homophily", 1.5)])
def test_latent_settings_are_checked(field, value):
    with pytest.raises(ValueError, match=field):
        WorldConfig(**{field: value})
