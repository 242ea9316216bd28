"""The console page in real headless Chromium (Debian's ``chromium``), fed by the real broker."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect

from sdo.broker import EmbeddedBroker
from sdo.config import Settings
from sdo.console.auth import Users, add_user
from sdo.console.server import Console
from sdo.events import Alert, Response, encode
from tests.conftest import SYNTHETIC_AREAS
from tests.kafka_io import produce, read_deployments
from tests.waits import wait_until

#: The event factory of ``conftest.py`` (a fixture; conftest modules are not importable).
EventsType = Any

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"

#: Bounds on every wait (the work itself takes well under a second).
CONSOLE_READY_TIMEOUT_S = 30.0
BROWSER_LAUNCH_TIMEOUT_S = 60.0
PAGE_TIMEOUT_MS = 20_000
KAFKA_TIMEOUT_S = 20.0


@pytest.fixture
def events_type(ev: EventsType) -> Any:
    return type(ev)


@pytest.fixture
def chromium() -> str:
    assert Path(CHROMIUM).exists(), "install Debian's chromium package (apt-get install chromium)"
    return CHROMIUM


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        b = await pw.chromium.launch(
            executable_path=chromium,
            args=CHROMIUM_ARGS,
            headless=True,
            timeout=BROWSER_LAUNCH_TIMEOUT_S * 1000,
        )
        try:
            yield b
        finally:
            await b.close()


async def open_page(
    browser: Browser, url: str, token: str, errors: list[str], init_script: str = ""
) -> Page:
    page = await browser.new_page(viewport={"width": 1600, "height": 1000})
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    if init_script:
        await page.add_init_script(init_script)

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            errors.append(msg.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(url)
    await page.fill("#token", token)
    await page.click("#login-btn")
    await page.wait_for_selector("#login", state="hidden")
    return page


@contextlib.asynccontextmanager
async def live_console(
    broker: EmbeddedBroker, topic_prefix: str, tmp_path: Path, sdo_user: str, viewer_user: str
) -> AsyncIterator[tuple[Console, str, str]]:
    """A console on the broker, caught up, with an SDO and a viewer: (console, their tokens)."""
    users = tmp_path / "users.json"
    sdo_token, _ = add_user(users, sdo_user, "sdo")
    viewer_token, _ = add_user(users, viewer_user, "viewer")
    settings = Settings(broker=broker.url, topic_prefix=topic_prefix, areas=SYNTHETIC_AREAS)
    async with Console(settings, Users(users), bind="127.0.0.1:0") as console:
        await wait_until(
            lambda: console.health.caught_up, CONSOLE_READY_TIMEOUT_S, "console caught up"
        )
        yield console, sdo_token, viewer_token


SDO_USER, VIEWER_USER = "sgt.jones", "pc.watch"


@dataclass
class Desk:
    """A console on the broker, caught up, with an SDO and a viewer; pages on it for them,
    and events a minute old (so the deadline timers show a live emergency)."""

    browser: Browser
    console: Console
    bootstrap: str  # the broker's
    tokens: dict[str, str]
    ev: Any
    #: console errors and uncaught exceptions of every page opened (a test ends asserting none)
    errors: list[str] = field(default_factory=list)

    async def open(self, user: str = SDO_USER, init_script: str = "") -> Page:
        """A page of ``user``'s, logged in and welcomed by name."""
        page = await open_page(
            self.browser, self.console.url, self.tokens[user], self.errors, init_script
        )
        await expect(page.locator("#user-name")).to_have_text(user, timeout=PAGE_TIMEOUT_MS)
        return page

    @contextlib.asynccontextmanager
    async def deployments(self) -> AsyncIterator[AIOKafkaConsumer]:
        """A consumer of the deployment topic, from its start."""
        consumer = AIOKafkaConsumer(
            self.console.topics.deployment,
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            yield consumer
        finally:
            await consumer.stop()

    async def produce(self, events: list[Any]) -> None:
        """Publish ``events`` to the console's input topics (keyed as the worker keys them)."""
        await produce(self.bootstrap, self.console.topics, events)


@pytest.fixture
async def desk(
    browser: Browser, broker: EmbeddedBroker, topic_prefix: str, tmp_path: Path, events_type: Any
) -> AsyncIterator[Desk]:
    async with live_console(broker, topic_prefix, tmp_path, SDO_USER, VIEWER_USER) as (
        console,
        sdo_token,
        viewer_token,
    ):
        ev = events_type(datetime.now(UTC) - timedelta(seconds=60))
        tokens = {SDO_USER: sdo_token, VIEWER_USER: viewer_token}
        yield Desk(browser, console, broker.bootstrap, tokens, ev)


async def test_sdo_sees_the_picture_and_accepts_a_recommendation(desk: Desk) -> None:
    """The page loads without console errors; officers and an incident appear once their
    events reach Kafka; the SDO's Accept becomes a deployment event on Kafka and the page
    shows it; a viewer's page offers no Accept and the server refuses a forced one."""
    ev, console = desk.ev, desk.console
    page = await desk.open()
    # (the areas come in a message of their own, after the welcome that names the user)
    await expect(page.locator("#map path.area")).to_have_count(
        len(console.areas.neighbourhoods), timeout=PAGE_TIMEOUT_MS
    )

    events = [
        ev.profile("o1", callsign="NR11"),
        ev.status("o1", "available", at=1),
        ev.location("o1", at=2),
        ev.profile("o2", callsign="NR12"),
        ev.status("o2", "available", at=1),
        ev.location("o2", (-1.83, 52.59), at=2),
        ev.incident("I1", at=3),
        ev.recommendation("I1", ["o1", "o2"], at=4, rid="R1"),
    ]
    await desk.produce(events)

    await page.wait_for_selector("#map .officer[data-id='o1']")
    await page.wait_for_selector("#map .officer[data-id='o2']")
    await page.click("#queue .queue-item[data-id='I1']")
    await page.wait_for_selector("#cands tr[data-id='o1'].recommended")
    await page.wait_for_selector("#map path.cand-line.recommended", state="attached")
    await expect(page.locator("#conn-state")).to_have_text("LIVE", timeout=PAGE_TIMEOUT_MS)

    viewer = await desk.open(VIEWER_USER)
    await viewer.wait_for_selector("#queue .queue-item[data-id='I1']")
    await viewer.click("#queue .queue-item[data-id='I1']")
    await viewer.wait_for_selector("#viewer-note", state="visible")
    assert await viewer.is_disabled("#btn-accept")
    forced = await viewer.evaluate(
        """([token]) => new Promise((resolve) => {
            const ws = new WebSocket(`ws://${location.host}/ws`);
            ws.onopen = () => ws.send(JSON.stringify({type: "auth", token}));
            ws.onmessage = (e) => {
              const m = JSON.parse(e.data);
              if (m.type === "hello") ws.send(JSON.stringify({type: "accept", incident_id: "I1",
                recommendation_id: "R1", request_id: "forced"}));
              if (m.request_id === "forced") { ws.close(); resolve(m); }
            };
        })""",
        [desk.tokens[VIEWER_USER]],
    )
    assert forced["type"] == "error" and forced["code"] == "forbidden"

    async with desk.deployments() as consumer:
        await page.wait_for_selector("#btn-accept:not([disabled])")
        await page.click("#btn-accept")
        deployments = await read_deployments(consumer, KAFKA_TIMEOUT_S)
    dep = deployments[0]
    assert (
        dep["incident_id"],
        dep["decision"],
        dep["officer_ids"],
        dep["by"],
        dep["recommendation_id"],
    ) == (
        "I1",
        "accepted",
        ["o1"],
        SDO_USER,
        "R1",
    )
    # Every page shows the decision once it comes back through Kafka.
    for p in (page, viewer):
        await p.wait_for_selector("#resourced .queue-item[data-id='I1']", state="attached")
        await p.wait_for_selector("#map .officer.st-en_route[data-id='o1']")
    await page.wait_for_selector(".toast.ok")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "console.png"), full_page=True)
    await viewer.close()
    await page.close()
    assert desk.errors == []


