"""The page at ``/``: pick a city and a user (or type a user's key), see the places and
people recommended for them with their explanations, and a plot of where the user has been
against what is recommended.

Rendered on the server as plain HTML with an inline SVG: no script, no build step and
nothing fetched from elsewhere, so it works offline and behind any proxy. The answers are
the recommender's own (the same flow as the CLI and the JSON routes), from one release.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from typing import Mapping

import numpy as np

from graphrec_pipeline.serving.query import NoCandidatesError, QueryError, UnknownIdError, check_id
from graphrec_pipeline.serving.recommender import Recommender
from graphrec_pipeline.serving.results import PersonRecommendation, PlaceRecommendation
from graphrec_pipeline.taxonomy import TIME_SLOTS

USERS_LISTED = 100  # the most active users of a city offered in the picker
PLACES_SHOWN = 10
PEOPLE_SHOWN = 5
PLOT = 360  # the plot's side in pixels


@dataclass(frozen=True)
class PageRequest:
    """What the page's form asks for (every field optional: the empty page is a form)."""

    city_id: int | None = None
    user_id: int | None = None
    user_key: str | None = None
    time_slot: str | None = None

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> "PageRequest":
        """From the query string; a typed key wins over the picked user, and "Show users"
        (``pick_city``) asks for the city alone. Raises :class:`QueryError` naming the field
        that is not a number."""
        def number(name: str) -> int | None:
            raw = (params.get(name) or "").strip()
            if not raw:
                return None
            if not raw.lstrip("-").isdigit():
                raise QueryError(f"{name}: expected an integer, got {raw!r}")
            return int(raw)

        key = (params.get("user_key") or "").strip() or None
        if params.get("pick_city"):
            return cls(city_id=number("city_id"), time_slot=(params.get("time_slot") or "").strip() or None)
        return cls(city_id=number("city_id"), user_id=None if key else number("user_id"), user_key=key,
                   time_slot=(params.get("time_slot") or "").strip() or None)


def render_page(rec: Recommender, request: PageRequest) -> tuple[int, str]:
    """The page for ``request`` and its HTTP status: 200, or the status of the query's
    error (400 invalid, 404 unknown user or nothing eligible), shown above the form."""
    w = rec.world
    try:
        user = _user(rec, request)
        city = request.city_id if request.city_id is not None else (int(w.user_city[user]) if user is not None else 0)
        if not 0 <= city < rec.n_cities:
            raise UnknownIdError(f"unknown city id {city}; ids are 0..{rec.n_cities - 1}")
    except QueryError as err:
        return error_status(err), _document(_form(rec, 0, None, request.time_slot) + _message(str(err)))
    body = _form(rec, city, user, request.time_slot)
    if user is not None:
        try:
            places = rec.recommend_places(user, k=PLACES_SHOWN, city_id=city, time_slot=request.time_slot)
        except QueryError as err:
            return error_status(err), _document(body + _message(str(err)))
        try:
            people_part = _people(rec.recommend_people(user, k=PEOPLE_SHOWN))
        except QueryError as err:
            people_part = f"<h2>People to go out with</h2>{_message(str(err))}"
        body += (f'<section id="answer"><p class="who">For <b>{escape(w.user_key(user))}</b> in '
                 f"{escape(rec.vocabulary.city(city))}, release <code>{escape(rec.release)}</code></p>"
                 f'<div class="row"><div>{_places(places)}</div>'
                 f'<div class="side">{_plot(rec, user, city, places)}{people_part}</div></div></section>')
    return 200, _document(body)


def error_status(err: QueryError) -> int:
    """400 for an invalid value, 404 for an unknown id or nothing eligible (as the JSON routes)."""
    return 404 if isinstance(err, (UnknownIdError, NoCandidatesError)) else 400


def error_page(message: str) -> str:
    """The page when there is no form to show: no release is loaded, or the query string
    is malformed."""
    return _document(_message(message) + '<p><a href="/">start again</a></p>')


def _user(rec: Recommender, request: PageRequest) -> int | None:
    if request.user_key is not None:
        return int(rec.user_ids([request.user_key])[0])
    if request.user_id is not None:
        check_id(request.user_id, rec.world.n_users, "user")
        return request.user_id
    return None


