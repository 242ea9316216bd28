"""sdo.evaluation.replay's schedule: when each event of a log is due at a given speed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sdo.evaluation.replay import pace_s

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("after", "speed", "due_s"),
    [
        pytest.param(timedelta(0), 10.0, 0.0, id="the first event at once"),
        pytest.param(timedelta(seconds=2), 10.0, 0.2, id="2 s at 10x"),
        pytest.param(timedelta(seconds=4), 10.0, 0.4, id="4 s at 10x"),
        pytest.param(timedelta(minutes=1), 1.0, 60.0, id="real time"),
        pytest.param(timedelta(hours=1), 60.0, 60.0, id="an hour a minute"),
        pytest.param(timedelta(seconds=1), 0.5, 2.0, id="slower than real time"),
    ],
)
def test_an_event_is_due_after_its_event_time_divided_by_the_speed(
    after: timedelta, speed: float, due_s: float
) -> None:
    """At speed X, an event ``d`` of event time after the first is due ``d / X`` after it."""
    assert pace_s(T0, T0 + after, speed) == pytest.approx(due_s)
