"""Embedding export (§6.1): one full forward pass over the training graph gives ``z_user``
and ``z_place``, stored as the tables ``user_embeddings`` and ``place_embeddings``
(``artifacts/embeddings.py``).

Retrieval searches two more vectors per row: the place table's ``retrieval_vector``
(``[z_p, s_p]``) against the user table's ``place_query`` (``[d^-1/2 z_u, W s_u]``), whose
inner product is the model's retrieval score (``model/preference.py``), and the user
table's ``people_vector`` (136) against itself: the users' tastes weighted by the learned
taste match (``model/taste.py``). Models with ID embeddings append their ID parts to the
place queries and retrieval vectors, so the inner product adds ``e_u . e_p``.
"""

from __future__ import annotations

import numpy as np
import torch

from graphrec_pipeline.artifacts import MODEL_WEIGHTS
from graphrec_pipeline.artifacts.embeddings import Embeddings, save_embeddings
from graphrec_pipeline.compute_threads import use_compute_threads
from graphrec_pipeline.model.graphrec import GraphRec
from graphrec_pipeline.model.inference import embed_in_blocks
from graphrec_pipeline.model.preference import retrieval_vectors
from graphrec_pipeline.storage import Storage


def export_embeddings(
    store: Storage, model: GraphRec, graph, user_city: np.ndarray, place_city: np.ndarray
) -> Embeddings:
    """Run the forward pass and write both tables and the manifest (each file atomically)."""
    use_compute_threads()
    with torch.no_grad():
        ids = model.whole_graph_ids(graph)
        e_user, e_place = model.id_rows(graph, ids)
    z_user, z_place = embed_in_blocks(model, graph, ids=ids)
    x_user, x_place = graph["user"].x, graph["place"].x
    r_user = model.taste_match.people_vectors(model.tastes(x_user)).numpy()
    q_user = torch.cat([model.preference_match.query_vectors(z_user, model.user_sides(x_user)), e_user], 1).numpy()
    r_place = torch.cat([retrieval_vectors(z_place, model.place_sides(x_place)), e_place], 1).numpy()
    emb = Embeddings(z_user.numpy(), z_place.numpy(), r_user, q_user, r_place, user_city, place_city,
                     store.digest(MODEL_WEIGHTS), e_user.numpy(), e_place.numpy())
    save_embeddings(store, emb)
    return emb
