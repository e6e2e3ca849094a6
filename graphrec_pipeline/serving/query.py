"""What a recommendation query may ask (:class:`PlaceQuery`, :class:`PeopleQuery`, parsed
and validated once for the CLI, the resource and the HTTP API), and the errors it gets
when it asks wrongly.

Every error names the argument, the offending value and what would be valid (the
closest names for a misspelt tag or category). :class:`QueryError` is a bad query (the
CLI exits with status 2); :class:`AssetError` means the data to answer it is missing or
stale, and names the Dagster asset to materialize.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from graphrec_pipeline.taxonomy import PRICE_BANDS, TIME_SLOTS
from graphrec_pipeline.vocabulary import TAXONOMY, Vocabulary
from graphrec_pipeline.widths import Widths


class QueryError(ValueError):
    """A query argument is invalid; the message says which and why."""


class NoCandidatesError(QueryError):
    """The city (after filters) has nothing to recommend."""


class UnknownIdError(QueryError):
    """A user, place or city id (or an imported log's user key) that the release lacks."""


class MalformedRequest(QueryError):
    """A request that does not have the shape of a query: an unknown parameter, a value of
    the wrong type, a required one missing."""


class AssetError(RuntimeError):
    """Serving data is missing, stale or corrupt; ``asset`` names what to materialize
    (None when the message already says what to do)."""

    def __init__(self, message: str, asset: str | None):
        super().__init__(message if asset is None else f"{message}; materialize the {asset!r} asset")
        self.asset = asset


def _norm(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def parse_names(values: str | Iterable[str] | None, vocabulary: Iterable[str], what: str) -> np.ndarray:
    """Indices of ``values`` (a comma-separated string or names) in ``vocabulary``; spaces,
    dashes and case are forgiven. Unknown names raise with the closest valid ones."""
    if values is None:
        return np.zeros(0, dtype=np.int64)
    items = values.split(",") if isinstance(values, str) else list(values)
    index = {_norm(name): i for i, name in enumerate(vocabulary)}
    vocabulary = list(index)
    out = []
    for raw in items:
        if not isinstance(raw, str) or not raw.strip():
            raise QueryError(f"{what}: empty or non-text name {raw!r}")
        key = _norm(raw)
        if key not in index:
            close = difflib.get_close_matches(key, vocabulary, n=3, cutoff=0.6)
            plural = "categories" if what == "category" else f"{what}s"
            hint = f"; closest: {', '.join(close)}" if close else f"; see 'graphrec list {plural}'"
            raise QueryError(f"unknown {what} {raw!r}{hint}")
        out.append(index[key])
    return np.unique(np.array(out, dtype=np.int64))


def parse_time_slot(value: str | int | None) -> int:
    """Slot index from a name (``evening``) or an index; -1 for none."""
    if value is None:
        return -1
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if 0 <= value < len(TIME_SLOTS):
            return int(value)
    elif isinstance(value, str) and _norm(value) in TIME_SLOTS:
        return TIME_SLOTS.index(_norm(value))
    raise QueryError(f"invalid time slot {value!r}; expected one of {', '.join(TIME_SLOTS)}")


FLAGS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def parse_flag(value: bool | str, what: str) -> bool:
    """A yes/no option: a bool, or its text as a query string carries it (true/false, 1/0, yes/no)."""
    if isinstance(value, bool):
        return value
    flag = FLAGS.get(str(value).strip().lower())
    if flag is None:
        raise QueryError(f"{what}: expected true or false, got {value!r}")
    return flag


def check_k(k: int, limit: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= limit:
        raise QueryError(f"k must be an integer in 1..{limit}, not {k!r}")
    return int(k)


def check_id(value: int, n: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < n:
        raise UnknownIdError(f"unknown {what} id {value!r}; ids are 0..{n - 1}")
    return int(value)


def check_price(value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < len(PRICE_BANDS):
        bands = ", ".join(f"{i}={name}" for i, name in enumerate(PRICE_BANDS))
        raise QueryError(f"max_price must be a price band 0..{len(PRICE_BANDS) - 1} ({bands}), not {value!r}")
    return int(value)


MAX_K = 200


def _optional_id(value, what: str) -> int | None:
    """A non-negative integer id or None (the range is the world's, checked when answering)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise QueryError(f"unknown {what} id {value!r}; ids are integers from 0")
    return int(value)


def _check_indices(values: tuple[int, ...], width: int | None, what: str) -> None:
    """Slot indices are ints in ``0..width - 1`` (without a width: at least 0; the world's
    widths are checked when the recommender answers, :meth:`PlaceQuery.check_widths`)."""
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, (int, np.integer))
           or not 0 <= v < (width if width is not None else np.inf)]
    if bad:
        span = f"0..{width - 1}" if width is not None else "0 or more"
        raise QueryError(f"{what} index {bad[0]!r} is not in {span}")


@dataclass(frozen=True)
class PlaceQuery:
    """A place query's context and filters (§6.3), validated against the vocabularies.

    ``time_slot`` is a slot index (-1: none); ``categories`` and ``tags`` are sorted index
    tuples. Ids are checked against the world when the recommender answers."""

    k: int = 10
    city_id: int | None = None
    time_slot: int = -1
    categories: tuple[int, ...] = ()
    tags: tuple[int, ...] = ()
    max_price: int | None = None

    def __post_init__(self) -> None:
        """A query built directly (not parsed) is checked too."""
        check_k(self.k, MAX_K)
        _optional_id(self.city_id, "city")
        if self.time_slot != -1:
            parse_time_slot(self.time_slot)
        _check_indices(self.categories, None, "category")
        _check_indices(self.tags, None, "tag")
        check_price(self.max_price)

    def check_widths(self, widths: Widths) -> None:
        """The category and tag indices exist in a world of these widths."""
        _check_indices(self.categories, widths.categories, "category")
        _check_indices(self.tags, widths.tags, "tag")

    @classmethod
    def parse(cls, k: int = 10, city_id: int | None = None, time_slot: str | int | None = None,
              categories: str | Iterable[str] | None = None, tags: str | Iterable[str] | None = None,
              max_price: int | None = None, vocabulary: Vocabulary = TAXONOMY) -> "PlaceQuery":
        """From what a caller types (names, comma-separated lists, in the release's
        ``vocabulary``); raises :class:`QueryError`."""
        return cls(k=check_k(k, MAX_K), city_id=_optional_id(city_id, "city"), time_slot=parse_time_slot(time_slot),
                   categories=tuple(parse_names(categories, vocabulary.categories, "category").tolist()),
                   tags=tuple(parse_names(tags, vocabulary.tags, "tag").tolist()), max_price=check_price(max_price))

    def describe(self, vocabulary: Vocabulary = TAXONOMY) -> dict:
        """The query in names, as answers echo it."""
        return {"k": self.k, "city_id": self.city_id,
                "time_slot": TIME_SLOTS[self.time_slot] if self.time_slot >= 0 else None,
                "categories": [vocabulary.category(c) for c in self.categories],
                "tags": [vocabulary.tag(t) for t in self.tags], "max_price": self.max_price}


@dataclass(frozen=True)
class PeopleQuery:
    """A people query (§6.4): the outing's target place and activity tags are context;
    ``new_people`` leaves out everyone the user has been out with (who otherwise rank high:
    the friend head weighs a pair's past outings)."""

    k: int = 10
    city_id: int | None = None
    target_place_id: int | None = None
    activity_tags: tuple[int, ...] = ()
    new_people: bool = False

    def __post_init__(self) -> None:
        check_k(self.k, MAX_K)
        _optional_id(self.city_id, "city")
        _optional_id(self.target_place_id, "place")
        _check_indices(self.activity_tags, None, "tag")
        if not isinstance(self.new_people, bool):
            raise QueryError(f"new_people must be true or false, not {self.new_people!r}")

    def check_widths(self, widths: Widths) -> None:
        """The activity tags exist in a world of these widths."""
        _check_indices(self.activity_tags, widths.tags, "tag")

    @classmethod
    def parse(cls, k: int = 10, city_id: int | None = None, target_place_id: int | None = None,
              activity_tags: str | Iterable[str] | None = None, new_people: bool | str = False,
              vocabulary: Vocabulary = TAXONOMY) -> "PeopleQuery":
        return cls(k=check_k(k, MAX_K), city_id=_optional_id(city_id, "city"),
                   target_place_id=_optional_id(target_place_id, "place"),
                   activity_tags=tuple(parse_names(activity_tags, vocabulary.tags, "tag").tolist()),
                   new_people=parse_flag(new_people, "new_people"))

    def describe(self, vocabulary: Vocabulary = TAXONOMY) -> dict:
        return {"k": self.k, "city_id": self.city_id, "target_place_id": self.target_place_id,
                "activity_tags": [vocabulary.tag(t) for t in self.activity_tags], "new_people": self.new_people}
