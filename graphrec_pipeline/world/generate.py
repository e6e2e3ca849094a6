"""The whole synthetic world in one call, in the same order as the Dagster assets.

The assets call these functions one table at a time (each from staged inputs); this
chain is for benchmarks, tests and notebooks that want the six tables without Dagster.
"""

from __future__ import annotations

import polars as pl

from graphrec_pipeline.world import social
from graphrec_pipeline.world.config import WorldConfig
from graphrec_pipeline.world.interactions import generate_interactions
from graphrec_pipeline.world.places import generate_places
from graphrec_pipeline.world.users import generate_users


def generate_world(cfg: WorldConfig, log=lambda msg: None) -> dict[str, pl.DataFrame]:
    """The six world tables of §2 keyed by table name."""
    places = generate_places(cfg)
    users = generate_users(cfg)
    log(f"places {len(places):,}, users {len(users):,}")
    candidates = social.world_candidates(cfg, users)
    log(f"similar-user candidates {len(candidates):,}")
    interactions = generate_interactions(cfg, users, places, candidates)
    log(f"interactions {len(interactions):,}")
    edges = social.build_user_user_edges(cfg.neighborhoods_per_city, users, candidates, interactions)
    log(f"edges {len(edges):,}")
    labels = social.build_friend_labels(cfg, users, edges, interactions)
    blocks = social.build_user_blocks(cfg, users, candidates)
    log(f"labels {len(labels):,}, blocks {len(blocks):,}")
    return {
        "places": places,
        "users": users,
        "interactions": interactions,
        "user_user_edges": edges,
        "friend_labels": labels,
        "user_blocks": blocks,
    }
