"""Write the synthetic test area file ``tests/data/areas_synthetic.geojson``.

A small hand-drawn fixture for tests that rely on its ids and shapes; the packaged pilot
area file is built from real boundaries by ``tools/make_pilot_areas.py``.

Synthetic geography placed at Birmingham's real coordinates: two NPUs, *Birmingham
North* (roughly Sutton Coldfield and Erdington) and *Birmingham East* (roughly Hodge Hill
and Yardley). Each NPU is a hand-drawn outline, cut in two by a hand-drawn line into the
parts that become response clusters; each part is tiled by the Voronoi cells of named
seed points (real local place names, approximate positions), clipped to the part. The
shapes are not real boundaries. Everything here is a literal: no randomness, no input
files, so the output is byte-for-byte reproducible.

Clusters: ``north-1`` (Sutton part of North), ``north-east`` (Erdington part of North
twinned with the Hodge Hill part of East) and ``east-2`` (Yardley part of East).

Usage::

    python tools/make_synthetic_areas.py            # (re)write the file
    python tools/make_synthetic_areas.py --check    # exit 1 if the file is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import MultiPoint, Polygon

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "areas_synthetic.geojson"
GRID = 1e-5  # coordinate precision, degrees (about a metre)

# (lon, lat) outlines; North's southern edge runs along lat 52.50 where it meets East.
NORTH = [
    (-1.860, 52.500), (-1.885, 52.515), (-1.900, 52.545), (-1.885, 52.570),
    (-1.860, 52.595), (-1.830, 52.610), (-1.795, 52.605), (-1.770, 52.585),
    (-1.750, 52.560), (-1.740, 52.530), (-1.755, 52.510), (-1.780, 52.502),
    (-1.800, 52.500),
]  # fmt: skip
EAST = [
    (-1.860, 52.500), (-1.800, 52.500), (-1.740, 52.500), (-1.722, 52.485),
    (-1.720, 52.460), (-1.735, 52.440), (-1.770, 52.432), (-1.815, 52.430),
    (-1.845, 52.437), (-1.858, 52.455), (-1.852, 52.470), (-1.860, 52.485),
]  # fmt: skip
# Everything north of these lines is the first part of the NPU.
NORTH_CUT = [
    (-1.950, 52.565), (-1.885, 52.562), (-1.862, 52.548), (-1.845, 52.538),
    (-1.815, 52.530), (-1.790, 52.522), (-1.760, 52.514), (-1.700, 52.512),
]  # fmt: skip
EAST_CUT = [
    (-1.950, 52.474),
    (-1.830, 52.476),
    (-1.800, 52.479),
    (-1.770, 52.480),
    (-1.700, 52.478),
]

# (npu, part, cluster, [(id, name, lon, lat, typology), ...]); part 0 = north of the cut.
PARTS: list[tuple[str, int, str, list[tuple[str, str, float, float, int]]]] = [
    ("north", 0, "north-1", [
        ("N01", "Mere Green", -1.830, 52.598, 1),
        ("N02", "Four Oaks", -1.848, 52.578, 1),
        ("N03", "Sutton Coldfield Town Centre", -1.822, 52.565, 3),
        ("N04", "Reddicap", -1.785, 52.565, 2),
        ("N05", "Boldmere", -1.857, 52.553, 2),
        ("N06", "Wylde Green", -1.830, 52.546, 2),
        ("N07", "Walmley", -1.795, 52.537, 1),
    ]),
    ("north", 1, "north-east", [
        ("N08", "Kingstanding", -1.875, 52.540, 5),
        ("N09", "Stockland Green", -1.860, 52.518, 4),
        ("N10", "Erdington", -1.838, 52.525, 4),
        ("N11", "Tyburn", -1.810, 52.512, 4),
        ("N12", "Castle Vale", -1.775, 52.510, 5),
    ]),
    ("east", 0, "north-east", [
        ("E01", "Washwood Heath", -1.845, 52.490, 5),
        ("E02", "Ward End", -1.820, 52.494, 4),
        ("E03", "Hodge Hill", -1.795, 52.490, 3),
        ("E04", "Shard End", -1.762, 52.489, 4),
        ("E05", "Bordesley Green", -1.848, 52.479, 5),
    ]),
    ("east", 1, "east-2", [
        ("E06", "Stechford", -1.808, 52.471, 4),
        ("E07", "Lea Hall", -1.780, 52.471, 3),
        ("E08", "Tile Cross", -1.745, 52.468, 4),
        ("E09", "Hay Mills", -1.835, 52.461, 4),
        ("E10", "Yardley", -1.805, 52.456, 3),
        ("E11", "Sheldon", -1.765, 52.452, 2),
        ("E12", "Acocks Green", -1.820, 52.442, 3),
    ]),
]  # fmt: skip
MIN_COVER = {"north-1": 4, "north-east": 5, "east-2": 4}


def _north_of(line: list[tuple[float, float]]) -> Polygon:
    (x0, _), (x1, _) = line[0], line[-1]
    return Polygon([*line, (x1, 90.0), (x0, 90.0)])


def _parts() -> dict[tuple[str, int], Any]:
    out = {}
    for npu, outline, cut in (("north", NORTH, NORTH_CUT), ("east", EAST, EAST_CUT)):
        whole = Polygon(outline)
        upper = _north_of(cut)
        out[npu, 0] = whole.intersection(upper)
        out[npu, 1] = whole.difference(upper)
    return out


def build() -> dict[str, Any]:
    """The pilot area FeatureCollection (deterministic)."""
    parts = _parts()
    pieces: list[tuple[str, str, str, str, int, Any]] = []
    for npu, part, cluster, seeds in PARTS:
        region = parts[npu, part]
        points = MultiPoint([(lon, lat) for _, _, lon, lat, _ in seeds])
        cells = shapely.get_parts(shapely.voronoi_polygons(points, extend_to=region))
        for nid, name, lon, lat, typology in seeds:
            seed = shapely.Point(lon, lat)
            if not region.contains(seed):
                raise SystemExit(f"seed {nid} {name} lies outside its part {npu}/{part}")
            (cell,) = [c for c in cells if c.contains(seed)]
            pieces.append((nid, name, npu, cluster, typology, cell.intersection(region)))
    # Where a cell meets the cut line, the vertex exists only on one side: insert every
    # piece's vertices into its neighbours' edges, so rounding moves shared edges together.
    vertices = shapely.MultiPoint(
        shapely.get_coordinates([g for *_, g in pieces]).round(12).tolist()
    )
    features = []
    for nid, name, npu, cluster, typology, geom in pieces:
        snapped = shapely.snap(geom, vertices, 1e-9)
        rounded = shapely.set_precision(snapped, GRID, mode="pointwise")
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "id": nid,
                    "name": name,
                    "npu": npu,
                    "cluster": cluster,
                    "typology": typology,
                    "named_officer": f"{nid[0]}-01{nid[1:]}",
                },
                "geometry": json.loads(shapely.to_geojson(rounded)),
            }
        )
    _check(features)
    return {
        "type": "FeatureCollection",
        "name": "sdo synthetic pilot areas: NPUs north = Birmingham North, "
        "east = Birmingham East (not real boundaries)",
        "clusters": {cid: {"min_cover": n} for cid, n in MIN_COVER.items()},
        "features": features,
    }


def _check(features: list[dict[str, Any]]) -> None:
    """Neighbourhoods are valid, do not overlap, and tile each NPU outline."""
    geoms = [shapely.geometry.shape(f["geometry"]) for f in features]
    for f, g in zip(features, geoms, strict=True):
        assert g.is_valid and g.geom_type == "Polygon", f["properties"]["id"]
    overlap = sum(a.intersection(b).area for i, a in enumerate(geoms) for b in geoms[i + 1 :])
    assert overlap < 1e-12, overlap
    for npu, outline in (("north", NORTH), ("east", EAST)):
        mine = [g for f, g in zip(features, geoms, strict=True) if f["properties"]["npu"] == npu]
        union = shapely.union_all(mine)
        # Rounding to GRID moves points off the outline's edges by at most GRID / 2.
        assert union.geom_type == "Polygon" and not union.interiors, npu
        assert union.symmetric_difference(Polygon(outline)).area < 1e-6, npu


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
            sys.stderr.write(f"{args.out} is out of date; run {Path(__file__).name}\n")
            return 1
        return 0
    args.out.write_text(text, encoding="utf-8")
    sys.stdout.write(f"wrote {args.out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
