"""Defaults that several stages share, each defined once: the serving flow that training
validates on, evaluation measures and the server runs must be the same flow, and the
positives the world report, the split, training and evaluation count must be the same."""

RETRIEVAL_CANDIDATES = 200  # M of the place flow: places retrieved per query, then re-ranked by the head
PEOPLE_CANDIDATES = 50  # M of the people flow
POSITIVE_RATING = 3.0  # a held-out visit at or above this implicit rating is a positive
TOP_K = 20  # the cut of the headline metrics (NDCG@20, Recall@20) and of validation