async def test_sdo_sees_new_incidents_and_works_the_queue_from_the_keyboard(desk: Desk) -> None:
    """Incidents arriving while the page is open are marked NEW, the tab's title counts the
    queue, and each item says who its recommendation sends; an officer's tooltip gives
    their transport and skills, a neighbourhood's its typology and named officer; an alert
    about an incident opens it. J/K (or the arrows) move through the pending incidents in
    queue order; ? shows the keys; O opens the override form, where typed letters are
    text, not keys, and whose officers come the available nearest first, then the busy;
    A only puts the focus on Accept (nothing is sent), moving to another incident takes
    it away, and Enter then accepts;
    a viewer's page, opened later, marks nothing NEW, and its A does nothing."""
    ev = desk.ev
    page = await desk.open()
    events = [
        ev.profile("o1", callsign="NR11"),
        ev.status("o1", "available", at=1),
        ev.location("o1", at=2),
        ev.profile("N-0101", callsign="NB01", role="neighbourhood"),  # Mere Green's named
        ev.status("N-0101", "committed", at=1),
        ev.profile("o2"), ev.status("o2", "available", at=1), ev.location("o2", (-1.83, 52.55), at=2),
        ev.profile("o3"), ev.status("o3", "available", at=1), ev.location("o3", (-1.8155, 52.595), at=2),
        *[e for n, iid in enumerate(("I1", "I2", "I3")) for e in (
            ev.incident(iid, at=3 + 2 * n),
            ev.recommendation(iid, ["o1"], at=4 + 2 * n, rid=f"R{iid}"),
        )],
        Alert(
            event_id="a-unresourced", ts=ev.t0 + timedelta(seconds=9), kind="unresourced",
            severity="critical", subject="I3", message="grade 1 incident I3 unresourced",
        ),
    ]  # fmt: skip
    await desk.produce(events)
    await expect(page.locator("#queue .queue-item")).to_have_count(3)
    # each queue item says who the recommendation sends, and how soon
    await expect(page.locator("#queue .queue-item[data-id='I1'] .who")).to_have_text(
        "→ NR11 · ETA 2:00"
    )
    # an officer on the map tells what they are doing, then what they can do
    tip = page.locator("#map .officer[data-id='o1']")
    await expect(tip).to_have_attribute("title", "NR11 · response · available\ncar · first aid")
    # a neighbourhood tells its typology, its named officer and what they are doing
    area = page.locator("#map path.area[data-id='N01']")
    box = await area.bounding_box()
    assert box is not None
    await page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3)
    await expect(page.locator(".map-tip").filter(has_text="(N01)")).to_have_text(
        re.compile(r"Mere Green \(N01\) .* typology 1\s*named officer NB01 \(committed\)")
    )
    # an alert about an incident opens it
    await page.click("#alerts li.link[data-incident='I3']")
    await expect(page.locator("#queue .queue-item.selected")).to_have_attribute("data-id", "I3")
    # arrived while the page was open: marked NEW; the tab counts the queue
    await expect(page.locator("#queue .queue-item.fresh .new")).to_have_count(3)
    await expect(page).to_have_title("(3, 3 grade 1) SDO console")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "console-new.png"))
    selected = page.locator("#queue .queue-item.selected")

    async def keys(*names: str) -> None:
        for name in names:
            await page.keyboard.press(name)

    await keys("k", "k", "k")
    await expect(selected).to_have_attribute("data-id", "I1")
    await keys("ArrowDown")
    await expect(selected).to_have_attribute("data-id", "I2")
    await keys("k")
    await expect(selected).to_have_attribute("data-id", "I1")
    await keys("ArrowUp")  # the top stays the top
    await expect(selected).to_have_attribute("data-id", "I1")
    await keys("j", "j", "j", "j")  # and the bottom the bottom
    await expect(selected).to_have_attribute("data-id", "I3")
    await keys("k")
    await expect(selected).to_have_attribute("data-id", "I2")

    await keys("?")
    await expect(page.locator("#keys")).to_be_visible()
    await keys("j")  # the help is open: no other key acts
    await expect(selected).to_have_attribute("data-id", "I2")
    await keys("Escape")
    await expect(page.locator("#keys")).to_be_hidden()

    await keys("o")
    await expect(page.locator("#decide-form")).to_be_visible()
    await expect(page.locator("#decide-reason")).to_be_focused()
    # the officers to send instead: the available, nearest to the call first; then the
    # busy (sending them needs a confirmation)
    options = page.locator("#pick-officer option")
    await expect(options).to_have_count(5)
    assert [await o.get_attribute("value") for o in await options.all()] == [
        "",
        "o3",
        "o1",
        "o2",
        "N-0101",
    ]
    await expect(options.nth(3)).to_have_text("CSo2 (response, north, 5.1 km; first aid)")
    await expect(options.nth(4)).to_have_text(
        "NB01 (committed, neighbourhood, north, no fix; first aid)"
    )
    await page.keyboard.type("ajk")  # text in the reason, not keys
    await expect(page.locator("#decide-reason")).to_have_value("ajk")
    # what sending them does to their cluster's cover: north-1 has three, its minimum is 4
    cover = page.locator("#decide-cover li")
    await expect(cover).to_have_count(0)
    await page.select_option("#pick-officer", "o3")
    await expect(cover).to_have_text(
        ["cluster north-1 would have 2 available response officer(s), below its minimum cover of 4"]
    )
    await page.select_option("#pick-officer", "o2")
    await expect(cover).to_contain_text(["would have 1 available"])
    await expect(selected).to_have_attribute("data-id", "I2")
    await keys("Escape")
    await expect(page.locator("#decide-form")).to_be_hidden()

    async with desk.deployments() as consumer:
        accept = page.locator("#btn-accept")
        await keys("a")
        await expect(accept).to_be_focused()
        # moving on takes the focus off Accept: an Enter then accepts nothing
        await keys("j")
        await expect(accept).not_to_be_focused()
        await keys("Enter", "k")
        await expect(selected).to_have_attribute("data-id", "I2")
        await keys("a")
        await expect(accept).to_be_focused()
        await keys("Enter")
        # everything sent up to this decision: A alone, or Enter after moving on, sent none
        deployments = await read_deployments(consumer, KAFKA_TIMEOUT_S, until="I2")
    assert [(d["incident_id"], d["decision"], d["by"]) for d in deployments] == [
        ("I2", "accepted", SDO_USER)
    ]
    await page.wait_for_selector("#resourced .queue-item[data-id='I2']", state="attached")
    # a recommendation that names nobody says so in the queue
    await desk.produce([ev.recommendation("I3", [], at=20, rid="RI3-none")])
    await expect(page.locator("#queue .queue-item[data-id='I3'] .who")).to_have_text(
        "no officer recommended"
    )

    viewer = await desk.open(VIEWER_USER)
    await expect(viewer.locator("#queue .queue-item")).to_have_count(2)
    # what a page finds when it connects is no news
    await expect(viewer.locator("#queue .queue-item.fresh")).to_have_count(0)
    await expect(viewer).to_have_title("(2, 2 grade 1) SDO console")
    await viewer.keyboard.press("j")
    await expect(viewer.locator("#queue .queue-item.selected")).to_have_attribute("data-id", "I1")
    await viewer.keyboard.press("a")
    await expect(viewer.locator("#btn-accept")).not_to_be_focused()
    await expect(viewer.locator("#btn-accept")).to_be_disabled()
    await viewer.close()
    await page.close()
    assert desk.errors == []


