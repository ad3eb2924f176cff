"""``cryomat align``: drift correction and dose weighting of movies and STEM frame series."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cryomat.cli.common import (add_out, add_pixel_size, input_file, nonneg_float, parameters_of, positive_float,
                                positive_int)

NAME = "align"
HELP = "drift-correct a movie or frame series: aligned, dose-weighted, even/odd sums, shifts.csv, report"


def add_arguments(p):
    p.add_argument("inputs", nargs="+", type=input_file, metavar="INPUT",
                   help="movie/stack (MRC/MRCS, TIFF, DM, EMD, SER, HSPY) or several single-frame files")
    add_out(p)
    add_pixel_size(p)
    p.add_argument("--dose-per-frame", type=positive_float, metavar="E_PER_A2",
                   help="fluence per frame in e/A^2 (enables aligned_sum_dw.mrc)")
    p.add_argument("--voltage", type=positive_float, metavar="KV", help="acceleration voltage in kV (default: file or 300)")
    p.add_argument("--pre-exposure", type=nonneg_float, default=0.0, metavar="E_PER_A2",
                   help="fluence received before the first frame, e/A^2 (default 0)")
    p.add_argument("--gain", type=input_file, metavar="REF", help="gain reference (corrected = (raw - dark) * gain)")
    p.add_argument("--gain-rotate", type=int, default=0, metavar="N", help="rotate the gain by N x 90 deg (np.rot90)")
    p.add_argument("--gain-flip", choices=["none", "updown", "leftright"], default="none", help="flip the gain after rotating")
    p.add_argument("--gain-invert", action="store_true", help="use 1/gain (reference stored as sensitivity)")
    p.add_argument("--dark", type=input_file, metavar="REF", help="dark/offset reference subtracted first")
    p.add_argument("--defects", type=input_file, metavar="FILE",
                   help="defect map image (non-zero = bad) or text file of boxes 'row0 col0 n_rows n_cols' per line")
    p.add_argument("--no-hot-pixels", action="store_true", help="do not detect and replace hot pixels")
    p.add_argument("--mode", choices=["auto", "reference", "all-pairs"], default="auto",
                   help="leave-one-out reference (TEM movies) or robust all-pairs (STEM, lattices); auto picks")
    p.add_argument("--group", type=positive_int, default=1, metavar="N", help="sum N neighbouring frames per estimate")
    p.add_argument("--patches", metavar="NxM", help="also estimate local motion on an N x M patch grid")
    p.add_argument("--bfactor", default="auto", metavar="PX2", help="CCF low-pass B-factor in px^2, or 'auto' (default)")
    p.add_argument("--max-shift", type=positive_float, metavar="PX", help="largest shift searched (px)")
    p.add_argument("--smooth", default="auto", metavar="LAMBDA", help="trajectory smoothing: auto (GCV), 0 (none) or a number")
    p.add_argument("--signal", choices=["image", "spectrum"], help="dataset to read from multi-dataset files")


class _Stack:
    """Frames from several files (2D frames or stacks), read lazily, one frame at a time."""

    def __init__(self, arrays, names):
        self.arrays = arrays
        self.index = []
        shape = None
        for a, nm in zip(arrays, names):
            fs = tuple(a.shape[-2:])
            if shape is None:
                shape = fs
            elif fs != shape:
                raise ValueError(f"{nm}: frames of different shapes: {fs[0]}x{fs[1]} here, {shape[0]}x{shape[1]} before")
        for ai, a in enumerate(arrays):
            k = 1 if a.ndim == 2 else a.shape[0]
            self.index += [(ai, j) for j in range(k)]
        self.shape = (len(self.index),) + shape
        self.dtype = np.dtype(np.float32)

    def __getitem__(self, i):
        ai, j = self.index[i]
        a = self.arrays[ai]
        return np.asarray(a if a.ndim == 2 else a[j], dtype=np.float32)


def _read_inputs(paths, signal):
    from cryomat import io
    from cryomat.errors import InputError

    imgs = []
    for p in paths:
        img = io.read(p, lazy=True, signal=signal)
        if img.ndim not in (2, 3) or img.signal != "image":
            raise InputError(f"expected a 2D frame or a 3D frame stack, got {img.ndim}D {img.signal} "
                             f"with axes {img.axes}", path=p)
        imgs.append(img)
    if len(imgs) == 1:
        img = imgs[0]
        if img.ndim == 2:
            raise InputError("a single frame: nothing to align (give a stack or several frames)", path=paths[0])
        frames = img.data
    else:
        frames = _Stack([im.data for im in imgs], [str(p) for p in paths])
    if frames.shape[0] < 2:
        raise InputError("a single frame: nothing to align", path=paths[0])
    return imgs[0], frames


def _read_ref(path, shape, what):
    from cryomat import io
    from cryomat.errors import InputError

    a = np.asarray(io.read(path, lazy=False).data, dtype=np.float32)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise InputError(f"{what} must be a 2D image, got shape {a.shape}", path=path)
    if not np.all(np.isfinite(a)):
        raise InputError(f"{what} contains NaN or infinite values", path=path)
    return a


def _read_defects(path, shape):
    from cryomat.errors import InputError
    from cryomat.registration import defect_mask_from_boxes

    if Path(path).suffix.lower() in (".txt", ".csv", ".dat", ".defects"):
        boxes = []
        for ln, line in enumerate(Path(path).read_text().splitlines(), 1):
            line = line.split("#")[0].replace(",", " ").strip()
            if not line:
                continue
            try:
                boxes.append([float(v) for v in line.split()])
            except ValueError:
                raise InputError(f"line {ln}: expected 'row0 col0 n_rows n_cols', got {line!r}", path=path) from None
            if len(boxes[-1]) != 4:
                raise InputError(f"line {ln}: expected 4 numbers 'row0 col0 n_rows n_cols'", path=path)
        return defect_mask_from_boxes(shape, boxes)
    m = _read_ref(path, shape, "defect map")
    if m.shape != tuple(shape):
        raise InputError(f"defect map has shape {m.shape} but the frames are {tuple(shape)}", path=path)
    return m != 0


def run(args) -> int:
    from cryomat import registration as reg
    from cryomat.errors import InputError
    from cryomat.fourier import fourier_ring_correlation
    from cryomat.outputs import OutputDir
    from cryomat.progress import status

    first, frames = _read_inputs(args.inputs, args.signal)
    shape = tuple(frames.shape[-2:])
    px = first.pixel_size if args.pixel_size is None else args.pixel_size
    if args.dose_per_frame is not None and px is None:
        raise InputError("dose weighting needs the pixel size: pass --pixel-size in Angstrom", path=args.inputs[0])
    voltage = args.voltage or first.acquisition.voltage_kV or 300.0
    dose = args.dose_per_frame if args.dose_per_frame is not None else first.acquisition.dose_per_frame_e_per_A2
    try:
        bfac = args.bfactor if args.bfactor == "auto" else float(args.bfactor)
        if bfac != "auto" and not (np.isfinite(bfac) and bfac > 0):
            raise ValueError
    except ValueError:
        raise InputError(f"--bfactor expects 'auto' or a positive number of px^2, got {args.bfactor!r}") from None
    try:
        smooth = args.smooth if args.smooth == "auto" else float(args.smooth)
        if smooth != "auto" and not (np.isfinite(smooth) and smooth >= 0):
            raise ValueError
    except ValueError:
        raise InputError(f"--smooth expects 'auto', 0 or a positive number, got {args.smooth!r}") from None
    patches = None
    if args.patches:
        try:
            patches = tuple(int(v) for v in args.patches.lower().split("x"))
            if len(patches) != 2 or min(patches) < 1:
                raise ValueError
        except ValueError:
            raise InputError(f"--patches expects NxM (e.g. 5x5), got {args.patches!r}") from None
    gain = dark = defects = None
    if args.gain:
        gain = reg.orient_gain(_read_ref(args.gain, shape, "gain reference"), rotate=args.gain_rotate,
                               flip=None if args.gain_flip == "none" else args.gain_flip, invert=args.gain_invert)
        if gain.shape != shape:
            raise InputError(f"gain reference has shape {gain.shape} (after rotation) but the frames are {shape}",
                             path=args.gain)
    if args.dark:
        dark = _read_ref(args.dark, shape, "dark reference")
        if dark.shape != shape:
            raise InputError(f"dark reference has shape {dark.shape} but the frames are {shape}", path=args.dark)
    if args.defects:
        defects = _read_defects(args.defects, shape)
    status(f"align: {frames.shape[0]} frames of {shape[0]}x{shape[1]} px")
    # one pass: checks every frame (NaN, all zero) and finds hot pixels on the corrected sum
    corr = reg.build_corrector(frames, gain=gain, dark=dark, defects=defects, hot_pixels=not args.no_hot_pixels)
    out = OutputDir(args.out, command="align", inputs=args.inputs, parameters=parameters_of(args))
    mode = args.mode
    if mode == "auto":
        mode = "all-pairs" if (first.axes[0] == "tilt" or frames.shape[0] <= 8) else "reference"
    res = reg.estimate_drift(frames, pixel_size=px, mode=mode, bfactor_px2=bfac, group=args.group,
                             max_shift_px=args.max_shift, smoothing=smooth, corrector=None if corr.is_identity else corr)
    local = None
    if patches is not None:
        from cryomat.registration.local import estimate_local_motion

        local = estimate_local_motion(frames, res, grid=patches, corrector=None if corr.is_identity else corr)
    sums = reg.aligned_sums(frames, res.shifts_px, corrector=None if corr.is_identity else corr, pixel_size=px,
                            dose_per_frame=dose if px else None, voltage_kV=voltage, pre_exposure=args.pre_exposure,
                            local=local)
    out.write_mrc("aligned_sum.mrc", sums.total, pixel_size=px)
    if sums.dose_weighted is not None:
        out.write_mrc("aligned_sum_dw.mrc", sums.dose_weighted, pixel_size=px)
    out.write_mrc("even_sum.mrc", sums.even, pixel_size=px)
    out.write_mrc("odd_sum.mrc", sums.odd, pixel_size=px)
    out.write_csv("shifts.csv", res.table())
    if local is not None:
        out.write_csv("local_motion.csv", local.table())
    frc = fourier_ring_correlation(sums.even, sums.odd, pixel_size=px or 1.0)
    frc_res = _frc_last_crossing(frc.freq_per_A, frc.frc)
    qc = {
        "n_frames": res.n_frames, "mode": res.mode,
        "total_drift_px": res.total_drift_px, "total_drift_A": res.total_drift_px * px if px else None,
        "residual_rms_px": res.residual_rms_px, "outlier_pairs": res.outlier_pairs,
        "frc_even_odd_0143_A": frc_res if px else None, "frc_even_odd_0143_px": frc_res / (px or 1.0) if px else frc_res,
        "mean_ccf_peak": float(np.mean(res.ccf_peak)), "iterations": res.iterations, "converged": res.converged,
        "lattice_period_px": res.lattice_period_px, "bfactor_px2": res.extra.get("bfactor_px2"),
        "smoothing_lambda": res.smoothing, "hot_or_defect_pixels": int(corr.defects.sum()) if corr.defects is not None else 0,
        "dose_weighted": sums.dose_weighted is not None, "dose_per_frame_e_per_A2": dose, "voltage_kV": voltage,
        "pre_exposure_e_per_A2": args.pre_exposure,
        "lost_frames": res.extra.get("lost_frames", []),
    }
    if local is not None:
        qc.update(local.to_dict())
    _figure(out, res, sums, frc, px)
    _report(out, res, qc, sums)
    out.write_results({"qc": qc, "pixel_size_A": px})
    status(f"align: total drift {res.total_drift_px:.2f} px, residual {res.residual_rms_px:.3f} px -> {out.path}")
    return 0


def _figure(out, res, sums, frc, px):
    from cryomat.report.figures import new_figure, show_image

    fig, ax = new_figure(3, 1, size=3.6)
    s, r = res.shifts_px, res.raw_shifts_px
    a = ax[0, 0]
    a.plot(r[:, 1], r[:, 0], ".", color="0.6", label="measured")
    sc = a.scatter(s[:, 1], s[:, 0], c=np.arange(len(s)), cmap="viridis", s=14, label="smoothed", zorder=3)
    a.plot(s[:, 1], s[:, 0], "-", color="k", lw=0.8)
    a.invert_yaxis()
    a.set_aspect("equal", adjustable="datalim")
    a.set_xlabel("shift col (px)")
    a.set_ylabel("shift row (px)")
    a.set_title(f"drift trace ({res.mode}), colour = frame", fontsize=9)
    a.legend(fontsize=7)
    fig.colorbar(sc, ax=a, fraction=0.046)
    show_image(ax[0, 1], sums.dose_weighted if sums.dose_weighted is not None else sums.total, pixel_size=px,
               title="aligned sum" + (" (dose-weighted)" if sums.dose_weighted is not None else ""))
    f, c = frc.freq_per_A, frc.frc
    ax[0, 2].plot(f[1:], c[1:])
    ax[0, 2].axhline(0.143, color="gray", ls="--", lw=0.8)
    ax[0, 2].set_xlabel("spatial frequency (1/A)" if px else "spatial frequency (1/px)")
    ax[0, 2].set_title("FRC even vs odd half sums", fontsize=9)
    out.save_figure("drift.png", fig)


def _report(out, res, qc, sums):
    from cryomat.report import Report

    rep = Report("cryomat align", subtitle="Drift correction and dose weighting")
    rep.add_metrics({k: qc[k] for k in ("n_frames", "mode", "total_drift_A", "total_drift_px", "residual_rms_px",
                                        "outlier_pairs", "frc_even_odd_0143_A", "mean_ccf_peak", "dose_weighted")})
    rep.add_figure("drift.png", "Drift trace (measured and smoothed), aligned sum, FRC of the even/odd half sums")
    rep.add_table(res.table(), title="Per-frame shifts")
    for f in ("aligned_sum.mrc", "aligned_sum_dw.mrc", "even_sum.mrc", "odd_sum.mrc", "shifts.csv"):
        if (out.path / f).exists():
            rep.add_link(f, f)
    rep.write(out.file("report.html"))


def _frc_last_crossing(freq, frc, threshold: float = 0.143) -> float | None:
    """1 / the highest frequency at which the FRC (5-ring running mean) is still >= threshold.

    Phase-contrast images have CTF zeros and little low-frequency contrast, so the first crossing
    of a noisy FRC says little; the last crossing is the reach of the information.
    """
    c = np.convolve(np.nan_to_num(np.asarray(frc, float)), np.ones(5) / 5, mode="same")
    ok = np.nonzero((c >= threshold) & (np.asarray(freq) > 0))[0]
    if ok.size == 0:
        return None
    return float(1.0 / freq[ok[-1]])
