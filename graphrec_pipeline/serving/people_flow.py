"""The people flow (§6.4): who a user may be shown (never themself, nobody blocked either
way; with ``new_people`` nobody they went out with before), the friend head's ``s_compat``
and ``p_attend`` with the outing as context, ``s_final = alpha s_compat + (1 - alpha)
p_attend`` (each logit with the learned match of the two users' tastes, ``model/taste.py``,
and the learned term on their past co-attendance), and the results it builds."""

from __future__ import annotations

import numpy as np
import torch

from graphrec_pipeline.model.context import context_raw
from graphrec_pipeline.serving.explain import explain_people
from graphrec_pipeline.model.pair_heads import PairHeads
from graphrec_pipeline.model.taste import TasteMatch, user_tastes
from graphrec_pipeline.serving.query import PeopleQuery
from graphrec_pipeline.serving.results import PersonRecommendation
from graphrec_pipeline.serving.world_view import WorldView
from graphrec_pipeline.taxonomy import fine_tag_categories
from graphrec_pipeline.vocabulary import TAXONOMY


PAST_PARTNERS = 20  # past partners added to each user's candidates


def tag_categories(world: WorldView) -> np.ndarray:
    """(tags, categories) 0/1: the categories each tag belongs to. The taxonomy's own for a
    world named by it; for an imported vocabulary, the category that most of the places
    carrying the tag have (none for a tag no place carries)."""
    if world.vocabulary == TAXONOMY:
        return fine_tag_categories().astype(np.float32)
    together = (world.place_tags > 0).T.astype(np.float32) @ world.place_categories
    out = np.zeros_like(together)
    used = np.flatnonzero(together.sum(axis=1) > 0)
    out[used, together[used].argmax(axis=1)] = 1.0
    return out


class PeopleFlow:
    """Filter, score and build people results for a :class:`PeopleQuery`."""

    kind = "user"

    def __init__(self, world: WorldView, heads: PairHeads, taste_match: TasteMatch, history_terms,
                 z_user: torch.Tensor, alpha: float):
        """``history_terms``: (...) co-attendance counts -> (..., 2) logit terms
        (:meth:`GraphRec.history_terms <graphrec_pipeline.model.graphrec.GraphRec.history_terms>`)."""
        self.world, self.heads, self.taste_match, self.z_user, self.alpha = world, heads, taste_match, z_user, alpha
        self.history_terms = history_terms
        self.tastes = user_tastes(*(torch.tensor(p) for p in (world.cat_pref, world.fine_pref, world.vibe_pref)))
        self.tag_categories = tag_categories(world)

    def context(self, query: PeopleQuery) -> np.ndarray:
        """The outing as context: the target place's tags and categories, plus the activity
        tags and their categories (training uses a co-attended place's, so both look alike)."""
        w = self.world
        tags = np.zeros((1, w.widths.tags), np.float32)
        categories = np.zeros((1, w.widths.categories), np.float32)
        if query.target_place_id is not None:
            tags[0] += w.place_tags[query.target_place_id]
            categories[0] = np.maximum(categories[0], w.place_categories[query.target_place_id])
        if query.activity_tags:
            tag_ids = list(query.activity_tags)
            tags[0, tag_ids] += 1.0 / len(tag_ids)
            categories[0] = np.maximum(categories[0], self.tag_categories[tag_ids].max(axis=0))
        return context_raw(w.widths, 1, categories=categories, tags=tags)[0]

    def extra(self, query: PeopleQuery, users: np.ndarray, city: int) -> np.ndarray | None:
        """(b, PAST_PARTNERS) the users' past partners living in ``city``, most outings first
        (-1 pads): candidates beside the index's nearest tastes, which may not reach them."""
        if query.new_people:
            return None
        ids = self.world.history.partners(users, PAST_PARTNERS)
        return np.where((ids >= 0) & (self.world.user_city[np.maximum(ids, 0)] == city), ids, -1)

    def keep(self, query: PeopleQuery, users: np.ndarray, ids: np.ndarray) -> np.ndarray:
        keep = (ids != users[:, None]) & ~self.world.blocked(users, ids)
        if query.new_people:
            keep &= self.world.history(users[:, None], ids) == 0
        return keep

    def scores(self, users: np.ndarray, others: np.ndarray, ctx_raw: np.ndarray) -> tuple[np.ndarray, ...]:
        """(s_compat, p_attend, s_final, rank key), each (b, m), of ``users[i]`` with
        ``others[i]``. The key orders by ``s_final`` without its rounding: for the likeliest
        people both sigmoids round to 1.0 in float32 (logits above ~17), so it ranks by the
        complement ``alpha sigma(-compat) + (1 - alpha) sigma(-attend)``, which keeps its
        digits there."""
        past = torch.from_numpy(self.world.history(np.asarray(users)[:, None], others))
        users, others = torch.from_numpy(np.asarray(users, np.int64)), torch.from_numpy(np.asarray(others, np.int64))
        compat, attend = self.heads(self.z_user[users], torch.from_numpy(ctx_raw), others)
        with torch.inference_mode():
            match = self.taste_match(self.tastes[users][:, None, :], self.tastes[others]) + self.history_terms(past)
            compat, attend = compat + match[..., 0], attend + match[..., 1]
            miss = self.alpha * torch.sigmoid(-compat) + (1 - self.alpha) * torch.sigmoid(-attend)
            s_compat, p_attend = torch.sigmoid(compat).numpy(), torch.sigmoid(attend).numpy()
        return s_compat, p_attend, (1 - miss).numpy(), (-miss).numpy()

    def score(self, query: PeopleQuery, users: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        s_compat, p_attend, s_final, key = self.scores(users, ids, self.context(query))
        return key, [s_compat, p_attend, s_final]

    def build(self, query: PeopleQuery, user: int, ids: np.ndarray, extras: list[np.ndarray]) -> list[PersonRecommendation]:
        w = self.world
        outing = np.array(query.activity_tags, dtype=np.int64)
        if query.target_place_id is not None:
            outing = np.union1d(outing, np.flatnonzero(w.place_tags[query.target_place_id] > 0))
        reasons = explain_people(w.fine_pref[user], w.vibe_pref[user], w.area[user], int(w.user_city[user]),
                                 w.fine_pref[ids], w.vibe_pref[ids], w.area[ids], w.user_city[ids], outing,
                                 w.history(user, ids), w.vocabulary)
        return [
            PersonRecommendation(
                user_id=int(v), user_key=w.user_key(int(v)), city_id=int(w.user_city[v]), s_compat=float(c), p_attend=float(a),
                s_final=float(f), explanations=[r.text for r in why], reasons=why,
            )
            for v, c, a, f, why in zip(ids, *extras, reasons, strict=True)
        ]
