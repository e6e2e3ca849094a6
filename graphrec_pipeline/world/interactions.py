"""Synthetic user-place interactions (§7.4).

Every choice comes from the world's affinity (``world/affinity.py``) plus per-pair taste
noise, so no place gets traffic that no one's taste explains:

* Home visits: each user draws a number of interactions from their behaviour statistics
  and samples them from ``softmax(affinity + taste noise)`` over the places of their home
  city (a random exposure window of at most ``exposure_size`` places in large cities).
* Travel (``travel_rate`` of a user's visits): a destination city ∝ its size, then a
  Gumbel-max pick by the traveller's own ``affinity + taste noise`` among
  ``TRAVEL_WINDOW`` places of that city drawn uniformly for that one visit.
* Joint outings (§7.5): similar-user pairs who are friends go out ``Poisson`` times, both
  as their full taste agrees (stated and latent, ``latent.py``). Each
  pair draws its own ``OUTING_WINDOW`` places of the city uniformly and chooses among them
  by ``softmax(mean(affinity_u, affinity_v) + taste noise)``, the noise drawn once per pair
  and place (a pair has lasting joint tastes); both attend at the same time. A softmax
  over a uniform sample estimates the softmax over the whole city without favouring any
  place, and costs ``OUTING_WINDOW`` scores per pair instead of the city's size.

Engagement grows with the experienced score (standardized within the home city), the
implicit rating follows §2.4 with noise, and timestamps fall mostly in the place's typical
time slot so that time-of-day context carries signal.

Everything is drawn per home city, from the city's own random stream: a user's visits
(home and travel) and the outings of same-city friend pairs. :func:`city_interactions`
makes one city's part, so the pipeline can generate cities in parallel steps, and
:func:`combine` orders the parts into the table; one process looping over the cities
(:func:`generate_interactions`) gives the same bytes.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl

from graphrec_pipeline.timeslots import BUCKET_HOURS, day_of_week_expr, slot_buckets, time_of_day_expr
from graphrec_pipeline.world.affinity import AffinityWeights, WorldFeatures, affinity_block, affinity_pairs
from graphrec_pipeline.world.config import WorldConfig
from graphrec_pipeline.world.latent import full_taste, latent_taste
from graphrec_pipeline.world.layout import city_layout, sample_rows

TYPICAL_SLOT_RATE = 0.75  # share of visits in the place's typical time slot
OUTING_WINDOW = 128  # places of the city, drawn uniformly per pair, a pair of friends chooses among
TRAVEL_WINDOW = 64  # places of the destination, drawn uniformly per visit, a traveller chooses among
FRIEND_MIN_OVERLAP = 0.45  # similar-user pairs at least this close may go out together
FRIEND_RATE = 0.5  # share of those pairs who do
OUTINGS_PER_OVERLAP = 3.0  # Poisson rate of outings per unit of interest overlap
BLOCK_ELEMENTS = 4_000_000  # users x places scored at once (memory bound)


def compute_implicit_rating(dwell_time, num_likes, num_saves, num_shares, attended) -> np.ndarray:
    """§2.4, vectorized: 1 + dwell (<= 2) + likes (<= 1.5) + saves (<= 2) + shares (<= 1)
    + 2 if attended, capped at 5."""
    score = np.float32(1.0) + np.minimum(np.asarray(dwell_time, dtype=np.float32) / 150.0, 2.0)
    score += np.minimum(np.asarray(num_likes) * 0.5, 1.5)
    score += np.minimum(np.asarray(num_saves) * 1.0, 2.0)
    score += np.minimum(np.asarray(num_shares) * 0.5, 1.0)
    score += np.where(attended, 2.0, 0.0)
    return np.minimum(score, 5.0)


def interaction_counts(cfg: WorldConfig, users: pl.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """N ≈ sessions/week x weeks x views/session x interactions_per_view, capped."""
    weeks = cfg.horizon_days / 7.0
    raw = (
        users["avg_sessions_per_week"].to_numpy().astype(np.float64)
        * weeks
        * users["avg_views_per_session"].to_numpy()
        * cfg.interactions_per_view
    )
    return np.clip(rng.poisson(raw), cfg.min_interactions_per_user, cfg.max_interactions_per_user)


def sample_from_logits(rng: np.random.Generator, logits: np.ndarray, counts: np.ndarray):
    """``counts[i]`` draws with replacement from ``softmax(logits[i])``; returns (row, col).

    Offsetting row i's CDF by i turns all rows' inverse-CDF lookups into one searchsorted.
    """
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z, dtype=np.float64)
    cdf = np.cumsum(p, axis=1)
    cdf /= cdf[:, -1:]
    cdf += np.arange(len(cdf))[:, None]
    row = np.repeat(np.arange(len(counts)), counts)
    query = row + rng.random(len(row))
    query.sort()  # only reorders draws within a row; sorted queries make searchsorted fast
    flat = np.searchsorted(cdf.ravel(), query, side="right")
    col = np.minimum(flat - row * logits.shape[1], logits.shape[1] - 1)
    return row, col


def sample_home_visits(cfg, f: WorldFeatures, city: int, counts: np.ndarray, rng, w: AffinityWeights):
    """Visits of the city's users in their home city: (user, place, experienced score).

    The users are shuffled into batches; each batch is exposed to a random window of at
    most ``exposure_size`` of the city's places and samples from softmax over it.
    """
    out_u, out_p, out_s = [np.empty(0, np.int64)], [np.empty(0, np.int64)], [np.empty(0, np.float32)]
    city_users = rng.permutation(np.flatnonzero(f.user_city == city))
    city_places = np.flatnonzero(f.place_city == city)
    if len(city_users) and len(city_places):
        window = min(cfg.exposure_size, len(city_places))
        chunk = max(1, BLOCK_ELEMENTS // window)
        for start in range(0, len(city_users), chunk):
            users = city_users[start : start + chunk]
            shown = city_places if window == len(city_places) else np.sort(rng.choice(city_places, window, replace=False))
            scores = affinity_block(f, users, shown, w)
            scores += rng.normal(0.0, w.taste_noise, size=scores.shape).astype(np.float32)
            row, col = sample_from_logits(rng, scores, counts[users])
            out_u.append(users[row])
            out_p.append(shown[col])
            out_s.append(scores[row, col])
    return np.concatenate(out_u), np.concatenate(out_p), np.concatenate(out_s)


def uniform_city_sampler(place_city: np.ndarray, n_cities: int):
    """Returns ``draw(city (n,), size, rng) -> (n, size)``: places drawn uniformly, with
    replacement, from each row's city (every city has places)."""
    order = np.argsort(place_city, kind="stable")
    offsets = np.concatenate([[0], np.cumsum(np.bincount(place_city, minlength=n_cities))])

    def draw(city: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
        lo, n = offsets[city][:, None], (offsets[city + 1] - offsets[city])[:, None]
        pick = (rng.random((len(city), size), dtype=np.float32) * n).astype(np.int64)
        return order[lo + np.minimum(pick, n - 1)]  # float32 rounding can reach n

    return draw


def choose_among(rng, scores: np.ndarray) -> np.ndarray:
    """Gumbel-max pick of one column per row of ``scores`` (a softmax draw)."""
    return np.argmax(scores + rng.gumbel(size=scores.shape), axis=1)


def sample_travel_visits(cfg, f, counts, layout, draw, rng, w: AffinityWeights):
    """Visits to other cities: a destination ∝ city size, then the traveller's own pick."""
    users = np.repeat(np.arange(len(counts)), counts)
    if len(users) == 0 or cfg.n_cities < 2:
        return (np.empty(0, np.int64),) * 2 + (np.empty(0, np.float32),)
    dest_p = np.tile(layout.city_weights, (cfg.n_cities, 1))
    np.fill_diagonal(dest_p, 0.0)
    dest = sample_rows(rng, dest_p[f.user_city[users]])
    window = draw(dest, TRAVEL_WINDOW, rng)
    scores = affinity_pairs(f, users, window, w)
    scores += rng.normal(0.0, w.taste_noise, size=scores.shape).astype(np.float32)
    pick = choose_among(rng, scores)
    rows = np.arange(len(users))
    return users, window[rows, pick], scores[rows, pick]


def sample_joint_outings(f, pairs: pl.DataFrame, draw, rng, w: AffinityWeights):
    """Friends' outings: (user_u, user_v, place, joint score) per outing, both attend
    together; the place is a softmax draw by the pair's joint taste over the pair's own
    uniform sample of their city. Who goes out, and how often, follows the pair's full
    taste overlap (``latent.py``): the stated overlap in a world without latent taste."""
    overlap = pairs["interest_overlap_score"].to_numpy()
    if f.has_latent:
        unit = full_taste(f.user_fine, f.user_latent)
        overlap = np.clip(np.einsum("ij,ij->i", unit[pairs["user_u"].to_numpy()], unit[pairs["user_v"].to_numpy()]),
                          0.0, 1.0)
    friends = (overlap >= FRIEND_MIN_OVERLAP) & (rng.random(len(overlap)) < FRIEND_RATE)
    n_out = np.where(friends, rng.poisson(OUTINGS_PER_OVERLAP * overlap), 0)
    going = n_out > 0
    u, v, n_out = pairs["user_u"].to_numpy()[going], pairs["user_v"].to_numpy()[going], n_out[going]
    if len(u) == 0:
        return u, v, np.empty(0, np.int64), np.empty(0, np.float32)
    cand = draw(f.user_city[u], OUTING_WINDOW, rng)
    joint = affinity_pairs(f.pair_means(u, v, w), np.arange(len(u)), cand, w)
    joint += rng.normal(0.0, w.taste_noise, size=joint.shape).astype(np.float32)
    row, col = sample_from_logits(rng, joint, n_out)
    return u[row], v[row], cand[row, col], joint[row, col]


def sample_timestamps(cfg: WorldConfig, slot: np.ndarray, rng) -> np.ndarray:
    """Microsecond timestamps inside the horizon that fall in the given time slots."""
    n = len(slot)
    first_weekday = cfg.start.weekday()
    day_is_weekend = ((first_weekday + np.arange(cfg.horizon_days)) % 7) >= 5
    days_by_type = [np.flatnonzero(~day_is_weekend), np.flatnonzero(day_is_weekend)]
    hours = np.full((6, 16), -1)
    n_hours = np.zeros(6, dtype=np.int64)
    dow_of_slot = np.zeros(6, dtype=np.int64)
    for s in range(6):
        buckets, dow = slot_buckets(s)
        hs = [h for b in buckets for h in BUCKET_HOURS[b]]
        hours[s, : len(hs)] = hs
        n_hours[s], dow_of_slot[s] = len(hs), dow
    dow = dow_of_slot[slot]
    day = np.empty(n, dtype=np.int64)
    for t in (0, 1):
        sel = dow == t
        day[sel] = days_by_type[t][rng.integers(0, len(days_by_type[t]), size=sel.sum())]
    hour = hours[slot, (rng.random(n) * n_hours[slot]).astype(np.int64)]
    seconds = day * 86_400 + hour * 3_600 + rng.integers(0, 3_600, size=n)
    start_s = int((cfg.start - datetime(1970, 1, 1)).total_seconds())
    return (start_s + seconds) * 1_000_000


def engagement(users: pl.DataFrame, user: np.ndarray, score: np.ndarray, rng) -> dict[str, np.ndarray]:
    """Dwell, likes, saves, shares and attendance, all increasing in the score (§7.4 step 5)."""
    z = (score - score.mean()) / max(float(score.std()), 1e-6)
    views = users["avg_views_per_session"].to_numpy()[user]
    like_rate = users["avg_likes_per_session"].to_numpy()[user] / views
    save_rate = users["avg_saves_per_session"].to_numpy()[user] / views
    attend_month = users["avg_attends_per_month"].to_numpy()[user]
    n = len(user)
    dwell = np.clip(np.exp(np.log(25.0) + 0.55 * z + 0.6 * rng.normal(size=n)), 2.0, 1800.0)
    likes = rng.poisson(4.0 * like_rate * np.exp(0.8 * z))
    saves = rng.poisson(3.0 * save_rate * np.exp(0.9 * z))
    shares = rng.poisson(0.12 * np.exp(0.8 * z))
    attend_logit = -3.0 + 0.5 * np.log(attend_month / 3.0) + 1.3 * z
    attended = rng.random(n) < 1.0 / (1.0 + np.exp(-attend_logit))
    return {"dwell_time": dwell, "num_likes": likes, "num_saves": saves, "num_shares": shares, "attended": attended}


def city_interactions(
    cfg: WorldConfig,
    users: pl.DataFrame,
    places: pl.DataFrame,
    similar_pairs: pl.DataFrame,
    city: int,
    weights: AffinityWeights = AffinityWeights(),
    features: WorldFeatures | None = None,
) -> pl.DataFrame:
    """The interactions of the users whose home is ``city`` (their home and travel visits,
    and the outings of same-city friend pairs), from the city's own random stream.
    ``features`` (of the sorted tables) may be passed in when making several cities."""
    rng = cfg.rng(f"interactions/city{city}")
    users = users.sort("user_id")
    f = features or WorldFeatures.from_tables(users, places, cfg.neighborhoods_per_city, latent_taste(cfg, users))
    home = np.flatnonzero(f.user_city == city)
    counts = np.zeros(len(users), dtype=np.int64)
    counts[home] = interaction_counts(cfg, users[home], rng)
    n_travel = np.zeros_like(counts)
    n_travel[home] = rng.binomial(counts[home], cfg.travel_rate if cfg.n_cities > 1 else 0.0)
    hu, hp, hs = sample_home_visits(cfg, f, city, counts - n_travel, rng, weights)
    draw = uniform_city_sampler(f.place_city, cfg.n_cities)
    tu, tp, ts = sample_travel_visits(cfg, f, n_travel, city_layout(cfg), draw, rng, weights)
    solo_u, solo_p, solo_s = np.concatenate([hu, tu]), np.concatenate([hp, tp]), np.concatenate([hs, ts])
    typical = places.sort("place_id")["typical_time_slot"].to_numpy()
    slot = np.where(rng.random(len(solo_p)) < TYPICAL_SLOT_RATE, typical[solo_p], rng.integers(0, 6, len(solo_p)))
    solo_ts = sample_timestamps(cfg, slot, rng)

    # Joint outings: one event per outing, recorded for both friends with the same time;
    # both experience the pair's joint score, on the same scale as a solo visit's.
    pairs = similar_pairs.filter(pl.col("user_u").is_in(pl.Series(home)))
    ou, ov, op, o_score = sample_joint_outings(f, pairs, draw, rng, weights)
    out_ts = sample_timestamps(cfg, typical[op], rng)

    user = np.concatenate([solo_u, ou, ov])
    place = np.concatenate([solo_p, op, op])
    stamp = np.concatenate([solo_ts, out_ts, out_ts])
    if len(user) == 0:
        return _frame(user, place, stamp, {k: np.empty(0) for k in ENGAGEMENT}, np.empty(0, np.float32))
    cols = engagement(users, user, np.concatenate([solo_s, o_score, o_score]), rng)
    cols["attended"][len(solo_u):] = True
    rating = compute_implicit_rating(**cols) + rng.normal(0.0, 0.3, size=len(user)).astype(np.float32)
    return _frame(user, place, stamp, cols, rating)


ENGAGEMENT = ("dwell_time", "num_likes", "num_saves", "num_shares", "attended")


def _frame(user, place, stamp, cols: dict, rating) -> pl.DataFrame:
    return pl.DataFrame(
        [
            pl.Series("user_id", user.astype(np.int64)),
            pl.Series("place_id", place.astype(np.int64)),
            pl.Series("dwell_time", cols["dwell_time"].astype(np.float32)),
            pl.Series("num_likes", cols["num_likes"].astype(np.int32)),
            pl.Series("num_saves", cols["num_saves"].astype(np.int32)),
            pl.Series("num_shares", cols["num_shares"].astype(np.int32)),
            pl.Series("attended", cols["attended"].astype(bool)),
            pl.Series("implicit_rating", np.clip(rating, 1.0, 5.0).astype(np.float32)),
            pl.Series("timestamp", stamp.astype(np.int64)).cast(pl.Datetime("us")),
        ]
    )


def combine(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """The ``interactions`` table of §2.4 from the cities' parts (in city order), sorted by
    (user_id, timestamp, place_id)."""
    frame = pl.concat(parts, how="vertical").sort("user_id", "timestamp", "place_id", maintain_order=True)
    return frame.with_columns(
        time_of_day_bucket=time_of_day_expr(pl.col("timestamp")),
        day_of_week_bucket=day_of_week_expr(pl.col("timestamp")),
    )


def generate_interactions(
    cfg: WorldConfig,
    users: pl.DataFrame,
    places: pl.DataFrame,
    similar_pairs: pl.DataFrame,
    weights: AffinityWeights = AffinityWeights(),
) -> pl.DataFrame:
    """The ``interactions`` table of §2.4, every city in this process."""
    return combine(cities_interactions(cfg, users, places, similar_pairs, range(cfg.n_cities), weights))


def cities_interactions(cfg: WorldConfig, users: pl.DataFrame, places: pl.DataFrame, similar_pairs: pl.DataFrame,
                        cities, weights: AffinityWeights = AffinityWeights()) -> list[pl.DataFrame]:
    """:func:`city_interactions` of several cities, sharing their features."""
    f = WorldFeatures.from_tables(users.sort("user_id"), places, cfg.neighborhoods_per_city, latent_taste(cfg, users))
    return [city_interactions(cfg, users, places, similar_pairs, c, weights, f) for c in cities]
