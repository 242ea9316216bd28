"""``sdo import police-uk`` on real police.uk records, then ``sdo evaluate`` (issue #5).

Real data: police.uk street-level crime for Birmingham city centre (OGL v3) and the ONS
2013 ward boundaries (OGL v3, OS OpenData; GeoJSON by Martin Chorley, CC BY 4.0).
"""

from __future__ import annotations

import csv
import gzip
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sdo.areas import load_areas
from sdo.cli import main
from sdo.config import Settings
from sdo.domain.grading import grade
from sdo.evaluation.police_uk import LOCAL, PROFILES, Record, incident_for
from sdo.events import Incident, IncidentState, OfficerLocation, decode
from sdo.grade import load_rules
from tests.realdata import data_file

#: The city-centre wards the CSV's ``ward`` column names, except Edgbaston (86 rows), left
#: out so that some records fall outside the areas. WD13CD -> (cluster, named officer).
WARDS = {
    "E05001193": ("west", "PC-LADYWOOD"),  # Ladywood
    "E05001205": ("west", ""),  # Soho
    "E05001197": ("east", "PC-NECHELLS"),  # Nechells
    "E05001179": ("east", ""),  # Aston
}
REPO = Path(__file__).resolve().parents[1]
MONTH = "2017-11"


@pytest.fixture(scope="module")
def areas_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The four wards as one NPU ``centre`` with two response clusters."""
    tmp = tmp_path_factory.mktemp("areas")
    npu_map = tmp / "npu-map.csv"
    npu_map.write_text(
        "id,npu,cluster,typology,named_officer\n"
        + "".join(f"{w},centre,{c},5,{n}\n" for w, (c, n) in WARDS.items()),
        encoding="utf-8",
    )
    out = tmp / "centre.geojson"
    code = main(
        [
            "areas", "import", str(data_file("boundaries/birmingham_wards_2013.geojson")),
            "--id-prop", "WD13CD", "--name-prop", "WD13NM", "--npu-map", str(npu_map),
            "--only-mapped", "--min-cover", "west=2", "--min-cover", "east=1",
            "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    return out


@pytest.fixture(scope="module")
def month_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real CSV's rows for one month (header and quoting as published)."""
    source = data_file("incidents/birmingham_city_centre_street_crime_2017.csv")
    out = tmp_path_factory.mktemp("csv") / f"street-{MONTH}.csv"
    with source.open(newline="", encoding="utf-8") as fin, out.open("w", newline="") as fout:
        reader = csv.reader(fin)
        writer = csv.writer(fout, quoting=csv.QUOTE_ALL)
        header = next(reader)
        writer.writerow(header)
        writer.writerows(r for r in reader if r[header.index("month")] == MONTH)
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _events(path: Path) -> list[Any]:
    return [decode(line) for line in gzip.decompress(path.read_bytes()).splitlines()]


def _import(csv_path: Path, areas: Path, out: Path, *extra: str) -> int:
    return main(
        ["import", "police-uk", str(csv_path), "--areas", str(areas), "--out", str(out), *extra]
    )


