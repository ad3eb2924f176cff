"""Skeleton graphs of 3D networks (crumples, pores, fibres): nodes, edges, junctions, loops, walls.

The mask is thinned to a one-voxel skeleton (Lee et al. 1994, doi:10.1006/cgip.1994.1042, via
scikit-image), traced into branches with skan (Nunez-Iglesias et al. 2018, doi:10.7717/peerj.4312),
and cleaned into the graph a person would draw: spurs shorter than the local thickness are pruned,
junction points inside one blob are merged, and pass-through (degree-2) nodes are dissolved.
Global efficiency follows Latora & Marchiori 2001, doi:10.1103/PhysRevLett.87.198701.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SkeletonGraph:
    """A cleaned skeleton graph.

    Attributes
    ----------
    graph : networkx.MultiGraph; nodes carry ``z, row, col`` (voxels), ``degree`` and
        ``thickness`` (local thickness at the node, in the unit of ``voxel_size``); edges carry
        ``length`` and ``wall_thickness`` (median local thickness along the edge away from its ends).
    voxel_size : length per voxel.
    """

    graph: object
    voxel_size: float

    def summary(self, unit: str = "nm") -> dict:
        import networkx as nx

        g = self.graph
        deg = dict(g.degree())
        n_comp = nx.number_connected_components(g) if g.number_of_nodes() else 0
        simple = nx.Graph(g)
        junction_t = [d["thickness"] for n, d in g.nodes(data=True) if deg[n] >= 3 and np.isfinite(d["thickness"])]
        wall_t = [d["wall_thickness"] for *_, d in g.edges(data=True) if np.isfinite(d["wall_thickness"])]
        hist = np.bincount(list(deg.values())) if deg else np.zeros(1, int)
        jt = float(np.mean(junction_t)) if junction_t else float("nan")
        wt = float(np.median(wall_t)) if wall_t else float("nan")
        return {
            "n_nodes": g.number_of_nodes(), "n_edges": g.number_of_edges(),
            "n_junctions": int(sum(v >= 3 for v in deg.values())), "n_ends": int(sum(v == 1 for v in deg.values())),
            "n_loops": int(g.number_of_edges() - g.number_of_nodes() + n_comp), "n_components": int(n_comp),
            "degree_histogram": {int(k): int(v) for k, v in enumerate(hist) if v},
            "mean_junction_degree": float(np.mean([v for v in deg.values() if v >= 3])) if junction_t else float("nan"),
            "global_efficiency": float(nx.global_efficiency(simple)) if simple.number_of_nodes() > 1 else float("nan"),
            f"mean_edge_length_{unit}": float(np.mean([d["length"] for *_, d in g.edges(data=True)]))
            if g.number_of_edges() else float("nan"),
            f"junction_thickness_{unit}": jt, f"wall_thickness_{unit}": wt,
            "junction_to_wall_thickness_ratio": jt / wt if wt and np.isfinite(wt) and wt > 0 else float("nan"),
        }

    def edges_frame(self):
        import pandas as pd

        rows = []
        for u, v, d in self.graph.edges(data=True):
            rows.append({"node_a": u, "node_b": v, "length": d["length"], "wall_thickness": d["wall_thickness"]})
        return pd.DataFrame(rows, columns=["node_a", "node_b", "length", "wall_thickness"])

    def nodes_frame(self):
        import pandas as pd

        rows = [{"node": n, "z_px": d["z"], "row_px": d["row"], "col_px": d["col"], "degree": self.graph.degree(n),
                 "thickness": d["thickness"]} for n, d in self.graph.nodes(data=True)]
        return pd.DataFrame(rows, columns=["node", "z_px", "row_px", "col_px", "degree", "thickness"])


def _sample(lt, p):
    q = np.clip(np.round(p).astype(int), 0, np.array(lt.shape) - 1)
    z, y, x = q
    sl = lt[max(z - 1, 0):z + 2, max(y - 1, 0):y + 2, max(x - 1, 0):x + 2]
    return float(sl.max())


def skeleton_graph(mask, *, voxel_size: float = 1.0, thickness=None, prune_ratio: float = 1.0) -> SkeletonGraph:
    """Skeleton graph of a 3D binary network.

    Parameters
    ----------
    mask : bool (z, row, col).
    voxel_size : length per voxel (lengths and thicknesses are reported in this unit).
    thickness : local-thickness map (same unit) to use; computed if None.
    prune_ratio : end branches shorter than ``prune_ratio`` times the local thickness at their
        junction are spurs of the thinning and are removed.

    Returns
    -------
    SkeletonGraph
    """
    import networkx as nx
    from skan import Skeleton, summarize
    from skimage.morphology import skeletonize

    from cryomat.tomography.thickness import local_thickness

    m = np.asarray(mask, bool)
    if m.ndim != 3:
        raise ValueError(f"mask must be 3D, got shape {m.shape}")
    lt = local_thickness(m, voxel_size=voxel_size) if thickness is None else np.asarray(thickness, np.float32)
    sk = skeletonize(m)
    g = nx.MultiGraph()
    if sk.sum() < 2:
        return SkeletonGraph(graph=g, voxel_size=voxel_size)
    skel = Skeleton(sk.astype(bool), spacing=1.0)
    paths = [np.asarray(skel.path_coordinates(i)) for i in range(skel.n_paths)]
    df = summarize(skel, separator="_")
    for i, row in df.iterrows():
        a, b = int(row["node_id_src"]), int(row["node_id_dst"])
        pa = np.array([row[f"coord_src_{k}"] for k in range(3)])
        pb = np.array([row[f"coord_dst_{k}"] for k in range(3)])
        for n, p in ((a, pa), (b, pb)):
            if n not in g:
                g.add_node(n, z=float(p[0]), row=float(p[1]), col=float(p[2]), thickness=_sample(lt, p))
        g.add_edge(a, b, path=paths[i], length=float(row["branch_distance"]) * voxel_size)
    _clean(g, prune_ratio, voxel_size)
    for u, v, k, d in g.edges(keys=True, data=True):
        path = d["path"]
        cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))]) * voxel_size
        ta, tb = g.nodes[u]["thickness"], g.nodes[v]["thickness"]
        away = (cum > ta) & (cum < cum[-1] - tb)
        pts = path[away] if away.any() else path[len(path) // 2:len(path) // 2 + 1]
        vals = lt[tuple(np.round(pts).astype(int).T)]
        vals = vals[vals > 0]
        d["wall_thickness"] = float(np.median(vals)) if vals.size else float("nan")
    return SkeletonGraph(graph=g, voxel_size=voxel_size)


def _merge_paths(p1, p2):
    if np.allclose(p1[-1], p2[0]):
        return np.vstack([p1, p2[1:]])
    if np.allclose(p1[-1], p2[-1]):
        return np.vstack([p1, p2[::-1][1:]])
    if np.allclose(p1[0], p2[0]):
        return np.vstack([p1[::-1], p2[1:]])
    return np.vstack([p2, p1[1:]]) if np.allclose(p2[-1], p1[0]) else np.vstack([p1, p2])


def _clean(g, prune_ratio, voxel_size, merge_ratio=1.25):
    changed = True
    while changed:
        changed = False
        # spurs: end branches shorter than the thickness of the junction they hang from
        for u, v, k, d in list(g.edges(keys=True, data=True)):
            if not g.has_edge(u, v, k):
                continue
            du, dv = g.degree(u), g.degree(v)
            if (du == 1) != (dv == 1):
                end, jn = (u, v) if du == 1 else (v, u)
                if d["length"] < prune_ratio * g.nodes[jn]["thickness"]:
                    g.remove_edge(u, v, k)
                    g.remove_node(end)
                    changed = True
        # junction clusters: junction-junction branches shorter than the local thickness
        for u, v, k, d in list(g.edges(keys=True, data=True)):
            if u == v or not g.has_edge(u, v, k):
                continue
            if g.degree(u) >= 3 and g.degree(v) >= 3 and \
                    d["length"] < merge_ratio * max(g.nodes[u]["thickness"], g.nodes[v]["thickness"]):
                g.remove_edge(u, v, k)
                for w, kk, dd in list((w, kk, dd) for _, w, kk, dd in g.edges(v, keys=True, data=True)):
                    g.add_edge(u, u if w == v else w, path=dd["path"], length=dd["length"])
                    g.remove_edge(v, w, kk)
                g.nodes[u]["thickness"] = max(g.nodes[u]["thickness"], g.nodes[v]["thickness"])
                g.remove_node(v)
                changed = True
        # small cycles inside one blob (left by thinning and by the merges above)
        for u, v, k, d in list(g.edges(keys=True, data=True)):
            if u == v and d["length"] < 2 * np.pi * g.nodes[u]["thickness"]:
                g.remove_edge(u, v, k)
                changed = True
        # pass-through nodes
        for n in list(g.nodes):
            if n in g and g.degree(n) == 2 and g.number_of_edges(n, n) == 0:
                (_, a, ka, da), (_, b, kb, db) = list(g.edges(n, keys=True, data=True))
                g.remove_edge(n, a, ka)
                g.remove_edge(n, b, kb)
                g.add_edge(a, b, path=_merge_paths(da["path"][::-1] if np.allclose(da["path"][0], _pos(g, n)) else da["path"],
                                                   db["path"]), length=da["length"] + db["length"])
                g.remove_node(n)
                changed = True
        for n in [n for n in g.nodes if g.degree(n) == 0]:
            g.remove_node(n)


def _pos(g, n):
    d = g.nodes[n]
    return np.array([d["z"], d["row"], d["col"]])


def write_graphml(sg: SkeletonGraph, path) -> None:
    """Write the graph as GraphML (paths dropped; node positions in voxels, lengths in the voxel unit)."""
    import networkx as nx

    from cryomat.io.atomic import atomic_path

    h = nx.MultiGraph()
    for n, d in sg.graph.nodes(data=True):
        h.add_node(int(n), z_px=d["z"], row_px=d["row"], col_px=d["col"], thickness=float(d["thickness"]),
                   degree=int(sg.graph.degree(n)))
    for u, v, d in sg.graph.edges(data=True):
        h.add_edge(int(u), int(v), length=float(d["length"]), wall_thickness=float(d.get("wall_thickness", np.nan)))
    with atomic_path(path) as tmp:
        nx.write_graphml(h, tmp)
