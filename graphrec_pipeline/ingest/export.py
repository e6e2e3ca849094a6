"""Write a world as the log a real app would have: who went where and when, places with
names, categories, tags, coordinates and a city, and friend pairs; no user features, no
ratings, no labels. Used to make the committed example and to measure what an import
loses against the full tables.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from graphrec_pipeline.taxonomy import COARSE_CATEGORIES, FINE_TAGS

CITY_SPACING_DEGREES = 2.0  # cities' centres, far apart
NEIGHBORHOOD_DEGREES = 0.02  # neighbourhood cells inside a city


def _coordinates(places: pl.DataFrame, n_per_city: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A city at a point of a coarse grid, its neighbourhoods on a fine grid, places jittered."""
    rng = np.random.default_rng(seed)
    city = places["city_id"].to_numpy()
    nb = places["neighborhood_id"].to_numpy()
    side = int(np.ceil(np.sqrt(n_per_city)))
    lat = 40.0 + CITY_SPACING_DEGREES * (city // 4) + NEIGHBORHOOD_DEGREES * (nb // side)
    lon = -3.0 + CITY_SPACING_DEGREES * (city % 4) + NEIGHBORHOOD_DEGREES * (nb % side)
    jitter = rng.uniform(0.0, NEIGHBORHOOD_DEGREES, size=(2, len(city)))
    return np.round(lat + jitter[0], 6), np.round(lon + jitter[1], 6)


def _names(ids: pl.Series, vocab: list[str]) -> pl.Series:
    return ids.list.eval(pl.element().replace_strict(dict(enumerate(vocab)), return_dtype=pl.String)).list.join("|")


def world_as_log(tables: dict[str, pl.DataFrame], neighborhoods_per_city: int, seed: int = 0) -> dict[str, pl.DataFrame]:
    """``events``, ``places``, ``friends`` and ``blocks`` frames with string keys."""
    places = tables["places"].sort("place_id")
    lat, lon = _coordinates(places, neighborhoods_per_city, seed)
    tag_ids = places["fine_tag_vector"].list.eval((pl.element() > 0).arg_true())
    place_key = "p" + places["place_id"].cast(pl.String)
    log_places = pl.DataFrame({
        "place": place_key,
        "name": "Place " + places["place_id"].cast(pl.String),
        "city": "City " + places["city_id"].cast(pl.String),
        "latitude": lat, "longitude": lon,
        "categories": _names(places["category_ids"], COARSE_CATEGORIES),
        "tags": _names(tag_ids, FINE_TAGS),
    })
    inter = tables["interactions"]
    events = inter.select(user="u" + pl.col("user_id").cast(pl.String), place="p" + pl.col("place_id").cast(pl.String),
                          timestamp=pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S"))
    edges = tables["user_user_edges"]
    friends = edges.select(user="u" + pl.col("user_u").cast(pl.String), friend="u" + pl.col("user_v").cast(pl.String))
    blocks = tables["user_blocks"].select(user="u" + pl.col("user_id").cast(pl.String),
                                          blocked="u" + pl.col("blocked_user_id").cast(pl.String))
    return {"events": events, "places": log_places, "friends": friends, "blocks": blocks}


def write_recbole(log: dict[str, pl.DataFrame], dataset: str) -> dict[str, str]:
    """The log as RecBole atomic files' text: ``<dataset>.inter``, ``.item``, ``.net``."""
    def text(frame: pl.DataFrame, header: dict[str, str]) -> str:
        renamed = frame.select(**{f"{new}:{kind}": pl.col(old) for old, (new, kind) in
                                  ((o, h.split(":")) for o, h in header.items())})
        return renamed.write_csv(separator="\t", quote_style="never")

    events = log["events"].with_columns(
        pl.col("timestamp").str.to_datetime().dt.epoch("s").cast(pl.String))
    places = log["places"].with_columns(pl.col("categories").str.replace_all(r"\|", " "),
                                        pl.col("tags").str.replace_all(r"\|", " "))
    return {
        f"{dataset}.inter": text(events, {"user": "user_id:token", "place": "venue_id:token", "timestamp": "timestamp:float"}),
        f"{dataset}.item": text(places.select("place", "name", "latitude", "longitude", "categories", "tags", "city"),
                                {"place": "venue_id:token", "name": "name:token", "latitude": "lat:float",
                                 "longitude": "lon:float", "categories": "venue_category_name:token_seq",
                                 "tags": "tags:token_seq", "city": "city:token"}),
        f"{dataset}.net": text(log["friends"], {"user": "source_id:token", "friend": "target_id:token"}),
    }
