"""Taste-free and content baselines, shared by the world report and the evaluation.

A ranker is ``score(users, places) -> (len(users), len(places))``.
"""

from __future__ import annotations

import numpy as np


def popularity_scorer(train_places: np.ndarray, n_places: int):
    """Training interactions per place."""
    counts = np.bincount(train_places, minlength=n_places).astype(np.float32)
    return lambda u, p: np.broadcast_to(counts[p], (len(u), len(p)))


def content_scorer(user_unit: np.ndarray, place_unit: np.ndarray):
    """Cosine of the user's ``fine_pref`` and the place's ``fine_tag_vector`` (unit rows)."""
    return lambda u, p: user_unit[u] @ place_unit[p].T


def random_scorer(seed: int = 0):
    rng = np.random.default_rng(seed)
    return lambda u, p: rng.random((len(u), len(p)), dtype=np.float32)
