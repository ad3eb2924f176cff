"""SerialEM navigator (.nav) files: read, write, and map pixel <-> stage conversion.

A navigator is an autodoc text file: header lines (``AdocVersion = 2.00``) then
``[Item = LABEL]`` sections of ``Key = value`` lines. Items keep their keys in order and
their values as text, so reading and writing a file gives it back byte for byte.

Pixel <-> stage conversion follows SerialEM: a map item's ``MapScaleMat`` (a b c d) maps
stage offsets (um) from the map centre ``StageXYZ`` to image pixels of the map as saved,
binned by ``MapBinning`` (already folded into the matrix) and divided by ``MontBinning`` for
montages: pixel = M (stage - stage_centre) + (width/2, height/2), M = [[a, b], [c, d]].
Pixel coordinates are SerialEM's (x to the right, y down the displayed image). SerialEM
writes MRC files flipped in y (so that IMOD shows them the same way), hence a numpy row
``r`` of an MRC map read with mrcfile is at y = height - r (``flip_y=True``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cryomat.errors import InputError

_ITEM = re.compile(r"^\s*\[\s*Item\s*=\s*(.*?)\s*\]\s*$")
_KV = re.compile(r"^(\s*)([^=\s][^=]*?)\s*=\s*(.*?)\s*$")


@dataclass
class NavItem:
    """One navigator item: its label and ordered ``key -> value text``."""

    label: str
    fields: dict = field(default_factory=dict)

    def get(self, key: str, default=None):
        return self.fields.get(key, default)

    def numbers(self, key: str) -> np.ndarray:
        v = self.fields.get(key)
        if v is None:
            raise KeyError(key)
        return np.array([float(x) for x in str(v).split()])

    @property
    def type(self) -> int:
        return int(float(self.fields.get("Type", -1)))

    @property
    def map_id(self) -> int | None:
        v = self.fields.get("MapID")
        return None if v is None else int(float(v))


@dataclass
class Navigator:
    header: list[str]
    items: list[NavItem]
    trailing_newline: bool = True

    def map_item(self, map_id: int | None = None) -> NavItem:
        """The map item with ``MapID == map_id`` (or the first map when ``map_id`` is None)."""
        maps = [it for it in self.items if it.type == 2]
        if map_id is None:
            if not maps:
                raise InputError("the navigator holds no map item (Type = 2)")
            return maps[0]
        for it in maps:
            if it.map_id == int(map_id):
                return it
        known = ", ".join(str(it.map_id) for it in maps) or "none"
        raise InputError(f"no map item with MapID {map_id} in the navigator (map ids: {known})")

    def next_map_id(self) -> int:
        ids = [it.map_id for it in self.items if it.map_id is not None]
        return (max(ids) + 1) if ids else 1

    def to_text(self) -> str:
        lines = list(self.header)
        for it in self.items:
            if lines and lines[-1].strip() != "":
                lines.append("")
            lines.append(f"[Item = {it.label}]")
            lines += [f"{k} = {v}" for k, v in it.fields.items()]
        text = "\n".join(lines)
        return text + ("\n" if self.trailing_newline else "")


def parse_nav(text: str, *, source: str | None = None) -> Navigator:
    header: list[str] = []
    items: list[NavItem] = []
    current: NavItem | None = None
    for n, line in enumerate(text.splitlines(), 1):
        m = _ITEM.match(line)
        if m:
            current = NavItem(label=m.group(1))
            items.append(current)
            continue
        if current is None:
            header.append(line)
            continue
        if not line.strip():
            continue
        m = _KV.match(line)
        if not m:
            raise InputError(f"line {n} is not 'Key = value': {line!r}", path=source)
        current.fields[m.group(2)] = m.group(3)
    if not any("AdocVersion" in h for h in header) and not items:
        raise InputError("not a SerialEM navigator (no AdocVersion header, no [Item] sections)", path=source)
    # drop blank lines at the end of the header (re-added between sections)
    while header and not header[-1].strip():
        header.pop()
    return Navigator(header=header, items=items, trailing_newline=text.endswith("\n"))


def read_nav(path: str | Path) -> Navigator:
    """Read a SerialEM ``.nav`` file (autodoc format, version 2)."""
    p = Path(path)
    if not p.is_file():
        raise InputError("navigator file not found", path=p)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"cannot read navigator ({exc})", path=p) from exc
    if text.lstrip().startswith("<?xml"):
        raise InputError("XML navigators (SerialEM < 3.6) are not supported; resave it from SerialEM", path=p)
    return parse_nav(text, source=str(p))


def write_nav(path: str | Path, nav: Navigator) -> Path:
    from cryomat.io.atomic import write_text

    return write_text(path, nav.to_text())


def map_matrix(item: NavItem) -> np.ndarray:
    """2x2 stage(um) -> pixel matrix of a map item (MapScaleMat / MontBinning)."""
    try:
        m = item.numbers("MapScaleMat").reshape(2, 2)
    except (KeyError, ValueError) as exc:
        raise InputError(f"map item {item.label} has no valid MapScaleMat") from exc
    mont_bin = float(item.get("MontBinning", 1) or 1)
    return m / mont_bin


def _map_geometry(item: NavItem):
    wh = item.numbers("MapWidthHeight")
    centre_stage = item.numbers("StageXYZ")[:2]
    return map_matrix(item), wh[:2], centre_stage


def pixel_to_stage(item: NavItem, x_px, y_px) -> tuple[np.ndarray, np.ndarray]:
    """SerialEM map pixel (x right, y down) -> stage X, Y in um."""
    mat, wh, cs = _map_geometry(item)
    pix = np.stack([np.asarray(x_px, float) - wh[0] / 2, np.asarray(y_px, float) - wh[1] / 2], axis=-1)
    st = pix @ np.linalg.inv(mat).T + cs
    return st[..., 0], st[..., 1]


def stage_to_pixel(item: NavItem, stage_x, stage_y) -> tuple[np.ndarray, np.ndarray]:
    """Stage X, Y in um -> SerialEM map pixel (x right, y down)."""
    mat, wh, cs = _map_geometry(item)
    d = np.stack([np.asarray(stage_x, float) - cs[0], np.asarray(stage_y, float) - cs[1]], axis=-1)
    p = d @ mat.T
    return p[..., 0] + wh[0] / 2, p[..., 1] + wh[1] / 2


def array_to_serialem_pixel(rows, cols, *, height: int, flip_y: bool, binning: float = 1.0):
    """numpy (row, col) of the map array as read -> SerialEM (x, y); ``binning`` if the array was binned."""
    x = (np.asarray(cols, float) + 0.5) * binning
    y = (np.asarray(rows, float) + 0.5) * binning
    if flip_y:
        y = height - y
    return x, y


def add_points(nav: Navigator, item: NavItem, stage_x, stage_y, *, notes=None, color: int = 0,
               group_id: int | None = None) -> list[NavItem]:
    """Append acquire points drawn on map ``item``: Type 0, NumPts 1, DrawnID = map id, Acquire 1."""
    if item.map_id is None:
        raise InputError(f"map item {item.label} has no MapID")
    z = float(item.numbers("StageXYZ")[2]) if len(item.numbers("StageXYZ")) > 2 else 0.0
    regis = item.get("Regis", "1")
    next_id = nav.next_map_id()
    labels = {it.label for it in nav.items}
    group = group_id if group_id is not None else next_id
    new = []
    for i, (sx, sy) in enumerate(zip(np.atleast_1d(stage_x), np.atleast_1d(stage_y))):
        k = 1
        while f"T{k}" in labels:
            k += 1
        label = f"T{k}"
        labels.add(label)
        fields = {
            "Color": str(color), "StageXYZ": f"{sx:.3f} {sy:.3f} {z:.3f}", "NumPts": "1", "Regis": regis,
            "Type": "0", "RawStageXY": f"{sx:.3f} {sy:.3f}", "MapID": str(next_id + i), "PtsX": f"{sx:.3f}",
            "PtsY": f"{sy:.3f}", "GroupID": str(group), "DrawnID": str(item.map_id), "Acquire": "1",
        }
        if notes is not None:
            fields["Note"] = str(notes[i])
        it = NavItem(label=label, fields=fields)
        nav.items.append(it)
        new.append(it)
    return new
