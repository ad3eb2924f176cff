"""3D phantoms with known truth for tomography: particles on a coated support, a crumple network.

Both are built on a grid ``scale`` times finer than the output voxels (coordinates are always in
output-voxel units), so that projections of the fine grid are free of the reconstruction
projector's discretisation, and block means give partial-volume densities at 1x.
"""

from __future__ import annotations

import numpy as np

#: densities (arbitrary projection units per voxel) of the phases
DENSITY = {"support": 1.0, "particle": 5.0, "coating": 0.5, "network": 1.0}
LABELS = {"background": 0, "support": 1, "particle": 2, "coating": 3}


def _grid(shape, scale):
    nz, ny, nx = shape
    ax = [(np.arange(n * scale) + 0.5) / scale - 0.5 for n in (nz, ny, nx)]
    return ax


def particles_layout(shape, *, rng, n_particles: int = 24, particle_radius=(2.0, 3.5), n_support: int = 7,
                     support_radius_frac: float = 0.11, coating_vox: float = 2.0) -> dict:
    """Random layout of a catalyst-layer-like phantom.

    A support aggregate of overlapping spheres (carbon black, radius ``support_radius_frac * size``)
    built by a random walk, particles (Pt-like, radii in ``particle_radius`` voxels) half sunk into
    its surface, and a coating (ionomer-like) of ``coating_vox`` voxels over support and particles.
    """
    nz, ny, nx = shape
    R = support_radius_frac * min(ny, nx)
    lo = np.array([R + coating_vox + 2, R + coating_vox + 2, R + coating_vox + 2])
    hi = np.array([nz, ny, nx], float) - 1 - lo
    lo[0], hi[0] = min(lo[0], (nz - 1) / 2), max(hi[0], (nz - 1) / 2)
    centre = (np.array([nz, ny, nx], float) - 1) / 2
    sup = [centre.copy()]
    tries = 0
    while len(sup) < n_support and tries < 5000:
        tries += 1
        base = sup[rng.integers(len(sup))]
        d = rng.normal(size=3)
        d[0] *= 0.4  # a flattish layer, as a catalyst coat on a membrane
        d /= np.linalg.norm(d)
        c = base + 1.5 * R * d
        if np.any(c < lo) or np.any(c > hi):
            continue
        if min(np.linalg.norm(c - q) for q in sup) < 1.3 * R:
            continue
        sup.append(c)
    sup = np.array(sup)
    parts = []
    tries = 0
    while len(parts) < n_particles and tries < 20000:
        tries += 1
        r = rng.uniform(*particle_radius)
        k = rng.integers(len(sup))
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        p = sup[k] + (R + 0.5 * r) * d  # centre half a radius outside the support surface
        if np.min(np.linalg.norm(sup - p, axis=1)) < R + 0.5 * r - 1e-6:
            continue  # would sit inside another support sphere
        if any(np.linalg.norm(p - q[:3]) < r + q[3] + 2 * coating_vox + 1 for q in parts):
            continue
        parts.append((*p, r))
    return {"shape": list(shape), "support_radius_vox": float(R), "coating_vox": float(coating_vox),
            "support": [{"z": float(c[0]), "row": float(c[1]), "col": float(c[2])} for c in sup],
            "particles": [{"z": float(p[0]), "row": float(p[1]), "col": float(p[2]), "radius_vox": float(p[3])}
                          for p in parts]}


def _paint_sphere(lab, zs, ys, xs, c, r, value, where=None):
    iz = np.nonzero(np.abs(zs - c[0]) <= r)[0]
    iy = np.nonzero(np.abs(ys - c[1]) <= r)[0]
    ix = np.nonzero(np.abs(xs - c[2]) <= r)[0]
    if not (iz.size and iy.size and ix.size):
        return
    sub = ((zs[iz, None, None] - c[0]) ** 2 + (ys[None, iy, None] - c[1]) ** 2
           + (xs[None, None, ix] - c[2]) ** 2) <= r * r
    block = lab[iz[0]:iz[-1] + 1, iy[0]:iy[-1] + 1, ix[0]:ix[-1] + 1]
    block[sub] = value


