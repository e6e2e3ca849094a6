"""The human-readable taxonomy of §2.1: categories, tags, vibes, time slots, cities, areas.

Index order is part of the data contract: vectors such as ``fine_pref`` and
``fine_tag_vector`` are indexed by position in these lists, so entries may be appended
but never reordered. The first 20 fine tags and 15 vibe tags are the design's own.
"""

from __future__ import annotations

import numpy as np

from graphrec_pipeline.constants import C_COARSE, C_FINE, C_VIBE, N_TIME_SLOTS

COARSE_CATEGORIES = ["entertainment", "sports", "clubs", "dining", "outdoors", "culture"]
ENT, SPO, CLU, DIN, OUT, CUL = range(C_COARSE)

# (name, coarse categories it belongs to); the first category is the primary one.
_FINE_TAGS: list[tuple[str, tuple[int, ...]]] = [
    ("fishing", (OUT,)), ("bouldering", (SPO,)), ("techno", (CLU,)),
    ("live_music", (ENT, CLU)), ("board_games", (ENT,)), ("rooftop", (CLU, DIN)),
    ("brunch", (DIN,)), ("karaoke", (ENT, CLU)), ("jazz", (CUL, ENT)), ("trivia", (ENT,)),
    ("wine_tasting", (DIN, CUL)), ("comedy", (ENT,)), ("art_gallery", (CUL,)),
    ("theater", (CUL, ENT)), ("dance", (CLU, CUL)), ("pottery", (CUL,)), ("yoga", (SPO, OUT)),
    ("crossfit", (SPO,)), ("rock_climbing", (SPO, OUT)), ("cycling", (SPO, OUT)),
    # entertainment
    ("cinema", (ENT,)), ("arcade", (ENT,)), ("bowling", (ENT, SPO)), ("escape_room", (ENT,)),
    ("magic_show", (ENT,)), ("open_mic", (ENT, CUL)), ("drag_show", (ENT, CLU)),
    ("stand_up", (ENT,)), ("pub_quiz", (ENT, DIN)), ("billiards", (ENT,)),
    ("mini_golf", (ENT, OUT)), ("video_games", (ENT,)), ("circus", (ENT, CUL)),
    ("improv", (ENT, CUL)),
    # sports
    ("running", (SPO, OUT)), ("swimming", (SPO,)), ("tennis", (SPO,)), ("padel", (SPO,)),
    ("basketball", (SPO,)), ("football", (SPO,)), ("volleyball", (SPO, OUT)),
    ("badminton", (SPO,)), ("boxing", (SPO,)), ("martial_arts", (SPO,)),
    ("skateboarding", (SPO, OUT)), ("table_tennis", (SPO, ENT)), ("pilates", (SPO,)),
    ("spinning", (SPO,)), ("ice_skating", (SPO, ENT)),
    # clubs
    ("house_music", (CLU,)), ("hip_hop", (CLU,)), ("salsa", (CLU, CUL)), ("disco", (CLU,)),
    ("drum_and_bass", (CLU,)), ("cocktail_bar", (CLU, DIN)), ("lgbtq_party", (CLU,)),
    ("latin_night", (CLU,)), ("silent_disco", (CLU, ENT)), ("dj_set", (CLU,)),
    ("afterparty", (CLU,)), ("speakeasy", (CLU, DIN)), ("indie_rock", (CLU, ENT)),
    ("reggaeton", (CLU,)),
    # dining
    ("craft_beer", (DIN, CLU)), ("street_food", (DIN,)), ("vegan", (DIN,)), ("sushi", (DIN,)),
    ("ramen", (DIN,)), ("tapas", (DIN,)), ("pizza", (DIN,)), ("specialty_coffee", (DIN,)),
    ("bakery", (DIN,)), ("fine_dining", (DIN,)), ("barbecue", (DIN, OUT)), ("tacos", (DIN,)),
    ("food_market", (DIN, CUL)), ("tea_house", (DIN, CUL)), ("dim_sum", (DIN,)),
    # outdoors
    ("hiking", (OUT, SPO)), ("kayaking", (OUT, SPO)), ("picnic", (OUT, DIN)),
    ("birdwatching", (OUT,)), ("camping", (OUT,)), ("sailing", (OUT, SPO)),
    ("paddleboarding", (OUT, SPO)), ("beach", (OUT,)), ("gardening", (OUT, CUL)),
    ("stargazing", (OUT, CUL)), ("surfing", (OUT, SPO)), ("botanical_garden", (OUT, CUL)),
    # culture
    ("museum", (CUL,)), ("classical_music", (CUL,)), ("opera", (CUL,)),
    ("poetry_reading", (CUL,)), ("book_club", (CUL,)), ("photography", (CUL, OUT)),
    ("film_festival", (CUL, ENT)), ("history_walk", (CUL, OUT)), ("painting_class", (CUL,)),
    ("language_exchange", (CUL, DIN)),
]
FINE_TAGS = [name for name, _ in _FINE_TAGS]

