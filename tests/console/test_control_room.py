"""The console as a control room uses it, in real headless Chromium with the real broker:
the decision in sight at every screen size, the map, the officer board, each call's story
and notes, alert acknowledgements, the area worked, status changes, confirming a busy
officer, requests resolved after a reconnection, words for names, the map window."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import orjson
import pytest
from playwright.async_api import Page, expect
from websockets.asyncio.client import connect

from sdo.console.auth import remove_user
from sdo.events import Alert, Deployment, Response

from .test_browser import (  # noqa: F401 (fixtures)
    KAFKA_TIMEOUT_S,
    PAGE_TIMEOUT_MS,
    SDO_USER,
    VIEWER_USER,
    Desk,
    browser,
    chromium,
    desk,
    events_type,
)

pytestmark = [pytest.mark.browser, pytest.mark.integration]

_T = TypeVar("_T")

#: A point in Lea Hall (E07: NPU east, cluster east-2); N01 (north) is the factory's default.
EAST = (-1.7794, 52.4692)
#: Screen sizes of a control room (CSS pixels, device scale): 1440×900 at 150 % zoom is
#: 960×600 CSS pixels at a device scale of 1.5.
SIZES = [(1280, 720, 1.0), (1440, 900, 1.0), (1920, 1080, 1.0), (960, 600, 1.5)]
#: Measurements of the map, 300 ms apart, until two agree.
SETTLE_TRIES = 20


async def open_at(
    desk: Desk, width: int, height: int, scale: float = 1.0, user: str = SDO_USER, init: str = ""
) -> Page:
    """A page of ``user``'s in a window of that size, logged in."""
    context = await desk.browser.new_context(
        viewport={"width": width, "height": height}, device_scale_factor=scale
    )
    page = await context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    if init:
        await page.add_init_script(init)
    page.on("console", lambda m: desk.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: desk.errors.append(str(exc)))
    await page.goto(desk.console.url)
    await page.fill("#token", desk.tokens[user])
    await page.click("#login-btn")
    await expect(page.locator("#user-name")).to_have_text(user)
    return page


async def settled(page: Page, measure: Callable[[], Awaitable[_T]]) -> _T:
    """``measure()`` once the map has stopped moving: no zoom animation, and two
    measurements 300 ms apart that agree (at most SETTLE_TRIES of them)."""
    await expect(page.locator("#map.leaflet-zoom-anim")).to_have_count(0)
    last = await measure()
    for _ in range(SETTLE_TRIES):
        await page.wait_for_timeout(300)
        now = await measure()
        if now == last:
            return now
        last = now
    raise AssertionError(f"the map did not settle after {SETTLE_TRIES} tries")


