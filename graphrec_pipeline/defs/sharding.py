"""How per-city work is spread over steps: a fixed number of steps per asset, city ``c`` in
step ``c % CITY_STEPS``.

A fixed fan-out rather than Dagster's dynamic mapping, because the Dask executor skips
dynamic steps (and reports success; dagster-io/dagster#9785). The default world has 8
cities, one per step; a larger world puts several cities in a step. Results go from the
steps to the collecting step through the run's release, not through fan-in inputs, which
the Dask executor hands over as empty lists.
"""

CITY_STEPS = 8


def shard_cities(cities: list[int], shard: int) -> list[int]:
    """The cities step ``shard`` makes."""
    return [c for c in cities if c % CITY_STEPS == shard]
