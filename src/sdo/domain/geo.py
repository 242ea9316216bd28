"""Areas and distances (CONTRACT §4).

Coordinates are ``(lon, lat)`` in WGS84 degrees everywhere in this module — x before y,
as GeoJSON and shapely have it — and distances are metres on a spherical Earth.

Theory of operation: :meth:`Areas.from_geojson` validates an area FeatureCollection once,
repairs invalid rings with ``make_valid`` (rejecting what cannot be repaired into a
polygon), prepares every polygon and builds one shapely ``STRtree`` over them. After that
an :class:`Areas` is read-only: :meth:`Areas.locate` asks the tree for the polygons whose
bounding box holds the point and tests those candidates with the prepared polygons, in
file order, so a point on a shared edge belongs to the neighbourhood listed first. A point
outside every polygon is reported as ``None``; it is never snapped to the nearest area.

Pure: shapely, numpy and the standard library only; no I/O, no clock.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import shapely
import shapely.errors
from shapely.geometry import shape
from shapely.validation import explain_validity

from sdo.errors import ConfigError

__all__ = [
    "CELL_DEG",
    "CELL_MIXED",
    "CELL_OUTSIDE",
    "DEFAULT_MIN_COVER",
    "EARTH_RADIUS_M",
    "FINE_DEG",
    "TYPOLOGY_RANGE",
    "Areas",
    "Cluster",
    "Neighbourhood",
    "Placement",
    "haversine_m",
    "haversine_many_m",
]

#: Mean Earth radius (IUGG), metres.
EARTH_RADIUS_M: Final = 6_371_008.8
#: Cluster minimum cover when the area file gives none.
DEFAULT_MIN_COVER: Final = 2
#: Neighbourhood typologies run from 1 to 5 inclusive.
TYPOLOGY_RANGE: Final = range(1, 6)

_POLYGONAL: Final = frozenset({"Polygon", "MultiPolygon"})
_REQUIRED_STR: Final = ("id", "name", "npu", "cluster")


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres between two (lon, lat) points in degrees."""
    phi1 = math.radians(lat1)
    phi2 = math.radians(lat2)
    dphi = phi2 - phi1
    dlam = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlam / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, a)))


def haversine_many_m(
    lons: npt.ArrayLike, lats: npt.ArrayLike, lon: float, lat: float
) -> npt.NDArray[np.float64]:
    """Distances in metres from each ``(lons[i], lats[i])`` to one point ``(lon, lat)``.

    The vectorised twin of :func:`haversine_m` (same formula, same radius); returns a
    float64 array of the broadcast shape of ``lons`` and ``lats``.
    """
    phi1 = np.radians(np.asarray(lats, dtype=np.float64))
    lam1 = np.radians(np.asarray(lons, dtype=np.float64))
    phi2 = math.radians(lat)
    a = (
        np.sin((phi2 - phi1) / 2) ** 2
        + np.cos(phi1) * math.cos(phi2) * np.sin((math.radians(lon) - lam1) / 2) ** 2
    )
    out: npt.NDArray[np.float64] = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(1.0, a)))
    return out


@dataclass(frozen=True, slots=True)
class Neighbourhood:
    """One neighbourhood polygon's attributes (its geometry stays inside :class:`Areas`)."""

    id: str
    name: str
    npu: str
    cluster: str
    typology: int
    named_officer: str | None
    centroid: tuple[float, float]  # (lon, lat); the geometric centroid
    bbox: tuple[float, float, float, float]  # (minlon, minlat, maxlon, maxlat)


@dataclass(frozen=True, slots=True)
class Cluster:
    """A response cluster: neighbourhoods that share cover, possibly across NPUs."""

    id: str
    min_cover: int
    npus: tuple[str, ...]  # in order of first appearance in the file
    neighbourhoods: tuple[str, ...]  # in file order


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a point falls: its neighbourhood and that neighbourhood's NPU and cluster."""

    neighbourhood: str
    npu: str
    cluster: str


