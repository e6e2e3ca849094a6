"""Everything training samples from, as flat arrays prepared once (vectorized).

Training edges are the unique (user, place) pairs of the training interactions, in the
same order as the graph's ``interacts`` edges. Each carries its best rating (positive when
>= the threshold) and the time slot of its latest interaction (the example's context).

Friend labels: the training split's pairs, except positives that only the §2.6
co-attendance rule makes positive and whose co-attendance needs held-out visits (interest
overlap below the rule and fewer than two co-attendances in training). Their label says
"these two will go out together later": training on it would teach the model the test
period's outing partners. The label tables stay as the world made them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import polars as pl
import torch

from graphrec_pipeline import coattendance
from graphrec_pipeline.columns import dense_from_list
from graphrec_pipeline.graph.build import pair_key
from graphrec_pipeline.artifacts.graph import UP, UU
from graphrec_pipeline.metrics import contains, pair_keys
from graphrec_pipeline.timeslots import time_slot
from graphrec_pipeline.widths import Widths
from graphrec_pipeline.world import social


@dataclass
class TrainingData:
    graph: object  # HeteroData of training edges
    edge_user: np.ndarray
    edge_place: np.ndarray
    edge_positive: np.ndarray  # bool per training edge
    edge_slot: np.ndarray  # time slot of the pair's latest training interaction
    place_city: np.ndarray
    place_category: np.ndarray  # (n_places, categories) multi-hot
    place_tags: np.ndarray  # (n_places, tags)
    user_city: np.ndarray
    social_keys: np.ndarray  # canonical pair key (min * n + max) per social edge (directed list)
    label_u: np.ndarray  # training friend labels
    label_v: np.ndarray
    label_compat: np.ndarray
    label_attend: np.ndarray
    city_offsets: np.ndarray  # places sorted by city: places_by_city[offsets[c]:offsets[c+1]]
    places_by_city: np.ndarray
    outing_keys: np.ndarray  # sorted canonical pair keys of training-period co-attendances, one per place
    outing_places: np.ndarray  # the place of each key: where the pair went together
    outing_hours: np.ndarray  # and the hour they first did (hours since the epoch; in time order per pair)

    @property
    def n_users(self) -> int:
        return len(self.user_city)

    @property
    def widths(self) -> Widths:
        """The world's feature widths (``widths.py``), read off the arrays."""
        return Widths.of_rows(self.graph["user"].x.shape[1], self.place_category.shape[1], self.place_tags.shape[1])

    @property
    def n_places(self) -> int:
        return len(self.place_city)

    @cached_property
    def users_by_city(self) -> np.ndarray:
        return np.argsort(self.user_city, kind="stable")

    @cached_property
    def user_offsets(self) -> np.ndarray:
        """Users sorted by city: ``users_by_city[user_offsets[c]:user_offsets[c + 1]]``."""
        return np.concatenate([[0], np.cumsum(np.bincount(self.user_city))])

    @cached_property
    def edge_keys(self) -> np.ndarray:
        """Sorted ``user * n_places + place`` of the training edges (they are sorted by user, place)."""
        return pair_keys(self.edge_user, self.edge_place, self.n_places)

    @cached_property
    def outing_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """(sorted pair keys, how many distinct places each pair went to together in training)."""
        return np.unique(self.outing_keys, return_counts=True)

    def partner_keys(self, min_outings: int) -> np.ndarray:
        """Sorted canonical keys of the pairs who went out together at ``min_outings`` or
        more distinct places in training (one coincidence in a crowd is not a partner)."""
        keys, counts = self.outing_counts
        return keys[counts >= min_outings]

    def partner_outings(self, min_outings: int) -> np.ndarray:
        """Indices into ``outing_*`` of every training-period outing of those pairs
        (:meth:`partner_keys`): drawing from them weights a pair by how often it went out,
        as the next period's partners are."""
        return np.flatnonzero(contains(self.partner_keys(min_outings), self.outing_keys))

    @cached_property
    def history(self) -> coattendance.PairHistory:
        """The pairs' training-period co-attendance counts, and each user's partners."""
        keys, counts = self.outing_counts
        pairs = pl.DataFrame({"user_u": keys // self.n_users, "user_v": keys % self.n_users,
                              "co_attendance_count": counts.astype(np.int32)})
        return coattendance.PairHistory(pairs, self.n_users)

    @cached_property
    def outing_timeline(self) -> tuple[np.ndarray, int, int]:
        """(sorted ``key * stride + hour - start``, start, stride): each outing of
        ``outing_keys`` as one number, so a pair's outings before an hour are a range."""
        start = int(self.outing_hours.min(initial=0))
        stride = int(self.outing_hours.max(initial=start)) - start + 2
        return self.outing_keys * stride + (self.outing_hours - start), start, stride

    @cached_property
    def social_neighbors(self) -> tuple[np.ndarray, np.ndarray]:
        """(offsets, neighbours): user u's social neighbours are ``neighbours[offsets[u]:offsets[u + 1]]``."""
        src, dst = self.graph[UU].edge_index.numpy()
        order = np.argsort(src, kind="stable")
        return np.concatenate([[0], np.cumsum(np.bincount(src, minlength=self.n_users))]), dst[order]


