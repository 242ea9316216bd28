"""The real data in ``data/``: listed with its source, consistent with itself, and with
what sdo ships (the pilot areas' place, the rules' attendance deadlines)."""

from __future__ import annotations

import csv
import json
import re
import statistics
from typing import Any

import shapely
from shapely.geometry import shape

from sdo.areas import load_areas
from sdo.config import DEFAULT_AREAS, package_data
from tests.realdata import DATA, data_file

WEST_MIDLANDS = "E23000014"


def _features(relative: str) -> list[dict[str, Any]]:
    features: list[dict[str, Any]] = json.loads(data_file(relative).read_text())["features"]
    return features


def _rows(relative: str) -> list[dict[str, str]]:
    with data_file(relative).open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _west_midlands() -> shapely.Geometry:
    (area,) = [
        shape(f["geometry"])
        for f in _features("boundaries/police_force_areas_2016.geojson")
        if f["properties"]["PFA16CD"] == WEST_MIDLANDS
    ]
    return area


def test_every_data_file_is_listed_with_its_source_and_every_listed_file_exists() -> None:
    """data/README.md names each file in data/ (its table gives source and licence), and
    each file it names is there."""
    listed = set(re.findall(r"^\| `([^`]+)` \|", data_file("README.md").read_text(), re.M))
    present = {p.relative_to(DATA).as_posix() for p in DATA.rglob("*") if p.is_file()} - {
        "README.md"
    }
    assert listed == present


def test_ward_to_constituency_table_agrees_with_the_boundaries() -> None:
    """Each ward's vertex mean, as the CSV gives it, is the mean of the ward polygon's
    vertices and lies in the constituency the CSV names; each constituency has 4 wards."""
    wards = {
        f["properties"]["WD13CD"]: shape(f["geometry"])
        for f in _features("boundaries/birmingham_wards_2013.geojson")
    }
    constituencies = {
        f["properties"]["PCON13NM"]: shape(f["geometry"])
        for f in _features("boundaries/birmingham_constituencies_2013.geojson")
    }
    rows = _rows("boundaries/birmingham_wards2013_to_constituency.csv")
    assert {r["WD13CD"] for r in rows} == set(wards)
    for row in rows:
        lon, lat = float(row["vertex_mean_lon"]), float(row["vertex_mean_lat"])
        mean = shapely.get_coordinates(wards[row["WD13CD"]]).mean(axis=0)
        assert abs(mean[0] - lon) < 1e-4 and abs(mean[1] - lat) < 1e-4, row
        assert constituencies[row["PCON13NM_by_vertex_mean"]].contains(shapely.Point(lon, lat))
    counts = dict.fromkeys(constituencies, 0)
    for row in rows:
        counts[row["PCON13NM_by_vertex_mean"]] += 1
    assert set(counts.values()) == {4}


def test_birmingham_and_the_pilot_areas_lie_in_the_west_midlands_force_area() -> None:
    """Every Birmingham ward and every neighbourhood of the shipped (synthetic) pilot file
    lies in the West Midlands police force area, and in no other force's."""
    forces = {
        f["properties"]["PFA16CD"]: shape(f["geometry"])
        for f in _features("boundaries/police_force_areas_2016.geojson")
    }
    assert len(forces) == 43
    points = [
        shape(f["geometry"]).representative_point()
        for f in _features("boundaries/birmingham_wards_2013.geojson")
    ]
    points += [
        shapely.Point(*n.centroid)
        for n in load_areas(package_data(DEFAULT_AREAS)).neighbourhoods.values()
    ]
    for point in points:
        assert [code for code, area in forces.items() if area.contains(point)] == [WEST_MIDLANDS]


def test_shipped_deadlines_are_the_west_midlands_published_targets() -> None:
    """The default rules' attendance deadlines for grades 1 and 2 (15 and 60 min) are the
    targets West Midlands Police publishes (reference points, with their sources)."""
    rules = json.loads(package_data("rules.json").read_text())
    targets = [
        r
        for r in _rows("reference/uk_police_attendance_reference_points.csv")
        if r["force"] == "West Midlands Police" and r["metric"] == "target attendance time"
    ]
    assert "15 (P1) / 60 (P2)" in {r["value"] for r in targets}
    assert all(r["source_url"].startswith("http") for r in targets)
    assert (rules["deadlines_s"]["1"], rules["deadlines_s"]["2"]) == (15 * 60, 60 * 60)


def test_the_seattle_reference_point_is_computed_from_the_sample() -> None:
    """The Seattle comparator in the reference points (priority 1 median queue-to-arrival,
    436 s over 234 calls) is what the dispatch sample in data/ gives."""
    (point,) = [
        r
        for r in _rows("reference/uk_police_attendance_reference_points.csv")
        if r["force"].startswith("Seattle")
    ]
    arrivals = [
        int(r["first_response_time"])
        for r in _rows("incidents/seattle_police_dispatch_2024_sample.csv")
        if r["priority"] == "1" and r["first_response_time"] != "NULL"
    ]
    assert f"n={len(arrivals)}" in point["source_type"]
    assert statistics.median(arrivals) == float(point["value"])


def test_data_is_inside_the_repository() -> None:
    """Nothing under data/ is a link out of the repository."""
    for path in DATA.rglob("*"):
        assert not path.is_symlink(), path
        assert path.resolve().is_relative_to(DATA.resolve()), path
