"""``cryomat denoise INPUT --out DIR``: denoise images, movies and volumes, validated without truth."""

from __future__ import annotations

NAME = "denoise"
HELP = "denoise low-dose images/movies (noise model, fast VST+Wiener tier, N2V/N2N) with honest validation"
DESCRIPTION = (
    "Denoise a single image, a movie (even/odd frames are split internally) or a volume (plane by "
    "plane). Writes denoised.mrc (float32, same pixel size), a side-by-side figure with power spectra, "
    "results.json with a validation block (noise model, unsupervised MSE by binomial thinning where "
    "valid, FRC of the denoised half against the raw other half, residual statistics, hallucination "
    "probes) and report.html.")


def add_arguments(p):
    from cryomat.cli.common import add_out, add_pixel_size, input_file, positive_int

    p.add_argument("input", type=input_file, nargs="?", help="image, movie or volume (MRC, TIFF, DM, EMI/SER, ...)")
    add_out(p)
    add_pixel_size(p)
    p.add_argument("--method", default="auto", choices=["auto", "fast", "n2v", "n2n", "bm3d-compare"],
                   help="auto (default): fast tier, or Noise2Noise when halves or counted data exist and "
                        "--model/--train-epochs are given; n2v: blind-spot network; n2n: even/odd halves or "
                        "binomial thinning of counted data; bm3d-compare: fast "
                        "tier plus Anscombe+BM3D for comparison (optional non-commercial package)")
    p.add_argument("--even", type=input_file, metavar="FILE", help="sum of the even frames (with --odd)")
    p.add_argument("--odd", type=input_file, metavar="FILE", help="sum of the odd frames (with --even)")
    p.add_argument("--model", type=input_file, metavar="FILE", help="reuse a saved network (.pt) from an earlier run")
    p.add_argument("--train-epochs", type=positive_int, metavar="N", help="training epochs of the learned tier")
    p.add_argument("--tile", type=positive_int, metavar="PX", help="tile size for network inference (overlapping)")
    p.add_argument("--seed", type=int, default=0, help="seed of the thinning split and of training (default 0)")


def _load(path, pixel_override):
    import numpy as np

    from cryomat.io import read

    img = read(path, lazy=False)
    data = np.asarray(img.data)
    if data.ndim == 3 and data.shape[-1] in (3, 4) and img.axes[-1] not in ("col",):
        data = data[..., :3].mean(axis=-1)
    px = img.pixel_size if pixel_override is None else pixel_override
    return img, data, px


def run(args) -> int:
    import numpy as np

    from cryomat.errors import InputError
    from cryomat.outputs import OutputDir
    from cryomat.progress import status
    from cryomat.restoration.pipeline import denoise_and_validate, split_movie

    if args.input is None and not (args.even and args.odd):
        raise InputError("give an INPUT image/movie, or both --even and --odd")
    if bool(args.even) != bool(args.odd):
        raise InputError("--even and --odd must be given together")
    inputs = [p for p in (args.input, args.even, args.odd, args.model) if p is not None]
    even = odd = None
    volume = None
    if args.input is not None:
        img, data, px = _load(args.input, args.pixel_size)
        axes = tuple(img.axes)
        if data.ndim == 3 and data.shape[-1] in (3, 4) and axes[-1] != "col":
            axes = ("row", "col")
        if data.ndim == 2:
            image = data
        elif data.ndim == 3 and axes[0] in ("frame",):
            image, even, odd = split_movie(data)
            status(f"denoise: movie of {data.shape[0]} frames, even/odd halves split internally")
        elif data.ndim == 3:
            volume = data
            image = data[data.shape[0] // 2]
        else:
            raise InputError(f"expected a 2D image, a movie or a volume; got shape {data.shape}", path=args.input)
    else:
        _, image = None, None
    if args.even is not None:
        _, even, pe = _load(args.even, args.pixel_size)
        _, odd, _ = _load(args.odd, args.pixel_size)
        if even.shape != odd.shape or even.ndim != 2:
            raise InputError(f"--even and --odd must be 2D images of one shape, got {even.shape} and {odd.shape}")
        if args.input is None:
            image, px = even.astype(np.float64) + odd, pe
        elif image.shape != even.shape:
            raise InputError(f"--even/--odd shape {even.shape} differs from the input's {image.shape}")
    if min(image.shape) < 64:
        raise InputError(f"image of shape {image.shape} is too small to denoise and validate (needs >= 64 px)")
    if not np.all(np.isfinite(image)):
        raise InputError("the image contains NaN or infinite values", path=args.input)
    px_val = float(px) if px else 1.0
    od = OutputDir(args.out, command=NAME, inputs=inputs,
                   parameters={**{k: (str(v) if v is not None and not isinstance(v, (int, float, str)) else v)
                                  for k, v in vars(args).items() if k not in ("func", "command", "out")},
                               "pixel_size_A": px})
    status(f"denoise: {image.shape[0]}x{image.shape[1]} px, method {args.method}")
    outc = denoise_and_validate(image, pixel_size=px_val, method=args.method, even=even, odd=odd,
                                seed=args.seed, model_path=args.model, train_epochs=args.train_epochs,
                                tile=args.tile)
    if volume is not None:
        from cryomat.progress import progress
        from cryomat.restoration.classical import denoise_fast

        out_vol = np.stack([denoise_fast(pl).denoised if outc.method == "fast" else
                            _learned_predict(outc, pl, args.tile) for pl in progress(volume, total=len(volume),
                                                                                     desc="planes")])
        od.write_mrc("denoised.mrc", out_vol.astype(np.float32), pixel_size=px, volume=True)
    else:
        od.write_mrc("denoised.mrc", np.asarray(outc.denoised, dtype=np.float32), pixel_size=px)
    for name, arr in outc.extra_images.items():
        od.write_mrc(f"denoised_{name}.mrc", np.asarray(arr, dtype=np.float32), pixel_size=px)
    if "model" in outc.details and outc.details["model"].get("trained_here"):
        from cryomat.restoration.learned import save_model

        save_model(outc.details["_net"] if "_net" in outc.details else _net_of(outc), od.file("model.pt"))
    from cryomat.restoration.report import write_figure_and_report

    results = write_figure_and_report(od, image, outc, pixel_size=px, title_input=str(args.input or args.even))
    od.write_results(results)
    v = outc.validation
    mse = v["unsupervised_mse"].get("mse_reduction_db_est")
    status(f"denoise: wrote {od.path}/denoised.mrc (method {outc.method}"
           + (f", estimated MSE reduction {mse:.1f} dB at half dose" if mse is not None else "") + ")")
    return 0


def _net_of(outc):
    return outc.details.get("_net")


def _learned_predict(outc, plane, tile):
    from cryomat.restoration.learned import predict

    return predict(outc.details["_net"], plane, tile=tile)
