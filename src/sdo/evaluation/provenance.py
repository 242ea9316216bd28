"""Where a log came from, as its events say (no file beside it needed): ``sdo simulate``
writes event ids ``sim-SEED-N``, ``sdo import police-uk`` ``puk-SEED-...``; anything else
is taken as recorded. The report's banner says it in words."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Final

__all__ = ["provenance"]

#: How many blocks of the log (about a megabyte each) are looked at, at most.
_BLOCKS: Final = 8
_SIM: Final = re.compile(rb'"event_id":"sim-(\d+)-')
_PUK: Final = re.compile(rb'"event_id":"puk-(\d+)-')

POLICE_UK_CAVEATS: Final = (
    "police.uk gives months only: the days and times are synthetic (seeded)",
    "locations are snapped to anonymous map points",
    "recorded crime, not calls for service; the THRIVE+ answers are drawn per crime type "
    "(src/sdo/evaluation/police_uk.py), not what a handler recorded, so the share routed "
    "away from response officers follows from those drawn answers",
    "no deployments are recorded, so there is no recorded dispatch to compare with",
)


def provenance(log: Path) -> dict[str, Any]:
    """``{"kind": "simulated"|"police.uk"|"recorded", "seed": N?, "caveats": [...]}``."""
    from sdo.evaluation.replay import read_log  # noqa: PLC0415

    reader = read_log(log)
    sim = puk = None
    try:
        # an import with simulated officers starts with their events: read on a little
        for n, block in enumerate(reader.blocks()):
            sim = sim or _SIM.search(block)
            puk = puk or _PUK.search(block)
            if puk is not None or n + 1 >= _BLOCKS:
                break
    finally:
        reader.close()
    if puk is not None:
        return {
            "kind": "police.uk",
            "seed": int(puk.group(1)),
            "officers_simulated": sim is not None,
            "caveats": list(POLICE_UK_CAVEATS),
        }
    if sim is not None:
        return {"kind": "simulated", "seed": int(sim.group(1)), "caveats": []}
    return {"kind": "recorded", "caveats": []}
