"""Embedding export (§6.1): one full forward pass over the training graph gives ``z_user``
and ``z_place``, stored as the tables ``user_embeddings`` and ``place_embeddings``.

Each table is ``(<id>, city_id, embedding)`` with ``embedding`` a fixed-size list of 128
float32 (DuckDB reads it as ``FLOAT[128]``). Retrieval searches two more vectors per row:
the place table's ``retrieval_vector`` (``[z_p, s_p]``) against the user table's
``place_query`` (``[d^-1/2 z_u, W s_u]``), whose inner product is the model's retrieval
score (``model/preference.py``), and the user table's ``people_vector`` (136) against
itself: the users' tastes weighted by the learned taste match (``model/taste.py``).
``serving/embeddings.json`` records the SHA-256
of the model weights they came from, so serving can tell stale embeddings from fresh ones.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from graphrec_pipeline.artifacts import EMBEDDINGS_MANIFEST
from graphrec_pipeline.compute_threads import use_compute_threads
from graphrec_pipeline.model.graphrec import GraphRec
from graphrec_pipeline.model.inference import embed_in_blocks
from graphrec_pipeline.model.preference import retrieval_vectors
from graphrec_pipeline.storage import Storage
from graphrec_pipeline.artifacts import MODEL_WEIGHTS

USER_EMBEDDINGS = "user_embeddings"
PLACE_EMBEDDINGS = "place_embeddings"


def _vectors(x: np.ndarray) -> pa.FixedSizeListArray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1])


def embedding_table(id_name: str, ids: np.ndarray, city: np.ndarray, z: np.ndarray,
                    **vectors: np.ndarray) -> pa.Table:
    """``(<id>, city_id, embedding, *vectors)``: each keyword a fixed-size list column."""
    columns = {id_name: pa.array(ids, pa.int64()), "city_id": pa.array(city, pa.int32()), "embedding": _vectors(z)}
    columns.update({name: _vectors(x) for name, x in vectors.items()})
    return pa.table(columns)


@dataclass
class Embeddings:
    """Dense ``z`` matrices indexed by id (ids are dense, so row == id) with each row's city."""

    z_user: np.ndarray
    z_place: np.ndarray
    r_user: np.ndarray  # people retrieval vectors (module doc)
    q_user: np.ndarray  # place queries
    r_place: np.ndarray  # place retrieval vectors
    user_city: np.ndarray
    place_city: np.ndarray
    model_sha256: str
    e_user: np.ndarray  # ID parts (zero-width without ID embeddings): the place head adds e_u . e_p
    e_place: np.ndarray

    @property
    def dim(self) -> int:
        return self.z_user.shape[1]


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
    r_user = model.taste_match.people_vectors(GraphRec.tastes(x_user)).numpy()
    q_user = torch.cat([model.preference_match.query_vectors(z_user, model.user_sides(x_user)), e_user], 1).numpy()
    r_place = torch.cat([retrieval_vectors(z_place, model.place_sides(x_place)), e_place], 1).numpy()
    z_user, z_place, e_user, e_place = z_user.numpy(), z_place.numpy(), e_user.numpy(), e_place.numpy()
    emb = Embeddings(z_user, z_place, r_user, q_user, r_place, user_city, place_city, store.digest(MODEL_WEIGHTS),
                     e_user, e_place)
    user_ids = {"id_part": e_user} if e_user.shape[1] else {}
    place_ids = {"id_part": e_place} if e_place.shape[1] else {}
    store.write_table(USER_EMBEDDINGS, embedding_table("user_id", np.arange(len(z_user)), user_city, z_user,
                                                       place_query=q_user, people_vector=r_user, **user_ids),
                      staged=False)
    store.write_table(PLACE_EMBEDDINGS, embedding_table("place_id", np.arange(len(z_place)), place_city, z_place,
                                                        retrieval_vector=r_place, **place_ids), staged=False)
    store.write_json(
        EMBEDDINGS_MANIFEST,
        {
            "model_sha256": emb.model_sha256,
            "release": store.release,
            "n_users": len(z_user),
            "n_places": len(z_place),
            "dim": emb.dim,
            "people_dim": emb.r_user.shape[1],
            "retrieval_dim": emb.r_place.shape[1],
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        },
    )
    return emb


def _matrix(table, column: str = "embedding") -> tuple[np.ndarray, np.ndarray]:
    z = table[column].to_numpy()
    return np.ascontiguousarray(z, dtype=np.float32), table["city_id"].to_numpy()


def load_embeddings(store: Storage) -> Embeddings:
    manifest = store.read_json(EMBEDDINGS_MANIFEST)
    if manifest is None:
        raise FileNotFoundError("no embeddings; materialize the 'user_embeddings' and 'place_embeddings' assets")
    users = store.read_table(USER_EMBEDDINGS).sort("user_id")
    places = store.read_table(PLACE_EMBEDDINGS).sort("place_id")
    for table, column in ((users, "people_vector"), (users, "place_query"), (places, "retrieval_vector")):
        if column not in table.columns:
            raise FileNotFoundError(f"the embeddings have no {column} column (made before it existed); "
                                    "materialize the 'user_embeddings' and 'place_embeddings' assets")
    z_user, user_city = _matrix(users)
    z_place, place_city = _matrix(places)
    return Embeddings(z_user, z_place, _matrix(users, "people_vector")[0], _matrix(users, "place_query")[0],
                      _matrix(places, "retrieval_vector")[0], user_city, place_city, manifest["model_sha256"],
                      _id_parts(users), _id_parts(places))


def _id_parts(table) -> np.ndarray:
    """The ``id_part`` column, or no columns for a model without ID embeddings."""
    return _matrix(table, "id_part")[0] if "id_part" in table.columns else np.zeros((len(table), 0), np.float32)