VIBE_TAGS = [
    "introvert", "extrovert", "party", "fitness", "artsy",
    "night_owl", "early_bird", "foodie", "adventurous", "chill",
    "intellectual", "spontaneous", "planner", "social", "independent",
    "romantic", "nature_lover", "music_lover", "competitive", "creative",
    "bookworm", "trendsetter", "budget_conscious", "luxury_seeker", "laid_back",
    "curious", "sporty", "spiritual", "family_oriented", "thrill_seeker",
]
# Coarse categories each vibe leans towards (used to correlate vibes with interests).
_VIBE_CATEGORIES: dict[str, tuple[int, ...]] = {
    "party": (CLU,), "fitness": (SPO,), "artsy": (CUL,), "night_owl": (CLU, ENT),
    "early_bird": (SPO, OUT), "foodie": (DIN,), "adventurous": (OUT, SPO),
    "intellectual": (CUL,), "nature_lover": (OUT,), "music_lover": (CLU, ENT, CUL),
    "competitive": (SPO, ENT), "creative": (CUL,), "bookworm": (CUL,),
    "luxury_seeker": (DIN,), "sporty": (SPO,), "thrill_seeker": (OUT, ENT),
    "extrovert": (CLU, ENT), "social": (ENT, DIN), "chill": (DIN, OUT),
}

TIME_SLOTS = ["morning", "afternoon", "evening", "night", "weekend_day", "weekend_night"]
TIME_OF_DAY_BUCKETS = ["morning", "afternoon", "evening", "night"]
DAY_OF_WEEK_BUCKETS = ["weekday", "weekend"]
PRICE_BANDS = ["free", "budget", "moderate", "pricey", "luxury"]

CITIES = [
    "Lisbon", "Berlin", "Austin", "Melbourne", "Montreal", "Seoul", "Mexico City",
    "Cape Town", "Barcelona", "Osaka", "Buenos Aires", "Copenhagen",
]
NEIGHBORHOODS = [
    "Old Town", "Riverside", "Harbourfront", "Market Quarter", "University District",
    "Arts District", "Chinatown", "Hillside", "Docklands", "Little Italy", "Garden Quarter",
    "Cathedral Square", "Warehouse District", "Beachside", "Station Quarter", "Park Slope",
    "Castle Hill", "Canal Side", "Midtown", "Lakeside",
]

assert len(FINE_TAGS) == C_FINE and len(set(FINE_TAGS)) == C_FINE
assert len(VIBE_TAGS) == C_VIBE and len(set(VIBE_TAGS)) == C_VIBE
assert len(TIME_SLOTS) == N_TIME_SLOTS


def fine_tag_categories() -> np.ndarray:
    """(C_FINE, C_COARSE) 0/1 matrix: which coarse categories each fine tag belongs to."""
    m = np.zeros((C_FINE, C_COARSE), dtype=np.float64)
    for j, (_, cats) in enumerate(_FINE_TAGS):
        m[j, list(cats)] = 1.0
    return m


def vibe_categories() -> np.ndarray:
    """(C_VIBE, C_COARSE) 0/1 matrix: the coarse categories a vibe leans towards."""
    m = np.zeros((C_VIBE, C_COARSE), dtype=np.float64)
    for name, cats in _VIBE_CATEGORIES.items():
        m[VIBE_TAGS.index(name), list(cats)] = 1.0
    return m


def city_name(city_id: int) -> str:
    return CITIES[city_id] if city_id < len(CITIES) else f"City {city_id}"


def neighborhood_name(city_id: int, neighborhood_id: int) -> str:
    """Neighborhood ids are per city: the name carries the city to stay unambiguous."""
    base = (
        NEIGHBORHOODS[neighborhood_id]
        if neighborhood_id < len(NEIGHBORHOODS)
        else f"District {neighborhood_id}"
    )
    return f"{base}, {city_name(city_id)}"
