"""The cyclic garbage collector, tuned for a long-running worker or console.

At Python's defaults (a young collection every 700 allocations net, a full one every
100 young ones, give or take) a worker busy with a backlog runs a full collection about
every third of a second, and each one scans the whole heap: everything start-up built
(Faust, aiokafka, numba's compiled lanes, the areas) as well as the World. Measured in
``bench/ingest.py --officers 10000 --fixes 10``: 5-6 full collections of 80-90 ms each
while the worker applied the 120,000 events, a quarter of its CPU and as many pauses in
its latency. Processing makes almost no reference cycles (records, recommendations and
officer records are freed by reference counting), so the collector finds next to nothing.

:func:`settle`, once start-up is done: collect what start-up left, move what remains
beyond the collector's reach (:func:`gc.freeze`: it is never freed anyway), and run the
young collection every :data:`YOUNG_THRESHOLD` allocations. Cycles are still collected,
in bigger batches (``sdo evaluate`` does the same for a pass: ``GC_THRESHOLD``).
"""

from __future__ import annotations

import gc
from typing import Final

__all__ = ["YOUNG_THRESHOLD", "settle"]

#: Allocations (net) between young collections once settled (Python's default: 700).
YOUNG_THRESHOLD: Final = 50_000


def settle() -> int:
    """Collect, freeze what start-up built and raise the young threshold (module
    docstring); returns how many objects were frozen. Once per process, when ready."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    return gc.get_freeze_count()
