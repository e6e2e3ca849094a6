"""Human-readable explanations (§8) and display names, from the same features the model uses.

A user "has" an interest when its weight is above the uniform share (1/100 for fine tags,
1/30 for vibes, 1/6 for coarse categories in a generated world; one over the vector's
width in general): preference vectors are dense, so "above zero" would say nothing. A place has a tag when its tag weight is positive. Overlaps are ranked
by the product of the two weights (§8), and each explanation keeps the ids it names so a
caller (or a test) can check them against the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graphrec_pipeline.taxonomy import VIBE_TAGS
from graphrec_pipeline.vocabulary import TAXONOMY, Vocabulary

TOP_TAGS = 2
SLOT_PHRASES = ["in the morning", "in the afternoon", "in the evening", "at night", "on weekend days",
                "on weekend nights"]


def has(pref: np.ndarray) -> np.ndarray:
    """Where a preference vector (..., width) is at or above the uniform share."""
    return pref >= 1.0 / pref.shape[-1]


@dataclass(frozen=True)
class Explanation:
    """One reason: ``kind`` is ``tags``, ``category``, ``vibes``, ``neighborhood`` (overlaps of the
    two sides), ``query_tags`` / ``time_slot`` (what a place has of the query) or
    ``activity`` (the outing's tags another user is into); ``ids`` are
    the fine-tag, category, vibe, neighborhood or slot ids; ``text`` is what a person reads."""

    kind: str
    ids: tuple[int, ...]
    text: str


def label(name: str) -> str:
    return name.replace("_", " ")


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _top_overlaps(product: np.ndarray, present: np.ndarray, top: int) -> list[list[int]]:
    """Per row, the ids of the ``top`` largest products where ``present`` holds."""
    score = np.where(present, product, -np.inf)
    order = np.argsort(-score, axis=1, kind="stable")[:, :top]
    ok = np.take_along_axis(present, order, axis=1)
    return [row[mask].tolist() for row, mask in zip(order, ok, strict=True)]


def place_names(tags: np.ndarray, place_ids: np.ndarray, vocabulary: Vocabulary = TAXONOMY) -> list[str]:
    """Display names from each place's two strongest tags, e.g. ``Jazz & Wine Tasting #42``
    (``tags`` (k, 100), one row per id), for a world whose places have no names."""
    top = np.argsort(-tags, axis=1, kind="stable")[:, :2]
    present = np.take_along_axis(tags, top, axis=1) > 0
    return [f"{' & '.join(vocabulary.label(t).title() for t, ok in zip(row, has) if ok) or 'Place'} #{p}"
            for row, has, p in zip(top.tolist(), present.tolist(), place_ids.tolist(), strict=True)]


def explain_places(
    fine_pref: np.ndarray,
    cat_pref: np.ndarray,
    area: np.ndarray,
    user_city: int,
    place_tags: np.ndarray,
    place_categories: np.ndarray,
    place_city: np.ndarray,
    place_neighborhood: np.ndarray,
    place_slot: np.ndarray,
    query_slot: int = -1,
    query_tags: np.ndarray | None = None,
    vocabulary: Vocabulary = TAXONOMY,
) -> list[list[Explanation]]:
    """Reasons for one user (``fine_pref`` (100,), ``cat_pref`` (6,), ``area`` (neighborhoods,))
    and each of k places (``place_tags`` (k, 100), ``place_categories`` (k, 6) multi-hot, ...),
    plus which of the query's tags and time slot each place matches."""
    asked = np.zeros(place_tags.shape[1], bool)
    if query_tags is not None:
        asked[query_tags] = True
    matches = (asked[None] & (place_tags > 0)) if asked.any() else np.zeros(place_tags.shape, bool)
    slot_hits = (place_slot == query_slot).tolist() if query_slot >= 0 else [False] * len(place_tags)
    local = ((place_city == user_city) & (place_neighborhood < len(area))).tolist()
    tags = _top_overlaps(fine_pref[None] * place_tags, has(fine_pref[None]) & (place_tags > 0), TOP_TAGS)
    cats = _top_overlaps(cat_pref[None] * place_categories,
                         has(cat_pref[None]) & (place_categories > 0), 1)
    out = []
    for i, (t, c, hood) in enumerate(zip(tags, cats, place_neighborhood.tolist(), strict=True)):
        reasons = []
        matched = np.flatnonzero(matches[i]).tolist() if matches[i].any() else []
        if matched:
            names = _join([vocabulary.label(j) for j in matched])
            reasons.append(Explanation("query_tags", tuple(matched), f"Has the {names} you asked for."))
        if slot_hits[i]:
            text = f"At its busiest {SLOT_PHRASES[query_slot]}, the time you asked for."
            reasons.append(Explanation("time_slot", (query_slot,), text))
        if t:
            names = _join([vocabulary.label(j) for j in t])
            reasons.append(Explanation("tags", tuple(t), f"Matches your interest in {names}."))
        elif c:
            reasons.append(Explanation("category", tuple(c), f"Fits your taste for {vocabulary.category(c[0])}."))
        if local[i] and area[hood] > 0:
            name = vocabulary.neighborhood(user_city, hood)
            reasons.append(Explanation("neighborhood", (hood,), f"You often go out in {name}, and this place is nearby."))
        out.append(reasons)
    return out


def explain_people(
    fine_pref: np.ndarray,
    vibe_pref: np.ndarray,
    area: np.ndarray,
    city: int,
    other_fine: np.ndarray,
    other_vibe: np.ndarray,
    other_area: np.ndarray,
    other_city: np.ndarray,
    activity_tags: np.ndarray | None = None,
    past_outings: np.ndarray | None = None,
    vocabulary: Vocabulary = TAXONOMY,
) -> list[list[Explanation]]:
    """Reasons for one user and each of k other users (rows of the ``other_*`` arrays), plus
    which of the outing's tags (asked, or the target place's) each other user is into and,
    first, how many places the two went to together (``past_outings``, (k,))."""
    activity = np.zeros(other_fine.shape[1], bool)
    if activity_tags is not None:
        activity[activity_tags] = True
    if activity.any():
        into = _top_overlaps(other_fine, activity[None] & has(other_fine), TOP_TAGS)
    else:
        into = [[] for _ in range(len(other_fine))]
    tags = _top_overlaps(fine_pref[None] * other_fine,
                         has(fine_pref[None]) & has(other_fine), TOP_TAGS)
    vibes = _top_overlaps(vibe_pref[None] * other_vibe, has(vibe_pref[None]) & has(other_vibe)
                          & vocabulary.vibes, 2)
    same_city = (other_city == city)[:, None]
    hoods = _top_overlaps(area[None] * other_area, (area[None] > 0) & (other_area > 0) & same_city, 1)
    outings = np.zeros(len(other_fine), np.int64) if past_outings is None else np.asarray(past_outings)
    out = []
    for t, v, h, a, n in zip(tags, vibes, hoods, into, outings.tolist(), strict=True):
        reasons = []
        if n:
            places = "a place" if n == 1 else f"{n} places"
            reasons.append(Explanation("history", (n,), f"You have been out together before ({places})."))
        if a:
            reasons.append(Explanation("activity", tuple(a), f"Into {_join([vocabulary.label(j) for j in a])}, "
                                       "like the outing you have in mind."))
        if t:
            reasons.append(Explanation("tags", tuple(t), f"You both like {_join([vocabulary.label(j) for j in t])}."))
        if v:
            reasons.append(Explanation("vibes", tuple(v), f"You share the {_join([label(VIBE_TAGS[j]) for j in v])} vibe"
                                       + ("s." if len(v) > 1 else ".")))
        if h:
            reasons.append(Explanation("neighborhood", tuple(h),
                                       f"You both often go out in {vocabulary.neighborhood(city, h[0])}."))
        out.append(reasons)
    return out
