"""sdo.areas: area files on disk, the shipped pilot file and ``sdo areas import``."""

from __future__ import annotations

import csv
import json
import runpy
from pathlib import Path

import pytest
import shapely
from shapely.geometry import shape

from sdo.areas import dump_areas, load_areas
from sdo.cli import main
from sdo.config import DEFAULT_AREAS, package_data
from sdo.domain.geo import Placement
from sdo.errors import ConfigError
from tests.conftest import SYNTHETIC_AREAS
from tests.realdata import data_file

REPO = Path(__file__).resolve().parents[1]
WARDS = "boundaries/birmingham_wards_2013.geojson"
WARD_MAP = "boundaries/birmingham_wards2013_to_constituency.csv"
LSOAS = "boundaries/birmingham_lsoa_2011.geojson"
# constituency -> (npu, cluster), as in the pilot: Erdington and Hodge Hill are twinned.
PILOT_UNITS = {
    "Sutton Coldfield": ("north", "north-1"),
    "Birmingham, Erdington": ("north", "north-east"),
    "Birmingham, Hodge Hill": ("east", "north-east"),
    "Birmingham, Yardley": ("east", "east-2"),
}
LADYWOOD = (-1.8985, 52.4797)


@pytest.fixture
def ward_map(tmp_path: Path) -> Path:
    """An npu map of the 16 pilot wards, built from the ward -> constituency CSV."""
    out = tmp_path / "map.csv"
    with data_file(WARD_MAP).open(newline="") as src, out.open("w", newline="") as dst:
        writer = csv.writer(dst)
        writer.writerow(["id", "npu", "cluster", "typology", "named_officer"])
        for k, row in enumerate(csv.DictReader(src)):
            unit = PILOT_UNITS.get(row["PCON13NM_by_vertex_mean"])
            if unit:
                writer.writerow([row["WD13CD"], *unit, k % 5 + 1, f"W-{k:04d}"])
    return out


def import_argv(map_path: Path, out: Path, *extra: str, file: Path | None = None) -> list[str]:
    return [
        "areas",
        "import",
        str(file or data_file(WARDS)),
        "--id-prop",
        "WD13CD",
        "--name-prop",
        "WD13NM",
        "--npu-map",
        str(map_path),
        "--out",
        str(out),
        *extra,
    ]


