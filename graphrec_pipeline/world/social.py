"""Soft social edges, friend labels and user blocks (§7.5, §2.5, §2.6).

* Candidates: each user's top-k most similar users in their city by full taste, the
  stated ``fine_pref`` and the latent taste (``latent.py``; ``fine_pref`` alone in a world
  without latent taste), an exact faiss inner-product index over unit vectors. Their
  ``interest_overlap_score`` is the cosine of ``fine_pref``, the stated overlap.
* Co-attendance: the number of distinct places two users attended at the same time (the
  same clock hour of the same day), counted from the interactions; friends' joint
  outings put them there, strangers rarely coincide.
* Edges: candidate pairs close enough in interests, plus every pair that co-attended
  at least twice (a single coincidence is not a tie).
* Labels: §2.6 exactly. Positives are pairs with overlap >= 0.6 or co-attendance >= 2;
  negatives are random same-city pairs with overlap < 0.3 and no co-attendance;
  ``label_attend ~ Bernoulli(min(1, overlap * (1 + co_attendance / 10)))`` for positives.
"""

from __future__ import annotations

import faiss
import numpy as np
import polars as pl

from graphrec_pipeline.coattendance import co_attendance
from graphrec_pipeline.columns import dense_from_area, dense_from_list
from graphrec_pipeline.world.affinity import l2_normalize
from graphrec_pipeline.world.config import WorldConfig
from graphrec_pipeline.world.latent import full_taste, latent_taste

EDGE_MIN_OVERLAP = 0.5  # candidate pairs at least this similar become soft edges
POSITIVE_OVERLAP, POSITIVE_COATTENDANCE = 0.6, 2  # §2.6 positive rule
NEGATIVE_MAX_OVERLAP = 0.3  # §2.6 negative rule (and no co-attendance)
NEGATIVES_PER_POSITIVE = 1.0
BLOCK_RATE = 0.01  # share of users who block someone
PAIR_SCHEMA = {"user_u": pl.Int64, "user_v": pl.Int64}


