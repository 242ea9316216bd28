"""sdo.domain.geo: distances and areas, with known values."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from sdo.domain.geo import (
    EARTH_RADIUS_M,
    Areas,
    Cluster,
    Placement,
    haversine_m,
    haversine_many_m,
)
from sdo.errors import ConfigError

ONE_DEGREE_M = 2 * math.pi * EARTH_RADIUS_M / 360


def square(x0: float, y0: float, size: float = 0.01) -> dict[str, Any]:
    ring = [[x0, y0], [x0 + size, y0], [x0 + size, y0 + size], [x0, y0 + size], [x0, y0]]
    return {"type": "Polygon", "coordinates": [ring]}


def feature(nid: str, geometry: dict[str, Any] | None = None, **props: Any) -> dict[str, Any]:
    base = {"id": nid, "name": f"Name {nid}", "npu": "n1", "cluster": "c1", "typology": 3}
    base.update(props)
    return {
        "type": "Feature",
        "properties": {k: v for k, v in base.items() if v is not ...},
        "geometry": geometry if geometry is not None else square(-1.9, 52.5),
    }


def collection(*features: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features), **top}


# A 2 x 2 grid of 0.01° squares near Birmingham: A B (top) / C D (bottom).
# A, C in npu n1; B, D in npu n2; cluster "twin" = A + B spans both NPUs.
GRID = collection(
    feature("A", square(-1.90, 52.51), npu="n1", cluster="twin", named_officer="N-0101"),
    feature("B", square(-1.89, 52.51), npu="n2", cluster="twin", typology=5),
    feature("C", square(-1.90, 52.50), npu="n1", cluster="south1", typology=1),
    feature("D", square(-1.89, 52.50), npu="n2", cluster="south2", min_cover=3),
    clusters={"twin": {"min_cover": 5}},
)


@pytest.fixture(scope="module")
def grid() -> Areas:
    return Areas.from_geojson(GRID)


@pytest.mark.parametrize(
    ("a", "b", "expected_m", "tolerance_m"),
    [
        ((-0.1278, 51.5074), (2.3522, 48.8566), 343_500, 500),  # London - Paris
        ((-1.8904, 52.4862), (-1.8904, 52.4862), 0.0, 1e-9),  # same point
        ((179.5, 0.0), (-179.5, 0.0), ONE_DEGREE_M, 1e-6),  # across the antimeridian
        ((0.0, 0.0), (90.0, 0.0), math.pi / 2 * EARTH_RADIUS_M, 1e-6),  # quarter equator
        ((0.0, 90.0), (0.0, -90.0), math.pi * EARTH_RADIUS_M, 1e-6),  # pole to pole
        ((10.0, 0.0), (10.0, 1.0), ONE_DEGREE_M, 1e-6),  # one degree of latitude
    ],
)
def test_haversine_known_values(
    a: tuple[float, float], b: tuple[float, float], expected_m: float, tolerance_m: float
) -> None:
    """Great-circle distances match known values and are symmetric."""
    assert haversine_m(*a, *b) == pytest.approx(expected_m, abs=tolerance_m)
    assert haversine_m(*b, *a) == pytest.approx(haversine_m(*a, *b), abs=1e-9)


def test_haversine_many_equals_scalar() -> None:
    """The vectorised distance is the scalar one, element by element, in float64."""
    lons = np.array([-1.9, -0.1278, 179.5, 2.3522, -1.8])
    lats = np.array([52.48, 51.5074, 0.0, 48.8566, 52.5])
    got = haversine_many_m(lons, lats, -179.5, 0.0)
    assert got.dtype == np.float64
    assert got.shape == lons.shape
    expected = [haversine_m(x, y, -179.5, 0.0) for x, y in zip(lons, lats, strict=True)]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize(
    ("lon", "lat", "expected"),
    [
        (-1.895, 52.515, Placement("A", "n1", "twin")),
        (-1.885, 52.515, Placement("B", "n2", "twin")),
        (-1.895, 52.505, Placement("C", "n1", "south1")),
        (-1.885, 52.505, Placement("D", "n2", "south2")),
        (-1.89, 52.515, Placement("A", "n1", "twin")),  # shared edge: first in file wins
        (-1.90, 52.50, Placement("C", "n1", "south1")),  # outer corner counts as inside
        (-1.905, 52.505, None),  # just west of the grid
        (-0.1278, 51.5074, None),  # London
        (0.0, 0.0, None),
    ],
)
def test_locate(grid: Areas, lon: float, lat: float, expected: Placement | None) -> None:
    """A point maps to the neighbourhood holding it, with its NPU and cluster, else None."""
    assert grid.locate(lon, lat) == expected


def test_locate_centroids(grid: Areas) -> None:
    """Every neighbourhood's centroid locates into that neighbourhood."""
    for nb in grid.neighbourhoods.values():
        placement = grid.locate(*nb.centroid)
        assert placement == Placement(nb.id, nb.npu, nb.cluster)


@pytest.mark.parametrize(
    ("nid", "lon", "lat", "expected"),
    [
        ("A", -1.895, 52.515, True),
        ("A", -1.885, 52.515, False),
        ("B", -1.89, 52.515, True),  # on the edge shared with A
        ("nope", -1.895, 52.515, False),  # unknown id contains nothing
    ],
)
def test_contains(grid: Areas, nid: str, lon: float, lat: float, expected: bool) -> None:
    """contains() tests one neighbourhood, edges included."""
    assert grid.contains(nid, lon, lat) is expected


