"""``sdo.evaluation.timing``: the timing model the simulated dispatch and the closed loop
share, and where its numbers come from."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from sdo.evaluation.timing import G1_DISPATCH_QUANTILES_S, SLOWER_HANDLING, Timing
from sdo.events import Transport

SEATTLE = (
    Path(__file__).resolve().parents[1] / "data/incidents/seattle_police_dispatch_2024_sample.csv"
)


def test_grade_1_dispatch_quantiles_are_the_seattle_sample() -> None:
    """The 5 % quantiles are those of the real priority 1 queue -> dispatch delays."""
    with SEATTLE.open(newline="") as f:
        delays = sorted(
            int(r["first_dispatch_delay"])
            for r in csv.DictReader(f)
            if r["priority"] == "1" and r["first_dispatch_delay"].isdigit()
        )
    assert len(delays) == 270
    n = len(delays) - 1
    assert tuple(delays[round(k * n / 20)] for k in range(21)) == G1_DISPATCH_QUANTILES_S


def test_draws_are_keyed_by_incident_so_policies_are_paired() -> None:
    """The same incident (and officer) gets the same draws from any Timing, in any order;
    grade 2 handling is the grade 1 draw times SLOWER_HANDLING."""
    a, b = Timing(), Timing().scaled(speed=0.8, label="slower")
    assert [a.dispatch_delay_s(f"I{k}", 1) for k in range(50)] == [
        b.dispatch_delay_s(f"I{k}", 1) for k in range(50)
    ]
    assert a.on_scene_s("I1", "RP-001", "burglary", 1) == b.on_scene_s(
        "I1", "RP-001", "burglary", 1
    )
    g1 = a.dispatch_delay_s("I7", 1)
    assert a.dispatch_delay_s("I7", 2) == round(g1 * SLOWER_HANDLING) or g1 == 0
    delays = [a.dispatch_delay_s(f"I{k}", 1) for k in range(2000)]
    assert min(delays) >= G1_DISPATCH_QUANTILES_S[0]
    assert max(delays) <= G1_DISPATCH_QUANTILES_S[-1]
    assert 40 <= sorted(delays)[1000] <= 70  # the sample's median is 54 s


@pytest.mark.parametrize(
    ("transport", "grade", "seconds"),
    [
        (Transport.CAR, 1, 1000 * 1.4 / 8.0),
        (Transport.CAR, 2, 1000 * 1.4 / 7.0),
        (Transport.FOOT, 3, 1000 * 1.4 / 1.3),
        (Transport.DESK, 1, None),
    ],
)
def test_travel_is_distance_times_detour_over_speed(
    transport: Transport, grade: int, seconds: float | None
) -> None:
    """A kilometre in a straight line, by transport and grade."""
    assert Timing().travel_s(1000, transport, grade) == pytest.approx(seconds)
    if seconds is not None:
        wider = Timing().scaled(detour=1.6, label="detour 1.6")
        assert wider.travel_s(1000, transport, grade) == pytest.approx(seconds / 1.4 * 1.6)
