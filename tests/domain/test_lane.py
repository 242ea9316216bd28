"""The evaluator's fix lane decides exactly as the Python path (sdo.domain.lane).

The lane may refuse any line (the caller then gives it the Python way), but every line
it takes must be one ``plain_fix`` would have applied, with the same values. So: the
number and time readers agree with ``orjson`` and ``datetime`` wherever they accept, and
whole evaluations with and without the lane write the same recommendations, metrics and
invalid-line reports, on a simulated log and on one full of hostile and tricky lines.
"""

from __future__ import annotations

import io
import itertools
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from sdo.areas import load_areas
from sdo.config import Settings
from sdo.domain import geo, lane, lane_kernels
from sdo.domain.world import World
from sdo.evaluation.evaluate import evaluate
from sdo.evaluation.simulate import simulate
from sdo.events import encode

START = datetime(2015, 12, 1, 6, tzinfo=UTC)


def _buf(text: bytes) -> np.ndarray:
    return np.frombuffer(text, dtype=np.uint8)


def _number(text: str) -> float | None:
    """The lane's reading of a JSON number followed by ``}``, or None if it refuses."""
    raw = (text + "}").encode()
    value, end = lane_kernels._number(_buf(raw), 0, len(raw))
    return None if end < 0 or raw[end : end + 1] != b"}" else float(value)


NUMBERS = [
    "52.553002",
    "-1.861913",
    "0.0",
    "-0.0",
    "0.1",
    "90.0",
    "-180.0",
    "359.99999999999",
    "123456789012.345",
    "0.000000000000000000001",
    "1.7976931348623",
    "9007199254.740993",
    "52.5530020000000000000",
    "0.30000000000000004",  # 17 significant digits: refused
    "1e5",
    "1.5e3",
    "1.5E-3",
    "52",
    "-",
    "01.5",
    "1.",
    ".5",
    "--1.0",
    "+1.0",
    "1.0.0",
    "NaN",
    "Infinity",
]


@pytest.mark.parametrize("text", NUMBERS)
def test_number_reader_agrees_with_orjson_where_it_accepts(text: str) -> None:
    value = _number(text)
    try:
        expected: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        expected = None
    if value is None:
        return  # refusing is always allowed
    assert type(expected) is float
    assert value == expected
    assert np.float64(value).tobytes() == np.float64(expected).tobytes()  # -0.0 too


def test_number_reader_takes_the_forms_a_log_holds() -> None:
    """Every float of up to 15 significant digits, as orjson writes it, is read exactly."""
    rng = random.Random(5)
    taken = 0
    for _ in range(20_000):
        x = round(rng.uniform(-200, 200), rng.randint(0, 9))
        text = orjson.dumps(x).decode()
        if "e" in text or "." not in text:
            continue
        value = _number(text)
        assert value is not None, text
        assert value == x, text
        taken += 1
    assert taken > 15_000


def _time(text: str) -> int:
    raw = f'{text}"'.encode()
    us, quote = lane_kernels._time_us(_buf(raw), 0, len(raw))
    if quote >= 0:  # (a time it read: followed by its closing quote)
        assert quote == len(raw) - 1
    return int(us)


@pytest.mark.parametrize(
    "text",
    [
        "2015-12-01T06:00:00Z",
        "1970-01-01T00:00:00Z",
        "2016-02-29T23:59:59Z",
        "2000-02-29T12:00:00Z",
        "9999-12-31T23:59:59Z",
        "2038-01-19T03:14:08Z",
        "2015-12-01T06:00:00.5Z",
        "2015-12-01T06:00:00.05Z",
        "2015-12-01T06:00:00.123456Z",
        "2015-12-01T06:00:00.000001Z",
        "2026-12-06T00:27:21.666667Z",
    ],
)
def test_time_reader_agrees_with_datetime(text: str) -> None:
    expected = datetime.fromisoformat(text) - datetime(1970, 1, 1, tzinfo=UTC)
    assert _time(text) == expected // timedelta(microseconds=1)


