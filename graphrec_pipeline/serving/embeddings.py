"""Embedding export (§6.1): one full forward pass over the training graph gives ``z_user``
and ``z_place``, stored as the tables ``user_embeddings`` and ``place_embeddings``.

Each table is ``(<id>, city_id, embedding)`` with ``embedding`` a fixed-size list of 128
float32 (DuckDB reads it as ``FLOAT[128]``); the user table adds ``people_vector`` (136),
what the people index searches: the users' tastes weighted by the model's learned taste
match (``model/taste.py``). ``serving/embeddings.json`` records the SHA-256
of the model weights they came from, so serving can tell stale embeddings from fresh ones.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from graphrec_pipeline.compute_threads import use_compute_threads
from graphrec_pipeline.model.graphrec import GraphRec
from graphrec_pipeline.model.inference import embed_in_blocks
from graphrec_pipeline.storage import Storage
from graphrec_pipeline.train.fit import MODEL_WEIGHTS

USER_EMBEDDINGS = "user_embeddings"
PLACE_EMBEDDINGS = "place_embeddings"
EMBEDDINGS_MANIFEST = "serving/embeddings.json"


def _vectors(x: np.ndarray) -> pa.FixedSizeListArray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1])


def embedding_table(id_name: str, ids: np.ndarray, city: np.ndarray, z: np.ndarray,
                    people: np.ndarray | None = None) -> pa.Table:
    columns = {id_name: pa.array(ids, pa.int64()), "city_id": pa.array(city, pa.int32()), "embedding": _vectors(z)}
    if people is not None:
        columns["people_vector"] = _vectors(people)
    return pa.table(columns)


@dataclass
class Embeddings:
    """Dense ``z`` matrices indexed by id (ids are dense, so row == id) with each row's city."""

    z_user: np.ndarray
    z_place: np.ndarray
    r_user: np.ndarray  # people retrieval vectors (module doc)
    user_city: np.ndarray
    place_city: np.ndarray
    model_sha256: str

    @property
    def dim(self) -> int:
        return self.z_user.shape[1]


def export_embeddings(
    store: Storage, model: GraphRec, graph, user_city: np.ndarray, place_city: np.ndarray
) -> Embeddings:
    """Run the forward pass and write both tables and the manifest (each file atomically)."""
    use_compute_threads()
    z_user, z_place = (z.numpy() for z in embed_in_blocks(model, graph))
    r_user = model.taste_match.people_vectors(GraphRec.tastes(graph["user"].x)).numpy()
    emb = Embeddings(z_user, z_place, r_user, user_city, place_city, store.digest(MODEL_WEIGHTS))
    store.write_table(USER_EMBEDDINGS, embedding_table("user_id", np.arange(len(z_user)), user_city, z_user, r_user),
                      staged=False)
    store.write_table(
        PLACE_EMBEDDINGS, embedding_table("place_id", np.arange(len(z_place)), place_city, z_place), staged=False
    )
    store.write_json(
        EMBEDDINGS_MANIFEST,
        {
            "model_sha256": emb.model_sha256,
            "release": store.release,
            "n_users": len(z_user),
            "n_places": len(z_place),
            "dim": emb.dim,
            "people_dim": emb.r_user.shape[1],
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
    if "people_vector" not in users.columns:
        raise FileNotFoundError("the user embeddings have no people vectors (made before they existed); "
                                "materialize the 'user_embeddings' asset")
    z_user, user_city = _matrix(users)
    r_user, _ = _matrix(users, "people_vector")
    z_place, place_city = _matrix(places)
    return Embeddings(z_user, z_place, r_user, user_city, place_city, manifest["model_sha256"])
