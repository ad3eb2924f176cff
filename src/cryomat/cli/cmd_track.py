"""``cryomat track SERIES --out DIR``: track crystals through an in-situ series, growth kinetics."""

from __future__ import annotations

import argparse

NAME = "track"
HELP = "track objects through an in-situ image series: tracks, events, growth rates and laws"


def add_arguments(p):
    from cryomat.cli.common import add_out, add_pixel_size, positive_float

    p.add_argument("series", help="image series (MRC/MRCS stack, multi-frame TIFF, SER, DM, ...)")
    add_out(p)
    add_pixel_size(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--frame-time", type=positive_float, metavar="S", help="time between frames (s)")
    g.add_argument("--times", metavar="FILE", help="text file with one time (s) per frame")
    p.add_argument("--search-range", type=positive_float, metavar="NM",
                   help="largest displacement between frames after drift removal (nm; default: half the median size)")
    p.add_argument("--memory", type=int, default=2, help="frames an object may be missed and still continue (default 2)")
    p.add_argument("--dose", type=positive_float, metavar="E_PER_A2", help="fluence per frame (e/A^2), for segmentation")
    p.add_argument("--polarity", choices=["auto", "dark", "bright"], default="auto", help="object contrast")
    p.add_argument("--min-size", type=positive_float, metavar="NM", help="smallest object (equivalent diameter, nm)")
    p.add_argument("--min-track-frames", type=int, default=5, help="frames a track needs for a growth fit (default 5)")
    p.add_argument("--flat-field", action=argparse.BooleanOptionalAction, default=True,
                   help="divide out the static film background (texture measured where uncovered, in the film's "
                        "drift-corrected coordinates) and segment again on the flat-fielded frames (default: on)")
    p.add_argument("--interpolate-gaps", action=argparse.BooleanOptionalAction, default=True,
                   help="give frames a track skips (closed gaps) a mask interpolated from the frames around them "
                        "(rows marked 'interpolated', not used for growth rates; default: on)")
    p.add_argument("--axes", choices=["fit", "feret"], default="fit",
                   help="axis lengths for growth rates: 'fit' a blurred ellipse to each crystal's image (sub-pixel, "
                        "default) or the mask's 'feret' diameters (faster)")


def _read_times(path, n):
    from pathlib import Path

    import numpy as np

    from cryomat.errors import InputError

    try:
        vals = [float(x) for x in Path(path).read_text().split()]
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read frame times ({exc})", path=path) from None
    if len(vals) != n:
        raise InputError(f"{len(vals)} times given for {n} frames", path=path)
    t = np.asarray(vals)
    if np.any(np.diff(t) <= 0):
        raise InputError("frame times must increase", path=path)
    return t


def run(args) -> int:
    import numpy as np

    from cryomat import io
    from cryomat.cli.common import parameters_of
    from cryomat.errors import InputError
    from cryomat.outputs import OutputDir
    from cryomat.progress import status
    from cryomat.report import Report
    from cryomat.tracking import growth_table, track_series
    from cryomat.tracking.figures import anisotropy_figure, growth_figure, overlay_frames

    img = io.read(args.series)
    if img.ndim != 3:
        raise InputError(f"a series needs several frames; got shape {img.shape}", path=args.series)
    n = img.shape[0]
    if n < 2:
        raise InputError("a series needs at least 2 frames", path=args.series)
    px = img.require_pixel_size(args.pixel_size)
    if args.times:
        times = _read_times(args.times, n)
    else:
        dt = args.frame_time or img.acquisition.frame_time_s
        if dt is None:
            status("track: no --frame-time or --times given; times are in frames (1 s per frame)")
            dt = 1.0
        times = np.arange(n) * float(dt)
    if args.memory < 0:
        raise InputError("--memory must be >= 0")
    if args.min_track_frames < 3:
        raise InputError("--min-track-frames must be >= 3 (a rate and its interval need 3 points)")
    out = OutputDir(args.out, command="track", inputs=[args.series] + ([args.times] if args.times else []),
                    parameters=parameters_of(args))
    frames = np.asarray(img.data, dtype=np.float32)
    from cryomat.io.validate import require_finite

    require_finite(frames, path=args.series)
    status(f"track: {n} frames of {frames.shape[1]} x {frames.shape[2]} px at {px:g} A/px")
    tracks, events, labels = track_series(frames, pixel_size=px, times_s=times, search_range_nm=args.search_range,
                                          memory=args.memory, dose_e_per_A2=args.dose, polarity=args.polarity,
                                          min_size_nm=args.min_size, fit_axes=args.axes == "fit",
                                          min_fit_frames=max(args.min_track_frames, 3), flat_field=args.flat_field,
                                          interpolate_gaps=args.interpolate_gaps)
    seen = ~tracks["interpolated"].astype(bool) if "interpolated" in tracks else slice(None)
    growth = growth_table(tracks[seen], events, min_frames=args.min_track_frames, pixel_size=px)
    out.write_csv("tracks.csv", tracks)
    out.write_csv("events.csv", events)
    out.write_csv("growth.csv", growth)
    out.write_mrc("labels.mrcs", labels.astype(np.int16) if labels.max() < 32767 else labels.astype(np.float32),
                  pixel_size=px)
    import imageio.v3 as iio

    from cryomat.io.atomic import atomic_path

    with atomic_path(out.file("overlay.gif")) as tmp:
        iio.imwrite(tmp, overlay_frames(frames, labels, tracks), extension=".gif", duration=200, loop=0)
    rep = Report("Tracking and growth", subtitle=str(args.series))
    results = {
        "n_frames": n, "n_tracks": int(tracks["track"].nunique()) if len(tracks) else 0,
        "n_detections": int(len(tracks[seen])),
        "n_interpolated": int(tracks["interpolated"].astype(bool).sum()) if "interpolated" in tracks else 0,
        "events": events["event"].value_counts().to_dict() if len(events) else {},
        "n_growth_fits": int(len(growth)), "growth_axes": args.axes, "flat_field": bool(args.flat_field),
        "total_drift_nm": float(np.hypot(*tracks[["drift_row_px", "drift_col_px"]].iloc[-1]) * px / 10) if len(tracks) else 0.0,
    }
    if "psf_sigma_px" in tracks and tracks["psf_sigma_px"].notna().any():
        results["psf_sigma_px"] = float(tracks["psf_sigma_px"].median())
    if len(growth):
        results.update({
            "median_major_rate_nm_per_s": float(growth["major_rate_nm_per_s"].median()),
            "median_minor_rate_nm_per_s": float(growth["minor_rate_nm_per_s"].median()),
            "median_anisotropy_ratio": float(growth["anisotropy_ratio"].median()),
            "laws": growth["law"].value_counts().to_dict(),
        })
        out.save_figure("growth.png", growth_figure(tracks, growth))
        out.save_figure("anisotropy.png", anisotropy_figure(growth))
        rep.add_figure("growth.png", "axis lengths of the longest tracks against time")
        rep.add_figure("anisotropy.png", "growth rate along the major vs the minor axis (95% intervals)")
    rep.add_figure("overlay.gif", "tracked objects, one colour per track")
    rep.add_metrics({k: v for k, v in results.items() if not isinstance(v, dict)})
    if len(growth):
        rep.add_table(growth[["track", "n_frames", "major_rate_nm_per_s", "minor_rate_nm_per_s", "anisotropy_ratio",
                              "law", "parabolic_K_nm2_per_s", "parabolic_K_minor_nm2_per_s", "power_exponent"]],
                      title="Growth per track (rates: mean slopes; K: L^2 = L0^2 + K t per axis)")
    if len(events):
        rep.add_table(events, title="Events", max_rows=40)
    rep.write(out.file("report.html"))
    out.write_results(results)
    status(f"track: {results['n_tracks']} tracks, {len(growth)} growth fits -> {out.path}")
    return 0