@pytest.mark.parametrize(
    "text",
    [
        "2015-02-29T06:00:00Z",  # not a leap year
        "1900-02-29T06:00:00Z",
        "2015-13-01T06:00:00Z",
        "2015-04-31T06:00:00Z",
        "2015-12-01T24:00:00Z",
        "2015-12-01T06:60:00Z",
        "2015-12-01T06:00:60Z",
        "2015-12-01 06:00:00Z",
        "2015-12-01T06:00:00+00:00",
        "2015-12-01T06:00:00.Z",
        "2015-12-01T06:00:00.1234567Z",  # more than microseconds: refused
        "2015-12-01T06:00:00.5",
        "2015-12-01T06:00:00,5Z",
        "2015-12-01T06:00:00z",
        "0000-12-01T06:00:00Z",
        "2015-1a-01T06:00:00Z",
        "1969-12-31T23:59:59Z",  # valid, but before the epoch: refused
    ],
)
def test_time_reader_refuses_other_forms_and_impossible_dates(text: str) -> None:
    assert _time(text) < 0


def test_every_random_date_agrees() -> None:
    rng = random.Random(3)
    for _ in range(3000):
        y, mo, d = rng.randint(1970, 2400), rng.randint(1, 12), rng.randint(1, 31)
        h, mi, s = rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)
        text = f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}Z"
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            assert _time(text) < 0, text
        else:
            assert _time(text) == (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
                microseconds=1
            ), text


# -- whole evaluations ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    """Six simulated hours, 150 officers (seed 2): the log as lines."""
    areas_path = Settings().areas_path

    events = simulate(load_areas(areas_path), seed=2, hours=6, officers=150, start=START)
    return [encode(e) for e in events]


def _run(path: Path, policy: str, *, use_lane: bool) -> tuple[bytes, dict[str, Any], list[Any]]:
    sink = io.BytesIO()
    reports: list[tuple[int, str]] = []
    metrics = evaluate(
        path,
        Settings(),
        [policy],
        sink=sink,
        on_invalid=lambda n, why: reports.append((n, why)),
        lane=use_lane,
    )
    return sink.getvalue(), metrics, reports