def canonical_pairs(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.minimum(u, v), np.maximum(u, v)


def fine_pref_unit(users: pl.DataFrame) -> np.ndarray:
    return l2_normalize(dense_from_list(users.sort("user_id")["fine_pref"]))


def pair_overlap(unit: np.ndarray, u: np.ndarray, v: np.ndarray, chunk: int = 262_144) -> np.ndarray:
    """Cosine of ``fine_pref`` for aligned pairs, clipped to [0, 1] (in chunks: gathers are
    the cost)."""
    out = np.empty(len(u), dtype=np.float32)
    for s in range(0, len(u), chunk):
        out[s : s + chunk] = np.einsum("ij,ij->i", unit[u[s : s + chunk]], unit[v[s : s + chunk]])
    return np.clip(out, 0.0, 1.0)


def similar_user_candidates(users: pl.DataFrame, k: int, latent: np.ndarray | None = None) -> pl.DataFrame:
    """Top-k most similar same-city users of every user by full taste (``latent``: the
    users' latent tastes, or None), as unique pairs u < v with their stated overlap."""
    unit = fine_pref_unit(users)
    taste = full_taste(unit, latent)
    city = users.sort("user_id")["home_city_id"].to_numpy()
    us, vs = [], []
    for c in np.unique(city):
        members = np.flatnonzero(city == c)
        kk = min(k + 1, len(members))
        if kk < 2:
            continue
        index = faiss.IndexFlatIP(taste.shape[1])
        index.add(taste[members])
        _, nbr = index.search(taste[members], kk)
        src = np.repeat(members, kk)
        dst = members[nbr.ravel()]
        keep = (nbr.ravel() >= 0) & (src != dst)
        us.append(src[keep])
        vs.append(dst[keep])
    u, v = canonical_pairs(np.concatenate(us), np.concatenate(vs)) if us else (np.empty(0, np.int64),) * 2
    pairs = pl.DataFrame({"user_u": u, "user_v": v}, schema=PAIR_SCHEMA).unique().sort(["user_u", "user_v"])
    overlap = pair_overlap(unit, pairs["user_u"].to_numpy(), pairs["user_v"].to_numpy())
    return pairs.with_columns(interest_overlap_score=pl.Series(overlap))


def world_candidates(cfg: WorldConfig, users: pl.DataFrame) -> pl.DataFrame:
    """The world's social candidates: :func:`similar_user_candidates` by the full taste
    of the world ``cfg`` makes."""
    latent = latent_taste(cfg, users)
    return similar_user_candidates(users, cfg.similar_users_k, None if latent is None else latent.user)


def neighborhood_overlap(users: pl.DataFrame, n_neighborhoods: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Σ_n min(area_u[n], area_v[n]) for same-city pairs (0 across cities), in [0, 1]."""
    users = users.sort("user_id")
    area = dense_from_area(users["area_freqs"], n_neighborhoods)
    city = users["home_city_id"].to_numpy()
    shared = np.minimum(area[u], area[v]).sum(axis=1)
    return np.where(city[u] == city[v], np.clip(shared, 0.0, 1.0), 0.0).astype(np.float32)


def build_user_user_edges(
    n_neighborhoods: int, users: pl.DataFrame, candidates: pl.DataFrame, interactions: pl.DataFrame
) -> pl.DataFrame:
    """The ``user_user_edges`` table of §2.5 (one row per pair, user_u < user_v) from the
    given interactions (the world's: all of them; the training graph's: training ones)."""
    coatt = co_attendance(interactions)
    close = candidates.filter(pl.col("interest_overlap_score") >= EDGE_MIN_OVERLAP).select("user_u", "user_v")
    repeat = coatt.filter(pl.col("co_attendance_count") >= POSITIVE_COATTENDANCE).select("user_u", "user_v")
    pairs = pl.concat([close, repeat]).unique().sort("user_u", "user_v")
    pairs = pairs.join(coatt, on=["user_u", "user_v"], how="left").with_columns(
        pl.col("co_attendance_count").fill_null(0)
    )
    u, v = pairs["user_u"].to_numpy(), pairs["user_v"].to_numpy()
    return pairs.select(
        "user_u",
        "user_v",
        interest_overlap_score=pl.Series(pair_overlap(fine_pref_unit(users), u, v)),
        co_attendance_count=pl.col("co_attendance_count").cast(pl.Int32),
        same_neighborhood_freq=pl.Series(neighborhood_overlap(users, n_neighborhoods, u, v)),
    )


def sample_same_city_pairs(users: pl.DataFrame, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uniformly random pairs of distinct users who share a home city (u < v)."""
    city = users.sort("user_id")["home_city_id"].to_numpy()
    order = np.argsort(city, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    sizes = np.bincount(city)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    u = rng.integers(0, len(city), size=n)
    u = u[sizes[city[u]] > 1]
    cu = city[u]
    offset = rng.integers(0, sizes[cu] - 1)
    offset += offset >= rank[u] - starts[cu]  # skip u itself
    return canonical_pairs(u, order[starts[cu] + offset])


def build_friend_labels(
    cfg: WorldConfig, users: pl.DataFrame, edges: pl.DataFrame, interactions: pl.DataFrame
) -> pl.DataFrame:
    """The ``friend_labels`` table of §2.6."""
    rng = cfg.rng("friend_labels")
    pos = edges.filter(
        (pl.col("interest_overlap_score") >= POSITIVE_OVERLAP)
        | (pl.col("co_attendance_count") >= POSITIVE_COATTENDANCE)
    )
    p_attend = np.minimum(
        pos["interest_overlap_score"].to_numpy() * (1.0 + pos["co_attendance_count"].to_numpy() / 10.0), 1.0
    )
    pos = pos.select("user_u", "user_v").with_columns(
        label_compat=pl.lit(1, pl.Int32),
        label_attend=pl.Series((rng.random(len(pos)) < p_attend).astype(np.int32)),
    )

    n_neg = int(round(len(pos) * NEGATIVES_PER_POSITIVE))
    unit = fine_pref_unit(users)
    coatt = co_attendance(interactions).select("user_u", "user_v")
    neg = pl.DataFrame(schema=PAIR_SCHEMA)
    accept = 0.5  # share of random same-city pairs that qualify, re-estimated each round
    for _ in range(20):
        want = n_neg - len(neg)
        if want <= 0:
            break
        n_draw = int(1.2 * want / max(accept, 0.02)) + 16
        u, v = sample_same_city_pairs(users, n_draw, rng)
        fresh = (
            pl.DataFrame({"user_u": u, "user_v": v}, schema=PAIR_SCHEMA)
            .filter(pl.Series(pair_overlap(unit, u, v) < NEGATIVE_MAX_OVERLAP))
            .unique(maintain_order=True)
            .join(coatt, on=["user_u", "user_v"], how="anti", maintain_order="left")
            .join(pos.select("user_u", "user_v"), on=["user_u", "user_v"], how="anti", maintain_order="left")
            .join(neg, on=["user_u", "user_v"], how="anti", maintain_order="left")
        )
        accept = max(len(fresh) / n_draw, 1e-3)
        neg = pl.concat([neg, fresh])
    neg = neg.head(n_neg).with_columns(label_compat=pl.lit(0, pl.Int32), label_attend=pl.lit(0, pl.Int32))
    return pl.concat([pos, neg]).sort("user_u", "user_v")


def build_user_blocks(cfg: WorldConfig, users: pl.DataFrame, candidates: pl.DataFrame) -> pl.DataFrame:
    """A small ``user_blocks`` table (blocker -> blocked): half among similar users, whom
    people recommendation would otherwise suggest, half random same-city users."""
    rng = cfg.rng("user_blocks")
    n = max(1, int(round(BLOCK_RATE * cfg.n_users)))
    near = candidates.sample(n=min(n, len(candidates)), seed=int(rng.integers(2**31))) if len(candidates) else candidates
    flip = rng.random(len(near)) < 0.5
    nu, nv = near["user_u"].to_numpy(), near["user_v"].to_numpy()
    ru, rv = sample_same_city_pairs(users, n, rng)
    blocker = np.concatenate([np.where(flip, nv, nu), ru])
    blocked = np.concatenate([np.where(flip, nu, nv), rv])
    return (
        pl.DataFrame({"user_id": blocker, "blocked_user_id": blocked}, schema={"user_id": pl.Int64, "blocked_user_id": pl.Int64})
        .filter(pl.col("user_id") != pl.col("blocked_user_id"))
        .unique()
        .sort("user_id", "blocked_user_id")
    )
