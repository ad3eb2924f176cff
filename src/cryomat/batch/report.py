"""The aggregate report of a job: status, per-condition distributions, links to every file's report."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

_UNIT_SUFFIXES = ("_nm", "_nm2", "_A", "_A2", "_e_per_A2", "_pm", "_deg", "_s", "_px", "_nm_per_s")


def _measure_columns(frame: pd.DataFrame, limit: int = 4) -> list[str]:
    cols = [c for c in frame.columns
            if c.endswith(_UNIT_SUFFIXES) and pd.api.types.is_numeric_dtype(frame[c]) and frame[c].notna().any()]
    preferred = [c for c in cols if any(k in c for k in ("critical_dose", "diameter", "area", "d_spacing", "drift"))]
    rest = [c for c in cols if c not in preferred]
    return (preferred + rest)[:limit]


def _distribution_figure(frame: pd.DataFrame, columns: list[str], title: str):
    from cryomat.report.figures import new_figure

    fig, axes = new_figure(len(columns), 1, size=3.4)
    groups = frame["condition"].fillna("all").astype(str)
    names = sorted(groups.unique())
    for ax, col in zip(axes[0], columns):
        data = [frame.loc[groups == g, col].dropna().to_numpy() for g in names]
        ax.boxplot([d if d.size else np.array([np.nan]) for d in data], showfliers=False)
        ax.set_xticks(range(1, len(names) + 1), names, rotation=30, fontsize=8)
        ax.set_title(col, fontsize=9)
    fig.suptitle(title, fontsize=10)
    return fig


def write_job_report(job: Path, pipeline, gathered: dict, counts: dict, failures: pd.DataFrame) -> Path:
    from cryomat.outputs import OutputDir
    from cryomat.report import Report

    out = OutputDir(job, command="run")
    rep = Report("cryomat run: job report", subtitle=str(pipeline.source))
    rows = [{"step": s.name, "command": s.command, "scope": s.scope, **counts.get(s.name, {})} for s in pipeline.steps]
    rep.add_table(pd.DataFrame(rows).fillna(0), title="Steps")
    if not failures.empty:
        rep.add_table(failures, title=f"Failures ({len(failures)})", max_rows=50)
    for (step, name), frame in gathered.items():
        if frame.empty or "condition" not in frame.columns:
            continue
        cols = _measure_columns(frame)
        if not cols:
            continue
        label = "summary" if name == "__summary__" else name
        fig = _distribution_figure(frame, cols, f"{step}: {label}")
        fname = f"figures/{step}_{Path(label).stem}_by_condition.png"
        out.save_figure(fname, fig)
        rep.add_heading(f"{step}: {label} by condition")
        rep.add_figure(fname, f"{label}: distribution per condition ({len(frame)} rows)")
        stats = frame.groupby(frame["condition"].fillna("all"))[cols].agg(["median", "count"])
        stats.columns = [f"{a} {b}" for a, b in stats.columns]
        rep.add_table(stats.reset_index(), max_rows=40)
        if "class" in frame.columns or "class_label" in frame.columns:
            cc = "class" if "class" in frame.columns else "class_label"
            frac = pd.crosstab(frame["condition"].fillna("all"), frame[cc], normalize="index")
            rep.add_table(frac.reset_index(), title=f"{step}: class fractions by condition")
    links = []
    for (step, name), frame in gathered.items():
        if name == "__summary__" and "report" in frame.columns:
            for _, r in frame.iterrows():
                links.append(f"<tr><td>{html.escape(str(r['input_path']))}</td><td>{html.escape(step)}</td>"
                             f"<td><a href='{html.escape(str(r['report']))}'>report</a></td></tr>")
    if links:
        rep.add_heading("Per-file reports")
        rep.add_html("<table><tr><th>file</th><th>step</th><th></th></tr>" + "".join(links[:2000]) + "</table>")
    return rep.write(out.file("report.html"))
