"""Fixtures shared by every test tier.

* ``broker``: one embedded Tansu broker for the whole session (started on first use, so
  pure domain tests never pay for it). Tests share it; ``topic_prefix`` keeps them apart.
* ``topic_prefix``: a prefix unique to the test, for topic names and consumer groups.
* ``SYNTHETIC_AREAS``: the small hand-drawn area file tests that rely on its ids use.

Keep this file small: fixtures used by one tier belong in that tier's ``conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest

from sdo.broker import EmbeddedBroker

REPO = Path(__file__).resolve().parent.parent
#: The small hand-drawn area file (24 neighbourhoods, ids N01-N12 and E01-E12) that tests
#: relying on particular ids and shapes use (tools/make_synthetic_areas.py).
SYNTHETIC_AREAS = REPO / "tests" / "data" / "areas_synthetic.geojson"


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """A running embedded broker (``.bootstrap``, ``.url``), stopped after the session.

    Started synchronously in the main thread on purpose: the broker dies with the thread
    that started it (see ``sdo.broker._die_with_parent``), so no orphan survives a crash.
    """
    embedded = EmbeddedBroker().start()
    try:
        yield embedded
    finally:
        embedded.stop()


@pytest.fixture
def topic_prefix() -> str:
    """A topic prefix like ``t1a2b3c4d.``, unique per test, so tests sharing the broker
    do not see each other's events."""
    return f"t{uuid4().hex[:8]}."
