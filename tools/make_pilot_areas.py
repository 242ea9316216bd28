"""Write the pilot area file ``src/sdo/data/areas_pilot.geojson`` from real boundaries.

The pilot is West Midlands Police's Birmingham North and Birmingham East NPUs: North is
the Sutton Coldfield and Erdington constituencies, East is Hodge Hill and Yardley, four
wards each, 16 wards in all. Each neighbourhood here is one ONS 2013 ward, its boundary
unchanged (``data/boundaries/birmingham_wards_2013.geojson``; the ward -> constituency
table beside it says which wards are the pilot's). The force ran about 40 neighbourhood
teams over these wards; a ward each is coarser, but every line on the map is a real one.

What is not in any boundary file comes from ``tools/pilot_areas.csv`` (one row a ward):
the neighbourhood id, NPU and response cluster, the typology (1 affluent, low demand ...
5 deprived, high demand) and the named neighbourhood officer. **The typologies, the named
officers' ids and the minimum cover are illustrative** (set by hand from the wards'
general character), not the force's.

Response clusters, as the pilot ran them: the two NPUs share the area where they meet.
``north-1`` is Sutton Coldfield (North), ``east-2`` is Yardley (East), and ``north-east``
twins the adjacent Erdington (North) and Hodge Hill (East) wards into one cluster whose
officers answer across the NPU line. :data:`MIN_COVER` is each cluster's minimum
available response cover (about one unit a ward).

Coordinates are rounded to :data:`GRID` (about a metre); the wards share their vertices,
so shared edges round together and the neighbourhoods still tile the NPUs without overlap
(checked before writing). The output is byte-for-byte reproducible.

Usage::

    python tools/make_pilot_areas.py            # (re)write the file
    python tools/make_pilot_areas.py --check    # exit 1 if the file is out of date
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import shape

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "sdo" / "data" / "areas_pilot.geojson"
WARDS = ROOT / "data" / "boundaries" / "birmingham_wards_2013.geojson"
WARD_MAP = ROOT / "data" / "boundaries" / "birmingham_wards2013_to_constituency.csv"
TABLE = Path(__file__).resolve().parent / "pilot_areas.csv"
GRID = 1e-5  # coordinate precision, degrees (about a metre)
#: The pilot's NPUs by constituency (the constituency names as the ward map spells them).
NPU_OF = {
    "Sutton Coldfield": "north",
    "Birmingham, Erdington": "north",
    "Birmingham, Hodge Hill": "east",
    "Birmingham, Yardley": "east",
}
#: Minimum available response cover per cluster (illustrative: about one unit a ward).
MIN_COVER = {"north-1": 4, "north-east": 7, "east-2": 4}


def _rows() -> list[dict[str, str]]:
    with TABLE.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def build() -> dict[str, Any]:
    """The pilot area FeatureCollection (deterministic)."""
    with WARD_MAP.open(newline="", encoding="utf-8") as f:
        constituency = {r["WD13CD"]: r["PCON13NM_by_vertex_mean"] for r in csv.DictReader(f)}
    wards = {
        f["properties"]["WD13CD"]: f
        for f in json.loads(WARDS.read_text(encoding="utf-8"))["features"]
    }
    pilot = {code for code, pcon in constituency.items() if pcon in NPU_OF}
    rows = _rows()
    listed = {r["ward_code"] for r in rows}
    if listed != pilot:
        raise SystemExit(
            f"{TABLE.name} must list exactly the 16 pilot wards: missing "
            f"{sorted(pilot - listed)}, not pilot {sorted(listed - pilot)}"
        )
    features = []
    for r in rows:
        ward = wards[r["ward_code"]]
        if ward["properties"]["WD13NM"] != r["ward_name"]:
            raise SystemExit(f"{r['ward_code']} is {ward['properties']['WD13NM']!r}")
        if NPU_OF[constituency[r["ward_code"]]] != r["npu"]:
            raise SystemExit(f"{r['ward_name']}: NPU {r['npu']} is not its constituency's")
        geom = shapely.set_precision(shape(ward["geometry"]), GRID, mode="pointwise")
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "id": r["id"],
                    "name": r["ward_name"],
                    "npu": r["npu"],
                    "cluster": r["cluster"],
                    "typology": int(r["typology"]),
                    "named_officer": r["named_officer"],
                    "ward_code": r["ward_code"],
                },
                "geometry": json.loads(shapely.to_geojson(geom)),
            }
        )
    _check(features)
    return {
        "type": "FeatureCollection",
        "name": "sdo pilot areas: Birmingham North (Sutton Coldfield, Erdington) and East "
        "(Hodge Hill, Yardley), ONS 2013 wards; typologies, named officers and minimum "
        "cover illustrative (tools/make_pilot_areas.py)",
        "clusters": {cid: {"min_cover": n} for cid, n in MIN_COVER.items()},
        "features": features,
    }


def _check(features: list[dict[str, Any]]) -> None:
    """Neighbourhoods are valid, do not overlap, and each NPU is one piece."""
    geoms = [shape(f["geometry"]) for f in features]
    for f, g in zip(features, geoms, strict=True):
        assert g.is_valid and g.geom_type == "Polygon", f["properties"]["id"]
    overlap = sum(a.intersection(b).area for i, a in enumerate(geoms) for b in geoms[i + 1 :])
    assert overlap < 1e-9, overlap
    for npu in ("north", "east"):
        mine = [g for f, g in zip(features, geoms, strict=True) if f["properties"]["npu"] == npu]
        assert shapely.union_all(mine).geom_type == "Polygon", npu
    clusters = {f["properties"]["cluster"] for f in features}
    assert clusters == set(MIN_COVER), clusters


def render(fc: dict[str, Any]) -> str:
    """Stable text: one feature per line, so a change shows as a readable diff."""
    head = {k: v for k, v in fc.items() if k != "features"}
    lines = [json.dumps(f, separators=(",", ":")) for f in fc["features"]]
    body = ",\n".join(lines)
    return json.dumps(head, indent=1)[:-2] + ',\n "features": [\n' + body + "\n ]\n}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check", action="store_true", help="exit 1 if --out is out of date")
    args = parser.parse_args(argv)
    text = render(build())
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            sys.stderr.write(f"{args.out} is out of date; run python tools/make_pilot_areas.py\n")
            return 1
        return 0
    args.out.write_text(text, encoding="utf-8")
    sys.stdout.write(f"wrote {args.out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
