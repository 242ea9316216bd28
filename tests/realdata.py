"""The real data files the tests use, from the repository's ``data/`` (see data/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

__all__ = ["DATA", "data_file"]

DATA = Path(__file__).resolve().parents[1] / "data"


def data_file(relative: str) -> Path:
    """``data/<relative>``; fails the test (never skips it) when the file is missing."""
    path = DATA / relative
    if not path.is_file():
        pytest.fail(f"real-data file missing from the repository: {path} (see data/README.md)")
    return path
