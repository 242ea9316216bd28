"""``sdo schemas``: JSON Schemas generated from :mod:`sdo.events` (never hand-edited).

``schemas/<type>.schema.json`` for every event type. ``--check`` compares instead of
writing and exits 1 naming the files that drifted, so a contract change cannot slip in
without its schema (a test runs it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sdo.errors import ConfigError
from sdo.events import EVENT_TYPES

__all__ = ["cli", "render"]


def render() -> dict[str, str]:
    """File name → schema text, for every event type."""
    out = {}
    for kind, model in sorted(EVENT_TYPES.items()):
        schema: dict[str, Any] = model.model_json_schema(mode="validation")
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"sdo/{kind}.schema.json",
            **schema,
        }
        out[f"{kind}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def cli(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    wanted = render()
    if args.check:
        if not directory.is_dir():
            raise ConfigError(f"schema directory {directory} does not exist; run `sdo schemas`")
        drift = [
            name
            for name, text in wanted.items()
            if not (directory / name).is_file()
            or (directory / name).read_text(encoding="utf-8") != text
        ]
        extra = sorted(p.name for p in directory.glob("*.schema.json") if p.name not in wanted)
        if drift or extra:
            for name in drift:
                sys.stderr.write(f"sdo schemas: {directory / name} differs from sdo.events\n")
            for name in extra:
                sys.stderr.write(f"sdo schemas: {directory / name} has no event type\n")
            sys.stderr.write(
                "sdo schemas: run `sdo schemas` and call out the contract change in CHANGELOG.md\n"
            )
            return 1
        sys.stdout.write(f"{len(wanted)} schemas up to date in {directory}\n")
        return 0
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in wanted.items():
        (directory / name).write_text(text, encoding="utf-8")
    sys.stdout.write(f"wrote {len(wanted)} schemas to {directory}\n")
    return 0
