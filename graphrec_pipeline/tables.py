"""The six world tables and their exact Parquet (Arrow) types, §2.2-§2.6.

Polars has no map type and reads ``map<int32, float>`` as ``list<struct<key, value>>``;
:func:`to_arrow` converts a frame to the contract's Arrow schema, map included, and fails
loudly when a column is missing or cannot be cast losslessly.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

_F32_LIST = pa.list_(pa.float32())

SCHEMAS: dict[str, pa.Schema] = {
    "places": pa.schema(
        [
            ("place_id", pa.int64()), ("city_id", pa.int32()), ("neighborhood_id", pa.int32()),
            ("category_ids", pa.list_(pa.int32())), ("category_one_hot", _F32_LIST),
            ("fine_tag_vector", _F32_LIST), ("price_band", pa.int32()), ("typical_time_slot", pa.int32()),
            ("base_popularity", pa.float32()), ("avg_daily_visits", pa.float32()),
            ("conversion_rate", pa.float32()), ("novelty_score", pa.float32()),
        ]
    ),
    "users": pa.schema(
        [
            ("user_id", pa.int64()), ("home_city_id", pa.int32()), ("home_neighborhood_id", pa.int32()),
            ("cat_pref", _F32_LIST), ("fine_pref", _F32_LIST), ("vibe_pref", _F32_LIST),
            ("area_freqs", pa.map_(pa.int32(), pa.float32())),
            ("avg_sessions_per_week", pa.float32()), ("avg_views_per_session", pa.float32()),
            ("avg_likes_per_session", pa.float32()), ("avg_saves_per_session", pa.float32()),
            ("avg_attends_per_month", pa.float32()),
        ]
    ),
    "interactions": pa.schema(
        [
            ("user_id", pa.int64()), ("place_id", pa.int64()), ("dwell_time", pa.float32()),
            ("num_likes", pa.int32()), ("num_saves", pa.int32()), ("num_shares", pa.int32()),
            ("attended", pa.bool_()), ("implicit_rating", pa.float32()), ("timestamp", pa.timestamp("us")),
            ("time_of_day_bucket", pa.int32()), ("day_of_week_bucket", pa.int32()),
        ]
    ),
    "user_user_edges": pa.schema(
        [
            ("user_u", pa.int64()), ("user_v", pa.int64()), ("interest_overlap_score", pa.float32()),
            ("co_attendance_count", pa.int32()), ("same_neighborhood_freq", pa.float32()),
        ]
    ),
    "friend_labels": pa.schema(
        [("user_u", pa.int64()), ("user_v", pa.int64()), ("label_compat", pa.int32()), ("label_attend", pa.int32())]
    ),
    "user_blocks": pa.schema([("user_id", pa.int64()), ("blocked_user_id", pa.int64())]),
}
WORLD_TABLES = list(SCHEMAS)


def to_arrow(name: str, frame: pl.DataFrame) -> pa.Table:
    """The frame as an Arrow table with exactly the contract's schema for table ``name``."""
    schema = SCHEMAS[name]
    missing = [f.name for f in schema if f.name not in frame.columns]
    if missing:
        raise ValueError(f"table {name!r}: missing columns {missing}")
    arrays = []
    for field in schema:
        col = frame[field.name].to_arrow()
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        if pa.types.is_map(field.type):
            col = _list_of_structs_to_map(col, field.type)
        arrays.append(col.cast(field.type, safe=True))
    return pa.Table.from_arrays(arrays, schema=schema)


def same_type(found: pa.DataType, expected: pa.DataType) -> bool:
    """Type equality that ignores child field names (Parquet calls list items 'element')."""
    if pa.types.is_map(expected):
        return pa.types.is_map(found) and found.key_type == expected.key_type and found.item_type == expected.item_type
    if pa.types.is_list(expected):
        return pa.types.is_list(found) and found.value_type == expected.value_type
    return found == expected


def _list_of_structs_to_map(col: pa.Array, map_type: pa.MapType) -> pa.Array:
    if pa.types.is_map(col.type):
        return col
    structs = col.flatten()
    return pa.MapArray.from_arrays(
        col.offsets,
        structs.field("key").cast(map_type.key_type),
        structs.field("value").cast(map_type.item_type),
    )
