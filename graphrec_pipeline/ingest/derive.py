"""Turn a raw check-in log into the six world tables, derived from behaviour.

What a log lacks, the import derives, and only from the **training** events (a held-out
event changes no feature, no social edge and no label):

* dense ids (keys sorted) and key maps ``user_keys`` / ``place_keys``;
* vocabularies: categories and tags kept by how many places carry them, up to a cap
  (``ImportConfig``), the rest folded into ``other``; their sizes are the world's feature
  widths (``widths.py``: :func:`log_widths`), so a log with 12 categories has 12 category
  slots, not the taxonomy's 6; a log without tags uses its categories as tags
  (check-in sets have one fine category per venue); cities from ``city``, else
  0.5-degree cells of the coordinates (small cells merged into the nearest large one),
  else one city; neighbourhoods from a quantile grid of the coordinates within each city;
* user features from each user's training visits: category and tag preferences
  (visit shares with a one-visit uniform prior), home city and neighbourhood (the most
  visited), areas, activity; one vibe slot, the same for everyone (a log says nothing
  about vibes);
* place popularity, conversion and typical time slot from training visits;
* the implicit rating of a visit: the log's ``rating`` rescaled to [1, 5] when present,
  else 3 for a first visit, +1 for each earlier visit to the same place and +1 when the
  visit carries a like, save or share, capped at 5 (a first visit is a positive);
* social edges from ``friends`` and from training co-visits (same place, same clock
  hour); friend labels by the §2.6 rules on those edges; blocks from ``blocks``.

The split: the log's ``split`` column when present (then a log without timestamps gets
evenly spaced synthetic ones inside its split's part of the horizon), else the pipeline's
temporal split (``SplitConfig``) of the timestamps. It is published as ``event_split``
and the graph stage uses it as it is. Synthetic times cannot say who went out together,
so no visit of such a log counts as attended (no co-visits, outings or attendance).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from graphrec_pipeline.coattendance import co_attendance
from graphrec_pipeline.columns import area_column, list_from_dense
from graphrec_pipeline.constants import MAX_NEIGHBORHOODS_PER_USER, N_NEIGHBORHOODS_PER_CITY
from graphrec_pipeline.graph.split import SplitConfig, interaction_split
import graphrec_pipeline.ingest.rules as rules
from graphrec_pipeline.ingest.read import RawLog
from graphrec_pipeline.timeslots import day_of_week_expr, time_of_day_expr, time_slot
from graphrec_pipeline.widths import Widths
from graphrec_pipeline.world import social
from graphrec_pipeline.world.config import WorldConfig

OTHER = "other"
CITY_CELL_DEGREES = 0.5
SMALL_CITY_SHARE = 0.02  # a coordinate cell with fewer of the places joins the nearest larger one
PRIOR_VISITS = 1.0  # uniform prior mass of the preference vectors, in visits
DEFAULT_PRICE_BAND = 2
SYNTHETIC_START = datetime(2026, 1, 5)
SYNTHETIC_DAYS = 182
ID = pl.Int64
IMPORT_TABLES = ["user_keys", "place_keys", "vocabulary", "event_split"]  # published beside the six
MAY_BE_EMPTY = ("user_user_edges", "friend_labels", "user_blocks")  # a log without friends or blocks
MAX_CATEGORIES = 32
MAX_TAGS = 200
LOG_VIBES = 1  # a log states no vibes: one slot, the same for everyone


@dataclass(frozen=True)
class ImportConfig:
    """How a log becomes a world.

    Args:
        neighborhoods_per_city: cells of each city's coordinate grid.
        max_categories, max_tags: vocabulary caps; the kept vocabularies' sizes are the
            world's category and tag widths.
        split: the temporal split of a log without a ``split`` column.
        seed: the friend-label negatives' random stream.
    """

    neighborhoods_per_city: int = N_NEIGHBORHOODS_PER_CITY
    max_categories: int = MAX_CATEGORIES
    max_tags: int = MAX_TAGS
    split: SplitConfig = field(default_factory=SplitConfig)
    seed: int = 42

    def __post_init__(self) -> None:
        if self.max_categories < 1 or self.max_tags < 1:
            raise ValueError(f"max_categories and max_tags must be at least 1, not {self.max_categories} and "
                             f"{self.max_tags}")
        if self.neighborhoods_per_city < 1:
            raise ValueError("neighborhoods_per_city must be >= 1")


@dataclass
class ImportedWorld:
    """The six world tables, the key maps, the vocabulary and the split."""

    tables: dict[str, pl.DataFrame]
    extras: dict[str, pl.DataFrame]
    summary: dict[str, int | str]


# --- parsing ---------------------------------------------------------------------------

def _timestamps(events: pl.DataFrame, file: str) -> pl.Series:
    """ISO strings or epoch seconds -> naive UTC datetimes[us]."""
    raw = events["timestamp"].str.strip_chars()
    numeric = raw.cast(pl.Float64, strict=False)
    if numeric.null_count() == 0:
        parsed = pl.from_epoch((numeric * 1e6).round().cast(pl.Int64), time_unit="us")
    else:
        parsed = raw.str.to_datetime(time_unit="us", strict=False)
        if parsed.dtype.time_zone is not None:  # type: ignore[union-attr]
            parsed = parsed.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    bad = parsed.is_null()
    if bad.any():
        raise rules.BadInput("timestamp_parsable", file, "timestamp is ISO 8601 or epoch seconds",
                             events.with_row_index("row").filter(bad.to_numpy()))
    return parsed.alias("timestamp")


def _numbers(frame: pl.DataFrame, col: str, file: str, default: float) -> pl.Series:
    if col not in frame.columns:
        return pl.Series(col, np.full(frame.height, default), pl.Float64)
    values = frame[col].str.strip_chars().cast(pl.Float64, strict=False)
    rules.require(f"{col}_numeric", file, frame, values.is_not_null() & values.is_finite(), f"{col} is a number")
    return values.alias(col)


def _flags(frame: pl.DataFrame, col: str) -> pl.Series:
    if col not in frame.columns:
        return pl.Series(col, np.ones(frame.height, bool))
    return frame[col].str.strip_chars().str.to_lowercase().is_in(["1", "true", "yes", "t", "y"]).alias(col)


def _lists(frame: pl.DataFrame, col: str) -> pl.Series:
    if col not in frame.columns:
        return pl.Series(col, [[]] * frame.height, pl.List(pl.String))
    return (frame[col].fill_null("").str.split("|")
            .list.eval(pl.element().str.strip_chars().filter(pl.element().str.len_chars() > 0)).list.unique(
                maintain_order=True).alias(col))


def _events(log: RawLog) -> pl.DataFrame:
    """Events with parsed columns, their split, and row order kept as ``row``."""
    file = log.files["events"]
    ev = log.events
    rules.no_null_keys(ev, file, ("user", "place"))
    has_split, has_time = "split" in ev.columns, "timestamp" in ev.columns
    if not (has_split or has_time):
        raise rules.BadInput("timestamp_or_split", file, "the events need a timestamp column, a split column or both")
    if has_split:
        ev = ev.with_columns(pl.col("split").str.strip_chars())
        rules.split_values(ev, file)
    out = ev.select(pl.col("user").str.strip_chars(), pl.col("place").str.strip_chars()).with_row_index("row")
    cols = [_numbers(ev, c, file, 0.0) for c in ("likes", "saves", "shares", "dwell_time")]
    out = out.with_columns(*cols, attended=_flags(ev, "attended"))
    if "rating" in ev.columns:
        out = out.with_columns(_numbers(ev, "rating", file, 0.0))
    if has_split:
        out = out.with_columns(split=ev["split"].replace_strict(rules.SPLIT_VALUES))
    if has_time:
        out = out.with_columns(_timestamps(ev, file))
    else:  # synthetic times say nothing of who was where together: no visit counts as attended
        out = out.with_columns(timestamp=_synthetic_times(out["split"]), attended=pl.lit(False))
    bad = out.select((pl.col(c) < 0).any() for c in ("likes", "saves", "shares", "dwell_time")).row(0)
    for c, negative in zip(("likes", "saves", "shares", "dwell_time"), bad):
        if negative:
            rules.require(f"{c}_non_negative", file, out, pl.col(c) >= 0, f"{c} >= 0")
    return out


def _synthetic_times(split: pl.Series) -> pl.Series:
    """Evenly spaced times for a log that has only a split: train first, then val, test,
    each inside its share of the default horizon, in file order."""
    cfg = SplitConfig()
    edges = np.cumsum([0.0, 1 - cfg.val_fraction - cfg.test_fraction, cfg.val_fraction, cfg.test_fraction])
    frame = pl.DataFrame({"split": split}).with_row_index("row").with_columns(
        k=pl.col("split").replace_strict({"train": 0, "val": 1, "test": 2}, return_dtype=pl.Int64),
        rank=pl.col("row").rank("ordinal").over("split") - 1,
        n=pl.len().over("split"),
    )
    k, rank, n = (frame[c].to_numpy() for c in ("k", "rank", "n"))
    share = edges[k] + (edges[k + 1] - edges[k]) * (rank + 0.5) / n
    micros = np.round(share * SYNTHETIC_DAYS * 86_400e6).astype(np.int64)
    start = (SYNTHETIC_START - datetime(1970, 1, 1)) // timedelta(microseconds=1)  # naive: no time zone reads in
    return pl.from_epoch(pl.Series(start + micros), time_unit="us").alias("timestamp")


# --- vocabularies and places -----------------------------------------------------------

def log_widths(vocabulary: pl.DataFrame) -> Widths:
    """The feature widths of an imported log's world, from its ``vocabulary`` table."""
    kinds = vocabulary["kind"]
    return Widths(int((kinds == "category").sum()), int((kinds == "tag").sum()), LOG_VIBES)


