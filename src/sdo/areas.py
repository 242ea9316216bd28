"""Area files on disk and ``sdo areas import`` (CONTRACT §4).

The adapter around :mod:`sdo.domain.geo`: it reads and writes files, and turns a real
boundary GeoJSON (ONS wards, police.uk neighbourhoods, ...) plus a small CSV map into an
area file, so nobody edits GeoJSON by hand. Every user mistake is a
:class:`~sdo.errors.ConfigError` that names the file and what is wrong with it.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from sdo.domain.geo import TYPOLOGY_RANGE, Areas
from sdo.errors import ConfigError

__all__ = ["build_area_collection", "cli_import", "dump_areas", "load_areas", "read_npu_map"]

_MAP_REQUIRED: Final = ("id", "npu", "cluster")
_SHOW: Final = 5  # how many offending ids an error message lists


def load_areas(path: Path) -> Areas:
    """Read and validate an area file; ``ConfigError("areas file X: ...")`` if unusable."""
    obj = _read_json(path, "areas file")
    try:
        return Areas.from_geojson(obj)
    except ConfigError as exc:
        raise ConfigError(f"areas file {path}: {exc}") from None


def dump_areas(areas: Areas) -> str:
    """The normalised area file text: one feature per line, so diffs stay readable."""
    fc = areas.to_geojson()
    features = ",\n".join(json.dumps(f, separators=(",", ":")) for f in fc["features"])
    clusters = json.dumps(fc["clusters"], separators=(",", ":"))
    return f'{{"type":"FeatureCollection",\n"clusters":{clusters},\n"features":[\n{features}\n]}}\n'


def read_npu_map(path: Path) -> dict[str, dict[str, str]]:
    """The ``--npu-map`` CSV: id -> {npu, cluster[, typology][, named_officer]}."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip() for c in reader.fieldnames or []]
            missing = [c for c in _MAP_REQUIRED if c not in columns]
            if missing:
                raise ConfigError(
                    f"npu map {path}: missing column(s) {', '.join(missing)} "
                    f"(need id,npu,cluster[,typology,named_officer]; found {','.join(columns)})"
                )
            rows: dict[str, dict[str, str]] = {}
            for line, raw in enumerate(reader, start=2):
                row = {
                    (k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None
                }
                if not any(row.values()):
                    continue
                for col in _MAP_REQUIRED:
                    if not row.get(col):
                        raise ConfigError(f"npu map {path}: line {line}: empty {col!r}")
                if row["id"] in rows:
                    raise ConfigError(f"npu map {path}: line {line}: duplicate id {row['id']!r}")
                rows[row["id"]] = {k: v for k, v in row.items() if k != "id" and v}
    except OSError as exc:
        raise ConfigError(f"npu map {path}: cannot read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"npu map {path}: not a readable CSV ({exc})") from None
    if not rows:
        raise ConfigError(f"npu map {path}: no rows")
    return rows


def build_area_collection(
    source: Mapping[str, Any],
    npu_map: Mapping[str, Mapping[str, str]],
    *,
    id_prop: str,
    name_prop: str,
    min_cover: Mapping[str, int],
    default_typology: int = 3,
    only_mapped: bool = False,
) -> dict[str, Any]:
    """A boundary FeatureCollection + map -> an area FeatureCollection (not yet validated).

    Keeps each feature's geometry, takes id and name from ``id_prop``/``name_prop``, and
    npu, cluster, typology and named officer from the map. Features absent from the map
    are an error unless ``only_mapped``, when they are dropped; map ids absent from the
    file are always an error (usually a wrong ``--id-prop``).
    """
    if default_typology not in TYPOLOGY_RANGE:
        raise ConfigError(f"--default-typology must be 1-5, got {default_typology}")
    if not isinstance(source, Mapping) or source.get("type") != "FeatureCollection":
        raise ConfigError("not a GeoJSON FeatureCollection")
    features = source.get("features")
    if not isinstance(features, list):
        raise ConfigError("FeatureCollection has no 'features' list")

    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    unmapped: list[str] = []
    for pos, feature in enumerate(features):
        props = feature.get("properties") if isinstance(feature, Mapping) else None
        if not isinstance(props, Mapping):
            raise ConfigError(f"feature {pos}: has no properties")
        for prop in (id_prop, name_prop):
            if props.get(prop) in (None, ""):
                have = ", ".join(sorted(map(str, props))) or "none"
                raise ConfigError(f"feature {pos}: no property {prop!r} (it has: {have})")
        fid = str(props[id_prop])
        seen.add(fid)
        entry = npu_map.get(fid)
        if entry is None:
            unmapped.append(fid)
            continue
        typology = _typology(entry.get("typology"), fid, default_typology)
        out.append(
            {
                "type": "Feature",
                "properties": {
                    "id": fid,
                    "name": str(props[name_prop]),
                    "npu": entry["npu"],
                    "cluster": entry["cluster"],
                    "typology": typology,
                    "named_officer": entry.get("named_officer") or None,
                },
                "geometry": feature.get("geometry"),
            }
        )

    if unmapped and not only_mapped:
        raise ConfigError(
            f"{len(unmapped)} feature(s) not in the npu map, e.g. {_some(unmapped)} "
            "(add them to the map or pass --only-mapped)"
        )
    absent = [fid for fid in npu_map if fid not in seen]
    if absent:
        raise ConfigError(
            f"{len(absent)} npu map id(s) not found in property {id_prop!r} of the file, "
            f"e.g. {_some(absent)}"
        )
    clusters = {e["cluster"] for e in npu_map.values()}
    unknown = [c for c in min_cover if c not in clusters]
    if unknown:
        raise ConfigError(f"--min-cover names unknown cluster(s) {_some(unknown)}")
    return {
        "type": "FeatureCollection",
        "clusters": {c: {"min_cover": n} for c, n in min_cover.items()},
        "features": out,
    }


def cli_import(args: argparse.Namespace) -> int:
    """``sdo areas import``: write an area file from a boundary GeoJSON and an npu map."""
    source = _read_json(args.file, "boundary file")
    npu_map = read_npu_map(args.npu_map)
    min_cover = _parse_min_cover(args.min_cover)
    try:
        collection = build_area_collection(
            source,
            npu_map,
            id_prop=args.id_prop,
            name_prop=args.name_prop,
            min_cover=min_cover,
            default_typology=args.default_typology,
            only_mapped=args.only_mapped,
        )
    except ConfigError as exc:
        raise ConfigError(f"importing {args.file}: {exc}") from None
    try:
        areas = Areas.from_geojson(collection)
    except ConfigError as exc:
        raise ConfigError(f"boundary file {args.file}: {exc}") from None
    out: Path = args.out
    try:
        out.write_text(dump_areas(areas), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {out}: {exc.strerror or exc}") from None
    sys.stdout.write(
        f"wrote {out}: {len(areas.neighbourhoods)} neighbourhoods, "
        f"{len(areas.npus)} NPUs ({', '.join(areas.npus)}), "
        f"{len(areas.clusters)} clusters ({', '.join(areas.clusters)})\n"
    )
    return 0


def _read_json(path: Path, what: str) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path}: not UTF-8 text ({exc.reason})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{what} {path}: not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})"
        ) from None


def _parse_min_cover(items: Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        cluster, sep, value = item.partition("=")
        cluster, value = cluster.strip(), value.strip()
        if not sep or not cluster or not value.isdigit():
            raise ConfigError(f"--min-cover {item!r}: expected CLUSTER=N with N a whole number")
        if cluster in out and out[cluster] != int(value):
            raise ConfigError(f"--min-cover given twice for cluster {cluster!r}")
        out[cluster] = int(value)
    return out


def _typology(raw: str | None, fid: str, default: int) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"npu map: id {fid!r}: typology {raw!r} is not an integer") from None
    if value not in TYPOLOGY_RANGE:
        raise ConfigError(f"npu map: id {fid!r}: typology must be 1-5, got {value}")
    return value


def _some(ids: Sequence[str]) -> str:
    shown = ", ".join(repr(i) for i in ids[:_SHOW])
    return shown + (", ..." if len(ids) > _SHOW else "")
