"""``cryomat spectrum SI --out DIR``: EDS/EELS maps, at.% composition, profiles, decomposition, overlays."""

from __future__ import annotations

from pathlib import Path

NAME = "spectrum"
HELP = "EDS/EELS spectrum images: element maps, at.% composition, profiles, decomposition, overlay"
DESCRIPTION = (
    "Maps and quantifies an EDS or EELS spectrum image (or a single spectrum): background-subtracted line "
    "or edge maps, Cliff-Lorimer (EDS) or cross-section (EELS) composition in at.% with Poisson 1-sigma "
    "errors, composition profiles along a line or as depth from a surface, Poisson-weighted PCA / NMF "
    "decomposition, and the maps overlaid on the simultaneously acquired (or a given) image. Writes "
    "maps/*.tiff, composition.csv, profile.csv, figures, results.json and report.html."
)


def _csv_list(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ValueError(f"expected a comma-separated list, got {text!r}")
    return items


def add_arguments(p):
    from cryomat.cli.common import add_out, add_pixel_size, positive_float, positive_int

    p.add_argument("si", metavar="SI", help="spectrum image or spectrum (BCF, Velox EMD, DM3/DM4, HSPY, or a .zip of one)")
    add_out(p)
    p.add_argument("--kind", choices=["eds", "eels"], help="EDS or EELS (default: from the file)")
    p.add_argument("--dataset", type=int, metavar="INDEX", help="dataset number in a multi-dataset file")
    p.add_argument("--member", metavar="NAME", help="for a .zip holding several files, the one to read")
    p.add_argument("--elements", metavar="LIST", help="EDS elements, e.g. C,O,F,P (default: the file's)")
    p.add_argument("--lines", metavar="LIST", help="EDS X-ray lines instead of elements, e.g. Fe_Ka,Pt_La")
    p.add_argument("--kfactors", metavar="LIST",
                   help="EDS k-factors LINE=K,..., e.g. Fe_Ka=1.450226,Pt_La=5.075602 (default: shipped approximate "
                        "table); exSpy's FePt example also uses --line-width 5 2")
    p.add_argument("--fwhm-mnka", type=positive_float, metavar="EV", help="EDS detector FWHM at Mn Ka in eV")
    p.add_argument("--background", choices=["mean", "linear", "powerlaw", "none"], default="mean",
                   help="EDS continuum estimate under each line (default mean, as exSpy)")
    p.add_argument("--windows", choices=["auto", "exspy", "exclusive"], default="auto",
                   help="EDS background-window placement: exSpy's, or moved off other lines (default auto)")
    p.add_argument("--window-correction", action="store_true",
                   help="EDS: report full-line counts (divide by the Gaussian fraction inside each window)")
    p.add_argument("--line-width", type=positive_float, nargs=2, default=[2.0, 2.0], metavar=("LEFT", "RIGHT"),
                   help="EDS background windows start this many FWHM from the line (default 2 2)")
    p.add_argument("--edges", metavar="LIST", help="EELS edges, e.g. Ti_L3,O_K")
    p.add_argument("--delta", type=positive_float, default=50.0, metavar="EV", help="EELS integration width (eV)")
    p.add_argument("--fit-width", type=positive_float, default=30.0, metavar="EV",
                   help="EELS pre-edge power-law window width (eV)")
    p.add_argument("--eels-background", choices=["powerlaw", "powerlaw-lsq", "exponential", "linear"],
                   default="powerlaw", help="EELS pre-edge background model (default: two-area power law)")
    p.add_argument("--lowloss", metavar="FILE", help="EELS low-loss of the same area (t/lambda, deconvolution)")
    p.add_argument("--no-deconvolve", action="store_true", help="EELS: skip Fourier-ratio deconvolution")
    p.add_argument("--voltage", type=positive_float, metavar="KV", help="beam energy (kV), overrides the file")
    p.add_argument("--alpha", type=float, metavar="MRAD", help="EELS convergence semi-angle (mrad)")
    p.add_argument("--beta", type=positive_float, metavar="MRAD", help="EELS collection semi-angle (mrad)")
    p.add_argument("--image", metavar="IMAGE", help="image to overlay the maps on (default: the file's HAADF/DF)")
    p.add_argument("--profile", metavar="ROW0,COL0,ROW1,COL1", help="composition profile along this line (pixels)")
    p.add_argument("--width", type=positive_float, metavar="NM",
                   help="profile band width in nm (pixels if the file has no calibration; default 1 pixel)")
    p.add_argument("--profile-from-surface", metavar="MASK",
                   help="depth profile from the edge of this mask (TIFF/PNG/NPY, nonzero = reference side)")
    p.add_argument("--decompose", choices=["pca", "nmf"], help="decompose the spectrum image")
    p.add_argument("--components", type=positive_int, metavar="N",
                   help="number of components (default for pca: noise-edge criterion; nmf: that number)")
    p.add_argument("--denoise", action="store_true",
                   help="map the Poisson-weighted PCA reconstruction (components above the noise edge)")
    p.add_argument("--bin", type=positive_int, default=1, metavar="N", help="sum N x N pixels first")
    add_pixel_size(p)


def _parse_kfactors(text):
    if not text:
        return None
    out = {}
    for item in _csv_list(text):
        if "=" not in item:
            raise ValueError(f"--kfactors expects LINE=K items, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = float(v)
        except ValueError:
            raise ValueError(f"--kfactors: {v!r} is not a number") from None
    return out


def _parse_profile(text):
    try:
        vals = [float(v) for v in _csv_list(text)]
    except ValueError:
        raise ValueError(f"--profile expects ROW0,COL0,ROW1,COL1 numbers, got {text!r}") from None
    if len(vals) != 4:
        raise ValueError(f"--profile expects 4 numbers ROW0,COL0,ROW1,COL1, got {text!r}")
    return (vals[0], vals[1]), (vals[2], vals[3])


def run(args) -> int:
    import numpy as np

    from cryomat.cli.common import parameters_of
    from cryomat.errors import InputError
    from cryomat.outputs import OutputDir
    from cryomat.progress import status
    from cryomat.spectroscopy import loading
    from cryomat.spectroscopy.report import write_outputs

    src = Path(args.si)
    if not src.exists():
        raise InputError("no such file", path=src)
    kfac = _parse_kfactors(args.kfactors)
    prof = _parse_profile(args.profile) if args.profile else None
    if args.profile and args.profile_from_surface:
        raise ValueError("give either --profile or --profile-from-surface, not both")
    if args.components and not args.decompose:
        raise ValueError("--components needs --decompose pca|nmf")
    inputs = [src] + [Path(x) for x in (args.lowloss, args.image, args.profile_from_surface) if x]
    for x in inputs[1:]:
        if not x.exists():
            raise InputError("no such file", path=x)
    status(f"spectrum: reading {src}")
    spec = loading.load_spectrum(src, index=args.dataset, kind=args.kind, member=args.member)
    if args.pixel_size:
        spec.pixel_size = args.pixel_size
    if args.voltage:
        spec.voltage_kV = args.voltage
    spec = loading.bin_spectrum(spec, args.bin)
    od = OutputDir(args.out, command=NAME, inputs=inputs, parameters=parameters_of(args))
    lowloss = loading.load_spectrum(Path(args.lowloss), kind="EELS") if args.lowloss else None
    image = None
    if args.image:
        from cryomat import io

        image = np.asarray(io.read(args.image).data, float)
        if image.ndim != 2:
            raise InputError(f"the overlay image must be 2-D, got shape {image.shape}", path=args.image)
    mask = None
    if args.profile_from_surface:
        from cryomat import io

        mask = np.asarray(io.read(args.profile_from_surface).data) > 0
    result = write_outputs(
        od, spec, elements=_csv_list(args.elements) if args.elements else None,
        lines=_csv_list(args.lines) if args.lines else None, kfactors=kfac, fwhm_mnka_eV=args.fwhm_mnka,
        background=args.background, line_width=tuple(args.line_width), window_mode=args.windows,
        window_correction=args.window_correction,
        edges=_csv_list(args.edges) if args.edges else None, delta_eV=args.delta, fit_eV=args.fit_width,
        lowloss=lowloss, deconvolve=not args.no_deconvolve, alpha_mrad=args.alpha, beta_mrad=args.beta,
        image=image, profile=prof, width=args.width, surface_mask=mask, decompose=args.decompose,
        components=args.components, denoise=args.denoise, eels_background=args.eels_background)
    status(f"spectrum: {result['summary']}; wrote {od.path}")
    return 0
