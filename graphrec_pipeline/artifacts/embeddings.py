"""The embedding tables of a release and their manifest.

``user_embeddings`` is ``(user_id, city_id, embedding, place_query, people_vector[,
id_part])`` and ``place_embeddings`` is ``(place_id, city_id, embedding,
retrieval_vector[, id_part])``: each vector a fixed-size list of float32 (DuckDB reads
``embedding`` as ``FLOAT[128]``), one row per id. ``EMBEDDINGS_MANIFEST`` records the
SHA-256 of the model weights they came from, so serving can tell stale embeddings from
fresh ones. ``serving/embeddings.py`` computes them from the model.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from graphrec_pipeline.artifacts import EMBEDDINGS_MANIFEST
from graphrec_pipeline.storage import Storage

USER_EMBEDDINGS = "user_embeddings"
PLACE_EMBEDDINGS = "place_embeddings"


@dataclass
class Embeddings:
    """Dense ``z`` matrices indexed by id (ids are dense, so row == id) with each row's city."""

    z_user: np.ndarray
    z_place: np.ndarray
    r_user: np.ndarray  # people retrieval vectors
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


def _vectors(x: np.ndarray) -> pa.FixedSizeListArray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1])


def embedding_table(id_name: str, ids: np.ndarray, city: np.ndarray, z: np.ndarray,
                    **vectors: np.ndarray) -> pa.Table:
    """``(<id>, city_id, embedding, *vectors)``: each keyword a fixed-size list column."""
    columns = {id_name: pa.array(ids, pa.int64()), "city_id": pa.array(city, pa.int32()), "embedding": _vectors(z)}
    columns.update({name: _vectors(x) for name, x in vectors.items()})
    return pa.table(columns)


def save_embeddings(store: Storage, emb: Embeddings) -> None:
    """Both tables, then the manifest (each file written whole)."""
    user_ids = {"id_part": emb.e_user} if emb.e_user.shape[1] else {}
    place_ids = {"id_part": emb.e_place} if emb.e_place.shape[1] else {}
    n_users, n_places = len(emb.z_user), len(emb.z_place)
    store.write_table(USER_EMBEDDINGS, embedding_table("user_id", np.arange(n_users), emb.user_city, emb.z_user,
                                                       place_query=emb.q_user, people_vector=emb.r_user, **user_ids),
                      staged=False)
    store.write_table(PLACE_EMBEDDINGS, embedding_table("place_id", np.arange(n_places), emb.place_city, emb.z_place,
                                                        retrieval_vector=emb.r_place, **place_ids), staged=False)
    store.write_json(EMBEDDINGS_MANIFEST, {
        "model_sha256": emb.model_sha256, "release": store.release, "n_users": n_users, "n_places": n_places,
        "dim": emb.dim, "people_dim": emb.r_user.shape[1], "retrieval_dim": emb.r_place.shape[1],
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat()})


def _matrix(table, column: str = "embedding") -> tuple[np.ndarray, np.ndarray]:
    z = table[column].to_numpy()
    return np.ascontiguousarray(z, dtype=np.float32), table["city_id"].to_numpy()


def _id_parts(table) -> np.ndarray:
    """The ``id_part`` column, or no columns for a model without ID embeddings."""
    return _matrix(table, "id_part")[0] if "id_part" in table.columns else np.zeros((len(table), 0), np.float32)


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
