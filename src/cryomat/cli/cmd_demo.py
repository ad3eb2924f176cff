"""``cryomat demo``: every capability on simulated data, one report."""

from __future__ import annotations

import time
import traceback
from pathlib import Path

from cryomat.cli.common import add_out

NAME = "demo"
HELP = "simulate data for every capability, analyse it and write one report.html"


def add_arguments(p):
    add_out(p, required=False)
    p.set_defaults(out="demo-output")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--only", metavar="STEP[,STEP]", help="run only these steps (see --list)")
    p.add_argument("--list", action="store_true", help="list the demo steps and exit")


def run(args) -> int:
    from cryomat.demo import step_name, steps
    from cryomat.outputs import OutputDir
    from cryomat.progress import status
    from cryomat.report import Report

    mods = steps()
    if args.list:
        for m in mods:
            print(f"{step_name(m):14s} {m.TITLE}")
        return 0
    if args.only:
        wanted = [s.strip() for s in args.only.split(",") if s.strip()]
        known = {step_name(m): m for m in mods}
        bad = [w for w in wanted if w not in known]
        if bad:
            raise ValueError(f"--only: unknown step(s) {', '.join(bad)}; known: {', '.join(known)}")
        mods = [known[w] for w in wanted]
    out = OutputDir(args.out, command="demo", parameters={"seed": args.seed, "only": args.only})
    report = Report("cryomat demo", subtitle="Simulated data with known ground truth, analysed end to end.")
    report.add_text(
        "Each section simulates data with cryomat.simulate (image-formation physics, shot noise at a stated "
        "dose), runs the analysis exactly as the command line would, and compares the result with the truth.",
        note=True)
    summary = {}
    failed = []
    rows = []
    n_intro = len(report.parts)
    for mod in mods:
        name = step_name(mod)
        status(f"demo: {name}: {mod.TITLE} ...")
        t0 = time.perf_counter()
        try:
            res = mod.run(out.path / name, seed=args.seed)
        except Exception as exc:  # a failing step is reported, the others still run
            failed.append(name)
            summary[name] = {"error": f"{type(exc).__name__}: {exc}"}
            rows.append({"name": name, "title": mod.TITLE, "ok": False,
                         "seconds": round(time.perf_counter() - t0, 2), "anchor": name})
            report.add_heading(mod.TITLE, anchor=name)
            report.add_text(f"This step failed: {type(exc).__name__}: {exc}", note=True)
            status("".join(traceback.format_exception_only(type(exc), exc)).strip())
            continue
        dt = time.perf_counter() - t0
        summary[name] = {**res.get("metrics", {}), "seconds": round(dt, 2)}
        rows.append({"name": name, "title": mod.TITLE, "ok": True, "seconds": round(dt, 2), "anchor": name})
        report.add_heading(mod.TITLE, anchor=name)
        if res.get("summary"):
            report.add_text(res["summary"])
        if res.get("figure"):
            report.add_figure(f"{name}/{res['figure']}", mod.TITLE)
        report.add_metrics({**res.get("metrics", {}), "seconds": round(dt, 2)})
        if res.get("report"):
            report.add_link(f"{name}/{res['report']}", "Full report of this step")
        status(f"demo: {name}: done in {dt:.1f} s")
    report.insert_summary(rows, position=n_intro, title="Steps")
    report.write(out.file("report.html"))
    out.write_results({"steps": summary, "failed_steps": failed})
    status(f"demo: report written to {out.path / 'report.html'}")
    return 1 if failed else 0