@pytest.fixture(scope="module")
def month_log(month_csv: Path, areas_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("log") / "month.jsonl.gz"
    assert _import(month_csv, areas_file, out) == 0
    return out


def test_one_incident_per_record_inside_the_areas(
    month_csv: Path, areas_file: Path, month_log: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Every record inside the wards becomes one open incident, resourced minutes later
    and closed hours later; records outside are skipped and counted on stderr."""
    areas = load_areas(areas_file)
    rows = _rows(month_csv)
    inside = [r for r in rows if areas.locate(float(r["longitude"]), float(r["latitude"]))]
    outside = len(rows) - len(inside)
    assert len(rows) == 1649 and 0 < outside < 50  # Edgbaston and edge points

    assert _import(month_csv, areas_file, tmp_path / "again.jsonl.gz") == 0
    err = capsys.readouterr().err
    assert f"{outside} row(s) outside every area" in err
    assert f"{len(rows)} rows -> {len(inside)} incidents" in err

    events = _events(month_log)
    assert all(isinstance(e, Incident) for e in events)
    opened = [e for e in events if e.state is IncidentState.OPEN]
    resourced = {e.incident_id: e for e in events if e.state is IncidentState.RESOURCED}
    closed = {e.incident_id: e for e in events if e.state is IncidentState.CLOSED}
    assert len(opened) == len(inside) == len(resourced) == len(closed)
    assert len({e.incident_id for e in opened}) == len(opened)
    assert [e.ts for e in events] == sorted(e.ts for e in events)
    for e in opened:
        assert 120 <= (resourced[e.incident_id].ts - e.ts).total_seconds() <= 600
        assert 2 * 3600 <= (closed[e.incident_id].ts - e.ts).total_seconds() <= 6 * 3600
        assert e.ts.astimezone(LOCAL).strftime("%Y-%m") == MONTH
    # the category mix follows the records' types
    types = Counter(PROFILES[r["type"]].category for r in inside)
    assert Counter(e.category for e in opened) == types


def test_same_input_same_bytes_other_seed_other_times(
    month_csv: Path, areas_file: Path, month_log: Path, tmp_path: Path
) -> None:
    """The conversion is deterministic in file, areas and seed."""
    assert _import(month_csv, areas_file, tmp_path / "a.jsonl.gz") == 0
    assert (tmp_path / "a.jsonl.gz").read_bytes() == month_log.read_bytes()
    assert _import(month_csv, areas_file, tmp_path / "b.jsonl.gz", "--seed", "2") == 0
    assert (tmp_path / "b.jsonl.gz").read_bytes() != month_log.read_bytes()


def test_evaluate_real_month_thrive_moves_demand_off_response(
    month_log: Path, areas_file: Path, tmp_path: Path
) -> None:
    """On a real month, THRIVE+ routes a large share of recorded crime away from response
    officers (investigators, neighbourhood, partners); closest routes none."""
    out = tmp_path / "eval"
    code = main(
        ["evaluate", str(month_log), "--areas", str(areas_file), "--out", str(out),
         "--policy", "thrive", "--policy", "closest"]
    )  # fmt: skip
    assert code == 0
    document = json.loads((out / "metrics.json").read_text())
    assert (out / "report.html").stat().st_size > 10_000
    thrive, closest = document["policies"]["thrive"], document["policies"]["closest"]
    opened = sum(1 for e in _events(month_log) if e.state is IncidentState.OPEN)
    assert thrive["incidents"] == closest["incidents"] == opened
    for key in ("by_grade", "by_response", "grades", "share_off_response_officers"):
        assert key in thrive and key in closest
    assert set(thrive["by_response"]) == {
        "emergency", "priority", "scheduled", "neighbourhood", "investigator", "signpost",
    }  # fmt: skip
    assert closest["share_off_response_officers"] == 0
    assert 0.3 < thrive["share_off_response_officers"] < 0.8
    assert thrive["agreement_with_recorded_deployments"] is None  # police.uk has none
    # the report says what the data is, and what it cannot measure without officers
    assert document["provenance"]["kind"] == "police.uk"
    assert document["loop"] == "open"
    page = (out / "report.html").read_text()
    assert "<b>Imported from police.uk</b>" in page
    assert "police.uk gives months only" in page
    assert "The log has no officers: attendance and cover are not measured." in page
    assert "<h2>How fast</h2><p>Not measured: the log has no officers" in page
    headline = page.split("<h2>Headline figures</h2>")[1].split("</table>")[0]
    within = headline.split("Grade 1: within 15 min</th>")[1].split("</tr>")[0]
    assert "not measured" in within and "0%" not in within
    graded = headline.split("Incidents graded</th>")[1].split("</tr>")[0]
    assert f">{opened}<" in graded  # grading is measured: only attendance is not
    # nothing unmeasured reads as a figure: not up front, not in the differences, the
    # breakdowns or the cover section, not in metrics.json
    short = page.split("<h2>In short</h2>")[1].split("<h2>")[0]
    assert "within 15 min" not in short and "need a skill" not in short
    assert "closest</b> 0%" in short  # (what is measured: where calls are sent)
    differences = page.split("<h2>Differences on the same incidents</h2>")[1].split("<h2>")[0]
    assert "Grade 1" not in differences and "Attendance is not measured" in differences
    breakdowns = page.split("<h2>By NPU and by response cluster</h2>")[1].split("<h2>")[0]
    assert "in 15 min" not in breakdowns and "attendance is not measured" in breakdowns
    assert "<h2>Cover</h2><p>Not measured" in page
    assert "By hour of the day" not in page
    assert thrive["attendance"] == closest["attendance"] == "not measured"


def test_with_officers_recommends_real_officers(
    month_csv: Path, areas_file: Path, tmp_path: Path
) -> None:
    """``--officers`` merges a simulated roster with AVL; recommendations then name
    officers, and THRIVE+ sends fewer calls to response officers than closest does."""
    log = tmp_path / "evening.jsonl.gz"
    code = _import(
        month_csv, areas_file, log, "--officers", "30",
        "--since", "2017-11-10T16:00", "--until", "2017-11-10T23:00",
    )  # fmt: skip
    assert code == 0
    events = _events(log)
    assert [e.ts for e in events] == sorted(e.ts for e in events)
    assert any(isinstance(e, OfficerLocation) for e in events)
    incidents = [e for e in events if isinstance(e, Incident) and e.state is IncidentState.OPEN]
    since, until = datetime(2017, 11, 10, 16, tzinfo=UTC), datetime(2017, 11, 10, 23, tzinfo=UTC)
    assert len(incidents) >= 10 and all(since <= e.ts < until for e in incidents)

    out = tmp_path / "eval"
    assert main(["evaluate", str(log), "--areas", str(areas_file), "--out", str(out)]) == 0
    policies = json.loads((out / "metrics.json").read_text())["policies"]
    thrive, closest = policies["thrive"], policies["closest"]
    assert closest["first_recommendation_sends"].get("response", 0) > 0
    assert thrive["share_off_response_officers"] > closest["share_off_response_officers"]
    named = sum(closest["first_recommendation_sends"].values())
    assert closest["first_recommendation_sends"].get("response", 0) / named > 0.5


def test_type_profiles_grade_plausibly() -> None:
    """Violence, robbery and weapons grade urgent far more often than vehicle crime or
    bicycle theft; ASB is the commonest neighbourhood route; night types peak at night."""
    rules = load_rules(Settings().rules_path)

    def mix(kind: str) -> tuple[Counter[str], Counter[int]]:
        responses: Counter[str] = Counter()
        hours: Counter[int] = Counter()
        for k in range(1000):
            rec = Record(f"t{k}", k, kind, "", 2017, 6, 52.48, -1.89)
            event, resourced, closed = incident_for(rec, seed=1)
            assert event.ts < resourced.ts < closed.ts
            assert (resourced.state, closed.state) == (
                IncidentState.RESOURCED,
                IncidentState.CLOSED,
            )
            responses[grade(event, rules).response.value] += 1
            hours[event.ts.astimezone(LOCAL).hour] += 1
        return responses, hours

    def urgent(c: Counter[str]) -> int:
        return c["emergency"] + c["priority"]

    violence, night = mix("violent-crime")
    vehicle, _ = mix("vehicle-crime")
    robbery, _ = mix("robbery")
    asb, _ = mix("anti-social-behaviour")
    _, retail = mix("shoplifting")
    assert urgent(violence) > 2 * urgent(vehicle)
    assert robbery["emergency"] > 3 * vehicle["emergency"]
    assert vehicle["investigator"] > 400
    assert asb["neighbourhood"] > max(violence["neighbourhood"], vehicle["neighbourhood"])
    evening = sum(night[h] for h in (21, 22, 23, 0, 1))
    early = sum(night[h] for h in (4, 5, 6, 7, 8))
    assert evening > 3 * early
    assert sum(retail[h] for h in range(10, 17)) > 5 * sum(retail[h] for h in range(0, 7))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('"",type,street,month\n"1",drugs,x,2017-01\n', "missing column(s) latitude, longitude"),
        ("", "missing column(s) type"),
    ],
)
def test_bad_columns_are_one_line_exit_2(
    content: str, message: str, areas_file: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """A CSV without the police.uk columns: one line naming what is missing, exit 2."""
    bad = tmp_path / "bad.csv"
    bad.write_text(content, encoding="utf-8")
    assert _import(bad, areas_file, tmp_path / "o.jsonl") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "o.jsonl").exists()


def test_missing_file_is_one_line_exit_2(
    areas_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CSV that does not exist: one line naming it, exit 2."""
    assert _import(tmp_path / "none.csv", areas_file, tmp_path / "o.jsonl") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "none.csv" in err[0] and "no such file" in err[0]


def test_bad_rows_are_skipped_with_line_numbers(
    areas_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rows without a location or with a bad month are reported by line and skipped;
    an unknown crime type is converted as other-crime and said so."""
    src = tmp_path / "rows.csv"
    src.write_text(
        '"",type,street,month,latitude,longitude,ward\n'
        '"1",burglary,On or near A,2017-03,52.4831,-1.8958,Ladywood\n'
        '"2",burglary,On or near B,2017-03,,,Ladywood\n'
        '"3",burglary,On or near C,March,52.4831,-1.8958,Ladywood\n'
        '"4",fly-tipping,On or near D,2017-03,52.4831,-1.8958,Ladywood\n',
        encoding="utf-8",
    )
    out = tmp_path / "o.jsonl"
    assert _import(src, areas_file, out) == 0
    err = capsys.readouterr().err
    assert "rows.csv:3: skipped: no location" in err
    assert "rows.csv:4: skipped: bad month" in err
    assert "fly-tipping (1)" in err
    events = [decode(line) for line in out.read_bytes().splitlines()]
    assert sorted({e.incident_id for e in events}) == ["PUK-1", "PUK-4"]
    assert {e.category for e in events if e.incident_id == "PUK-4"} == {"other"}


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        ((), "outside every area of the area file (is --areas the area file for these records?)"),
        (("--since", "2018-01-01"), "outside --since/--until"),
    ],
)
def test_nothing_to_import_is_one_line_exit_2(
    month_csv: Path,
    areas_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: tuple[str, ...],
    said: str,
) -> None:
    """Records that all fall outside the areas (the packaged pilot areas, not
    Birmingham's centre) or outside the window: one line saying why, exit 2, and no
    empty log written."""
    out = tmp_path / "o.jsonl"
    if extra:
        code = _import(month_csv, areas_file, out, *extra)
    else:
        code = main(["import", "police-uk", str(month_csv), "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    rows = len(_rows(month_csv))
    assert f"{month_csv}: no incident to import ({rows} row(s) read, " in err[0]
    assert said in err[0]
    assert not out.exists()


def test_a_log_without_officers_is_said_to_give_no_attendance(
    month_log: Path, month_csv: Path, areas_file: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Without --officers the import says what an evaluation of the log can tell."""
    assert _import(month_csv, areas_file, tmp_path / "o.jsonl.gz") == 0
    assert "the log has no officers (--officers K simulates some)" in capsys.readouterr().err
    assert _import(month_csv, areas_file, tmp_path / "p.jsonl.gz", "--officers", "5") == 0
    assert "the log has no officers" not in capsys.readouterr().err


def test_an_existing_log_is_not_overwritten_without_force(
    month_csv: Path, areas_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "kept.jsonl"
    out.write_bytes(b"keep me\n")
    assert _import(month_csv, areas_file, out) == 2
    assert "exists; give --force to replace it" in capsys.readouterr().err
    assert out.read_bytes() == b"keep me\n"
    assert _import(month_csv, areas_file, out, "--force") == 0
    assert out.read_bytes() != b"keep me\n"
