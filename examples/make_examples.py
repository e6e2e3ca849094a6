"""Write the committed example check-in logs from a tiny generated world:

* ``examples/checkins/``: ``events.csv``, ``places.csv``, ``friends.csv``, ``blocks.csv``
  (``world.source: events``);
* ``examples/recbole/``: ``checkins.inter``, ``checkins.item``, ``checkins.net``
  (``world.source: recbole``).

Run ``python examples/make_examples.py``; the same seed writes the same bytes.
"""

from pathlib import Path

from graphrec_pipeline.ingest.export import world_as_log, write_recbole
from graphrec_pipeline.world.config import WorldConfig
from graphrec_pipeline.world.generate import generate_world

HERE = Path(__file__).resolve().parent
CONFIG = WorldConfig(n_users=40, n_places=60, n_cities=2, neighborhoods_per_city=4, min_interactions_per_user=6,
                     max_interactions_per_user=14, similar_users_k=5, seed=3)


def main() -> None:
    log = world_as_log(generate_world(CONFIG), CONFIG.neighborhoods_per_city, seed=CONFIG.seed)
    (HERE / "checkins").mkdir(exist_ok=True)
    for name, frame in log.items():
        frame.write_csv(HERE / "checkins" / f"{name}.csv")
    (HERE / "recbole").mkdir(exist_ok=True)
    for name, text in write_recbole(log, "checkins").items():
        (HERE / "recbole" / name).write_text(text)
    print({name: frame.height for name, frame in log.items()})


if __name__ == "__main__":
    main()