def vocabulary(lists: pl.Series, cap: int, kind: str) -> pl.DataFrame:
    """(kind, index, name, places): names by how many rows carry them, the top ``cap``
    kept (``cap - 1`` and ``other`` when there are more, or when a row has none)."""
    counts = (pl.DataFrame({"name": lists}).with_row_index("row").explode("name").drop_nulls("name")
              .group_by("name").agg(places=pl.col("row").n_unique()).sort(["places", "name"], descending=[True, False]))
    need_other = counts.height > cap or bool((lists.list.len() == 0).any())
    kept = counts.head(cap - 1 if need_other else cap)
    if need_other:
        rest = counts.slice(kept.height)["places"].sum() + int((lists.list.len() == 0).sum())
        kept = pl.concat([kept, pl.DataFrame({"name": [OTHER], "places": [rest]}, schema=kept.schema)])
    return kept.with_row_index("index").select(kind=pl.lit(kind), index=pl.col("index").cast(pl.Int32), name="name",
                                               places=pl.col("places").cast(pl.Int64))


def _slots(lists: pl.Series, vocab: pl.DataFrame) -> pl.Series:
    """Each row's list of names -> sorted unique vocabulary indexes (unknown or none -> ``other``)."""
    lookup = dict(zip(vocab["name"], vocab["index"]))
    other = lookup.get(OTHER)
    found = (pl.DataFrame({"n": lists}).with_row_index("row").explode("n").drop_nulls("n")
             .select("row", i=pl.col("n").replace_strict(lookup, default=other, return_dtype=pl.Int32))
             .drop_nulls("i").group_by("row").agg(pl.col("i").unique().sort()))
    rows = pl.DataFrame({"row": pl.int_range(len(lists), eager=True, dtype=pl.UInt32)})
    slots = rows.join(found, on="row", how="left").sort("row")["i"]
    return pl.select(pl.when(slots.list.len().fill_null(0) > 0).then(slots)
                     .otherwise(pl.lit([other], pl.List(pl.Int32)))).to_series().alias("slots")