#: Memo cell size for point lookups, degrees (about 70 m x 110 m at Birmingham).
_CELL_DEG: Final = 0.001
#: Cells crossed by an edge are split into cells of this size (about 7 m x 11 m).
_FINE_DEG: Final = 0.0001
#: Margin around a memo cell (about 0.1 mm), larger than any rounding of its key.
_PAD_DEG: Final = 1e-9
#: Bound on each memo (cells of about 0.01 km²: a million covers a large force).
_MAX_CELLS: Final = 1_000_000
_OUTSIDE: Final = -1
_MIXED: Final = -2
#: The memo's cell sizes and verdicts, for copies of it (see Areas.learn_cells).
CELL_DEG: Final = _CELL_DEG
FINE_DEG: Final = _FINE_DEG
CELL_OUTSIDE: Final = _OUTSIDE
CELL_MIXED: Final = _MIXED


class Areas:
    """The validated, indexed neighbourhoods of one area file. Immutable after construction.

    Build with :meth:`from_geojson`. ``neighbourhoods`` keeps file order; ``npus`` and
    ``clusters`` are in order of first appearance.
    """

    __slots__ = (
        "_cells",
        "_fine",
        "_geoms",
        "_index",
        "_placements",
        "_tree",
        "clusters",
        "neighbourhoods",
        "npus",
    )

    neighbourhoods: Mapping[str, Neighbourhood]
    clusters: Mapping[str, Cluster]
    npus: tuple[str, ...]
    _placements: tuple[Placement, ...]
    _index: dict[str, int]

    def __init__(
        self,
        neighbourhoods: Mapping[str, Neighbourhood],
        clusters: Mapping[str, Cluster],
        geometries: Mapping[str, Any],
    ) -> None:
        """Prefer :meth:`from_geojson`; this trusts its (already validated) inputs."""
        self.neighbourhoods = dict(neighbourhoods)
        self.clusters = dict(clusters)
        self.npus = tuple(dict.fromkeys(n.npu for n in self.neighbourhoods.values()))
        ids = list(self.neighbourhoods)
        self._geoms = np.array([geometries[i] for i in ids], dtype=object)
        shapely.prepare(self._geoms)
        self._tree = shapely.STRtree(self._geoms)
        self._index = {nid: k for k, nid in enumerate(ids)}
        self._placements = tuple(
            Placement(n.id, n.npu, n.cluster) for n in self.neighbourhoods.values()
        )
        # Memo of small grid cells: cell -> index of the one polygon that holds the whole
        # cell, _OUTSIDE if no polygon touches it, _MIXED if an edge crosses it. Only whole
        # cells are memoised, so the answer is exactly the polygon test's; only its cost
        # changes (a dict lookup for nearly every AVL fix).
        self._cells: dict[tuple[int, int], int] = {}
        self._fine: dict[tuple[int, int], int] = {}

    @classmethod
    def from_geojson(cls, obj: Mapping[str, Any]) -> Areas:
        """Validate an area FeatureCollection (CONTRACT §4) and index it.

        Raises :class:`~sdo.errors.ConfigError` naming the feature (position and id) and
        the property at fault: not a FeatureCollection, missing or mistyped property,
        duplicate id, typology outside 1 to 5, non-polygonal, empty, unrepairable or
        out-of-range geometry, or a cluster ``min_cover`` that disagrees between features
        and/or the top-level ``clusters`` member.
        """
        if not isinstance(obj, Mapping) or obj.get("type") != "FeatureCollection":
            raise ConfigError("not a GeoJSON FeatureCollection")
        features = obj.get("features")
        if not isinstance(features, list) or not features:
            raise ConfigError("FeatureCollection has no features")

        neighbourhoods: dict[str, Neighbourhood] = {}
        geometries: dict[str, Any] = {}
        # cluster -> (min_cover, where it was given)
        cover: dict[str, tuple[int, str]] = {}
        for pos, feature in enumerate(features):
            nb, geom, min_cover = _parse_feature(pos, feature)
            if nb.id in neighbourhoods:
                raise ConfigError(f"{_where(pos, nb.id)}: duplicate id {nb.id!r}")
            neighbourhoods[nb.id] = nb
            geometries[nb.id] = geom
            if min_cover is not None:
                where = _where(pos, nb.id)
                seen = cover.setdefault(nb.cluster, (min_cover, where))
                if seen[0] != min_cover:
                    raise ConfigError(
                        f"{where}: property 'min_cover' of cluster {nb.cluster!r} is "
                        f"{min_cover}, but {seen[1]} gives {seen[0]}"
                    )

        members: dict[str, list[Neighbourhood]] = {}
        for nb in neighbourhoods.values():
            members.setdefault(nb.cluster, []).append(nb)
        _merge_top_level_cover(obj.get("clusters"), members, cover)

        clusters = {
            cid: Cluster(
                id=cid,
                min_cover=cover.get(cid, (DEFAULT_MIN_COVER, ""))[0],
                npus=tuple(dict.fromkeys(n.npu for n in nbs)),
                neighbourhoods=tuple(n.id for n in nbs),
            )
            for cid, nbs in members.items()
        }
        return cls(neighbourhoods, clusters, geometries)

    def locate(self, lon: float, lat: float) -> Placement | None:
        """The neighbourhood holding ``(lon, lat)`` (edges included), or ``None`` if none.

        On a shared edge the neighbourhood that comes first in the file wins.
        """
        k = self._cell(lon, lat)
        if k >= 0:
            placement: Placement = self._placements[k]
            return placement
        if k == _OUTSIDE:
            return None
        return self._locate_exact(lon, lat)

    def _cell(self, lon: float, lat: float) -> int:
        """What the memo knows of the cell holding the point (see ``_cells``).

        A cell an edge crosses is looked at again in cells a tenth its size (``_fine``),
        so only points within metres of an edge need the exact polygon test.
        """
        key = (math.floor(lon / _CELL_DEG), math.floor(lat / _CELL_DEG))
        known = self._cells.get(key)
        if known is None:
            known = self._learn(self._cells, key, _CELL_DEG)
        if known != _MIXED:
            return known
        key = (math.floor(lon / _FINE_DEG), math.floor(lat / _FINE_DEG))
        fine = self._fine.get(key)
        return fine if fine is not None else self._learn(self._fine, key, _FINE_DEG)

    def _learn(self, memo: dict[tuple[int, int], int], key: tuple[int, int], size: float) -> int:
        if len(memo) >= _MAX_CELLS:
            return _MIXED
        x, y = key[0] * size, key[1] * size
        # Padded: floor(lon / size) can put a point that lies on a cell's edge in the
        # neighbouring cell by a rounding error; the padded box still holds it.
        cell = shapely.box(x - _PAD_DEG, y - _PAD_DEG, x + size + _PAD_DEG, y + size + _PAD_DEG)
        hits = sorted(self._tree.query(cell).tolist())
        touching = [k for k in hits if self._geoms[k].intersects(cell)]
        if not touching:
            verdict = _OUTSIDE
        elif len(touching) == 1 and self._geoms[touching[0]].contains_properly(cell):
            verdict = touching[0]
        else:
            verdict = _MIXED
        memo[key] = verdict
        return verdict

    def _locate_exact(self, lon: float, lat: float) -> Placement | None:
        point = shapely.Point(lon, lat)
        # Ascending index = file order; the tree's bounding-box hits are few (1-3).
        for k in sorted(self._tree.query(point).tolist()):
            if self._geoms[k].intersects(point):  # prepared polygon: fast
                placement: Placement = self._placements[k]
                return placement
        return None

    def index_of(self, neighbourhood_id: str) -> int | None:
        """The neighbourhood's position in file order (a memo verdict), or None if unknown."""
        return self._index.get(neighbourhood_id)

    def placement_at(self, index: int) -> Placement:
        """The placement of the neighbourhood at ``index`` (:meth:`index_of`)."""
        placement: Placement = self._placements[index]
        return placement

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) of all neighbourhoods."""
        west, south, east, north = shapely.total_bounds(self._geoms).tolist()
        return west, south, east, north

    def rings(self, index: int) -> list[np.ndarray]:
        """The rings (exterior and holes, of every part) of the neighbourhood at
        ``index`` (:meth:`index_of`), each an (n, 2) array of (lon, lat), closed. A point
        away from all of them lies in the neighbourhood if an odd number of its rings
        encloses it."""
        parts = shapely.get_parts(self._geoms[index])
        return [shapely.get_coordinates(ring) for ring in shapely.get_rings(parts)]

    def learn_cells(self, x0: int, y0: int, nx: int, ny: int, *, fine: bool = False) -> np.ndarray:
        """The memo's verdicts on the ``nx`` x ``ny`` cells with keys from ``(x0, y0)``, as
        an int32 array indexed ``[x - x0, y - y0]``.

        A key is ``floor`` of the coordinates over ``CELL_DEG``, or ``FINE_DEG`` if
        ``fine``; a verdict is the index (:meth:`index_of`) of the one neighbourhood that
        holds the whole cell, ``CELL_OUTSIDE`` if none touches it, else ``CELL_MIXED``.
        :meth:`locate` and :meth:`contains` decide by them (fine cells where the coarse
        one is mixed), so a copy (``sdo.domain.lane``) decides as they do. The cells not
        known yet are learnt all at once, by the same tests as one by one (the polygons a
        padded cell intersects, then ``contains_properly`` where there is one).
        """
        size = _FINE_DEG if fine else _CELL_DEG
        memo = self._fine if fine else self._cells
        out = np.empty((nx, ny), dtype=np.int32)
        unknown: list[tuple[int, int]] = []
        for i in range(nx):
            for j in range(ny):
                known = memo.get((x0 + i, y0 + j))
                if known is None:
                    unknown.append((i, j))
                    known = _MIXED
                out[i, j] = known
        if not unknown:
            return out
        at = np.array(unknown, dtype=np.int64)
        x = (at[:, 0] + x0) * size
        y = (at[:, 1] + y0) * size
        cells = shapely.box(x - _PAD_DEG, y - _PAD_DEG, x + size + _PAD_DEG, y + size + _PAD_DEG)
        which, geom = self._tree.query(cells, predicate="intersects")
        touching = np.bincount(which, minlength=len(cells))
        verdict = np.full(len(cells), _MIXED, dtype=np.int32)
        verdict[touching == 0] = _OUTSIDE
        one = np.flatnonzero(touching == 1)
        if len(one):
            first = np.full(len(cells), -1, dtype=np.int64)
            first[which] = geom  # where one polygon touches, the one
            inside = shapely.contains_properly(self._geoms[first[one]], cells[one])
            verdict[one[inside]] = first[one[inside]]
        room = _MAX_CELLS - len(memo)  # beyond the bound, cells stay unlearnt (mixed)
        for (i, j), v in zip(unknown[:room], verdict[:room].tolist(), strict=False):
            memo[(x0 + i, y0 + j)] = v
            out[i, j] = v
        return out

    def contains(self, neighbourhood_id: str, lon: float, lat: float) -> bool:
        """Whether ``(lon, lat)`` lies in (or on the edge of) that neighbourhood.

        An unknown id contains nothing (``False``).
        """
        k = self._index.get(neighbourhood_id)
        if k is None:
            return False
        known = self._cell(lon, lat)
        if known != _MIXED:
            return known == k
        return bool(shapely.intersects_xy(self._geoms[k], lon, lat))

    def to_geojson(self) -> dict[str, Any]:
        """The normalised area FeatureCollection: repaired geometry, every property.

        ``named_officer`` is always present (``null`` when absent); each cluster's
        ``min_cover`` is in the top-level ``clusters`` member. ``from_geojson`` of the
        result gives equal areas.
        """
        features = [
            {
                "type": "Feature",
                "properties": {
                    "id": nb.id,
                    "name": nb.name,
                    "npu": nb.npu,
                    "cluster": nb.cluster,
                    "typology": nb.typology,
                    "named_officer": nb.named_officer,
                },
                "geometry": json.loads(shapely.to_geojson(self._geoms[k])),
            }
            for k, nb in enumerate(self.neighbourhoods.values())
        ]
        return {
            "type": "FeatureCollection",
            "clusters": {c.id: {"min_cover": c.min_cover} for c in self.clusters.values()},
            "features": features,
        }


def _where(pos: int, nid: object = None) -> str:
    return f"feature {pos}" if nid is None else f"feature {pos} (id {nid!r})"


def _parse_feature(pos: int, feature: object) -> tuple[Neighbourhood, Any, int | None]:
    """One feature -> (neighbourhood, polygonal shapely geometry, feature-level min_cover)."""
    if not isinstance(feature, Mapping) or feature.get("type") != "Feature":
        raise ConfigError(f"{_where(pos)}: not a GeoJSON Feature")
    props = feature.get("properties")
    if not isinstance(props, Mapping):
        raise ConfigError(f"{_where(pos)}: has no properties")
    raw_id = props.get("id")
    where = _where(pos, raw_id if isinstance(raw_id, str) and raw_id else None)

    strings: dict[str, str] = {}
    for key in _REQUIRED_STR:
        value = props.get(key)
        if value is None:
            raise ConfigError(f"{where}: missing property {key!r}")
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(
                f"{where}: property {key!r} must be a non-empty string, got {value!r}"
            )
        strings[key] = value

    typology = props.get("typology")
    if typology is None:
        raise ConfigError(f"{where}: missing property 'typology'")
    if not _is_int(typology) or typology not in TYPOLOGY_RANGE:
        raise ConfigError(f"{where}: property 'typology' must be an integer 1-5, got {typology!r}")

    officer = props.get("named_officer")
    if officer is not None and (not isinstance(officer, str) or not officer.strip()):
        raise ConfigError(
            f"{where}: property 'named_officer' must be a non-empty string, got {officer!r}"
        )

    min_cover = props.get("min_cover")
    if min_cover is not None and (not _is_int(min_cover) or min_cover < 0):
        raise ConfigError(
            f"{where}: property 'min_cover' must be a non-negative integer, got {min_cover!r}"
        )

    geom = _parse_geometry(where, feature.get("geometry"))
    c = geom.centroid
    minx, miny, maxx, maxy = (float(v) for v in geom.bounds)
    nb = Neighbourhood(
        id=strings["id"],
        name=strings["name"],
        npu=strings["npu"],
        cluster=strings["cluster"],
        typology=typology,
        named_officer=officer,
        centroid=(float(c.x), float(c.y)),
        bbox=(minx, miny, maxx, maxy),
    )
    return nb, geom, min_cover


def _parse_geometry(where: str, raw: object) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: missing geometry")
    kind = raw.get("type")
    if kind not in _POLYGONAL:
        raise ConfigError(f"{where}: geometry must be Polygon or MultiPolygon, got {kind!r}")
    try:
        geom = shape(raw)
    except (ValueError, TypeError, IndexError, AttributeError, shapely.errors.ShapelyError) as exc:
        raise ConfigError(f"{where}: malformed {kind} coordinates ({exc})") from None
    if geom.is_empty:
        raise ConfigError(f"{where}: empty geometry")
    coords = shapely.get_coordinates(geom)
    if not np.isfinite(coords).all():
        raise ConfigError(f"{where}: geometry has non-finite coordinates")
    lons, lats = coords[:, 0], coords[:, 1]
    if (np.abs(lons) > 180).any() or (np.abs(lats) > 90).any():
        bad = coords[(np.abs(lons) > 180) | (np.abs(lats) > 90)][0]
        raise ConfigError(
            f"{where}: coordinate ({bad[0]:g}, {bad[1]:g}) is outside lon -180..180 / "
            "lat -90..90 (coordinates must be WGS84 lon, lat)"
        )
    if not geom.is_valid:
        reason = explain_validity(geom)
        geom = _polygonal_part(shapely.make_valid(geom))
        if geom.is_empty or geom.area == 0:
            raise ConfigError(f"{where}: invalid geometry that cannot be repaired ({reason})")
    if geom.area == 0:
        raise ConfigError(f"{where}: geometry has zero area")
    return geom


def _polygonal_part(geom: Any) -> Any:
    """The polygons of ``make_valid``'s output, which may add stray lines or points."""
    polys: list[Any] = []
    for part in shapely.get_parts(geom):
        if part.geom_type == "Polygon":
            polys.append(part)
        elif part.geom_type == "MultiPolygon":
            polys.extend(shapely.get_parts(part))
    return shapely.union_all(polys) if polys else shapely.Polygon()


def _merge_top_level_cover(
    raw: object,
    members: Mapping[str, list[Neighbourhood]],
    cover: dict[str, tuple[int, str]],
) -> None:
    """Fold the top-level ``clusters`` member into ``cover``, checking it agrees."""
    if raw is None:
        return
    if not isinstance(raw, Mapping):
        raise ConfigError("top-level 'clusters' must be an object {cluster id: {min_cover: N}}")
    for cid, entry in raw.items():
        where = f"top-level 'clusters' entry {cid!r}"
        if cid not in members:
            raise ConfigError(f"{where}: no feature has cluster {cid!r}")
        if not isinstance(entry, Mapping) or "min_cover" not in entry:
            raise ConfigError(f"{where}: must be an object with 'min_cover'")
        value = entry["min_cover"]
        if not _is_int(value) or value < 0:
            raise ConfigError(f"{where}: 'min_cover' must be a non-negative integer, got {value!r}")
        seen = cover.setdefault(cid, (value, where))
        if seen[0] != value:
            raise ConfigError(
                f"{where}: 'min_cover' of cluster {cid!r} is {value}, but {seen[1]} gives {seen[0]}"
            )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