async def test_sdo_finds_an_officer_by_callsign(desk: Desk) -> None:
    """A cluster's cover is its available response officers. ``/`` opens Find; typing
    lists the officers whose callsign holds it (those it begins first), then those with a
    skill that holds it (the available first), each with what they are doing, where, and
    what they can do; the arrows choose, Enter marks the one chosen on the map and opens
    the incident they are on; Esc clears it. An incident's id finds it, and Enter opens it.
    Keys typed in Find are text, not the page's keys. A skill is found as the panel
    writes it (``first_aid``); ``/`` after a mark starts afresh; Esc clears the mark."""
    ev = desk.ev
    page = await desk.open()
    events = [
        ev.profile("o1", callsign="NR11"), ev.status("o1", "available", at=1),
        ev.location("o1", at=2),
        ev.profile("o2", callsign="NR12"), ev.location("o2", (-1.83, 52.59), at=2),
        ev.incident("I1", at=3),
        ev.status("o2", "en_route", at=4, incident_id="I1"),
        ev.profile("o3", callsign="NR21", skills=["taser"]), ev.status("o3", "off_duty", at=1),
        ev.profile("o4", callsign="ANR1"), ev.status("o4", "available", at=1),
        ev.profile("o5", callsign="PC5", role="pcso", skills=["taser", "first_aid"]),
        ev.status("o5", "available", at=1),
        ev.location("o5", at=2),
        ev.incident("I2", at=5),
    ]  # fmt: skip
    await desk.produce(events)
    await expect(page.locator("#queue .queue-item")).to_have_count(2)
    await page.wait_for_selector("#map .officer[data-id='o2']")
    # north-1's cover counts its available response officers (o1), not the PCSO beside:
    # in the strip above the map, and on the Cover board
    await expect(page.locator("#cover-strip .cover-chip[data-cluster='north-1']")).to_have_text(
        "north-1 1/4 ▼"
    )
    await page.click("#tab-cover")
    cover = page.locator("#av-cluster tr[data-id='north-1'] td.cover")
    await expect(cover).to_have_text("1 / 4")
    await expect(cover).to_have_class("cover below")
    await page.click("#tab-map")
    # a cover-gap alert gives the cluster's count now beside the one it was raised with,
    # and its time in UK local time (GMT or BST), not UTC
    gap = ev.alert("north-1", at=6)
    await desk.produce([gap])
    alert = page.locator("#alerts li").filter(has_text="cover gap")
    await expect(alert).to_contain_text("north-1 below minimum cover · now 1 / 4")
    local = gap.ts.astimezone(ZoneInfo("Europe/London")).strftime("%H:%M:%S")
    await expect(alert).to_contain_text(local)
    await expect(alert).not_to_contain_text(local + "Z")
    await page.click("#queue .queue-item[data-id='I2']")
    selected = page.locator("#queue .queue-item.selected")
    await expect(selected).to_have_attribute("data-id", "I2")

    await page.keyboard.press("/")
    find, results = page.locator("#find"), page.locator("#find-results li")
    await expect(find).to_be_focused()
    await page.keyboard.type("nr1")  # j, k, a … would be keys of the page: here text
    await expect(find).to_have_value("nr1")
    # those it begins first, then those that hold it; not NR21 (the list follows the typing:
    # wait for the last letter's)
    await expect(results).to_have_count(3)
    assert [await li.get_attribute("data-id") for li in await results.all()] == [
        "o1",
        "o2",
        "o4",
    ]
    await expect(results.nth(0)).to_contain_text("NR11 · response · available")
    await expect(results.nth(0).locator(".sub")).to_have_text(re.compile(r"fix \d+:\d\d ago"))
    await expect(results.nth(1)).to_contain_text("NR12 · response · en route → I1")
    await expect(results.nth(2).locator(".sub")).to_have_text("no position yet · car · first aid")
    await expect(results.nth(0)).to_have_class("active")
    await page.keyboard.press("ArrowDown")
    await expect(results.nth(1)).to_have_class("active")
    await expect(selected).to_have_attribute("data-id", "I2")  # not the queue's arrow
    await page.keyboard.press("Enter")
    await expect(page.locator("#find-results")).to_be_hidden()
    await expect(find).to_have_value("NR12")
    await expect(page.locator("#map .officer.found")).to_have_attribute("data-id", "o2")
    await expect(page.locator("#map .officer.found circle.find-ring")).to_have_count(1)
    # the incident they are on is opened
    await expect(selected).to_have_attribute("data-id", "I1")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "console-find.png"))

    await page.keyboard.press("/")
    await page.keyboard.press("Control+a")
    await page.keyboard.type("zz9")
    await expect(results).to_have_text(["no officer, skill or call matches “zz9”"])
    # a skill: who has it, the available first, what they can do under each
    await page.keyboard.press("Control+a")
    await page.keyboard.type("tase")
    await expect(results).to_have_count(2)
    assert [await li.get_attribute("data-id") for li in await results.all()] == ["o5", "o3"]
    await expect(results.nth(0).locator(".sub")).to_contain_text("car · taser, first aid")
    await expect(results.nth(1).locator(".sub")).to_have_text(
        "off duty: not on the map · car · taser"
    )
    await page.keyboard.press("Escape")
    await expect(find).to_have_value("")
    await expect(find).not_to_be_focused()
    await expect(page.locator("#map .officer.found")).to_have_count(0)
    # an incident by its id: Enter opens it
    await page.keyboard.press("/")
    await page.keyboard.type("i2")
    await expect(results).to_have_count(1)
    await expect(results.nth(0)).to_have_attribute("data-id", "I2")
    await expect(results.nth(0).locator(".sub")).to_have_text("waiting · Burglary in progress")
    await page.keyboard.press("Enter")
    await expect(selected).to_have_attribute("data-id", "I2")
    await expect(find).to_have_value("")
    # a skill as the panel writes it ("needs first_aid") finds who has it too
    await page.keyboard.press("/")
    await page.keyboard.type("first_aid")
    await expect(results.filter(has_text="first aid")).to_have_count(4)
    await expect(results).to_have_count(4)
    await page.keyboard.press("Escape")
    # after an officer is marked, / starts afresh (the old text is replaced, not added
    # to), and Esc clears the mark with the field no longer focused
    await page.keyboard.press("/")
    await page.keyboard.type("nr12")
    await page.keyboard.press("Enter")
    await expect(page.locator("#map .officer.found")).to_have_count(1)
    await expect(find).not_to_be_focused()
    await page.keyboard.press("/")
    await page.keyboard.type("i1")
    await expect(find).to_have_value("i1")
    await page.keyboard.press("Escape")
    await page.keyboard.press("/")
    await page.keyboard.type("nr12")
    await page.keyboard.press("Enter")
    await expect(page.locator("#map .officer.found")).to_have_attribute("data-id", "o2")
    await expect(find).not_to_be_focused()
    await page.keyboard.press("Escape")
    await expect(page.locator("#map .officer.found")).to_have_count(0)
    await expect(find).to_have_value("")
    await page.close()
    assert desk.errors == []