def _multi_hot(slots: pl.Series, width: int) -> np.ndarray:
    out = np.zeros((len(slots), width), np.float32)
    rows = np.repeat(np.arange(len(slots)), slots.list.len().to_numpy())
    out[rows, slots.explode().drop_nulls().to_numpy()] = 1.0
    return out


def _cities(places: pl.DataFrame) -> tuple[pl.Series, list[str]]:
    """Dense city ids (largest first) and their names."""
    if "city" in places.columns:
        names = places["city"].fill_null(OTHER).str.strip_chars()
    elif places["has_coords"].all():
        cell = (places["latitude"] / CITY_CELL_DEGREES).floor().cast(pl.Int64).cast(pl.String) + "_" + (
            places["longitude"] / CITY_CELL_DEGREES).floor().cast(pl.Int64).cast(pl.String)
        cells = pl.DataFrame({"cell": cell, "lat": places["latitude"], "lon": places["longitude"]})
        sizes = cells.group_by("cell").agg(n=pl.len(), lat=pl.col("lat").mean(), lon=pl.col("lon").mean()).sort("cell")
        big = sizes.filter(pl.col("n") >= max(1, SMALL_CITY_SHARE * places.height))
        if big.height == 0:
            big = sizes.sort("n", descending=True).head(1)
        d = ((sizes["lat"].to_numpy()[:, None] - big["lat"].to_numpy()[None]) ** 2
             + (sizes["lon"].to_numpy()[:, None] - big["lon"].to_numpy()[None]) ** 2)
        merged = dict(zip(sizes["cell"], big["cell"].to_numpy()[d.argmin(axis=1)]))
        names = cell.replace_strict(merged)
    else:
        names = pl.Series(["city"] * places.height)
    order = (pl.DataFrame({"name": names}).group_by("name").len().sort(["len", "name"], descending=[True, False]))["name"]
    ids = names.replace_strict(dict(zip(order, range(len(order)))), return_dtype=pl.Int32)
    return ids, order.to_list()


