"""A call's story from its events (``sdo.console.timeline``), folded by the console view."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sdo.console.timeline import words
from sdo.console.view import ConsoleView
from sdo.domain.geo import Areas
from sdo.events import Alert, Decision, Deployment, IncidentNote


def test_names_become_words() -> None:
    assert [words(n) for n in ("criminal_damage", "asb", "mental_health", "rtc")] == [
        "criminal damage",
        "ASB",
        "mental health",
        "RTC",
    ]


def test_a_story_is_told_in_time_order_once_per_event(areas: Areas, ev: Any) -> None:
    """Received, graded, decided (who, why), the officers' changes, a note and an alert,
    each once however often its event is read again; a note read late takes its place
    by time; an event that changes nothing tells nothing."""
    view = ConsoleView(areas)
    note = IncidentNote(
        event_id="n1", ts=ev.t0 + timedelta(seconds=5), incident_id="I1", text="rang back",
        by="sgt.jones",
    )  # fmt: skip
    events = [
        ev.profile("o1", callsign="NR11"),
        ev.status("o1", "available", at=1),
        ev.incident("I1", at=2, required_skills=["taser"]),
        ev.recommendation("I1", ["o1"], at=3, rid="R1"),
        Deployment(
            event_id="d1", ts=ev.t0 + timedelta(seconds=6), incident_id="I1",
            decision=Decision.OVERRIDDEN, officer_ids=("o1",), by="sgt.jones",
            reason="knows the area", shortfalls=("nobody sent holds taser",),
        ),
        note,  # read after the decision, written before it
        ev.status("o1", "at_scene", at=9, incident_id="I1"),
        Alert(
            event_id="a1", ts=ev.t0 + timedelta(seconds=10), kind="unresourced_warning",
            severity="warning", subject="I1", message="I1 unresourced soon",
        ),
    ]  # fmt: skip
    for event in events + events:  # read twice: the story is told once
        view.fold(event)
    texts = [e["text"] for e in view.timelines.entries("I1")]
    assert texts == [
        "Call received: burglary — Burglary in progress; needs taser",
        "Graded 1 (emergency): threat is high · recommends CSo1 (ETA 2:00)",
        "rang back",
        "sgt.jones: Overridden: NR11 sent instead — “knows the area” · nobody sent holds taser",
        "NR11 at scene",
        "Alert (warning): I1 unresourced soon",
    ]
    assert view.timelines.entries("I1")[2]["by"] == "sgt.jones"
    assert view.recorded["d1"]["shortfalls"] == ["nobody sent holds taser"]
    assert view.recorded["n1"]["action"] == "note"
