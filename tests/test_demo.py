"""sdo.demo: its wind-down (what stops on its own is let stop, the rest is cancelled) and
its users file."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sdo.console.auth import Users
from sdo.demo import _users, _wind_down


def test_tasks_that_end_on_their_own_close_before_the_rest_is_cancelled() -> None:
    """A feed that is closing its producer when the demo stops is let finish (not cancelled
    half way through the close); a task that never ends is cancelled after the grace."""
    log: list[str] = []

    async def feed(stop: asyncio.Event) -> None:
        await stop.wait()
        for _ in range(3):  # producer.stop(): flush, close the connection (a few turns)
            await asyncio.sleep(0)
        log.append("feed closed its producer")

    async def status() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            log.append("status cancelled")
            raise

    async def main() -> None:
        stop = asyncio.Event()
        ending = asyncio.create_task(feed(stop))
        other = asyncio.create_task(status())
        await asyncio.sleep(0)
        stop.set()
        await _wind_down((ending,), (other,), grace_s=30.0)
        assert ending.done() and not ending.cancelled()
        assert other.cancelled()

    asyncio.run(main())
    assert log == ["feed closed its producer", "status cancelled"]


def test_a_task_that_does_not_end_in_its_grace_is_cancelled() -> None:
    async def main() -> None:
        stuck = asyncio.create_task(asyncio.Event().wait())
        await _wind_down((stuck,), (), grace_s=0.01)
        assert stuck.cancelled()

    asyncio.run(main())


def test_a_users_file_given_is_kept_across_restarts(tmp_path: Path) -> None:
    """``sdo demo --users FILE``: the first run adds the demo SDO and shows its token once;
    a restart keeps the file as it is (the token still opens the console) and shows none.
    Without ``--users`` each run makes a new file in its working directory."""
    users = tmp_path / "kept.json"
    path, token = _users(users, tmp_path / "run1")
    assert path == users and token is not None
    again, none = _users(users, tmp_path / "run2")
    assert (again, none) == (users, None)
    assert Users(users).authenticate(token) is not None
    fresh, new = _users(None, tmp_path)
    assert fresh == tmp_path / "users.json" and new is not None and new != token