#: Counts the oscillators the page starts (Web Audio's, in the page's own world).
COUNT_TONES = """
window.tones = 0;
const start = OscillatorNode.prototype.start;
OscillatorNode.prototype.start = function (...args) { window.tones += 1; return start.apply(this, args); };
"""


async def test_a_call_waiting_at_grade_1_chimes_once_unless_the_sound_is_off(desk: Desk) -> None:
    """A call that arrives, or is regraded, at grade 1 while the page is open sounds a
    chime (two tones), once, and again once when it is alerted unresourced; a grade 2
    call none; ``M`` (or the button) turns the sound
    off, and it stays off when the page is loaded again, which chimes for none of the
    calls it finds."""
    ev = desk.ev
    page = await desk.open(init_script=COUNT_TONES)
    sound = page.locator("#sound-btn")
    await expect(sound).to_have_text("Sound on")

    def grade_2(rec: Any) -> Any:
        return rec.model_copy(update={"grade": 2, "response": Response.PRIORITY})

    await desk.produce(
        [
            ev.incident("I1", at=1),
            ev.recommendation("I1", [], at=2, rid="R1"),
            ev.incident("I2", at=3),
            grade_2(ev.recommendation("I2", [], at=4, rid="R2")),
            ev.recommendation("I1", ["o8"], at=5, rid="R1b"),  # I1 again: no second chime
        ],
    )
    await expect(page.locator("#queue .queue-item")).to_have_count(2)
    await expect(sound).to_have_attribute("data-chimes", "1")
    await expect(page.locator("#queue .queue-item[data-id='I1'] .who")).to_contain_text("→ o8")
    await expect(page.locator("#queue .queue-item[data-id='I2'] .grade")).to_have_text("2")
    assert await page.evaluate("window.tones") == 2
    # regraded to 1 while it waits
    await desk.produce([ev.recommendation("I2", [], at=6, rid="R2b")])
    await expect(sound).to_have_attribute("data-chimes", "2")
    # past its deadline with nobody deployed: again, once (the alert repeated is not news)
    unresourced = Alert(
        event_id="a-unresourced", ts=ev.t0 + timedelta(seconds=7), kind="unresourced",
        severity="critical", subject="I1", message="grade 1 incident I1 unresourced",
    )  # fmt: skip
    await desk.produce([unresourced, unresourced.model_copy(update={"event_id": "a-again"})])
    await expect(page.locator("#alerts li")).to_have_count(1)
    await expect(sound).to_have_attribute("data-chimes", "3")

    await page.keyboard.press("m")
    await expect(sound).to_have_text("Sound off")
    await expect(sound).to_have_attribute("aria-pressed", "false")
    await desk.produce(
        [ev.incident("I3", at=7), ev.recommendation("I3", [], at=8, rid="R3")],
    )
    await expect(page.locator("#queue .queue-item")).to_have_count(3)
    await expect(page.locator("#queue .queue-item[data-id='I3'] .who")).to_have_text(
        "no officer recommended"
    )
    assert await page.evaluate("window.tones") == 6  # the third chime's, no fourth
    await expect(sound).to_have_attribute("data-chimes", "3")

    await page.reload()  # (the session keeps the token: it connects again)
    await expect(page.locator("#queue .queue-item")).to_have_count(3)
    await expect(sound).to_have_text("Sound off")
    await sound.click()
    await expect(sound).to_have_text("Sound on")
    await desk.produce(
        [ev.recommendation("I1", ["o9"], at=9, rid="R1c"), ev.incident("I4", at=10)],
    )
    await expect(page.locator("#queue .queue-item")).to_have_count(4)
    await expect(page.locator("#queue .queue-item[data-id='I1'] .who")).to_contain_text("→ o9")
    # found waiting on connecting (I1, re-issued since), or not graded yet: no chime
    assert await page.evaluate("window.tones") == 0
    await expect(sound).not_to_have_attribute("data-chimes", re.compile("."))
    await page.close()
    assert desk.errors == []


