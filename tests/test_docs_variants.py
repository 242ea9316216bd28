"""The rules variants the README weighs (``docs/variants/``) are the packaged rules with
the one change the README names each: a change to ``src/sdo/data/rules.json`` that is not
carried into them fails here, not silently in the README's figures."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sdo.config import DEFAULT_RULES, Settings, package_data
from sdo.evaluation.evaluate import PolicySpec

VARIANTS = Path(__file__).resolve().parent.parent / "docs" / "variants"


def _no_cover(rules: dict[str, Any]) -> None:
    zero = {"1": 0, "2": 0, "3": 0, "4": 0}
    rules["recommend"] = {
        **rules.get("recommend", {}),
        "cover_weight_s": zero,
        "below_min_penalty_s": dict(zero),
    }


def _attend_all(rules: dict[str, Any]) -> None:
    rules["rules"] = [r for r in rules["rules"] if r["name"] != "signpost"]


@pytest.mark.parametrize(("name", "change"), [("no-cover", _no_cover), ("attend-all", _attend_all)])
def test_a_variant_is_the_packaged_rules_with_its_one_change(
    name: str, change: Callable[[dict[str, Any]], None]
) -> None:
    packaged = json.loads(package_data(DEFAULT_RULES).read_text())
    expected = copy.deepcopy(packaged)
    change(expected)
    assert expected != packaged
    assert json.loads((VARIANTS / f"{name}.json").read_text()) == expected


def test_the_variants_load_as_the_readme_runs_them() -> None:
    for name in ("no-cover", "attend-all"):
        spec = PolicySpec.parse(f"thrive@{VARIANTS / name}.json")
        rules, policy = spec.load(Settings())
        assert spec.label == f"thrive@{name}"
        if name == "no-cover":
            assert set(policy.cover_weight_s.values()) == {0.0}
            assert set(policy.below_min_penalty_s.values()) == {0.0}
        else:
            assert "signpost" not in [r.name for r in rules.rules]
