"""Synthetic user-place interactions (§7.4).

Each user draws a number of interactions from their behaviour statistics; most are
sampled from ``softmax(affinity + taste noise)`` over the places of their home city, a few
(``travel_rate``) from popularity-drawn candidates in other cities, and friends add joint
outings (both attend the same place at the same time). Engagement grows with the
experienced score, the implicit rating follows §2.4 with noise, and timestamps fall
mostly in the place's typical time slot so that time-of-day context carries signal.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl

from graphrec_pipeline.timeslots import BUCKET_HOURS, day_of_week_expr, slot_buckets, time_of_day_expr
from graphrec_pipeline.world.affinity import AffinityWeights, WorldFeatures, affinity_block
from graphrec_pipeline.world.config import WorldConfig
from graphrec_pipeline.world.layout import city_layout, sample_rows

TYPICAL_SLOT_RATE = 0.75  # share of visits in the place's typical time slot
WINDOW_SIZE = 32  # popularity-drawn places a batch of travel visits or outings chooses among
WINDOW_BATCH = 2048  # rows sharing one window
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


def sample_home_visits(cfg, f: WorldFeatures, counts: np.ndarray, rng, w: AffinityWeights):
    """Visits in the home city: (user, place, experienced score) arrays.

    Users of a city are shuffled into batches; each batch is exposed to a random window of
    at most ``exposure_size`` of the city's places and samples from softmax over it.
    """
    out_u, out_p, out_s = [], [], []
    for city in range(cfg.n_cities):
        city_users = rng.permutation(np.flatnonzero((f.user_city == city) & (counts > 0)))
        city_places = np.flatnonzero(f.place_city == city)
        if len(city_users) == 0 or len(city_places) == 0:
            continue
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


def popularity_sampler(f: WorldFeatures, popularity: np.ndarray, n_cities: int):
    """Returns ``draw(city, rng) -> place`` sampling each city's places ∝ popularity."""
    order = np.argsort(f.place_city, kind="stable")
    city_sorted = f.place_city[order]
    w = popularity[order].astype(np.float64)
    totals = np.bincount(city_sorted, weights=w, minlength=n_cities)
    cdf = np.cumsum(w) - np.concatenate([[0.0], np.cumsum(totals)[:-1]])[city_sorted]
    cdf = cdf / totals[city_sorted] + city_sorted

    def draw(city: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        idx = np.searchsorted(cdf, city + rng.random(len(city)) * (1 - 1e-12), side="right")
        return order[np.minimum(idx, len(order) - 1)]

    return draw


def choose_among(rng, scores: np.ndarray) -> np.ndarray:
    """Gumbel-max pick of one column per row of ``scores`` (a softmax draw)."""
    return np.argmax(scores + rng.gumbel(size=scores.shape), axis=1)


def choose_in_windows(f, users, city, draw, rng, w: AffinityWeights, partners=None, noise: bool = True):
    """For each row, a place of ``city[row]`` picked by softmax over a shared window.

    Rows of a city are shuffled into batches of ``WINDOW_BATCH``; each batch scores one
    popularity-drawn window of ``WINDOW_SIZE`` places with a matmul (``affinity_block``),
    adding the ``partners``' affinity when given (joint outings). Returns (place, score).
    """
    place = np.empty(len(users), dtype=np.int64)
    score = np.empty(len(users), dtype=np.float32)
    order = rng.permutation(len(users))
    order = order[np.argsort(city[order], kind="stable")]
    bounds = np.concatenate([[0], np.cumsum(np.bincount(city, minlength=city.max() + 1 if len(city) else 0))])
    for c in range(len(bounds) - 1):
        rows_c = order[bounds[c] : bounds[c + 1]]
        for start in range(0, len(rows_c), WINDOW_BATCH):
            rows = rows_c[start : start + WINDOW_BATCH]
            window = draw(np.full(WINDOW_SIZE, c), rng)
            s = affinity_block(f, users[rows], window, w)
            if partners is not None:
                s += affinity_block(f, partners[rows], window, w)
            if noise:
                s += rng.normal(0.0, w.taste_noise, size=s.shape).astype(np.float32)
            pick = choose_among(rng, s)
            place[rows] = window[pick]
            score[rows] = s[np.arange(len(rows)), pick]
    return place, score


def sample_travel_visits(cfg, f, counts, draw, layout, rng, w: AffinityWeights):
    """Visits to other cities: a destination ∝ city size, then a pick in its window."""
    users = np.repeat(np.arange(len(counts)), counts)
    if len(users) == 0 or cfg.n_cities < 2:
        return (np.empty(0, np.int64),) * 2 + (np.empty(0, np.float32),)
    dest_p = np.tile(layout.city_weights, (cfg.n_cities, 1))
    np.fill_diagonal(dest_p, 0.0)
    dest = sample_rows(rng, dest_p[f.user_city[users]])
    place, score = choose_in_windows(f, users, dest, draw, rng, w)
    return users, place, score


def sample_joint_outings(f, pairs: pl.DataFrame, draw, rng, w: AffinityWeights):
    """Friends' outings: (user_u, user_v, place) per outing, both attend together; the
    place is a softmax draw by their joint affinity within a window of their city."""
    overlap = pairs["interest_overlap_score"].to_numpy()
    friends = (overlap >= FRIEND_MIN_OVERLAP) & (rng.random(len(overlap)) < FRIEND_RATE)
    n_out = np.where(friends, rng.poisson(OUTINGS_PER_OVERLAP * overlap), 0)
    u = np.repeat(pairs["user_u"].to_numpy(), n_out)
    v = np.repeat(pairs["user_v"].to_numpy(), n_out)
    if len(u) == 0:
        return u, v, np.empty(0, np.int64)
    place, _ = choose_in_windows(f, u, f.user_city[u], draw, rng, w, partners=v)
    return u, v, place


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


def generate_interactions(
    cfg: WorldConfig,
    users: pl.DataFrame,
    places: pl.DataFrame,
    similar_pairs: pl.DataFrame,
    weights: AffinityWeights = AffinityWeights(),
) -> pl.DataFrame:
    """The ``interactions`` table of §2.4, sorted by (user_id, timestamp, place_id)."""
    rng = cfg.rng("interactions")
    users = users.sort("user_id")
    f = WorldFeatures.from_tables(users, places, cfg.neighborhoods_per_city)
    layout = city_layout(cfg)
    draw = popularity_sampler(f, places.sort("place_id")["base_popularity"].to_numpy(), cfg.n_cities)

    counts = interaction_counts(cfg, users, rng)
    n_travel = rng.binomial(counts, cfg.travel_rate if cfg.n_cities > 1 else 0.0)
    hu, hp, hs = sample_home_visits(cfg, f, counts - n_travel, rng, weights)
    tu, tp, ts = sample_travel_visits(cfg, f, n_travel, draw, layout, rng, weights)
    solo_u, solo_p, solo_s = np.concatenate([hu, tu]), np.concatenate([hp, tp]), np.concatenate([hs, ts])
    ev = engagement(users, solo_u, solo_s, rng)

    typical = places.sort("place_id")["typical_time_slot"].to_numpy()
    slot = np.where(rng.random(len(solo_p)) < TYPICAL_SLOT_RATE, typical[solo_p], rng.integers(0, 6, len(solo_p)))
    solo_ts = sample_timestamps(cfg, slot, rng)

    # Joint outings: one event per outing, recorded for both friends with the same time.
    # Their window is uniform over the city, so the pair's joint affinity decides.
    uniform = popularity_sampler(f, np.ones(len(f.place_city)), cfg.n_cities)
    ou, ov, op = sample_joint_outings(f, similar_pairs, uniform, rng, weights)
    out_ts = sample_timestamps(cfg, typical[op], rng)
    out_user = np.concatenate([ou, ov])
    out_place = np.concatenate([op, op])
    out_ev = engagement(users, out_user, np.full(len(out_user), np.percentile(solo_s, 90)), rng)
    out_ev["attended"] = np.ones(len(out_user), dtype=bool)

    user = np.concatenate([solo_u, out_user])
    place = np.concatenate([solo_p, out_place])
    stamp = np.concatenate([solo_ts, out_ts, out_ts])
    cols = {k: np.concatenate([ev[k], out_ev[k]]) for k in ev}
    rating = compute_implicit_rating(**cols) + rng.normal(0.0, 0.3, size=len(user)).astype(np.float32)

    frame = pl.DataFrame(
        [
            pl.Series("user_id", user.astype(np.int64)),
            pl.Series("place_id", place.astype(np.int64)),
            pl.Series("dwell_time", cols["dwell_time"].astype(np.float32)),
            pl.Series("num_likes", cols["num_likes"].astype(np.int32)),
            pl.Series("num_saves", cols["num_saves"].astype(np.int32)),
            pl.Series("num_shares", cols["num_shares"].astype(np.int32)),
            pl.Series("attended", cols["attended"]),
            pl.Series("implicit_rating", np.clip(rating, 1.0, 5.0).astype(np.float32)),
            pl.Series("timestamp", stamp).cast(pl.Datetime("us")),
        ]
    ).sort("user_id", "timestamp", "place_id", maintain_order=True)
    return frame.with_columns(
        time_of_day_bucket=time_of_day_expr(pl.col("timestamp")),
        day_of_week_bucket=day_of_week_expr(pl.col("timestamp")),
    )