def prepare(
    graph,
    users: pl.DataFrame,
    places: pl.DataFrame,
    interactions: pl.DataFrame,
    split: pl.DataFrame,
    labels: pl.DataFrame,
    friend_split: pl.DataFrame,
    positive_rating: float,
) -> TrainingData:
    places = places.sort("place_id")
    users = users.sort("user_id")
    widths = Widths.of_tables(users, places)
    train = interactions.filter(split["split"] == "train")
    train = train.with_columns(
        slot=pl.Series(time_slot(train["time_of_day_bucket"].to_numpy(), train["day_of_week_bucket"].to_numpy()))
    )
    pairs = (
        train.sort("timestamp")
        .group_by("user_id", "place_id")
        .agg(best=pl.col("implicit_rating").max(), slot=pl.col("slot").last())
        .sort("user_id", "place_id")
    )
    edge_index = graph[UP].edge_index.numpy()
    assert np.array_equal(edge_index[0], pairs["user_id"].to_numpy()) and np.array_equal(
        edge_index[1], pairs["place_id"].to_numpy()
    ), "training pairs must align with the graph's interacts edges"
    train_labels = visible_training_labels(labels, friend_split, users, graph)
    place_city = places["city_id"].to_numpy()
    order = np.argsort(place_city, kind="stable")
    offsets = np.concatenate([[0], np.cumsum(np.bincount(place_city, minlength=place_city.max() + 1))])
    social = graph[UU].edge_index.numpy()
    outings = coattendance.co_attended_places(train)
    user_city = users["home_city_id"].to_numpy()
    return TrainingData(
        graph=graph,
        edge_user=edge_index[0],
        edge_place=edge_index[1],
        edge_positive=pairs["best"].to_numpy() >= positive_rating,
        edge_slot=pairs["slot"].to_numpy(),
        place_city=place_city,
        place_category=dense_from_list(places["category_one_hot"], widths.categories),
        place_tags=dense_from_list(places["fine_tag_vector"], widths.tags),
        user_city=user_city,
        social_keys=pair_key(social[0], social[1], len(users)),
        label_u=train_labels["user_u"].to_numpy(),
        label_v=train_labels["user_v"].to_numpy(),
        label_compat=train_labels["label_compat"].to_numpy().astype(np.float32),
        label_attend=train_labels["label_attend"].to_numpy().astype(np.float32),
        city_offsets=offsets,
        places_by_city=order,
        outing_keys=pair_key(outings["user_u"].to_numpy(), outings["user_v"].to_numpy(), len(users)),
        outing_places=outings["place_id"].to_numpy(),
        outing_hours=outings["first"].dt.epoch("s").to_numpy() // 3600,
    )


def visible_training_labels(labels: pl.DataFrame, friend_split: pl.DataFrame, users: pl.DataFrame, graph) -> pl.DataFrame:
    """Training-split friend labels whose label the training period explains (module doc)."""
    train = labels.with_columns(split=friend_split["split"]).filter(pl.col("split") == "train")
    u, v = train["user_u"].to_numpy(), train["user_v"].to_numpy()
    overlap = social.pair_overlap(social.fine_pref_unit(users), u, v)
    social_index = graph[UU].edge_index.numpy()
    coatt = np.rint(graph[UU].edge_attr[:, 1].numpy() * 10.0)  # clipped at 10, enough for the >= 2 rule
    keys = pair_key(social_index[0], social_index[1], len(users))
    order = np.argsort(keys)
    wanted = pair_key(u, v, len(users))
    pos = order[np.minimum(np.searchsorted(keys, wanted, sorter=order), max(len(keys) - 1, 0))] if len(keys) else None
    train_coatt = np.where(keys[pos] == wanted, coatt[pos], 0.0) if len(keys) else np.zeros(len(u))
    explained = (overlap >= social.POSITIVE_OVERLAP) | (train_coatt >= social.POSITIVE_COATTENDANCE)
    return train.filter(pl.Series((train["label_compat"].to_numpy() == 0) | explained))


