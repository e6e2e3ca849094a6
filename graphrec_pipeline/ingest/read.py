"""Read a check-in log as it is: CSV or Parquet files, or RecBole atomic files.

Every file is read with string columns and renamed to the canonical names below through
an optional mapping (``{"user": "user_id", "place": "venue_id"}``: canonical name ->
the file's column), so that keys stay exactly as the source spells them and parsing
(timestamps, numbers, lists) happens in one place, :mod:`graphrec_pipeline.ingest.derive`.

Files (``<name>.csv`` or ``<name>.parquet`` in the source folder):

* ``events`` (required): ``user``, ``place``; optional ``timestamp``, ``split``,
  ``rating``, ``likes``, ``saves``, ``shares``, ``attended``, ``dwell_time``.
* ``places``: ``place``; optional ``name``, ``city``, ``latitude``, ``longitude``,
  ``categories``, ``tags``, ``price``.
* ``friends``: ``user``, ``friend``.  ``blocks``: ``user``, ``blocked``.

RecBole (``format="recbole"``): ``<dataset>.inter`` holds the events, ``.item`` the
places and ``.net`` the friend pairs; tab separated, headers ``field:type``, and
``token_seq`` fields are space-separated lists.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field

import polars as pl

from graphrec_pipeline.ingest.rules import BadInput
from graphrec_pipeline.storage import Location

FILES = ("events", "places", "friends", "blocks")
REQUIRED = {"events": ("user", "place"), "places": ("place",), "friends": ("user", "friend"),
            "blocks": ("user", "blocked")}
OPTIONAL = {
    "events": ("timestamp", "split", "rating", "likes", "saves", "shares", "attended", "dwell_time"),
    "places": ("name", "city", "latitude", "longitude", "categories", "tags", "price"),
    "friends": (),
    "blocks": (),
}
RECBOLE_SUFFIX = {"events": ".inter", "places": ".item", "friends": ".net"}
# RecBole's usual field names, used when no mapping names the column.
RECBOLE_NAMES = {"user": ("user_id",), "place": ("item_id", "venue_id", "business_id"),
                 "friend": ("friend_id", "target_id"), "categories": ("categories", "category", "venue_category_name"),
                 "latitude": ("latitude", "lat"), "longitude": ("longitude", "lon", "lng")}


@dataclass
class RawLog:
    """The source files as string frames with canonical column names; ``files`` names
    each one's source for error messages."""

    events: pl.DataFrame
    places: pl.DataFrame | None = None
    friends: pl.DataFrame | None = None
    blocks: pl.DataFrame | None = None
    files: dict[str, str] = field(default_factory=dict)


def _canonical(frame: pl.DataFrame, kind: str, columns: dict[str, str], file: str,
               fallbacks: dict[str, tuple[str, ...]]) -> pl.DataFrame:
    """Select and rename the canonical columns of one file; a missing required one is an error."""
    wanted = REQUIRED[kind] + OPTIONAL[kind]
    picked = {}
    for name in wanted:
        candidates = (columns[name],) if name in columns else (name, *fallbacks.get(name, ()))
        found = next((c for c in candidates if c in frame.columns), None)
        if found is not None:
            picked[name] = found
        elif name in REQUIRED[kind] or name in columns:
            raise BadInput("required_column", file,
                           f"no column {candidates[0]!r} for {name!r} (columns: {', '.join(frame.columns)})")
    out = frame.select(**{name: pl.col(src).cast(pl.String) for name, src in picked.items()})
    if out.height == 0:
        raise BadInput("empty_file", file, "the file has no rows")
    return out


def _read_table(source: Location, stem: str) -> tuple[pl.DataFrame, str] | None:
    """``<stem>.parquet`` or ``<stem>.csv`` as all-string columns, or None when neither exists."""
    for suffix in (".parquet", ".csv"):
        name = stem + suffix
        if source.exists(name):
            payload = source.read_bytes(name)
            try:
                if suffix == ".parquet":
                    frame = pl.read_parquet(io.BytesIO(payload))
                    frame = frame.with_columns(pl.col(pl.List(pl.String)).list.join("|"))
                else:
                    frame = pl.read_csv(io.BytesIO(payload), infer_schema=False)
            except (pl.exceptions.PolarsError, OSError) as err:
                raise BadInput("readable_file", source.url(name), f"cannot be read ({err})") from None
            return frame, source.url(name)
    return None


def _recbole_frame(payload: bytes) -> pl.DataFrame:
    """A RecBole atomic file: tab separated, ``field:type`` headers; token_seq -> '|' lists."""
    frame = pl.read_csv(io.BytesIO(payload), separator="\t", infer_schema=False, quote_char=None)
    names = {c: c.split(":", 1)[0] for c in frame.columns}
    seqs = [names[c] for c in frame.columns if c.endswith(("token_seq", "float_seq"))]
    frame = frame.rename(names)
    return frame.with_columns(pl.col(c).str.split(" ").list.join("|") for c in seqs)


def read_log(source: Location, format: str = "events", columns: dict[str, dict[str, str]] | None = None) -> RawLog:
    """Read the log in ``source``. ``columns`` maps, per file kind, canonical names to the
    file's own column names."""
    columns = columns or {}
    frames: dict[str, pl.DataFrame] = {}
    files: dict[str, str] = {}
    if format == "recbole":
        listed = source.list()
        for kind, suffix in RECBOLE_SUFFIX.items():
            hits = sorted(f for f in listed if f.endswith(suffix))
            if len(hits) > 1:
                raise BadInput("one_dataset", source.url(), f"several {suffix} files: {', '.join(hits)}")
            if hits:
                try:
                    raw = _recbole_frame(source.read_bytes(hits[0]))
                except pl.exceptions.PolarsError as err:
                    raise BadInput("readable_file", source.url(hits[0]), f"cannot be read ({err})") from None
                files[kind] = source.url(hits[0])
                fallbacks = dict(RECBOLE_NAMES)
                if kind == "friends":  # a .net file's two user fields
                    fallbacks |= {"user": ("source_id", "user_id"), "friend": ("target_id", "friend_id")}
                frames[kind] = _canonical(raw, kind, columns.get(kind, {}), files[kind], fallbacks)
        if "events" not in frames:
            raise BadInput("events_present", source.url(), "no <dataset>.inter file")
    elif format == "events":
        for kind in FILES:
            found = _read_table(source, kind)
            if found is None:
                continue
            frames[kind], files[kind] = _canonical(found[0], kind, columns.get(kind, {}), found[1], {}), found[1]
        if "events" not in frames:
            raise BadInput("events_present", source.url(), "no events.csv or events.parquet")
    else:
        raise ValueError(f"unknown log format {format!r}: use 'events' or 'recbole'")
    return RawLog(files=files, **frames)


def fingerprint(source: Location) -> str:
    """A digest of which files the folder holds and when each last changed: a new or
    rewritten log file changes it (the file sensor's cursor)."""
    entries = sorted(f"{name}:{source.mtime(name)}" for name in source.list() if not name.startswith("."))
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()[:16]
