"""One order under a backlog (issue 25): a live worker decides what ``sdo evaluate`` decides
on the same log, however the log reaches it.

A busy simulated log (two hours, 120 officers on duty, over 50 incidents, with the
simulated dispatcher's deployments) is evaluated offline (open loop) once; then it is published with ``sdo
replay --speed max``

* while a worker is already running (it catches up with a producer that outruns it: the
  partitions it has read to the end fill again while it works),
* before a worker starts (a backlog of every partition at once),

and every incident's sequence of recommendations (event time, number, recommended
officers, ranked candidates) must be exactly the offline one, with no deployment
dead-lettered. Without one order across partitions a worker applies a fetch's records
as they come, and decides otherwise (a deployment before its incident, an incident before
the fixes that preceded it).
"""

from __future__ import annotations

import asyncio
import signal
import time
from bisect import bisect_left
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final
from uuid import uuid4

import orjson
import pytest

from sdo.broker import EmbeddedBroker
from sdo.cli import main
from sdo.config import Settings
from sdo.domain.recommend import Policy
from sdo.evaluation.replay import replay
from sdo.stream.durable import WORKER

from .conftest import WorkerProcess
from .kafka import Collector

pytestmark = pytest.mark.integration

#: The busy log: two simulated hours of the pilot with 120 officers.
LOG_ARGS: Final = ["--seed", "4", "--hours", "2", "--officers", "120"]
LOG_START: Final = "2015-12-01T16:00:00Z"
#: The worker works through the log (about 43,000 events) within this.
CATCH_UP_TIMEOUT_S: Final = 240.0
#: No recommendation for this long once the expected count arrived: the worker is done.
QUIET_S: Final = 3.0
#: A killed worker's process is gone within this.
KILL_TIMEOUT_S: Final = 30.0

Rec = tuple[str, int, tuple[str, ...], tuple[str, ...]]


def by_incident(values: list[dict[str, Any]]) -> dict[str, list[Rec]]:
    out: dict[str, list[Rec]] = {}
    for rec in values:
        out.setdefault(rec["incident_id"], []).append(
            (
                rec["ts"],
                rec["seq"],
                tuple(rec["recommended"]),
                tuple(c["officer_id"] for c in rec["candidates"]),
            )
        )
    return out


@pytest.fixture(scope="module")
def busy_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[Rec]]]:
    """The log and what ``sdo evaluate`` recommends on it, per incident."""
    tmp = tmp_path_factory.mktemp("backlog")
    log = tmp / "busy.jsonl"
    assert main(["simulate", *LOG_ARGS, "--start", LOG_START, "--out", str(log)]) == 0
    # open loop: the live worker applies the log's own deployments, as evaluate does then
    argv = ["evaluate", str(log), "--policy", "thrive", "--open-loop", "--out", str(tmp / "eval")]
    assert main(argv) == 0
    lines = (tmp / "eval" / "recommendations.jsonl").read_bytes().splitlines()
    offline = by_incident([orjson.loads(line) for line in lines])
    assert len(offline) >= 50, f"a busy log: {len(offline)} incidents"
    text = log.read_text()
    assert text.count('"type":"deployment"') >= 5, "the simulated dispatcher decides some"
    return log, offline


def quiet(c: Collector) -> Callable[[Collector], bool]:
    """A condition: no new record for QUIET_S (from now on)."""
    seen, since = len(c.records), time.monotonic()

    def still(c: Collector) -> bool:
        nonlocal seen, since
        if len(c.records) != seen:
            seen, since = len(c.records), time.monotonic()
        return time.monotonic() - since >= QUIET_S

    return still