def test_attributes(grid: Areas) -> None:
    """Neighbourhood, NPU and cluster attributes come out as the file gives them."""
    assert list(grid.neighbourhoods) == ["A", "B", "C", "D"]
    assert grid.npus == ("n1", "n2")
    a = grid.neighbourhoods["A"]
    assert a.named_officer == "N-0101"
    assert grid.neighbourhoods["B"].named_officer is None
    assert a.centroid == pytest.approx((-1.895, 52.515))
    assert a.bbox == pytest.approx((-1.90, 52.51, -1.89, 52.52))
    assert grid.clusters == {
        "twin": Cluster("twin", 5, ("n1", "n2"), ("A", "B")),
        "south1": Cluster("south1", 2, ("n1",), ("C",)),  # default min_cover
        "south2": Cluster("south2", 3, ("n2",), ("D",)),  # from the feature
    }


def test_to_geojson_round_trip(grid: Areas) -> None:
    """to_geojson() gives a file that loads to the same areas, min_cover included."""
    again = Areas.from_geojson(grid.to_geojson())
    assert again.neighbourhoods == grid.neighbourhoods
    assert again.clusters == grid.clusters
    assert grid.to_geojson()["clusters"]["south2"] == {"min_cover": 3}


def test_multipolygon_and_repair() -> None:
    """MultiPolygons locate in every part; a bow-tie ring is repaired into its two lobes."""
    bowtie = {
        "type": "Polygon",
        "coordinates": [[[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]],
    }
    multi = {
        "type": "MultiPolygon",
        "coordinates": [square(5.0, 5.0)["coordinates"], square(6.0, 6.0)["coordinates"]],
    }
    areas = Areas.from_geojson(collection(feature("bow", bowtie), feature("multi", multi)))
    assert areas.locate(0.1, 0.5) == Placement("bow", "n1", "c1")
    assert areas.locate(0.9, 0.5) == Placement("bow", "n1", "c1")
    assert areas.locate(0.5, 0.1) is None  # between the two lobes of the bow tie
    assert areas.locate(5.005, 5.005) == Placement("multi", "n1", "c1")
    assert areas.locate(6.005, 6.005) == Placement("multi", "n1", "c1")
    assert areas.locate(5.5, 5.5) is None


@pytest.mark.parametrize(
    ("obj", "fragments"),
    [
        pytest.param(
            collection(feature("A"), feature("A", square(0, 0))),
            ["feature 1", "duplicate id 'A'"],
            id="duplicate id",
        ),
        pytest.param(
            collection(feature("A", typology=7)),
            ["feature 0 (id 'A')", "'typology'", "1-5", "7"],
            id="typology 7",
        ),
        pytest.param(
            collection(feature("A", typology=True)),
            ["'typology'", "True"],
            id="typology bool",
        ),
        pytest.param(
            collection(feature("A"), feature("B", name=...)),
            ["feature 1 (id 'B')", "missing property 'name'"],
            id="missing name",
        ),
        pytest.param(
            collection(feature(...)),  # type: ignore[arg-type]
            ["feature 0", "missing property 'id'"],
            id="missing id",
        ),
        pytest.param(
            collection(feature("A", cluster=...)),
            ["missing property 'cluster'"],
            id="missing cluster",
        ),
        pytest.param(
            collection(feature("A", npu=7)),
            ["'npu' must be a non-empty string", "7"],
            id="npu not a string",
        ),
        pytest.param(
            collection(feature("A", min_cover=3), feature("B", square(0, 0), min_cover=4)),
            ["feature 1 (id 'B')", "'min_cover'", "cluster 'c1'", "4", "feature 0", "3"],
            id="inconsistent min_cover",
        ),
        pytest.param(
            collection(feature("A", min_cover=3), clusters={"c1": {"min_cover": 2}}),
            ["top-level 'clusters'", "'c1'", "2", "feature 0 (id 'A') gives 3"],
            id="min_cover top level disagrees",
        ),
        pytest.param(
            collection(feature("A"), clusters={"zz": {"min_cover": 2}}),
            ["'zz'", "no feature has cluster"],
            id="min_cover unknown cluster",
        ),
        pytest.param(
            collection(feature("A", min_cover=-1)),
            ["'min_cover'", "non-negative", "-1"],
            id="negative min_cover",
        ),
        pytest.param(
            collection(feature("A", {"type": "Point", "coordinates": [0, 0]})),
            ["feature 0 (id 'A')", "Polygon or MultiPolygon", "'Point'"],
            id="point geometry",
        ),
        pytest.param(
            collection(feature("A", square(200.0, 52.0))),
            ["feature 0 (id 'A')", "outside lon -180..180", "200"],
            id="lon out of range",
        ),
        pytest.param(
            collection(
                feature(
                    "A",
                    {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [2, 2], [0, 0]]]},
                )
            ),
            ["feature 0 (id 'A')", "cannot be repaired"],
            id="zero-area polygon",
        ),
        pytest.param(
            collection(feature("A", {"type": "Polygon", "coordinates": [[[0, 0]]]})),
            ["feature 0 (id 'A')", "malformed Polygon"],
            id="malformed coordinates",
        ),
        pytest.param(
            collection(feature("A", named_officer=5)),
            ["'named_officer'", "5"],
            id="named_officer not a string",
        ),
        pytest.param({"type": "Feature"}, ["not a GeoJSON FeatureCollection"], id="not fc"),
        pytest.param(collection(), ["no features"], id="empty"),
    ],
)
def test_from_geojson_errors(obj: dict[str, Any], fragments: list[str]) -> None:
    """Bad area content raises ConfigError naming the feature and property at fault."""
    with pytest.raises(ConfigError) as info:
        Areas.from_geojson(obj)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