def test_import_wards(ward_map: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Importing real ONS wards with a map gives a loadable file of the 16 mapped wards."""
    out = tmp_path / "areas.geojson"
    argv = import_argv(ward_map, out, "--only-mapped", "--min-cover", "north-east=5")
    assert main(argv) == 0
    summary = capsys.readouterr().out.strip().splitlines()
    assert len(summary) == 1
    assert "16 neighbourhoods" in summary[0]
    assert "2 NPUs" in summary[0]
    assert "3 clusters" in summary[0]

    areas = load_areas(out)
    assert len(areas.neighbourhoods) == 16
    assert set(areas.npus) == {"north", "east"}
    assert areas.clusters["north-east"].min_cover == 5
    assert areas.clusters["north-1"].min_cover == 2
    assert set(areas.clusters["north-east"].npus) == {"north", "east"}  # twinned
    (erdington,) = [n for n in areas.neighbourhoods.values() if n.name == "Erdington"]
    assert erdington.npu == "north"
    assert erdington.typology in range(1, 6)
    assert erdington.named_officer is not None
    assert areas.locate(*erdington.centroid) == Placement(erdington.id, "north", "north-east")
    assert areas.locate(*LADYWOOD) is None


def test_import_lsoas_a_finer_real_geography(tmp_path: Path) -> None:
    """Birmingham's 639 LSOAs import as 639 neighbourhoods, and a point is placed in the
    LSOA whose polygon holds it (a force may use LSOAs as its neighbourhoods)."""
    features = json.loads(data_file(LSOAS).read_text())["features"]
    npu_map = tmp_path / "lsoa-map.csv"
    npu_map.write_text(
        "id,npu,cluster\n"
        + "".join(f"{f['properties']['LSOA11CD']},city,city\n" for f in features),
        encoding="utf-8",
    )
    out = tmp_path / "lsoas.geojson"
    argv = ["areas", "import", str(data_file(LSOAS)), "--id-prop", "LSOA11CD",
            "--name-prop", "LSOA11NM", "--npu-map", str(npu_map), "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    areas = load_areas(out)
    assert len(areas.neighbourhoods) == 639
    (holder,) = [
        f["properties"]["LSOA11CD"]
        for f in features
        if shape(f["geometry"]).covers(shapely.Point(*LADYWOOD))
    ]
    assert areas.locate(*LADYWOOD) == Placement(holder, "city", "city")


@pytest.mark.parametrize(
    ("extra", "map_text", "fragments"),
    [
        pytest.param(
            [], None, ["24 feature(s) not in the npu map", "--only-mapped"], id="unmapped"
        ),
        pytest.param(
            ["--only-mapped", "--min-cover", "north-1"], None, ["CLUSTER=N"], id="min-cover form"
        ),
        pytest.param(
            ["--only-mapped", "--min-cover", "nowhere=3"],
            None,
            ["unknown cluster", "'nowhere'"],
            id="min-cover cluster",
        ),
        pytest.param(
            ["--only-mapped", "--default-typology", "9"], None, ["1-5", "9"], id="typology flag"
        ),
        pytest.param(
            ["--only-mapped"], "id,npu\nE05001186,north\n", ["missing column", "cluster"], id="cols"
        ),
        pytest.param(
            ["--only-mapped"],
            "id,npu,cluster\nE05001186,north,a\nE05001186,north,b\n",
            ["line 3", "duplicate id 'E05001186'"],
            id="duplicate map id",
        ),
        pytest.param(
            ["--only-mapped"],
            "id,npu,cluster,typology\nE05001186,north,a,x\n",
            ["typology 'x'"],
            id="map typology",
        ),
        pytest.param(
            ["--only-mapped"],
            "id,npu,cluster\nE05001186,north,a\nWARD99,north,a\n",
            ["not found in property 'WD13CD'", "'WARD99'"],
            id="map id absent",
        ),
    ],
)
def test_import_user_errors(
    ward_map: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    map_text: str | None,
    fragments: list[str],
) -> None:
    """Bad flags or maps exit 2 with one explanatory line on stderr and write nothing."""
    if map_text is not None:
        ward_map.write_text(map_text)
    out = tmp_path / "out.geojson"
    assert main(import_argv(ward_map, out, *extra)) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert not out.exists()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        pytest.param(None, "cannot read", id="missing file"),
        pytest.param("{not json", "not valid JSON (line 1", id="bad JSON"),
    ],
)
def test_import_bad_boundary_file(
    ward_map: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str | None,
    fragment: str,
) -> None:
    """A missing or unparsable boundary file is a user error: exit 2, one line, no traceback."""
    path = tmp_path / "wards.geojson"
    if content is not None:
        path.write_text(content)
    assert main(import_argv(ward_map, tmp_path / "out.geojson", file=path)) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("sdo areas: error: boundary file")
    assert fragment in lines[0]
    assert "Traceback" not in captured.err


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        pytest.param(None, ["areas file", "cannot read"], id="missing"),
        pytest.param("[1,", ["areas file", "not valid JSON"], id="bad JSON"),
        pytest.param(
            '{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}}]}',
            ["areas file", "feature 0", "missing property 'id'"],
            id="bad content",
        ),
    ],
)
def test_load_areas_errors(tmp_path: Path, content: str | None, fragments: list[str]) -> None:
    """load_areas names the file and the fault in one ConfigError."""
    path = tmp_path / "areas.geojson"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_areas(path)
    for fragment in [*fragments, str(path)]:
        assert fragment in str(info.value)


def test_dump_areas_round_trip(tmp_path: Path) -> None:
    """dump_areas writes text that load_areas reads back to the same areas."""
    pilot = load_areas(package_data(DEFAULT_AREAS))
    path = tmp_path / "again.geojson"
    path.write_text(dump_areas(pilot))
    again = load_areas(path)
    assert again.neighbourhoods == pilot.neighbourhoods
    assert again.clusters == pilot.clusters


# -- the shipped pilot file ------------------------------------------------------------


def test_pilot_shape() -> None:
    """The default file: the 16 real wards of the four constituencies as neighbourhoods,
    NPUs north and east, 3 clusters, north-east twinning Erdington and Hodge Hill."""
    areas = load_areas(package_data(DEFAULT_AREAS))
    assert areas.npus == ("north", "east")
    assert len(areas.neighbourhoods) == 16
    assert {c.id: (c.min_cover, c.npus) for c in areas.clusters.values()} == {
        "north-1": (4, ("north",)),
        "north-east": (7, ("north", "east")),
        "east-2": (4, ("east",)),
    }
    by_name = {n.name: n for n in areas.neighbourhoods.values()}
    with data_file(WARD_MAP).open(newline="") as f:
        pcon = {r["WD13NM"]: r["PCON13NM_by_vertex_mean"] for r in csv.DictReader(f)}
    assert set(by_name) == {w for w, c in pcon.items() if c in PILOT_UNITS}
    for name, n in by_name.items():
        assert (n.npu, n.cluster) == PILOT_UNITS[pcon[name]], name
    officers = [n.named_officer for n in areas.neighbourhoods.values()]
    assert len(set(officers)) == 16
    assert {n.typology for n in areas.neighbourhoods.values()} == {1, 2, 3, 4, 5}
    for n in areas.neighbourhoods.values():
        assert -1.90 <= n.centroid[0] <= -1.72 and 52.42 <= n.centroid[1] <= 52.62, n
        assert areas.locate(*n.centroid) == Placement(n.id, n.npu, n.cluster)
    assert areas.locate(*LADYWOOD) is None


def test_pilot_wards_are_the_real_boundaries() -> None:
    """Each neighbourhood is its ONS 2013 ward, to the file's metre rounding."""
    fc = json.loads(package_data(DEFAULT_AREAS).read_text())
    wards = {
        f["properties"]["WD13CD"]: shape(f["geometry"])
        for f in json.loads(data_file(WARDS).read_text())["features"]
    }
    for f in fc["features"]:
        mine, real = shape(f["geometry"]), wards[f["properties"]["ward_code"]]
        assert mine.symmetric_difference(real).area < 1e-3 * real.area, f["properties"]["name"]


@pytest.mark.parametrize("path", [DEFAULT_AREAS, SYNTHETIC_AREAS])
def test_pilot_tiles_without_overlap(path: str | Path) -> None:
    """Neighbourhoods never overlap and each NPU is one polygon."""
    file = package_data(path) if isinstance(path, str) else path
    fc = json.loads(file.read_text())
    geoms = [shape(f["geometry"]) for f in fc["features"]]
    assert all(g.is_valid for g in geoms)
    overlap = sum(a.intersection(b).area for i, a in enumerate(geoms) for b in geoms[i + 1 :])
    assert overlap < 1e-9
    units = {}
    for npu in ("north", "east"):
        parts = [
            g for f, g in zip(fc["features"], geoms, strict=True) if f["properties"]["npu"] == npu
        ]
        units[npu] = shapely.union_all(parts)
        assert units[npu].geom_type == "Polygon"
    assert units["north"].intersection(units["east"]).area < 1e-9
    assert units["north"].distance(units["east"]) < 1e-6


@pytest.mark.parametrize(
    ("tool", "path"),
    [
        ("make_pilot_areas.py", package_data(DEFAULT_AREAS)),
        ("make_synthetic_areas.py", SYNTHETIC_AREAS),
    ],
)
def test_area_files_are_generated(tool: str, path: Path) -> None:
    """The shipped pilot file and the test fixture are exactly what their tools produce."""
    generator = runpy.run_path(str(REPO / "tools" / tool))
    expected = generator["render"](generator["build"]())
    assert path.read_text(encoding="utf-8") == expected


def test_pilot_locate_matches_brute_force() -> None:
    """On a 41 x 41 grid over and around the pilot, locate() agrees with testing every polygon."""
    areas = load_areas(package_data(DEFAULT_AREAS))
    fc = json.loads(package_data(DEFAULT_AREAS).read_text())
    polygons = [(f["properties"]["id"], shape(f["geometry"])) for f in fc["features"]]
    inside = 0
    for i in range(41):
        for j in range(41):
            lon, lat = -1.92 + i * 0.005, 52.42 + j * 0.005
            point = shapely.Point(lon, lat)
            expected = next((nid for nid, g in polygons if g.covers(point)), None)
            got = areas.locate(lon, lat)
            assert (got.neighbourhood if got else None) == expected, (lon, lat)
            inside += expected is not None
    assert 300 < inside < 41 * 41


def test_locate_and_contains_near_edges_match_brute_force() -> None:
    """Points within metres of neighbourhood edges (where the memo's cells, coarse and
    fine, are crossed by an edge) get the exact polygon answer, from locate and contains."""
    import random  # noqa: PLC0415

    areas = load_areas(package_data(DEFAULT_AREAS))
    fc = json.loads(package_data(DEFAULT_AREAS).read_text())
    polygons = [(f["properties"]["id"], shape(f["geometry"])) for f in fc["features"]]
    rng = random.Random(9)
    checked = 0
    for nid, geom in polygons:
        boundary = geom.boundary
        for _ in range(150):
            edge = boundary.interpolate(rng.random(), normalized=True)
            lon = edge.x + rng.uniform(-0.0002, 0.0002)  # within about 15 m
            lat = edge.y + rng.uniform(-0.0002, 0.0002)
            point = shapely.Point(lon, lat)
            expected = next((n for n, g in polygons if g.covers(point)), None)
            got = areas.locate(lon, lat)
            assert (got.neighbourhood if got else None) == expected, (lon, lat)
            assert areas.contains(nid, lon, lat) == geom.covers(point), (nid, lon, lat)
            checked += 1
    assert checked == 150 * len(polygons)