def visited_places(rec: Recommender) -> np.ndarray:
    """How many places each user has visited, by user id."""
    w = rec.world
    return np.bincount(w.visited_keys // w.n_places, minlength=w.n_users)


def active_users(rec: Recommender, city: int, n: int = USERS_LISTED, visits: np.ndarray | None = None) -> np.ndarray:
    """The ``n`` users of ``city`` with the most visited places, most first (ties by id)."""
    visits = visited_places(rec) if visits is None else visits
    ids = np.flatnonzero(rec.world.user_city == city)
    return ids[np.lexsort((ids, -visits[ids]))][:n]


def _form(rec: Recommender, city: int, user: int | None, slot: str | None) -> str:
    w = rec.world
    cities = "".join(f'<option value="{c}"{" selected" if c == city else ""}>{escape(rec.vocabulary.city(c))}</option>'
                     for c in range(rec.n_cities))
    visits = visited_places(rec)
    listed = active_users(rec, city, visits=visits)
    users = "".join(f'<option value="{u}"{" selected" if u == user else ""}>{escape(w.user_key(u))} '
                    f"({visits[u]} places)</option>" for u in listed.tolist())
    slots = "".join(f'<option value="{s}"{" selected" if s == slot else ""}>{s}</option>' for s in TIME_SLOTS)
    return (f'<form method="get" action="/">'
            f'<label>City <select name="city_id" id="city">{cities}</select></label> '
            f'<button name="pick_city" value="1">Show users</button> '
            f'<label>User <select name="user_id" id="user"><option value="">-</option>{users}</select></label> '
            f'<label>or key <input name="user_key" id="user_key" size="10"></label> '
            f'<label>Time <select name="time_slot" id="time_slot"><option value="">any</option>{slots}</select></label> '
            f'<button id="show" type="submit">Recommend</button></form>')


def _message(text: str) -> str:
    return f'<p class="error" id="error">{escape(text)}</p>'


def _places(places: list[PlaceRecommendation]) -> str:
    rows = "".join(
        f"<tr><td>{i}</td><td class='name'>{escape(p.name)}</td><td>{escape(p.neighborhood)}</td>"
        f"<td>{escape(', '.join(p.categories))}</td><td>{'$' * p.price_band or 'free'}</td><td>{p.score:.3f}</td>"
        f"<td><ul>{''.join(f'<li>{escape(e)}</li>' for e in p.explanations)}</ul></td></tr>"
        for i, p in enumerate(places, 1))
    return ('<h2>Places</h2><table id="places"><tr><th>#</th><th>Place</th><th>Neighbourhood</th><th>Categories</th>'
            f"<th>Price</th><th>Score</th><th>Why</th></tr>{rows}</table>")


def _people(people: list[PersonRecommendation]) -> str:
    rows = "".join(
        f"<tr><td>{i}</td><td class='name'>{escape(p.user_key)}</td><td>{p.s_final:.3f}</td><td>{p.p_attend:.2f}</td>"
        f"<td><ul>{''.join(f'<li>{escape(e)}</li>' for e in p.explanations)}</ul></td></tr>"
        for i, p in enumerate(people, 1))
    return ('<h2>People to go out with</h2><table id="people"><tr><th>#</th><th>User</th><th>Score</th>'
            f"<th>P(attend)</th><th>Why</th></tr>{rows}</table>")


def plot_positions(rec: Recommender, places: np.ndarray) -> tuple[np.ndarray, str]:
    """(n, 2) positions in [0, 1]^2 of ``places`` (one city's) and what the axes are:
    longitude and latitude when the release has coordinates for all of them, else the
    city's neighbourhoods on a grid (a place spread within its cell by its id, so that
    places of one neighbourhood do not hide each other)."""
    w = rec.world
    coords = None if w.place_coords is None else w.place_coords[places][:, ::-1]
    if coords is not None and len(places) and not np.isnan(coords).any():
        lo, span = coords.min(0), np.maximum(np.ptp(coords, 0), 1e-9)
        return (coords - lo) / span, "longitude, latitude"
    hoods = w.place_neighborhood[places]
    cols = max(1, math.ceil(math.sqrt(int(hoods.max(initial=0)) + 1)))
    spread = np.stack([(places * 0.618034) % 1.0, (places * 0.754878) % 1.0], 1)  # low-discrepancy, by id
    cell = np.stack([hoods % cols, hoods // cols], 1)
    return (cell + 0.1 + 0.8 * spread) / cols, f"neighbourhood grid ({cols} x {cols})"


def _plot(rec: Recommender, user: int, city: int, places: list[PlaceRecommendation]) -> str:
    """An SVG: the city's places faint, the user's visited places grey, the recommended
    ones numbered in their rank order."""
    w = rec.world
    in_city = np.flatnonzero(w.place_city == city)
    xy, axes = plot_positions(rec, in_city)
    at = dict(zip(in_city.tolist(), (xy * (PLOT - 20) + 10).round(1).tolist()))
    visited = np.intersect1d(w.visited_by(user), in_city)
    dots = "".join(f'<circle cx="{x}" cy="{PLOT - y}" r="1.5" fill="#ddd"/>' for x, y in at.values())
    seen = "".join(f'<circle class="visited" cx="{at[p][0]}" cy="{PLOT - at[p][1]}" r="4" fill="#888"/>'
                   for p in visited.tolist())
    recs = "".join(f'<g class="recommended"><circle cx="{at[p.place_id][0]}" cy="{PLOT - at[p.place_id][1]}" r="7" '
                   f'fill="#e8590c"/><text x="{at[p.place_id][0]}" y="{PLOT - at[p.place_id][1] + 3.5}" '
                   f'font-size="9" text-anchor="middle" fill="#fff">{i}</text></g>'
                   for i, p in enumerate(places, 1) if p.place_id in at)
    return (f'<figure><svg id="plot" width="{PLOT}" height="{PLOT}" viewBox="0 0 {PLOT} {PLOT}" '
            f'xmlns="http://www.w3.org/2000/svg"><rect width="100%" height="100%" fill="#fafafa"/>{dots}{seen}{recs}'
            f"</svg><figcaption>{len(visited)} visited (grey) and the recommended places (numbered) in "
            f"{escape(rec.vocabulary.city(city))}; axes: {escape(axes)}</figcaption></figure>")


STYLE = """body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse}
td,th{border-bottom:1px solid #eee;padding:4px 8px;text-align:left;vertical-align:top}ul{margin:0;padding-left:1em}
.row{display:flex;gap:2em;align-items:flex-start}.side{max-width:480px}.error{color:#b00}figure{margin:0}figcaption{font-size:12px;color:#666;max-width:360px}
form label{margin-right:.6em}"""


def _document(body: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>graphrec</title>'
            f"<style>{STYLE}</style></head><body><h1>graphrec</h1>{body}</body></html>")