def sample_negatives(data: TrainingData, users: np.ndarray, positives: np.ndarray, rng: np.random.Generator,
                     cross_city_rate: float = 0.0, rounds: int = 4) -> np.ndarray:
    """A negative place per (user, positive): mostly from the positive's city, a
    ``cross_city_rate`` share from anywhere, and never a place the user has a training
    edge to (those are false negatives, §5.1; rows still unlucky after ``rounds`` redraws
    keep their draw)."""
    neg = sample_same_city(data, positives, rng)
    cross = rng.random(len(neg)) < cross_city_rate
    neg[cross] = rng.integers(0, data.n_places, int(cross.sum()))
    for _ in range(rounds):
        bad = np.flatnonzero(contains(data.edge_keys, pair_keys(users, neg, data.n_places)))
        if len(bad) == 0:
            break
        neg[bad] = sample_same_city(data, positives[bad], rng)
    return neg


def _outing_ranges(data: TrainingData, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keys = pair_key(u, v, data.n_users)
    lo = np.searchsorted(data.outing_keys, keys)
    return lo, np.searchsorted(data.outing_keys, keys, side="right") - lo


def pair_history_before(data: TrainingData, u: np.ndarray, v: np.ndarray, hours: np.ndarray) -> np.ndarray:
    """How many places each pair went to together in training before ``hours`` (first visits
    together strictly earlier)."""
    timeline, start, stride = data.outing_timeline
    keys = pair_key(u, v, data.n_users) * stride
    return np.searchsorted(timeline, keys + np.clip(hours - start, 0, stride - 1)) - np.searchsorted(timeline, keys)


def pair_places(data: TrainingData, u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random place each pair went to together in training, or -1 for pairs that did not."""
    lo, n = _outing_ranges(data, u, v)
    pick = lo + (rng.random(len(lo)) * n).astype(np.int64)
    return np.where(n > 0, data.outing_places[np.minimum(pick, max(len(data.outing_places) - 1, 0))], -1)


def pick_in_groups(items: np.ndarray, offsets: np.ndarray, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One uniformly random member of each of ``groups``, whose members are
    ``items[offsets[g]:offsets[g + 1]]`` (every group non-empty)."""
    lo, hi = offsets[groups], offsets[groups + 1]
    return items[lo + (rng.random(len(groups)) * (hi - lo)).astype(np.int64)]


def sample_people(data: TrainingData, users: np.ndarray, partners: np.ndarray, rng: np.random.Generator,
                  neighbor_rate: float, past_rate: float = 0.0, rounds: int = 8) -> np.ndarray:
    """A person of each user's city who is not their partner: a ``past_rate`` share from the
    user's other training-period partners (for a ranking of who joins one outing, where
    past outings count on both sides), a ``neighbor_rate`` share from the user's social
    neighbours (similar people, the hard ones to rank below a partner), the rest uniform.
    Uniform and neighbour draws that hit the user or anyone the user went out with in
    training are redrawn uniformly from the city (rows still unlucky after ``rounds`` keep
    their draw)."""
    city = data.user_city[users]
    out = pick_in_groups(data.users_by_city, data.user_offsets, city, rng)
    offsets, neighbors = data.social_neighbors
    hard = (rng.random(len(users)) < neighbor_rate) & (offsets[users + 1] > offsets[users])
    out[hard] = pick_in_groups(neighbors, offsets, users[hard], rng)
    for _ in range(rounds):
        bad = np.flatnonzero((out == users) | (out == partners)
                             | contains(data.outing_keys, pair_key(users, out, data.n_users)))
        if len(bad) == 0:
            break
        out[bad] = pick_in_groups(data.users_by_city, data.user_offsets, city[bad], rng)
    if past_rate > 0:
        offsets, mates = data.history.adjacency()
        rows = np.flatnonzero((rng.random(len(users)) < past_rate) & (offsets[users + 1] - offsets[users] >= 2))
        other = pick_in_groups(mates, offsets, users[rows], rng)
        keep = other != partners[rows]
        out[rows[keep]] = other[keep]
    return out


def sample_same_city(data: TrainingData, places: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One uniformly random place from the same city as each of ``places``."""
    return pick_in_groups(data.places_by_city, data.city_offsets, data.place_city[places], rng)


def as_tensor(x: np.ndarray, dtype=torch.long) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)).to(dtype)