def particles_labels(layout: dict, *, scale: int = 1) -> np.ndarray:
    """Label volume (uint8, :data:`LABELS`) of :func:`particles_layout` on a ``scale``-times finer grid."""
    from scipy import ndimage as ndi

    shape = tuple(layout["shape"])
    zs, ys, xs = _grid(shape, scale)
    lab = np.zeros((zs.size, ys.size, xs.size), np.uint8)
    R = layout["support_radius_vox"]
    for c in layout["support"]:
        _paint_sphere(lab, zs, ys, xs, (c["z"], c["row"], c["col"]), R, LABELS["support"])
    for p in layout["particles"]:
        _paint_sphere(lab, zs, ys, xs, (p["z"], p["row"], p["col"]), p["radius_vox"], LABELS["particle"])
    solid = lab > 0
    dist = ndi.distance_transform_edt(~solid) / scale
    lab[(~solid) & (dist <= layout["coating_vox"])] = LABELS["coating"]
    return lab


def density_from_labels(labels: np.ndarray) -> np.ndarray:
    """Density (float32) of each label of :data:`LABELS`."""
    lut = np.zeros(256, np.float32)
    lut[LABELS["support"]] = DENSITY["support"]
    lut[LABELS["particle"]] = DENSITY["particle"]
    lut[LABELS["coating"]] = DENSITY["coating"]
    return lut[labels]


