"""The helpers behind the stream-processing peers of ``bench/ingest.py`` (issue 28).

Nothing here makes the peers' venvs or runs a peer (the CI has no time for them): only the
state check every peer's figure depends on, and that a venv that cannot be made is a
one-line reason, not a figure.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.test_bench import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import peer_runs

LAST = {"o000000": "o000000-l2", "o000001": "o000001-l2"}


def _held(fixes: dict[str, str]) -> dict[str, dict[str, str]]:
    return {
        o: {"officer.profile": f"{o}-p", "officer.status": f"{o}-s", "officer.location": f}
        for o, f in fixes.items()
    }


def test_the_state_check_passes_only_when_every_officer_holds_their_last_fix() -> None:
    assert peer_runs.check_state(_held(LAST), LAST)["all_latest_fixes_in_state"] is True
    stale = peer_runs.check_state(_held({**LAST, "o000001": "o000001-l1"}), LAST)
    assert stale["all_latest_fixes_in_state"] is False
    assert stale["officers_at_last_fix"] == 1
    missing = peer_runs.check_state(_held({"o000000": "o000000-l2"}), LAST)
    assert missing["all_latest_fixes_in_state"] is False
    assert missing["officers_in_state"] == 1


def test_the_state_check_counts_profiles_and_statuses() -> None:
    held = _held(LAST)
    del held["o000000"]["officer.status"]
    assert peer_runs.check_state(held, LAST)["officers_with_profile_and_status"] == 1


def test_a_venv_that_cannot_be_made_is_a_one_line_reason(tmp_path: Path) -> None:
    python, why = peer_runs.ensure_venv(
        "quix", root=tmp_path, base_python=str(tmp_path / "no-such-python")
    )
    assert python is None
    assert why is not None and "\n" not in why
    assert why.startswith("cannot make the quix venv: python -m venv failed")
