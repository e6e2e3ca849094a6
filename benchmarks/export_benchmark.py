"""Embedding export and per-city index build at scale (default: 100k users x 100k places).

Inference cost does not depend on the weights, so the model is freshly initialized: this
measures the block-wise full-graph forward pass (§6.1), the index build with the ``auto``
backend and each index's recall@200, with the process's peak memory.

    python benchmarks/export_benchmark.py --n 100000

Results print as JSON and are appended to benchmarks/results/export.jsonl.
"""

from __future__ import annotations

import argparse
import time

from common import append_result, log, peak_gb, world_and_graph


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    args = parser.parse_args()

    import numpy as np
    import torch

    from graphrec_pipeline.artifacts.graph import UP
    from graphrec_pipeline.model.config import ModelConfig
    from graphrec_pipeline.model.graphrec import GraphRec
    from graphrec_pipeline.model.inference import embed_in_blocks
    from graphrec_pipeline.model.preference import retrieval_vectors
    from graphrec_pipeline.serving.city_indexes import IndexSettings, build_city_indexes
    from graphrec_pipeline.artifacts.embeddings import Embeddings

    cfg, world, split, _, graph, _ = world_and_graph(args.n)
    user_city = world["users"].sort("user_id")["home_city_id"].to_numpy()
    place_city = world["places"].sort("place_id")["city_id"].to_numpy()
    del world, split
    log(f"graph: {graph[UP].edge_index.shape[1]:,} interaction edges")
    torch.manual_seed(0)
    model = GraphRec(ModelConfig(n_cities=cfg.n_cities))
    start = time.perf_counter()
    with torch.no_grad():
        ids = model.whole_graph_ids(graph)
    z_user, z_place = embed_in_blocks(model, graph, ids=ids)
    export_s = time.perf_counter() - start
    log(f"embeddings in {export_s:.1f}s")
    with torch.no_grad():
        e_user, e_place = model.id_rows(graph, ids)
        r_user = model.taste_match.people_vectors(model.tastes(graph["user"].x)).numpy()
        q_user = torch.cat([model.preference_match.query_vectors(z_user, model.user_sides(graph["user"].x)), e_user], 1)
        r_place = torch.cat([retrieval_vectors(z_place, model.place_sides(graph["place"].x)), e_place], 1)
    emb = Embeddings(z_user.numpy(), z_place.numpy(), r_user, q_user.numpy(), r_place.numpy(), user_city, place_city,
                     "benchmark", e_user.numpy(), e_place.numpy())
    start = time.perf_counter()
    _, report = build_city_indexes(emb, IndexSettings(), log=log)
    index_s = time.perf_counter() - start
    result = {
        "n": args.n,
        "interaction_edges": int(graph[UP].edge_index.shape[1]),
        "export_seconds": round(export_s, 1),
        "index_seconds": round(index_s, 1),
        "backends": sorted(set(report["backend"])),
        "min_recall@200": float(report["recall@200"].min()),
        "mean_recall@200": float(np.mean(report["recall@200"].to_numpy())),
        "peak_gb": peak_gb(),
    }
    append_result("export.jsonl", result)


if __name__ == "__main__":
    main()