async def collect_until_done(
    bootstrap: str, worker: WorkerProcess, expected: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[tuple[bytes, dict[str, Any]]]]:
    """Every recommendation, dead letter and alert (with its key), once the worker has
    published ``expected`` recommendations and then nothing more for QUIET_S."""
    topics = worker.topics
    async with Collector(bootstrap, topics.recommendation, topics.deadletter, topics.alert) as c:
        await c.wait_for(
            lambda c: len(c.values(topics.recommendation)) >= expected,
            what=f"{expected} recommendations",
            limit_s=CATCH_UP_TIMEOUT_S,
        )
        await c.wait_for(quiet(c), what="the worker quiet", limit_s=CATCH_UP_TIMEOUT_S)
        alerts = [
            (r.key or b"", orjson.loads(r.value))
            for r in c.records
            if r.topic == topics.alert and r.value is not None
        ]
        return c.values(topics.recommendation), c.values(topics.deadletter), alerts


def alert_problems(alerts: list[tuple[bytes, dict[str, Any]]]) -> list[str]:
    """Each alert keyed by its identity, published once, every clear after its raise on
    the same key (so the same partition: consumers see them in order)."""
    problems = []
    ids = [a["event_id"] for _, a in alerts]
    repeated = {i for i in ids if ids.count(i) > 1}
    if repeated:
        problems.append(
            f"{len(repeated)} alert(s) published more than once, e.g. {sorted(repeated)[:3]}"
        )
    raised: dict[bytes, bool] = {}
    for key, alert in sorted(alerts, key=lambda ka: (ka[1]["ts"], ka[1]["active"] is False)):
        if key != f"{alert['kind']}:{alert['subject']}".encode():
            problems.append(f"alert {alert['event_id']} keyed {key!r}")
        if alert["active"]:
            raised[key] = True
        elif not raised.pop(key, False):
            problems.append(f"clear {alert['event_id']} without a raise before it on {key!r}")
    return problems


def compare(offline: dict[str, list[Rec]], live: dict[str, list[Rec]]) -> list[str]:
    """What differs, incident by incident (empty: the same)."""
    problems = []
    for iid in sorted(set(offline) | set(live)):
        want, got = offline.get(iid, []), live.get(iid, [])
        if want != got:
            first = next(
                (n for n, (a, b) in enumerate(zip(want, got, strict=False)) if a != b),
                min(len(want), len(got)),
            )
            problems.append(
                f"{iid}: {len(got)} live, {len(want)} offline; first difference at {first}: "
                f"live {got[first] if first < len(got) else None}, "
                f"offline {want[first] if first < len(want) else None}"
            )
    return problems


def forced(*workers: WorkerProcess) -> str:
    """The workers' warnings of records released out of order (a fetch unanswered for
    the ordering's idle bound: a stalled machine, not the merge), for a failure message."""
    lines = [
        line.strip() for w in workers for line in w.output if "before every input partition" in line
    ]
    return f"\nforced out of order by the worker: {lines[:5]}" if lines else ""


def summary(
    offline: dict[str, list[Rec]],
    recs: list[dict[str, Any]],
    letters: list[dict[str, Any]],
    how: str,
) -> None:
    """One line of the comparison's figures (shown with ``pytest -s``)."""
    same = len(offline) - len(compare(offline, by_incident(recs)))
    print(
        f"\nbacklog, {how}: {same}/{len(offline)} incidents with evaluate's recommendations, "
        f"{len(recs)} recommendations, {len(letters)} dead letters"
    )


async def test_a_worker_running_while_the_log_is_published_at_full_speed_decides_as_evaluate(
    broker: EmbeddedBroker,
    topic_prefix: str,
    start_worker: Callable[..., WorkerProcess],
    busy_log: tuple[Path, dict[str, list[Rec]]],
) -> None:
    """The worker is running when ``sdo replay --speed max`` starts: every incident's
    recommendations are evaluate's, one for one, and no deployment is dead-lettered."""
    log, offline = busy_log
    worker = start_worker()
    expected = sum(len(v) for v in offline.values())
    collecting = asyncio.create_task(collect_until_done(broker.bootstrap, worker, expected))
    settings = Settings(broker=broker.url, topic_prefix=topic_prefix)
    await replay(log, settings, speed=None)
    recs, letters, alerts = await collecting
    summary(offline, recs, letters, "worker running, replay --speed max")
    assert letters == [], [(d["source_topic"], d["error"]) for d in letters[:5]]
    assert alerts and not alert_problems(alerts), alert_problems(alerts)[:10]
    problems = compare(offline, by_incident(recs))
    assert not problems, (
        f"{len(problems)} of {len(offline)} incidents differ:\n"
        + "\n".join(problems[:10])
        + forced(worker)
    )