def block_mean(a: np.ndarray, scale: int) -> np.ndarray:
    """Mean over ``scale^3`` blocks (partial-volume down-sampling)."""
    if scale == 1:
        return np.asarray(a, np.float32)
    nz, ny, nx = (s // scale for s in a.shape)
    return a[:nz * scale, :ny * scale, :nx * scale].reshape(nz, scale, ny, scale, nx, scale).mean(
        axis=(1, 3, 5), dtype=np.float32)


# --- crumple network ------------------------------------------------------------------------------

def _seg_dist(p, a, b):
    ab = b - a
    t = np.clip(((p - a) @ ab) / max(ab @ ab, 1e-12), 0, 1)
    return np.linalg.norm(p - (a + t[..., None] * ab), axis=-1)


def _segments_min_distance(a, b, c, d, n=24):
    s = np.linspace(0, 1, n)[:, None]
    p = a + s * (b - a)
    return float(_seg_dist(p, c, d).min())


def network_layout(shape, *, rng, n_nodes: int = 14, wall_vox: float = 3.0, junction_ratio: float = 1.6,
                   min_sep_vox: float | None = None) -> dict:
    """A random graph of tubes ("crumple ridges") whose junctions are thicker than the walls.

    Nodes keep a minimum separation; edges are the Gabriel graph of the nodes, dropped where a tube
    would pass closer than two wall thicknesses to another tube or node, and degree-2 nodes are
    avoided so that the skeleton graph and the drawn graph agree one to one.
    """
    import networkx as nx_

    nz, ny, nx = shape
    margin = 2 * wall_vox * junction_ratio + 2
    sep = min_sep_vox or 0.35 * min(shape) ** (2 / 3) * 3
    pts = []
    tries = 0
    while len(pts) < n_nodes and tries < 20000:
        tries += 1
        p = np.array([rng.uniform(margin, n - 1 - margin) for n in (nz, ny, nx)])
        if all(np.linalg.norm(p - q) >= sep for q in pts):
            pts.append(p)
    pts = np.array(pts)
    n = len(pts)
    g = nx_.Graph()
    g.add_nodes_from(range(n))
    cand = []
    for i in range(n):
        for j in range(i + 1, n):
            mid = 0.5 * (pts[i] + pts[j])
            rad = 0.5 * np.linalg.norm(pts[i] - pts[j])
            others = np.delete(np.arange(n), [i, j])
            if np.all(np.linalg.norm(pts[others] - mid, axis=1) > rad):
                cand.append((np.linalg.norm(pts[i] - pts[j]), i, j))
    cand.sort()
    clear = 2.5 * wall_vox * junction_ratio
    for _, i, j in cand:
        ok = True
        for k in range(n):
            if k not in (i, j) and _seg_dist(pts[k][None], pts[i], pts[j])[0] < clear:
                ok = False
                break
        if ok:
            for (u, v) in g.edges:
                if len({u, v, i, j}) == 4 and _segments_min_distance(pts[i], pts[j], pts[u], pts[v]) < clear:
                    ok = False
                    break
        if ok:
            g.add_edge(i, j)
    # remove degree-2 and isolated nodes by merging/dropping (so every node is a junction or an end)
    changed = True
    while changed:
        changed = False
        for v in list(g.nodes):
            if g.degree(v) == 0:
                g.remove_node(v)
                changed = True
            elif g.degree(v) == 2:
                a, b = list(g.neighbors(v))
                # a straight replacement would change geometry: drop one of the two edges instead
                g.remove_edge(v, b)
                changed = True
    keep = sorted(g.nodes)
    remap = {v: i for i, v in enumerate(keep)}
    nodes = [{"z": float(pts[v][0]), "row": float(pts[v][1]), "col": float(pts[v][2]), "degree": int(g.degree(v))}
             for v in keep]
    edges = [[remap[u], remap[v]] for u, v in g.edges]
    n_comp = nx_.number_connected_components(g)
    return {"shape": list(shape), "wall_vox": wall_vox, "junction_ratio": junction_ratio, "nodes": nodes,
            "edges": edges, "n_nodes": len(nodes), "n_edges": len(edges),
            "n_junctions": int(sum(d["degree"] >= 3 for d in nodes)),
            "n_ends": int(sum(d["degree"] == 1 for d in nodes)),
            "n_loops": int(len(edges) - len(nodes) + n_comp), "n_components": int(n_comp)}


def network_mask(layout: dict, *, scale: int = 1) -> np.ndarray:
    """Boolean volume of :func:`network_layout`: tubes of diameter ``wall_vox``, junction spheres
    of diameter ``junction_ratio * wall_vox`` at nodes of degree >= 3."""
    shape = tuple(layout["shape"])
    zs, ys, xs = _grid(shape, scale)
    m = np.zeros((zs.size, ys.size, xs.size), bool)
    pts = np.array([[d["z"], d["row"], d["col"]] for d in layout["nodes"]])
    rw = layout["wall_vox"] / 2
    rj = rw * layout["junction_ratio"]
    for u, v in layout["edges"]:
        a, b = pts[u], pts[v]
        lo = np.minimum(a, b) - rw - 1
        hi = np.maximum(a, b) + rw + 1
        iz = np.nonzero((zs >= lo[0]) & (zs <= hi[0]))[0]
        iy = np.nonzero((ys >= lo[1]) & (ys <= hi[1]))[0]
        ix = np.nonzero((xs >= lo[2]) & (xs <= hi[2]))[0]
        if not (iz.size and iy.size and ix.size):
            continue
        P = np.stack(np.meshgrid(zs[iz], ys[iy], xs[ix], indexing="ij"), -1)
        m[iz[0]:iz[-1] + 1, iy[0]:iy[-1] + 1, ix[0]:ix[-1] + 1] |= _seg_dist(P, a, b) <= rw
    for p, d in zip(pts, layout["nodes"]):
        r = rj if d["degree"] >= 3 else rw
        iz = np.nonzero(np.abs(zs - p[0]) <= r)[0]
        iy = np.nonzero(np.abs(ys - p[1]) <= r)[0]
        ix = np.nonzero(np.abs(xs - p[2]) <= r)[0]
        sub = ((zs[iz, None, None] - p[0]) ** 2 + (ys[None, iy, None] - p[1]) ** 2
               + (xs[None, None, ix] - p[2]) ** 2) <= r * r
        m[iz[0]:iz[-1] + 1, iy[0]:iy[-1] + 1, ix[0]:ix[-1] + 1] |= sub
    return m