async def in_sight(page: Page, selector: str) -> None:
    """``selector`` is inside the viewport, and nothing lies over its middle."""
    el = page.locator(selector)
    await expect(el).to_be_visible()
    box = await el.bounding_box()
    size = page.viewport_size
    assert box is not None and size is not None, selector
    inside = (
        box["x"] >= 0
        and box["y"] >= 0
        and box["x"] + box["width"] <= size["width"] + 0.5
        and box["y"] + box["height"] <= size["height"] + 0.5
    )
    assert inside, f"{selector} at {box} is not inside {size}"
    on_top = await page.evaluate(
        """([sel, x, y]) => { const el = document.querySelector(sel);
             const hit = document.elementFromPoint(x, y); return !!hit && el.contains(hit); }""",
        [selector, box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
    )
    assert on_top, f"something lies over {selector}"


def busy_evening(ev: Any) -> list[Any]:
    """25 calls waiting (grade 1 to 4), ten officers, five alerts."""
    events: list[Any] = []
    for n in range(10):
        oid = f"o{n}"
        events += [
            ev.profile(oid, callsign=f"NR{10 + n}"),
            ev.status(oid, "available", at=1),
            ev.location(oid, (-1.82 + n * 0.004, 52.595 - n * 0.003), at=2),
        ]
    officers = [f"o{n}" for n in range(8)]
    for n in range(25):
        iid = f"C{n:02d}"
        grade = 1 + n % 4
        rec = ev.recommendation(iid, officers, at=4 + n, rid=f"R{iid}")
        if grade != 1:
            rec = rec.model_copy(update={"grade": grade, "response": Response.PRIORITY})
        events += [
            ev.incident(
                iid,
                at=3 + n,
                summary="Caller reports a man with a knife outside the shop, now heading "
                "towards the park with two others; the caller is hiding in the stockroom",
            ),
            rec,
        ]
    for n in range(5):
        events.append(
            Alert(
                event_id=f"a{n}",
                ts=ev.t0 + timedelta(seconds=40 + n),
                kind="unresourced",
                severity="critical",
                subject=f"C{n:02d}",
                message=f"C{n:02d} unresourced",
            )
        )
    return events


async def test_the_decision_is_in_sight_at_every_screen_size(desk: Desk) -> None:
    """With 25 calls waiting and five alerts, at 1280×720, 1440×900, 1920×1080 and
    1440×900 at 150 % zoom: the page does not scroll; the three columns lie side by side
    inside the window; the alerts have their own place in sight; the selected call's
    header (grade, title, deadline), its grading and recommendation and the Accept,
    Override and Decline buttons are in sight, nothing over them; with the override form
    open, the header, the reason and Confirm / Cancel too; once sent, the result."""
    await desk.produce(busy_evening(desk.ev))
    for done, (width, height, scale) in enumerate(SIZES):
        page = await open_at(desk, width, height, scale)
        await expect(page.locator("#queue .queue-item")).to_have_count(25 - done)
        scrolls = await page.evaluate(
            "[document.documentElement.scrollWidth - innerWidth, document.documentElement.scrollHeight - innerHeight]"
        )
        assert scrolls == [0, 0], f"the page scrolls at {width}×{height}"
        boxes = [await page.locator(c).bounding_box() for c in ("#left", "#centre", "#right")]
        assert all(b is not None for b in boxes)
        left, centre, right = boxes  # type: ignore[misc]
        assert left["x"] + left["width"] <= centre["x"] + 1 <= right["x"] + 1
        assert right["x"] + right["width"] <= width + 0.5
        assert centre["width"] >= 300, f"the map is {centre['width']} px wide at {width}×{height}"
        await in_sight(page, "#alerts-box h2")
        await in_sight(page, "#alerts li:first-child")
        await page.click("#queue .queue-item >> nth=0")
        for part in ("#rec-grade", "#rec-title", "#rec-deadline", "#rec-response", "#rec-sends"):
            await in_sight(page, part)
        for button in ("#btn-accept", "#btn-override", "#btn-decline"):
            await in_sight(page, button)
        await page.click("#btn-override")
        await page.check(f"#cands tr[data-id='o{2 + done}'] input[type=checkbox]")
        for part in (
            "#rec-title",
            "#rec-deadline",
            "#decide-reason",
            "#decide-submit",
            "#decide-cancel",
        ):
            await in_sight(page, part)
        await page.fill("#decide-reason", "nearer the park")
        await page.press("#decide-reason", "Enter")
        await expect(page.locator("#rec-result")).to_contain_text("Recorded: override")
        await in_sight(page, "#rec-result")
        await page.context.close()
    assert desk.errors == []


async def test_the_map_pans_zooms_declutters_and_explains_itself(desk: Desk) -> None:
    """Twelve officers along one road: zoomed out, their labels do not pile up (some are
    hidden), but the one found is labelled; zooming in spreads them and more have room
    for a label; dragging pans; an officer's status is its shape as well as its colour; the
    legend names every status, grade, fill and line."""
    ev = desk.ev
    events = []
    for n in range(12):
        oid = f"s{n}"
        events += [ev.profile(oid, callsign=f"ST{n:02d}"), ev.status(oid, "available", at=1),
                   ev.location(oid, (-1.8200, 52.6000 - n * 0.001), at=2)]  # fmt: skip
    events += [ev.incident("I1", at=3, lon=EAST[0], lat=EAST[1]),
               ev.status("s11", "en_route", at=4, incident_id="I1")]  # fmt: skip
    await desk.produce(events)
    page = await desk.open()
    marks = page.locator("#map .officer")
    await expect(marks).to_have_count(12)
    shown = page.locator("#map .officer .lbl:not(.hidden-label)")
    await expect(shown).not_to_have_count(12)
    assert 1 <= await shown.count() < 12
    # status by shape: an officer en route is a triangle, an available one a circle
    available_d = await page.locator("#map .officer[data-id='s0'] path.mark").get_attribute("d")
    en_route_d = await page.locator("#map .officer[data-id='s11'] path.mark").get_attribute("d")
    assert available_d and en_route_d and available_d != en_route_d

    async def gap() -> float:
        a = await page.locator("#map .officer[data-id='s0']").bounding_box()
        b = await page.locator("#map .officer[data-id='s10']").bounding_box()
        assert a is not None and b is not None
        return abs(b["y"] - a["y"])

    # found (and centred): labelled whatever else is near; looked for once the map's
    # first fit to the area is done, as a user would (a search in the first instant of
    # the page can be overtaken by that fit)
    await settled(page, gap)
    await page.keyboard.press("/")
    await page.keyboard.type("ST05")
    await page.keyboard.press("Enter")
    await expect(page.locator("#map .officer.found .lbl")).not_to_have_class(
        re.compile("hidden-label")
    )

    # (Find centres the map with an animation: measure once the marks stay put)
    # (labels are laid out again after the map moves: count them once they stay put)
    near, labelled = await settled(page, gap), await settled(page, shown.count)
    for _ in range(4):
        await page.click(".leaflet-control-zoom-in")
        # (a press while Leaflet still animates the last zoom is not taken)
        await expect(page.locator("#map.leaflet-zoom-anim")).to_have_count(0)
        await page.wait_for_timeout(300)
    assert await settled(page, gap) > near  # spread by the zoom
    assert await settled(page, shown.count) > labelled  # and more of them labelled
    box = await page.locator("#map").bounding_box()
    mark = await page.locator("#map .officer[data-id='s5']").bounding_box()
    assert box is not None and mark is not None
    x, y = box["x"] + 40, box["y"] + box["height"] - 40
    await page.mouse.move(x, y)
    await page.mouse.down()
    await page.mouse.move(x + 60, y - 50, steps=6)
    await page.mouse.up()
    moved = await page.locator("#map .officer[data-id='s5']").bounding_box()
    assert moved is not None
    assert abs(moved["x"] - mark["x"] - 60) < 3 and abs(moved["y"] - mark["y"] + 50) < 3
    legend = page.locator("#legend")
    await expect(legend.locator(".lg-row")).to_have_count(16)
    for key in ("status:available", "status:en_route", "status:at_scene", "status:committed",
                "status:refreshment", "stale", "grade:1", "grade:2", "grade:3", "grade:4",
                "resourced", "fill", "npu", "cluster", "candidate", "recommended"):  # fmt: skip
        await expect(legend.locator(f".lg-row[data-key='{key}']")).to_have_count(1)
    await expect(legend.locator(".lg-row[data-key='fill']")).to_have_text("0123+")
    await page.close()
    assert desk.errors == []


async def test_the_officer_board_lists_sorts_filters_and_changes_status(desk: Desk) -> None:
    """The board lists every officer on duty (off duty on request), with status, time in
    it, call and fix age; sorts by a column (again: the other way); filters by status,
    role and NPU; a row shows the officer on the map. An SDO marks an officer en route
    as at scene (the button in sight; a second press confirms): an ``officer.status`` on Kafka saying who; a
    viewer's board offers no change."""
    ev = desk.ev
    await desk.produce([
        ev.profile("o1", callsign="NR11"), ev.status("o1", "available", at=1), ev.location("o1", at=2),
        ev.incident("I1", at=2),
        ev.profile("o2", callsign="NR12"), ev.status("o2", "en_route", at=3, incident_id="I1"),
        ev.location("o2", (-1.83, 52.59), at=3),
        ev.profile("o3", callsign="NR13"), ev.status("o3", "off_duty", at=1),
        ev.profile("o4", callsign="PC04", role="pcso", npu="east"), ev.status("o4", "available", at=1),
        ev.location("o4", EAST, at=2),
    ])  # fmt: skip
    page = await desk.open()
    await page.click("#tab-officers")
    rows = page.locator("#board tbody tr")
    await expect(rows).to_have_count(3)
    await expect(page.locator("#tab-officers .count")).to_have_text("3")
    await page.check("#bf-off")
    await expect(rows).to_have_count(4)
    await page.uncheck("#bf-off")
    await page.click("#board th button.sort[data-key='callsign']")
    await rows_are(page, ["o1", "o2", "o4"])
    await page.click("#board th button.sort[data-key='callsign']")
    await rows_are(page, ["o4", "o2", "o1"])
    en_route = page.locator("#board tr[data-id='o2']")
    await expect(en_route).to_contain_text("NR12")
    await expect(en_route).to_contain_text("en route")
    await expect(en_route.locator("a.inc-link")).to_have_text("I1")
    await expect(en_route.locator("td.num").nth(1)).to_have_text(re.compile(r"\d+ (s|min)"))
    await page.select_option("#bf-status", "en_route")
    await expect(rows).to_have_count(1)
    await page.select_option("#bf-status", "")
    await page.select_option("#bf-role", "pcso")
    await expect(rows).to_have_count(1)
    await page.select_option("#bf-role", "")
    await page.select_option("#bf-npu", "east")
    await expect(rows).to_have_count(1)
    await page.select_option("#bf-npu", "")
    viewer = await desk.open(VIEWER_USER)
    await viewer.click("#tab-officers")
    await expect(viewer.locator("#board tr[data-id='o2']")).to_contain_text("en route")
    await expect(viewer.locator("#board button.change")).to_have_count(0)
    button = en_route.locator("button.change[data-change='at_scene']")
    await in_sight(page, "#board tr[data-id='o2'] button.change[data-change='at_scene']")
    await button.click()
    await expect(button).to_have_text("Confirm at scene")
    await button.click()
    await expect(en_route).to_contain_text("at scene", timeout=PAGE_TIMEOUT_MS)
    await expect(viewer.locator("#board tr[data-id='o2']")).to_contain_text("at scene")
    statuses = await read_topic(desk, desk.console.topics.status)
    mine = [s for s in statuses if s.get("by")]
    assert [(s["officer_id"], s["status"], s["incident_id"], s["by"]) for s in mine] == [
        ("o2", "at_scene", "I1", SDO_USER)
    ]
    await page.click("#board tr[data-id='o4'] td.cs")
    await expect(page.locator("#tab-map")).to_have_attribute("aria-selected", "true")
    await expect(page.locator("#map .officer.found")).to_have_attribute("data-id", "o4")
    # back on the map, it is as it was: not zoomed into one street (it was fitted while
    # hidden, at no size, and came back at the closest zoom)
    await expect(page.locator(".leaflet-control-zoom-in.leaflet-disabled")).to_have_count(0)
    area = await page.locator("#map path.area[data-id='E07']").bounding_box()
    whole = await page.locator("#map").bounding_box()
    assert area is not None and whole is not None
    assert area["width"] < whole["width"] / 3
    await viewer.close()
    await page.close()
    assert desk.errors == []


async def rows_are(page: Page, ids: list[str]) -> None:
    """The board lists these officers, in this order (within the page timeout)."""
    got: list[str] = []

    async def read() -> list[str]:
        return await page.eval_on_selector_all("#board tbody tr", "rs => rs.map(r => r.dataset.id)")

    async def check() -> bool:
        got[:] = await read()
        return got == ids

    for _ in range(PAGE_TIMEOUT_MS // 50):
        if await check():
            return
        await page.wait_for_timeout(50)
    raise AssertionError(f"the board lists {got}, not {ids}")


async def read_topic(desk: Desk, topic: str) -> list[dict[str, Any]]:
    """Every event on ``topic`` now (read to its end)."""
    from aiokafka import AIOKafkaConsumer  # noqa: PLC0415

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=desk.bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        out: list[dict[str, Any]] = []
        while True:
            batch = await consumer.getmany(timeout_ms=1000)
            if not batch:
                return out
            out += [orjson.loads(r.value) for rs in batch.values() for r in rs]
    finally:
        await consumer.stop()


async def test_each_call_tells_its_story_with_notes_and_alerts_are_acknowledged(
    desk: Desk,
) -> None:
    """Selected, a call tells its story from its events (received, graded and what is
    recommended); a note (Enter records it) appears in the story on every page; an alert
    not yet acknowledged is counted new and offered for acknowledgement (not to a
    viewer); acknowledged, every page says by whom, and it is counted new no more."""
    ev = desk.ev
    await desk.produce([
        ev.profile("o1", callsign="NR11"), ev.status("o1", "available", at=1), ev.location("o1", at=2),
        ev.incident("I1", at=3), ev.recommendation("I1", ["o1"], at=4, rid="R1"),
        Alert(event_id="a1", ts=ev.t0 + timedelta(seconds=5), kind="unresourced",
              severity="critical", subject="I1", message="grade 1 incident I1 unresourced"),
    ])  # fmt: skip
    page, viewer = await desk.open(), await desk.open(VIEWER_USER)
    for p in (page, viewer):
        await p.click("#queue .queue-item[data-id='I1']")
        story = p.locator("#story li")
        await expect(story.nth(0)).to_contain_text("Call received: burglary — Burglary in progress")
        await expect(story.nth(1)).to_contain_text("Graded 1 (emergency): threat is high")
        await expect(story.nth(1)).to_contain_text("recommends CSo1 (ETA 2:00)")
    await expect(viewer.locator("#note-form")).to_be_hidden()
    await page.keyboard.press("n")
    await expect(page.locator("#note-text")).to_be_focused()
    await page.keyboard.type("Caller rang back: the offender has left on foot")
    await page.keyboard.press("Enter")
    for p in (page, viewer):
        note = p.locator("#story li[data-kind='note']")
        await expect(note).to_contain_text(
            "sgt.jones: Caller rang back: the offender has left on foot"
        )
    await expect(page.locator("#note-text")).to_have_value("")
    alert = page.locator("#alerts li[data-key='unresourced:I1']")
    await expect(page.locator("#alert-new")).to_have_text("1 new")
    await expect(alert).to_have_class(re.compile("unacked"))
    await expect(viewer.locator("#alerts button.ack")).to_have_count(0)
    await alert.locator("button.ack").click()
    for p in (page, viewer):
        await expect(p.locator("#alerts li[data-key='unresourced:I1'] .ack-by")).to_contain_text(
            "acknowledged by sgt.jones"
        )
        await expect(p.locator("#alert-new")).to_be_hidden()
    await expect(page.locator("#story li[data-kind='ack']")).to_contain_text(
        "sgt.jones acknowledged the unresourced alert"
    )
    await viewer.close()
    await page.close()
    assert desk.errors == []


async def test_an_sdo_works_one_npu_and_every_console_shows_who_works_what(desk: Desk) -> None:
    """Working NPU north, the queue, the map and the board show the north only, and the
    queue says how many calls wait outside it (and of which grade 1); every page shows
    who works what."""
    ev = desk.ev
    await desk.produce([
        ev.profile("o1", callsign="NR11"), ev.status("o1", "available", at=1), ev.location("o1", at=2),
        ev.profile("o4", callsign="ES04", npu="east"), ev.status("o4", "available", at=1),
        ev.location("o4", EAST, at=2),
        ev.incident("N1", at=3), ev.incident("E1", at=4, lon=EAST[0], lat=EAST[1]),
        ev.recommendation("E1", ["o4"], at=5, rid="RE1"),
    ])  # fmt: skip
    page, viewer = await desk.open(), await desk.open(VIEWER_USER)
    await expect(page.locator("#queue .queue-item")).to_have_count(2)
    await page.select_option("#work", "npu:north")
    await expect(page.locator("#queue .queue-item")).to_have_count(1)
    await expect(page.locator("#queue .queue-item")).to_have_attribute("data-id", "N1")
    await expect(page.locator("#outside")).to_have_text("+1 outside NPU north (1 grade 1)")
    await expect(page.locator("#map .incident")).to_have_count(1)
    await expect(page.locator("#map .officer")).to_have_count(1)
    await page.click("#tab-officers")
    await expect(page.locator("#board tbody tr")).to_have_count(1)
    chip = viewer.locator("#presence .who-chip[data-user='sgt.jones']")
    await expect(chip).to_have_text("sgt.jones NPU north")
    await expect(viewer.locator("#presence .who-chip[data-user='pc.watch']")).to_have_text(
        "pc.watch viewer"
    )
    await viewer.close()
    await page.close()
    assert desk.errors == []


async def test_sending_a_busy_officer_needs_send_anyway_and_is_recorded(desk: Desk) -> None:
    """The override form says what the call needs (two officers, a taser) and what the
    officers picked lack; picking an officer en route to another call lists the problem
    and asks to send anyway: Enter does nothing until it is ticked; sent, the deployment
    records the conflict and the shortfalls."""
    ev = desk.ev
    await desk.produce([
        ev.profile("o1", callsign="NR11"), ev.status("o1", "available", at=1), ev.location("o1", at=2),
        ev.incident("I9", at=2),
        ev.profile("o4", callsign="NR14"), ev.status("o4", "en_route", at=3, incident_id="I9"),
        ev.location("o4", (-1.83, 52.59), at=3),
        ev.incident("I1", at=4, required_skills=["taser"], officers_required=2),
        ev.recommendation("I1", ["o1"], at=5, rid="R1"),
    ])  # fmt: skip
    page = await desk.open()
    await page.click("#queue .queue-item[data-id='I1']")
    await page.click("#btn-override")
    needs = page.locator("#decide-needs")
    await expect(needs).to_have_text("Needs 2 officer(s) with taser")
    await page.select_option("#pick-officer", "o4")
    await expect(needs).to_contain_text(
        "short: only 1 picked; nobody picked holds taser (recorded)"
    )
    await expect(page.locator("#decide-problems li")).to_have_text(["NR14 is en route (I9)"])
    await expect(page.locator("#anyway-wrap")).to_be_visible()
    submit = page.locator("#decide-submit")
    await expect(submit).to_have_text("Send anyway")
    await page.fill("#decide-reason", "nearest with a car free soon")
    await expect(submit).to_be_disabled()
    await page.press("#decide-reason", "Enter")
    await expect(page.locator("#decide-form")).to_be_visible()  # nothing sent
    await page.check("#send-anyway")
    async with desk.deployments() as consumer:
        await page.press("#decide-reason", "Enter")
        from tests.kafka_io import read_deployments  # noqa: PLC0415

        deployments = await read_deployments(consumer, KAFKA_TIMEOUT_S)
    assert [(d["officer_ids"], d["shortfalls"]) for d in deployments] == [
        (
            ["o4"],
            [
                "nobody sent holds taser",
                "1 officer(s) sent, 2 needed",
                "sent anyway: NR14 is en route (I9)",
            ],
        )
    ]
    await expect(page.locator("#rec-result")).to_contain_text(
        "recorded short: nobody sent holds taser"
    )
    await page.close()
    assert desk.errors == []


async def test_the_map_stays_where_it_was_after_another_tab(desk: Desk) -> None:
    """Fit the map (F), look at the officer board (B), back to the map (V): the areas are
    where they were (a hidden map resized to nothing came back shifted by half its size)."""
    await desk.produce(busy_evening(desk.ev))
    page = await open_at(desk, 1440, 900)
    area = page.locator("#map path.area").first
    await expect(area).to_be_visible(timeout=PAGE_TIMEOUT_MS)

    async def where() -> tuple[float, float]:
        box = await area.bounding_box()
        assert box is not None
        return box["x"], box["y"]

    await page.keyboard.press("f")
    before = await settled(page, where)
    await page.keyboard.press("b")
    await expect(page.locator("#officers-panel")).to_be_visible()
    await page.keyboard.press("v")
    await expect(page.locator("#map-panel")).to_be_visible()
    after = await settled(page, where)
    assert abs(after[0] - before[0]) < 2 and abs(after[1] - before[1]) < 2, (before, after)
    await page.close()
    assert desk.errors == []


async def test_an_officer_past_the_end_of_their_shift_says_so_before_the_server_does(
    desk: Desk,
) -> None:
    """An officer still available after their shift's end: the board says "shift ended",
    and picking them in the override form lists it to confirm, as the server would."""
    ev = desk.ev
    ended = ev.t0 + timedelta(seconds=3)  # (before the later events: ended by any clock)
    await desk.produce([
        ev.profile("o1", callsign="NR11"), ev.status("o1", "available", at=1), ev.location("o1", at=2),
        ev.profile("o5", callsign="NR15", shift_end=ended), ev.status("o5", "available", at=1),
        ev.location("o5", (-1.83, 52.59), at=2),
        ev.incident("I1", at=4),
        ev.recommendation("I1", ["o1"], at=5, rid="R1"),
    ])  # fmt: skip
    page = await desk.open()
    await page.click("#tab-officers")
    await expect(page.locator("#board tr[data-id='o5'] .shift-ended")).to_have_text("shift ended")
    await expect(page.locator("#board tr[data-id='o1'] .shift-ended")).to_have_count(0)
    await page.click("#tab-map")
    await page.click("#queue .queue-item[data-id='I1']")
    await page.click("#btn-override")
    await page.select_option("#pick-officer", "o5")
    await expect(page.locator("#decide-problems li")).to_have_text(["NR15's shift has ended"])
    await page.close()
    assert desk.errors == []


async def test_an_override_on_a_call_decided_meanwhile_asks_to_replace_that_decision(
    desk: Desk,
) -> None:
    """The SDO opens the override form; another SDO accepts the call meanwhile. Confirm
    does not silently replace it: the form lists the decision it would replace and asks
    to send anyway; sent anyway, the override is recorded after the accept."""
    ev = desk.ev
    await desk.produce([
        ev.profile("o1", callsign="NR11"), ev.status("o1", "available", at=1), ev.location("o1", at=2),
        ev.profile("o3", callsign="NR13"), ev.status("o3", "available", at=1),
        ev.location("o3", (-1.83, 52.59), at=2),
        ev.incident("I1", at=4),
        ev.recommendation("I1", ["o1", "o3"], at=5, rid="R1"),
    ])  # fmt: skip
    page = await desk.open()
    await page.click("#queue .queue-item[data-id='I1']")
    await page.click("#btn-override")
    await page.check("#cands tr[data-id='o3'] input[type=checkbox]")
    await page.fill("#decide-reason", "NR13 knows the family")
    other = Deployment(
        event_id="khan-accept", ts=ev.t0 + timedelta(seconds=6), incident_id="I1",
        decision="accepted", officer_ids=["o1"], by="sgt.khan", recommendation_id="R1",
    )  # fmt: skip
    await desk.produce([other])
    await expect(page.locator("#rec")).to_contain_text("sgt.khan", timeout=PAGE_TIMEOUT_MS)
    # decided: no countdown runs on (nor turns OVERDUE) for a call no longer waiting
    await expect(page.locator("#rec-deadline .timer")).to_have_text("accepted")
    async with desk.deployments() as consumer:
        await page.press("#decide-reason", "Enter")
        await expect(page.locator("#decide-problems li")).to_have_text(
            ["accepted by sgt.khan since this form was opened: sending replaces it"],
            timeout=PAGE_TIMEOUT_MS,
        )
        await expect(page.locator("#decide-submit")).to_have_text("Send anyway")
        await page.check("#send-anyway")
        await page.press("#decide-reason", "Enter")
        from tests.kafka_io import read_deployments  # noqa: PLC0415

        got: list[dict[str, Any]] = []
        while len(got) < 2:
            got += await read_deployments(consumer, KAFKA_TIMEOUT_S)
    assert [(d["by"], d["decision"], d["officer_ids"]) for d in got] == [
        ("sgt.khan", "accepted", ["o1"]),
        (SDO_USER, "overridden", ["o3"]),
    ]
    await expect(page.locator("#rec-result")).to_contain_text("Recorded: override")
    await page.close()
    assert desk.errors == []


#: What a page leaves in its session when its connection drops with two requests
#: unanswered (``app.js`` keeps them there until answered).
PENDING = """
if (!sessionStorage.getItem("sdo-console-pending")) {
  sessionStorage.setItem("sdo-console-pending", JSON.stringify([
    ["r-recorded", {"what": "override I1 → NR12", "incident_id": "I1"}],
    ["r-lost", {"what": "decline I2", "incident_id": "I2"}]]));
}
"""


async def test_requests_left_unanswered_are_resolved_against_kafka(desk: Desk) -> None:
    """A page whose connection dropped with two requests unanswered — one the console had
    recorded, one it never got — asks on reconnecting, and tells the SDO which was
    recorded and which was not (to send again)."""
    ev = desk.ev
    await desk.produce([
        ev.profile("o1", callsign="NR11"), ev.status("o1", "available", at=1), ev.location("o1", at=2),
        ev.profile("o2", callsign="NR12"), ev.status("o2", "available", at=1), ev.location("o2", at=2),
        ev.incident("I1", at=3), ev.recommendation("I1", ["o1"], at=4, rid="R1"), ev.incident("I2", at=5),
    ])  # fmt: skip
    await wait_for(
        desk,
        lambda: "R1" in {r.recommendation_id for r in desk.console.view.recommendations.values()},
    )
    async with connect(desk.console.ws_url) as ws:
        await ws.send(orjson.dumps({"type": "auth", "token": desk.tokens[SDO_USER]}).decode())
        await ws.send(orjson.dumps({
            "type": "override", "request_id": "r-recorded", "incident_id": "I1",
            "officer_ids": ["o2"], "reason": "NR12 knows the family",
        }).decode())  # fmt: skip
        async for raw in ws:
            if orjson.loads(raw).get("request_id") == "r-recorded":
                break
    page = await open_at(desk, 1440, 900, init=PENDING)
    toasts = page.locator("#toasts")
    await expect(toasts).to_contain_text(
        "Recorded before the connection dropped: override I1 → NR12"
    )
    await expect(toasts).to_contain_text(
        "NOT recorded (the connection dropped first): decline I2. Send it again if it is still needed."
    )
    await page.click("#queue .queue-item[data-id='I2']")
    await expect(page.locator("#rec-result")).to_contain_text("NOT recorded")
    assert await page.evaluate("sessionStorage.getItem('sdo-console-pending')") == "[]"
    await page.context.close()
    assert desk.errors == []


async def wait_for(desk: Desk, condition: Any) -> None:
    from .test_browser import CONSOLE_READY_TIMEOUT_S, wait_until  # noqa: PLC0415

    await wait_until(condition, CONSOLE_READY_TIMEOUT_S, "the console's picture")


async def test_words_deadlines_enter_and_new_calls_said_aloud(desk: Desk) -> None:
    """Names are words ("Criminal damage", "ASB"); a grade 2 call past its hour reads
    OVERDUE, one stamped ahead of the clock never more than its hour; a new call is said
    in the page's live region; a decline's reason is recorded with Enter."""
    ev = desk.ev
    late = ev.incident("L2", at=-70 * 60 + 60, category="criminal_damage")
    ahead = ev.incident("F2", at=60 + 120, category="asb")
    await desk.produce([late, ahead, grade_2(ev.recommendation("L2", [], at=1, rid="RL")),
                        grade_2(ev.recommendation("F2", [], at=2, rid="RF"))])  # fmt: skip
    page = await desk.open()
    l2 = page.locator("#queue .queue-item[data-id='L2']")
    await expect(l2.locator(".cat")).to_contain_text("Criminal damage")
    await expect(l2.locator(".timer")).to_have_text(re.compile(r"^OVERDUE (9|10|11):\d\d$"))
    f2 = page.locator("#queue .queue-item[data-id='F2']")
    await expect(f2.locator(".cat")).to_contain_text("ASB")
    await expect(f2.locator(".timer")).to_have_text(re.compile(r"^(1:00:00|[0-5]\d:\d\d)$"))
    await desk.produce(
        [ev.incident("N5", at=10, category="robbery"), ev.recommendation("N5", [], at=11)]
    )
    await expect(page.locator("#announcer")).to_have_text("New call N5, grade 1: robbery")
    await page.click("#queue .queue-item[data-id='L2']")
    await page.keyboard.press("d")
    await page.keyboard.type("duplicate of an earlier call")
    async with desk.deployments() as consumer:
        await page.keyboard.press("Enter")
        from tests.kafka_io import read_deployments  # noqa: PLC0415

        deployments = await read_deployments(consumer, KAFKA_TIMEOUT_S)
    assert [(d["incident_id"], d["decision"], d["reason"]) for d in deployments] == [
        ("L2", "declined", "duplicate of an earlier call")
    ]
    await page.close()
    assert desk.errors == []


def grade_2(rec: Any) -> Any:
    return rec.model_copy(update={"grade": 2, "response": Response.PRIORITY})


async def test_the_map_opens_in_a_window_of_its_own_that_follows_the_selection(
    desk: Desk,
) -> None:
    """ "Map window" opens the map alone in a second window (for another screen); a call
    selected in the main window is selected on it."""
    ev = desk.ev
    await desk.produce([ev.incident("I1", at=1), ev.incident("I2", at=2, lon=EAST[0], lat=EAST[1])])
    page = await desk.open()
    async with page.context.expect_page() as opened:
        await page.click("#map-window")
    popup = await opened.value
    await expect(popup.locator("body")).to_have_class(re.compile("map-only"))
    await expect(popup.locator("#map path.area")).to_have_count(
        len(desk.console.areas.neighbourhoods)
    )
    await expect(popup.locator("#queue")).to_be_hidden()
    await expect(popup.locator("#map .incident")).to_have_count(2)
    await page.click("#queue .queue-item[data-id='I2']")
    await expect(popup.locator("#map .incident.selected")).to_have_attribute("data-id", "I2")
    await popup.close()
    await page.close()
    assert desk.errors == []


async def test_a_removed_user_is_logged_out_saying_why(desk: Desk) -> None:
    """Removed from the users file while their page is open, a user is taken back to the
    login, told their access changed, and the page does not reconnect with the old token."""
    page = await desk.open(VIEWER_USER)
    remove_user(desk.console.users.path, VIEWER_USER)
    await expect(page.locator("#login")).to_be_visible()
    await expect(page.locator("#login-error")).to_have_text(
        "Your access was changed or removed: log in again with your current token."
    )
    assert await page.evaluate("sessionStorage.getItem('sdo-console-token')") is None
    await page.close()
    assert desk.errors == []