#: How long a person holds a click (press to release), ms: long enough for the page to
#: redraw several times while officers move.
HELD_CLICK_MS = 300


async def test_a_held_click_lands_while_officers_move(desk: Desk) -> None:
    """The page redraws on every batch of messages. While an officer moves (a fix every
    few tens of milliseconds), a click held as long as a person holds one still selects
    the incident in the queue, and still ticks a candidate in the override form: what did
    not change is not redrawn, and a press selects."""
    ev = desk.ev
    page = await desk.open()
    await desk.produce(
        [
            ev.profile("o1", callsign="NR11"),
            ev.status("o1", "available", at=1),
            ev.location("o1", at=2),
            ev.profile("o2", callsign="NR12"),
            ev.status("o2", "available", at=1),
            ev.location("o2", (-1.83, 52.55), at=2),
            ev.incident("I1", at=3),
            ev.recommendation("I1", ["o1"], at=4, rid="R1"),
            ev.incident("I2", at=5),
            ev.recommendation("I2", ["o1", "o2"], at=6, rid="R2"),
        ]
    )
    await expect(page.locator("#queue .queue-item")).to_have_count(2)
    producer = AIOKafkaProducer(bootstrap_servers=desk.bootstrap)
    await producer.start()
    stop = asyncio.Event()
    moves = 0

    async def move() -> None:
        nonlocal moves
        while not stop.is_set():
            moves += 1
            fix = ev.location("o2", (-1.83 + moves * 1e-4, 52.55), at=10 + moves)
            await producer.send_and_wait(desk.console.topics.location, key=b"o2", value=encode(fix))
            await asyncio.sleep(0.02)

    async def hold(selector: str) -> None:
        # (shown first: on a busy machine the page may not have laid it out yet, and an
        # element not laid out has no box)
        await expect(page.locator(selector)).to_be_visible()
        box = await page.locator(selector).bounding_box()
        assert box is not None, selector
        await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        await page.mouse.down()
        await asyncio.sleep(HELD_CLICK_MS / 1000)
        await page.mouse.up()

    marker = page.locator("#map .leaflet-marker-icon:has(.officer[data-id='o2'])")
    mover = asyncio.create_task(move())
    try:
        first = await marker.get_attribute("style")
        await expect(marker).not_to_have_attribute("style", first or "")  # it moves
        await hold("#queue .queue-item[data-id='I2']")
        await expect(page.locator("#queue .queue-item.selected")).to_have_attribute("data-id", "I2")
        await page.click("#btn-override")
        await expect(page.locator("#decide-form")).to_be_visible()
        box = "#cands tr[data-id='o2'] input[type=checkbox]"
        await hold(box)
        await expect(page.locator(box)).to_be_checked()
        await expect(page.locator("#decide-what")).to_have_text("Send instead: NR12")
    finally:
        stop.set()
        await mover
        await producer.stop()
    assert moves > 10
    await page.close()
    assert desk.errors == []