def _neighborhoods(places: pl.DataFrame, n: int) -> pl.Series:
    """Quantile grid of the coordinates within each city: rows x cols <= n cells."""
    if not places["has_coords"].any():
        return pl.Series(np.zeros(places.height, np.int32))
    rows = max(1, int(np.floor(np.sqrt(n))))
    cols = max(1, n // rows)
    lat = pl.col("latitude").fill_null(pl.col("latitude").median().over("city_id"))
    lon = pl.col("longitude").fill_null(pl.col("longitude").median().over("city_id"))
    frac = lambda c: (c.rank("ordinal").over("city_id") - 1) / pl.len().over("city_id")  # noqa: E731
    grid = places.select(
        ((frac(lat) * rows).floor().cast(pl.Int32) * cols + (frac(lon) * cols).floor().cast(pl.Int32)).alias("n"))
    return grid["n"]


def _price(places: pl.DataFrame) -> pl.Series:
    if "price" not in places.columns:
        return pl.Series(np.full(places.height, DEFAULT_PRICE_BAND, np.int32))
    raw = places["price"].fill_null("").str.strip_chars()
    dollars = raw.str.count_matches(r"\$")
    number = raw.cast(pl.Float64, strict=False)
    band = pl.select(pl.when(dollars > 0).then(dollars - 1).when(number.is_not_null()).then(number)
                     .otherwise(DEFAULT_PRICE_BAND).clip(0, 4).cast(pl.Int32)).to_series()
    return band


def _place_frame(log: RawLog, events: pl.DataFrame) -> pl.DataFrame:
    """One row per place key (sorted): parsed metadata, from the places file or the events."""
    if log.places is None:
        keys = events.select(place="place").unique().sort("place")
        return keys.with_columns(has_coords=pl.lit(False), latitude=pl.lit(None, pl.Float64),
                                 longitude=pl.lit(None, pl.Float64), categories=_lists(keys, "categories"),
                                 tags=_lists(keys, "tags"), name=pl.col("place"))
    file = log.files["places"]
    pf = log.places.with_columns(pl.col("place").str.strip_chars())
    rules.no_null_keys(pf, file, ("place",))
    rules.unique_key(pf, file, "place")
    rules.known(events, log.files["events"], "place", pf["place"], f"{file} (place)")
    out = pf.select("place", *[c for c in ("city",) if c in pf.columns]).with_columns(
        name=pf["name"].fill_null(pf["place"]) if "name" in pf.columns else pf["place"],
        categories=_lists(pf, "categories"), tags=_lists(pf, "tags"), price=_price(pf))
    if "latitude" in pf.columns and "longitude" in pf.columns:
        lat = pf["latitude"].str.strip_chars().cast(pl.Float64, strict=False)
        lon = pf["longitude"].str.strip_chars().cast(pl.Float64, strict=False)
        given = pf["latitude"].is_not_null() & pf["longitude"].is_not_null()
        rules.require("coordinates", file, pf,
                      ~given | (lat.is_between(-90, 90) & lon.is_between(-180, 180)),
                      "latitude in [-90, 90] and longitude in [-180, 180], both numbers")
        out = out.with_columns(latitude=lat, longitude=lon, has_coords=lat.is_not_null() & lon.is_not_null())
    else:
        out = out.with_columns(latitude=pl.lit(None, pl.Float64), longitude=pl.lit(None, pl.Float64),
                               has_coords=pl.lit(False))
    return out.sort("place")


# --- the import ------------------------------------------------------------------------

def _split(events: pl.DataFrame, cfg: SplitConfig) -> pl.Series:
    if "split" in events.columns:
        return events["split"]
    frame = events.select(user_id=pl.col("user"), place_id=pl.col("place"), timestamp="timestamp")
    return interaction_split(frame, cfg)["split"]


def _rating(visits: pl.DataFrame) -> pl.Expr:
    """Implicit rating in [1, 5] (see the module docstring)."""
    if "rating" in visits.columns:
        train = visits.filter(pl.col("split") == "train")["rating"]
        lo, hi = (float(train.min()), float(train.max())) if train.len() else (1.0, 5.0)
        if 1.0 <= lo and hi <= 5.0:
            return pl.col("rating").clip(1.0, 5.0)
        return (1.0 + 4.0 * (pl.col("rating") - lo) / max(hi - lo, 1e-9)).clip(1.0, 5.0)
    earlier = pl.int_range(pl.len()).over("user_id", "place_id", order_by=["timestamp", "row"])
    acted = ((pl.col("likes") + pl.col("saves") + pl.col("shares")) > 0).cast(pl.Float64)
    return (3.0 + earlier + acted).clip(1.0, 5.0)


def _shares(visits: pl.DataFrame, slot_col: str, width: int, n_users: int) -> np.ndarray:
    """(n_users, width) visit shares over the slots of each visit's place, with the prior."""
    per = (visits.with_row_index("visit").select("user_id", "visit", s=pl.col(slot_col)).explode("s").drop_nulls("s")
           .with_columns(w=1.0 / pl.len().over("visit")).group_by("user_id", "s").agg(pl.col("w").sum()))
    out = np.zeros((n_users, width), np.float64)
    out[per["user_id"].to_numpy(), per["s"].to_numpy()] = per["w"].to_numpy()
    out += PRIOR_VISITS / width
    return (out / out.sum(axis=1, keepdims=True)).astype(np.float32)


def import_log(log: RawLog, cfg: ImportConfig = ImportConfig()) -> ImportedWorld:
    """The world of a log: see the module docstring."""
    events = _events(log)
    pf = _place_frame(log, events)
    user_keys = events.select(user_key="user").unique().sort("user_key").with_row_index("user_id").with_columns(
        pl.col("user_id").cast(ID))
    place_keys = pf.select(place_key="place").with_row_index("place_id").with_columns(pl.col("place_id").cast(ID))
    uid = dict(zip(user_keys["user_key"], user_keys["user_id"]))
    pid = dict(zip(place_keys["place_key"], place_keys["place_id"]))
    n_users, n_places = user_keys.height, place_keys.height

    # Vocabularies and the places table.
    categories = pf["categories"]
    tags = pf["tags"] if pf["tags"].list.len().sum() > 0 else categories
    cat_vocab = vocabulary(categories, cfg.max_categories, "category")
    tag_vocab = vocabulary(tags, cfg.max_tags, "tag")
    city_id, city_names = _cities(pf)
    pf = pf.with_columns(city_id=city_id)
    pf = pf.with_columns(neighborhood_id=_neighborhoods(pf, cfg.neighborhoods_per_city))
    cat_slots, tag_slots = _slots(categories, cat_vocab), _slots(tags, tag_vocab)
    widths = Widths(cat_vocab.height, tag_vocab.height, LOG_VIBES)
    cat_hot = _multi_hot(cat_slots, widths.categories)
    tag_hot = _multi_hot(tag_slots, widths.tags)
    tag_vec = tag_hot / np.maximum(tag_hot.sum(axis=1, keepdims=True), 1.0)

    visits = events.with_columns(
        user_id=pl.col("user").replace_strict(uid, return_dtype=ID),
        place_id=pl.col("place").replace_strict(pid, return_dtype=ID),
        split=_split(events, cfg.split),
    ).sort("user_id", "timestamp", "place_id", "row")
    visits = visits.with_columns(implicit_rating=_rating(visits))
    train = visits.filter(pl.col("split") == "train")
    place_geo = pl.DataFrame({"place_id": np.arange(n_places, dtype=np.int64), "city_id": pf["city_id"],
                              "neighborhood_id": pf["neighborhood_id"], "cats": cat_slots, "tags": tag_slots})

    interactions = visits.select(
        "user_id", "place_id", dwell_time=pl.col("dwell_time").cast(pl.Float32),
        num_likes=pl.col("likes").cast(pl.Int32), num_saves=pl.col("saves").cast(pl.Int32),
        num_shares=pl.col("shares").cast(pl.Int32), attended="attended",
        implicit_rating=pl.col("implicit_rating").cast(pl.Float32), timestamp="timestamp",
        time_of_day_bucket=time_of_day_expr(pl.col("timestamp")), day_of_week_bucket=day_of_week_expr(pl.col("timestamp")),
    )
    event_split = visits.select("user_id", "place_id", "timestamp", "split")
    train_inter = interactions.filter(visits["split"] == "train")

    places = _places_table(pf, place_geo, cat_hot, tag_vec, train_inter, n_places)
    users = _users_table(train.join(place_geo, on="place_id", how="left"), n_users, widths)
    edges, labels = _social(log, uid, users, train_inter, cfg, n_places, len(city_names))
    blocks = _blocks(log, uid)
    vocab = pl.concat([cat_vocab, tag_vocab,
                       pl.DataFrame({"name": city_names}).with_row_index("index").select(
                           kind=pl.lit("city"), index=pl.col("index").cast(pl.Int32), name="name",
                           places=pl.Series(np.bincount(pf["city_id"].to_numpy(), minlength=len(city_names)))
                           .cast(pl.Int64))])
    place_keys = place_keys.with_columns(name=pf["name"], city=pl.Series(city_names)[pf["city_id"]],
                                         latitude=pf["latitude"], longitude=pf["longitude"])
    summary = {"users": n_users, "places": n_places, "events": visits.height, "cities": len(city_names),
               "categories": cat_vocab.height, "tags": tag_vocab.height, "social_edges": edges.height,
               "friend_labels": labels.height, "blocks": blocks.height,
               **{f"events_{s}": int((visits["split"] == s).sum()) for s in ("train", "val", "test")}}
    return ImportedWorld(
        tables={"places": places, "users": users, "interactions": interactions, "user_user_edges": edges,
                "friend_labels": labels, "user_blocks": blocks},
        extras={"user_keys": user_keys, "place_keys": place_keys, "vocabulary": vocab, "event_split": event_split},
        summary=summary,
    )


def _days(frame: pl.DataFrame) -> float:
    if frame.height == 0:
        return 1.0
    return max((frame["timestamp"].max() - frame["timestamp"].min()).total_seconds() / 86_400, 1.0)


def _places_table(pf, place_geo, cat_hot, tag_vec, train_inter: pl.DataFrame, n_places: int) -> pl.DataFrame:
    slot = time_slot(train_inter["time_of_day_bucket"].to_numpy(), train_inter["day_of_week_bucket"].to_numpy())
    visits = train_inter.select("place_id", "attended").with_columns(slot=pl.Series(slot))
    overall_slot = int(np.bincount(slot, minlength=6).argmax()) if len(slot) else 2
    per = (visits.group_by("place_id").agg(n=pl.len(), attended=pl.col("attended").mean(),
                                           slot=pl.col("slot").mode().min()))
    full = pl.DataFrame({"place_id": np.arange(n_places, dtype=np.int64)}).join(per, on="place_id", how="left")
    n = full["n"].fill_null(0).to_numpy().astype(np.float64)
    conversion = float(train_inter["attended"].mean()) if train_inter.height else 1.0
    popularity = (n + 1.0) / (n + 1.0).mean()
    novelty = 1.0 - (pl.Series(n).rank("average").to_numpy() - 1) / max(n_places - 1, 1)
    return pl.DataFrame([
        pl.Series("place_id", np.arange(n_places, dtype=np.int64)),
        pl.Series("city_id", pf["city_id"].cast(pl.Int32)),
        pl.Series("neighborhood_id", pf["neighborhood_id"].cast(pl.Int32)),
        place_geo["cats"].cast(pl.List(pl.Int32)).alias("category_ids"),
        list_from_dense("category_one_hot", cat_hot),
        list_from_dense("fine_tag_vector", tag_vec),
        pl.Series("price_band", pf["price"] if "price" in pf.columns else np.full(n_places, DEFAULT_PRICE_BAND),
                  pl.Int32),
        pl.Series("typical_time_slot", full["slot"].fill_null(overall_slot).cast(pl.Int32)),
        pl.Series("base_popularity", popularity.astype(np.float32)),
        pl.Series("avg_daily_visits", (n / _days(train_inter)).astype(np.float32)),
        pl.Series("conversion_rate", full["attended"].fill_null(conversion).clip(0.0, 1.0).cast(pl.Float32)),
        pl.Series("novelty_score", np.clip(novelty, 0.0, 1.0).astype(np.float32)),
    ])


def _users_table(train: pl.DataFrame, n_users: int, widths: Widths) -> pl.DataFrame:
    """Features from training visits (``train`` joined with the places' city, neighbourhood,
    category and tag slots); a user without any has uniform preferences in city 0."""
    home = (train.group_by("user_id", "city_id").len().sort(["user_id", "len", "city_id"], descending=[False, True, False])
            .group_by("user_id", maintain_order=True).first().select("user_id", home_city_id="city_id"))
    at_home = train.join(home, on="user_id").filter(pl.col("city_id") == pl.col("home_city_id"))
    areas = (at_home.group_by("user_id", "neighborhood_id").len()
             .sort(["user_id", "len", "neighborhood_id"], descending=[False, True, False])
             .group_by("user_id", maintain_order=True).head(MAX_NEIGHBORHOODS_PER_USER))
    base = pl.DataFrame({"user_id": np.arange(n_users, dtype=np.int64)}).join(home, on="user_id", how="left")
    base = base.join(areas.group_by("user_id", maintain_order=True).first().select("user_id", home_nb="neighborhood_id"),
                     on="user_id", how="left").with_columns(pl.col("home_city_id").fill_null(0), pl.col("home_nb").fill_null(0))
    areas = pl.concat([areas.select("user_id", "neighborhood_id", w=pl.col("len").cast(pl.Float64)),
                       base.join(areas.select("user_id").unique(), on="user_id", how="anti")
                       .select("user_id", neighborhood_id="home_nb", w=pl.lit(1.0))]).sort("user_id", "w", "neighborhood_id",
                                                                                          descending=[False, True, False])
    areas = areas.with_columns(w=pl.col("w") / pl.col("w").sum().over("user_id"))
    offsets = np.concatenate([[0], np.cumsum(np.bincount(areas["user_id"].to_numpy(), minlength=n_users))])

    stats = train.group_by("user_id").agg(
        days=pl.col("timestamp").dt.date().n_unique(), likes=pl.col("likes").sum(), saves=pl.col("saves").sum(),
        attended=pl.col("attended").sum())
    stats = pl.DataFrame({"user_id": np.arange(n_users, dtype=np.int64)}).join(stats, on="user_id", how="left").fill_null(0)
    weeks, months = _days(train) / 7.0, _days(train) / 30.0
    sessions = stats["days"].to_numpy().astype(np.float64)
    per_session = np.maximum(sessions, 1.0)
    return pl.DataFrame([
        pl.Series("user_id", np.arange(n_users, dtype=np.int64)),
        pl.Series("home_city_id", base["home_city_id"].cast(pl.Int32)),
        pl.Series("home_neighborhood_id", base["home_nb"].cast(pl.Int32)),
        list_from_dense("cat_pref", _shares(train, "cats", widths.categories, n_users)),
        list_from_dense("fine_pref", _shares(train, "tags", widths.tags, n_users)),
        list_from_dense("vibe_pref", np.full((n_users, widths.vibes), 1.0 / widths.vibes, np.float32)),
        area_column("area_freqs", areas["neighborhood_id"].to_numpy(), areas["w"].to_numpy(), offsets),
        pl.Series("avg_sessions_per_week", np.maximum(sessions / weeks, 1e-3).astype(np.float32)),
        pl.Series("avg_views_per_session", np.ones(n_users, np.float32)),
        pl.Series("avg_likes_per_session", (stats["likes"].to_numpy() / per_session).astype(np.float32)),
        pl.Series("avg_saves_per_session", (stats["saves"].to_numpy() / per_session).astype(np.float32)),
        pl.Series("avg_attends_per_month", (stats["attended"].to_numpy() / months).astype(np.float32)),
    ])


def _pairs(frame: pl.DataFrame | None, a: str, b: str, uid: dict) -> pl.DataFrame:
    """Known users' pairs as ids (u, v), others dropped."""
    if frame is None:
        return pl.DataFrame(schema={"u": ID, "v": ID})
    return frame.select(u=pl.col(a).str.strip_chars().replace_strict(uid, default=None, return_dtype=ID),
                        v=pl.col(b).str.strip_chars().replace_strict(uid, default=None, return_dtype=ID)
                        ).drop_nulls().filter(pl.col("u") != pl.col("v"))


def _social(log: RawLog, uid: dict, users: pl.DataFrame, train_inter: pl.DataFrame, cfg: ImportConfig,
            n_places: int, n_cities: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Social edges (friends and training co-visitors) and §2.6 friend labels on them."""
    friends = _pairs(log.friends, "user", "friend", uid).select(
        user_u=pl.min_horizontal("u", "v"), user_v=pl.max_horizontal("u", "v"))
    candidates = friends.unique().with_columns(interest_overlap_score=pl.lit(1.0, pl.Float32))
    edges = social.build_user_user_edges(cfg.neighborhoods_per_city, users, candidates, train_inter)
    world = WorldConfig(n_users=max(users.height, 2), n_places=max(n_places, n_cities), n_cities=n_cities,
                        neighborhoods_per_city=cfg.neighborhoods_per_city, seed=cfg.seed)
    labels = social.build_friend_labels(world, users, edges, train_inter) if edges.height else pl.DataFrame(
        schema={"user_u": ID, "user_v": ID, "label_compat": pl.Int32, "label_attend": pl.Int32})
    together = co_attendance(train_inter).select("user_u", "user_v", together=pl.lit(1, pl.Int32))
    labels = labels.join(together, on=["user_u", "user_v"], how="left", maintain_order="left").select(
        "user_u", "user_v", "label_compat",
        label_attend=(pl.col("label_compat") * pl.col("together").fill_null(0)).cast(pl.Int32))
    return edges, labels


def _blocks(log: RawLog, uid: dict) -> pl.DataFrame:
    pairs = _pairs(log.blocks, "user", "blocked", uid)
    return pairs.select(user_id="u", blocked_user_id="v").unique().sort("user_id", "blocked_user_id")