def _hostile(lines: list[bytes]) -> list[bytes]:
    """The log with tricky lines mixed in: each either the lane must refuse, or it must
    decide as plain_fix does (repeats, older fixes, other number and time forms,
    strangers, broken lines, blank lines, CRLF...)."""
    rng = random.Random(9)
    out: list[bytes] = []
    fixes = [line for line in lines if line.startswith(b'{"type":"officer.location"')]
    is_fix = set(fixes)
    for k, line in enumerate(lines):
        out.append(line)
        if k % 31 == 0 and fixes:
            fix = orjson.loads(rng.choice(fixes[: max(1, k // 2)]))
            variant = rng.randrange(20)
            if variant == 0:
                out.append(orjson.dumps(fix))  # an old fix again (same event id)
            elif variant == 16 and line in is_fix:
                # the fix just read, a second later, under the same event id
                again = orjson.loads(line)
                when = datetime.fromisoformat(again["ts"]) + timedelta(seconds=1)
                again["ts"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
                out.append(orjson.dumps(again))
            elif variant == 1:
                fix["event_id"] += "-late"
                out.append(orjson.dumps(fix))  # an old fix, new id: older than the last
            elif variant == 2:
                fix["lat"] = int(fix["lat"])  # an integer: not a float
                out.append(orjson.dumps(fix))
            elif variant == 3:
                out.append(orjson.dumps(fix).replace(b'"lat":', b'"lat": '))
            elif variant == 4:
                fix["officer_id"] = "ZZ-" + fix["officer_id"]
                out.append(orjson.dumps(fix))  # nobody
            elif variant == 5:
                out.append(orjson.dumps(fix)[:-7])  # broken
            elif variant == 6:
                out.append(b"   ")
                out.append(b"")
            elif variant == 7:
                out.append(orjson.dumps(fix) + b"\r")
            elif variant == 8:
                fix["ts"] = fix["ts"].replace("Z", "+00:00")
                out.append(orjson.dumps(fix))
            elif variant == 9:
                fix["heading_deg"] = 360.0
                out.append(orjson.dumps(fix))
            elif variant == 10:
                fix["lat"] = 91.5
                out.append(orjson.dumps(fix))
            elif variant == 11:
                fix["event_id"] = " padded"
                out.append(orjson.dumps(fix))
            elif variant == 12:
                fix["event_id"] = 'quote"inside'
                out.append(orjson.dumps(fix))
            elif variant == 13:
                out.append(orjson.dumps(fix).replace(b'"lon":', b'"lon":1e1,"lon":'))
            elif variant == 14:
                fix["extra"] = 1
                out.append(orjson.dumps(fix))
            elif variant in (17, 18, 19):
                # a fraction of a second: read by the lane up to microseconds
                fraction = (".5", ".250001", ".1234567")[variant - 17]
                fix["ts"] = fix["ts"].replace("Z", fraction + "Z")
                fix["event_id"] += "-f"
                out.append(orjson.dumps(fix))
            else:
                fix["accuracy_m"] = -1.0
                out.append(orjson.dumps(fix))
    return out


@pytest.mark.parametrize("policy", ["thrive", "closest"])
@pytest.mark.parametrize("hostile", [False, True], ids=["simulated", "hostile"])
def test_evaluation_is_the_same_with_and_without_the_lane(
    lines: list[bytes], tmp_path: Path, policy: str, hostile: bool
) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"\n".join(_hostile(lines) if hostile else lines))  # no last newline
    fast = _run(path, policy, use_lane=True)
    slow = _run(path, policy, use_lane=False)
    assert fast[0] == slow[0]  # every recommendation, byte for byte
    assert fast[1] == slow[1]
    assert fast[2] == slow[2]  # the same lines reported, with the same reasons
    assert fast[0].count(b"\n") > 20
    if hostile:
        assert fast[1][policy]["invalid_lines"] > 10


def _made(monkeypatch: pytest.MonkeyPatch, cls: type[Any]) -> list[Any]:
    """Every instance of ``cls`` made from now on (in the test), in order."""
    made: list[Any] = []
    original = cls.__init__

    def spy(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(cls, "__init__", spy)
    return made


def test_the_lane_takes_nearly_every_fix(
    lines: list[bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lane that refused everything would pass the tests above: this one would not."""
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    taken = _made(monkeypatch, lane.FixLane)
    _run(path, "thrive", use_lane=True)
    fixes = sum(1 for line in lines if line.startswith(b'{"type":"officer.location"'))
    (used,) = taken
    assert used.applied > 0.8 * fixes
    assert used.replaced > 100  # into other neighbourhoods too (453 when written)
    assert used.located > 10  # near an edge too, placed by the rings (86 when written)
    refused = dict(zip(lane.REASONS, used.refused, strict=True))
    assert refused["form"] >= len(lines) - fixes  # every other event goes the Python way


def test_timers_head_is_the_first_timers_in_firing_order() -> None:
    """World.timers_head walks the heap from its root: the same as sorting it all."""
    import heapq  # noqa: PLC0415

    from sdo.grade import load_rules  # noqa: PLC0415

    settings = Settings()
    world = World(load_areas(settings.areas_path), load_rules(settings.rules_path))
    rng = random.Random(4)
    for n in range(0, 300, 7):
        world._alarms.timers = [
            (START + timedelta(seconds=rng.randrange(50)), i, "stale", f"o{i}", "")
            for i in range(n)
        ]
        heapq.heapify(world._alarms.timers)
        for k in (0, 1, 5, 32, 33, 400):
            assert world.timers_head(k) == heapq.nsmallest(k, world._alarms.timers)


def test_inside_agrees_with_shapely_near_every_edge() -> None:
    """Points within metres of the neighbourhoods' edges (where memo cells are mixed):
    the lane's even-odd test says what shapely says, or declines (-1) right on an edge."""
    import shapely  # noqa: PLC0415

    areas = load_areas(Settings().areas_path)
    rng = random.Random(8)
    declined = decided = 0
    for k, nid in enumerate(areas.neighbourhoods):
        geom = areas._geoms[k]
        rings = areas.rings(k)
        coords = np.concatenate(rings)
        offsets = np.cumsum([0, *(len(r) for r in rings)]).astype(np.int64)
        for ring in rings:
            for (x1, y1), (x2, y2) in itertools.pairwise(ring):
                for _ in range(8):
                    t = rng.random()
                    lon = x1 + t * (x2 - x1) + rng.uniform(-5e-5, 5e-5)
                    lat = y1 + t * (y2 - y1) + rng.uniform(-5e-5, 5e-5)
                    side = lane_kernels._inside(lon, lat, coords, offsets, 0, len(rings))
                    if side < 0:
                        declined += 1
                        continue
                    decided += 1
                    assert bool(side) == bool(shapely.intersects_xy(geom, lon, lat)), (
                        nid,
                        lon,
                        lat,
                    )
        # on a vertex: declined
        x, y = rings[0][0]
        assert lane_kernels._inside(float(x), float(y), coords, offsets, 0, len(rings)) == -1
    assert decided > 1000
    assert declined < decided / 100


def test_locate_by_the_rings_agrees_with_areas_locate_near_every_edge() -> None:
    """Points within metres of the neighbourhoods' edges: the lane's _locate names the
    neighbourhood Areas.locate names (the first in file order holding the point), says
    outside where it does, or declines right on an edge."""
    areas = load_areas(Settings().areas_path)
    coords, starts, nb_rings, nb_box = lane._ring_arrays(areas)
    rng = random.Random(9)
    declined = decided = outside = 0
    for k in range(len(areas.neighbourhoods)):
        for ring in areas.rings(k):
            for (x1, y1), (x2, y2) in itertools.pairwise(ring):
                for _ in range(12):
                    t = rng.random()
                    lon = x1 + t * (x2 - x1) + rng.uniform(-5e-5, 5e-5)
                    lat = y1 + t * (y2 - y1) + rng.uniform(-5e-5, 5e-5)
                    got = lane_kernels._locate(lon, lat, coords, starts, nb_rings, nb_box)
                    if got == lane_kernels._NEAR_EDGE:
                        declined += 1
                        continue
                    decided += 1
                    place = areas.locate(lon, lat)
                    if place is None:
                        outside += 1
                        assert got == geo.CELL_OUTSIDE, (lon, lat, got)
                    else:
                        assert got >= 0 and areas.placement_at(got) == place, (lon, lat, got)
    assert decided > 1000 and outside > 50
    assert declined < decided / 100


def test_cells_learnt_a_block_at_a_time_are_those_learnt_one_by_one() -> None:
    """Areas.learn_cells (one vectorised query) gives the verdicts Areas._cell learns one
    cell at a time, coarse and fine: the lane's copy decides as locate and contains."""

    path = Settings().areas_path
    block, single = load_areas(path), load_areas(path)
    west, south, east, north = block.bounds
    x0, y0 = math.floor(west / geo.CELL_DEG) - 2, math.floor(south / geo.CELL_DEG) - 2
    nx = math.floor(east / geo.CELL_DEG) + 3 - x0
    ny = math.floor(north / geo.CELL_DEG) + 3 - y0
    coarse = block.learn_cells(x0, y0, nx, ny)
    for i in range(0, nx, 3):
        for j in range(0, ny, 3):
            key = (x0 + i, y0 + j)
            assert coarse[i, j] == single._learn(single._cells, key, geo.CELL_DEG), key
    assert {geo.CELL_OUTSIDE, geo.CELL_MIXED} < set(coarse.ravel().tolist())
    mixed = np.argwhere(coarse == geo.CELL_MIXED)[::97]
    for i, j in mixed:
        fx, fy = (x0 + int(i)) * 10, (y0 + int(j)) * 10
        fine = block.learn_cells(fx, fy, 10, 10, fine=True)
        for u in range(10):
            for v in range(10):
                key = (fx + u, fy + v)
                assert fine[u, v] == single._learn(single._fine, key, geo.FINE_DEG), key
    assert len(mixed) > 10


@pytest.mark.parametrize("policy", ["thrive", "closest"])
def test_the_world_ends_the_same_with_and_without_the_lane(
    lines: list[bytes], tmp_path: Path, policy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond what an evaluation writes: every officer record (places included), the
    availability counts the lane's moves into other neighbourhoods shift, the fleet."""
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"\n".join(_hostile(lines)))
    worlds = _made(monkeypatch, World)
    _run(path, policy, use_lane=True)
    _run(path, policy, use_lane=False)
    fast, slow = worlds
    assert fast.touched is not None and slow.touched is None  # the lane ran on one only
    assert dict(fast.officers) == dict(slow.officers)
    assert fast.availability() == slow.availability()
    assert {o: fast.fleet.position(o) for o in fast.officers} == {
        o: slow.fleet.position(o) for o in slow.officers
    }


def test_a_move_back_by_the_python_way_is_copied_back(
    tmp_path: Path, ev: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lane moves an officer into another neighbourhood; a fix it refuses (another
    form) brings them back the Python way; the lane must then know they are back, and
    move them again at the next fix (a copy that kept its own neighbourhood would take
    that fix as a move within it, and the World's record would keep the wrong place)."""
    areas = load_areas(Settings().areas_path)
    cluster = next(c for c in areas.clusters.values() if len(c.neighbourhoods) > 1)
    # (at 6 decimals, as a log writes them: the lane reads up to 15 significant digits)
    a, b = (
        tuple(round(x, 6) for x in areas.neighbourhoods[n].centroid)
        for n in cluster.neighbourhoods[:2]
    )
    t = ev.t0

    def fix(officer: str, at: tuple[float, ...], seconds: int, east: float = 0.0) -> Any:
        return ev.location(
            officer, round(at[0] + east, 6), at[1], ts=t + timedelta(seconds=seconds)
        )

    events = [
        ev.profile("o1", ts=t),
        ev.status("o1", "committed", ts=t),
        ev.profile("o2", ts=t),
        ev.status("o2", "committed", ts=t),
        fix("o1", a, 10),  # a first fix: the Python way
        fix("o2", b, 10),
        fix("o1", a, 20, 1e-5),  # cells not learnt yet: the Python way, and learnt
        fix("o2", b, 20, 1e-5),
        fix("o1", b, 30),  # the lane: into b
        fix("o1", a, 40),  # refused (another form): back to a the Python way
        fix("o1", b, 50, 2e-5),  # the lane: into b again
    ]
    lines = [encode(e) for e in events]
    lines[9] = lines[9].replace(b'"lat":', b'"lat": ')  # valid JSON the lane does not read
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    worlds = _made(monkeypatch, World)
    lanes = _made(monkeypatch, lane.FixLane)
    _run(path, "thrive", use_lane=True)
    _run(path, "thrive", use_lane=False)
    fast, slow = worlds
    assert lanes[0].replaced == 2, dict(zip(lane.REASONS, lanes[0].refused, strict=True))
    assert slow.officers["o1"].neighbourhood == cluster.neighbourhoods[1]
    assert dict(fast.officers) == dict(slow.officers)
