"""``sdo evaluate``'s cover figure: would the response officers a policy sends first leave
their cluster below its minimum cover (CONTRACT §3: do not take a cluster's last units
for a lower grade)? Pure: a World on the packaged areas (north-1's minimum cover is 4)."""

from __future__ import annotations

from typing import Any

import pytest

from sdo.evaluation.figures import Metrics, _below_cover


def _staff(f: Any, available: int, *, cluster_place: str = "N06") -> None:
    for n in range(available):
        f.officer(f"r{n}", f.place(cluster_place, east_m=100 * n))


@pytest.mark.parametrize(
    ("available", "sent", "below"),
    [
        (5, ("r0",), False),  # 4 left of 4
        (4, ("r0",), True),  # 3 left
        (5, ("r0", "r1"), True),  # two from one cluster: 3 left
        (2, ("r0",), True),  # already below: further below
    ],
)
def test_sending_an_available_response_officer_is_weighed_against_their_cluster(
    force: Any, available: int, sent: tuple[str, ...], below: bool
) -> None:
    f = force()
    _staff(f, available)
    assert f.world.cover_count("north-1") == available
    assert _below_cover(f.world, sent) is below


def test_officers_who_leave_no_cover_behind_are_not_weighed(force: Any) -> None:
    """An investigator, a response officer already committed, or one unknown: None."""
    f = force()
    _staff(f, 4)
    f.officer("inv", f.place("N06"), role="investigator")
    f.officer("busy", f.place("N06"), status="committed")
    assert _below_cover(f.world, ("inv", "busy", "nobody")) is None
    # with one who does count, the answer is theirs
    assert _below_cover(f.world, ("inv", "r0")) is True


def test_the_figure_is_per_grade_from_the_first_recommendation_naming_an_officer(
    force: Any, ev: Any
) -> None:
    """A priority call with north-1's only response officers near: recommending one takes
    the cluster below its minimum, counted under grade 2; an emergency's under grade 1;
    nothing under the grades with no incident."""
    f = force()
    _staff(f, 3)
    metrics = Metrics("thrive")
    for event in (
        ev.incident("i1", *f.place("N06"), ts=ev.at(1), graded_as="priority"),
        ev.incident("i2", *f.place("N05"), ts=ev.at(2), graded_as="emergency"),
    ):
        metrics.before(f.world, event)
        effects = f.apply(event)
        metrics.after(f.world, event, effects.outputs)
    assert all(f.recommendation(i).recommended for i in ("i1", "i2"))
    figures = metrics.finish()
    assert figures["grades"]["2"]["share_leaving_cluster_below_min_cover"] == 1.0
    assert figures["grades"]["2"]["sends_response_officer"] == 1
    assert figures["grades"]["1"]["share_leaving_cluster_below_min_cover"] == 1.0
    assert figures["grades"]["3"]["share_leaving_cluster_below_min_cover"] is None
    assert figures["grades"]["3"]["sends_response_officer"] == 0
