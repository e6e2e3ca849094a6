"""Contract constants of the design (§2.1, §3.5): defined once, shared by every stage.

Scale constants (N_USERS, N_PLACES, N_CITIES, N_NEIGHBORHOODS_PER_CITY) are only the
defaults of :class:`graphrec_pipeline.world.config.WorldConfig`; the dimension constants
are fixed by the feature and model contract and never change with scale. The category,
tag and vibe widths are the taxonomy's, which a generated world uses; an imported log has
its own (``widths.py`` derives the row layouts from either).
"""

N_USERS = 10_000
N_PLACES = 10_000
N_CITIES = 8
N_NEIGHBORHOODS_PER_CITY = 15

C_COARSE = 6
C_FINE = 100
C_VIBE = 30

N_TIME_SLOTS = 6
N_TIME_OF_DAY = 4
N_DAY_OF_WEEK = 2
N_PRICE_BANDS = 5
MAX_NEIGHBORHOODS_PER_USER = 5
N_BEHAVIOR_STATS = 5

D_EDGE_UP = 1 + 1 + 4 + N_TIME_OF_DAY + N_DAY_OF_WEEK
D_EDGE_UU = 3

assert (D_EDGE_UP, D_EDGE_UU) == (12, 3)

# Tolerance of the "sums to 1" rules of §2.7.
SUM_TOLERANCE = 1e-5