async def test_a_worker_started_after_the_log_was_published_decides_as_evaluate(
    broker: EmbeddedBroker,
    topic_prefix: str,
    start_worker: Callable[..., WorkerProcess],
    busy_log: tuple[Path, dict[str, list[Rec]]],
) -> None:
    """The whole log is on the topics before the worker starts: a backlog on every
    partition at once. The same recommendations, and no dead letter."""
    log, offline = busy_log
    settings = Settings(broker=broker.url, topic_prefix=topic_prefix)
    await replay(log, settings, speed=None)
    worker = start_worker()
    expected = sum(len(v) for v in offline.values())
    recs, letters, alerts = await collect_until_done(broker.bootstrap, worker, expected)
    summary(offline, recs, letters, "log published first")
    assert letters == [], [(d["source_topic"], d["error"]) for d in letters[:5]]
    assert alerts and not alert_problems(alerts), alert_problems(alerts)[:10]
    problems = compare(offline, by_incident(recs))
    assert not problems, (
        f"{len(problems)} of {len(offline)} incidents differ:\n"
        + "\n".join(problems[:10])
        + forced(worker)
    )


def first_of_each(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The recommendations with repeats left out (the same number and content again: what a
    restarted worker publishes again for the records it reads again)."""
    seen: set[tuple[str, int, str]] = set()
    out = []
    for rec in values:
        mark = (rec["incident_id"], rec["seq"], rec["recommendation_id"])
        if mark not in seen:
            seen.add(mark)
            out.append(rec)
    return out


async def test_a_worker_killed_mid_backlog_restarts_and_decides_as_evaluate(
    broker: EmbeddedBroker,
    topic_prefix: str,
    start_worker: Callable[..., WorkerProcess],
    busy_log: tuple[Path, dict[str, list[Rec]]],
) -> None:
    """SIGKILL while the worker is a third of the way through the backlog; another worker
    of the same group takes over from the tables and the committed offsets. Repeats of what
    the first published are allowed (it reads again what it had not committed); nothing is
    missing and nothing differs from evaluate's recommendations."""
    log, offline = busy_log
    settings = Settings(broker=broker.url, topic_prefix=topic_prefix)
    await replay(log, settings, speed=None)
    app_id = f"sdo-backlog-kill-{uuid4().hex[:8]}"
    first = start_worker(app_id)
    expected = sum(len(v) for v in offline.values())
    async with Collector(broker.bootstrap, first.topics.recommendation) as c:
        await c.wait_for(
            lambda c: len(c.values(first.topics.recommendation)) >= expected // 3,
            what=f"a third of the {expected} recommendations",
            limit_s=CATCH_UP_TIMEOUT_S,
        )
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(KILL_TIMEOUT_S)
    second = start_worker(app_id)
    recs, letters, _ = await collect_until_done(broker.bootstrap, second, expected)
    summary(offline, first_of_each(recs), letters, "kill -9 mid-backlog")
    assert letters == [], [(d["source_topic"], d["error"]) for d in letters[:5]]
    problems = compare(offline, by_incident(first_of_each(recs)))
    assert not problems, (
        f"{len(problems)} of {len(offline)} incidents differ:\n"
        + "\n".join(problems[:10])
        + forced(first, second)
    )


def fixes_in(log: Path) -> dict[str, list[tuple[datetime, str]]]:
    """Each officer's fixes in the log, in its order (time and event id)."""
    out: dict[str, list[tuple[datetime, str]]] = {}
    for line in log.read_bytes().splitlines():
        event = orjson.loads(line)
        if event["type"] == "officer.location":
            out.setdefault(event["officer_id"], []).append((_time(event["ts"]), event["event_id"]))
    return out


async def test_two_workers_through_the_backlog_wait_for_each_others_officers_and_watch_their_own(
    broker: EmbeddedBroker,
    topic_prefix: str,
    start_worker: Callable[..., WorkerProcess],
    busy_log: tuple[Path, dict[str, list[Rec]]],
) -> None:
    """Two workers of one group work through the log, published at full speed. Neither
    decides exactly as evaluate (README, Several workers), but:

    * a deployment naming an officer of the other worker's partitions waits until that
      officer is in the table, rather than being dead-lettered (but for a call closed
      meanwhile);
    * the officers table ends with each officer's last fix: a deployment sends officers
      of the other worker's partitions, whose record it writes from its view of them,
      and their owner then writes them again, merged;
    * no stale-position alert is raised for an officer who had a fix within the five
      minutes before it: only an officer's owner watches them (the other worker sees
      their fixes at the owner's commits, minutes of event time late in a backlog)."""
    log, _ = busy_log
    app_id = f"sdo-backlog-pair-{uuid4().hex[:8]}"
    first = start_worker(app_id)
    before = len(first.restores())
    second = start_worker(app_id)
    changelog = first.changelog("officers")
    topics = first.topics
    async with Collector(broker.bootstrap, topics.deadletter) as c:
        # (ready is said before the group has handed the newcomer any partition)
        await c.wait_for(
            lambda c: len(first.restores()) > before and bool(second.restores()),
            what="both workers given partitions",
            limit_s=90.0,
        )
    settings = Settings(broker=broker.url, topic_prefix=topic_prefix)
    await replay(log, settings, speed=None)
    fixes = fixes_in(log)
    want = {oid: their[-1][1] for oid, their in fixes.items()}

    def stale(c: Collector) -> dict[str, tuple[str, str | None]]:
        table: dict[str, str | None] = {}
        for rec in c.values(changelog):
            table[rec["officer_id"]] = rec.get("fix_event")
        return {o: (e, table.get(o)) for o, e in want.items() if table.get(o) != e}

    async with Collector(broker.bootstrap, changelog, topics.deadletter, topics.alert) as c:
        try:
            await c.wait_for(
                lambda c: not stale(c),
                what="every officer's last fix in the officers table",
                limit_s=CATCH_UP_TIMEOUT_S,
            )
        except AssertionError as exc:
            left = stale(c)
            raise AssertionError(
                f"{len(left)} of {len(want)} officers' records in the table are not at their "
                f"last fix (officer: (last fix, the table's)), e.g. {sorted(left.items())[:5]}"
            ) from exc
        # (and what the workers write after that point)
        await c.wait_for(quiet(c), what="the workers quiet", limit_s=CATCH_UP_TIMEOUT_S)
        letters = c.values(topics.deadletter)
        assert not stale(c)
        writers = {rec.get(WORKER) for rec in c.values(changelog)}
        raises = [
            a for a in c.values(topics.alert) if a["kind"] == "stale_location" and a["active"]
        ]
    assert len(writers) == 2, f"both workers wrote officers: {writers}"
    # A deployment that waited for the other worker's officer lets its incident's later
    # events by; if one closes the call, it is refused then (README, Several workers).
    lost = [d["error"] for d in letters if not d["error"].endswith(" is closed")]
    assert lost == [], lost[:5]
    false = false_stale_raises(fixes, raises)
    assert not false, f"{len(false)} of {len(raises)} stale-position alerts false, e.g. {false[:5]}"


def false_stale_raises(
    fixes: dict[str, list[tuple[datetime, str]]], raises: list[dict[str, Any]]
) -> list[tuple[str, str, str]]:
    """The stale-position raises whose officer had a fix (``fixes_in``) within the five
    minutes (the policy's bound) before the alert: (officer, alert time, that fix's). (A
    timer fires before an event of its own time: a fix at the alert's time is after it.)"""
    bound = timedelta(seconds=Policy().stale_after_s)
    out = []
    for alert in raises:
        at = _time(alert["ts"])
        times = [t for t, _ in fixes.get(alert["subject"], [])]
        before = bisect_left(times, at)
        last = times[before - 1] if before else None
        if last is not None and at - last < bound:
            out.append((alert["subject"], alert["ts"], last.isoformat()))
    return out


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
