"""The public entry point :func:`segment_particles` and the threshold + watershed baseline."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

METHODS = ("classical", "unet")


def segment_particles(image, *, pixel_size: float, dose_e_per_A2: float | None = None, method: str = "classical",
                      min_size_nm: float | None = None, split_touching: bool = False,
                      polarity: str = "auto", outline_fit: bool | None = None) -> np.ndarray:
    """Segment every particle of a 2D image into instance labels.

    Parameters
    ----------
    image : (rows, cols) array; electron counts (give ``dose_e_per_A2``) or any intensity.
    pixel_size : float, A per pixel.
    dose_e_per_A2 : float or None, fluence of the image (e/A^2); selects the noise model and
        the amount of smoothing (dose-aware). None: the noise is estimated from the image.
    method : ``"classical"`` (dose-aware smoothing, hysteresis, per-object edge refinement;
        :mod:`cryomat.segmentation.classical`) or ``"unet"`` (the shipped small U-Net,
        :mod:`cryomat.segmentation.unet`, CPU).
    min_size_nm : float or None, smallest equivalent diameter (nm) kept.
    split_touching : bool. False (default): every connected object is one instance
        (aggregates stay whole). True: touching particles are split at contrast dips or
        narrow necks (watershed of the smoothed contrast, regions merged back otherwise);
        fused aggregates with thick necks stay whole; in a field of monodisperse round
        particles, clusters are also split by the single-particle area (classical method).
    polarity : ``"auto"``, ``"dark"`` (bright-field TEM) or ``"bright"`` (HAADF-STEM).
    outline_fit : bool or None (classical method). True: every object's outline is fitted as a
        smooth closed curve (Fourier offsets along its normal, as many harmonics as its signal
        supports) to the unsmoothed contrast (:mod:`cryomat.segmentation.contour`); False:
        outlines from the smoothed image's per-object edge fit only; None (default): the fit
        runs at low dose, where the detection smoothing is wide (~0.5 e/A^2 and below at 5 A/px).

    Returns
    -------
    labels : (rows, cols) int32, 0 = background, 1..N the particles. An image without
        particles gives all zeros.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise ValueError(f"image must be 2D (rows, cols), got shape {arr.shape}")
    if method == "unet":
        if outline_fit:
            raise ValueError("outline_fit applies to the classical method only (the U-Net has no outline fit)")
        from cryomat.segmentation.unet import segment_unet

        return segment_unet(arr, pixel_size=pixel_size, dose_e_per_A2=dose_e_per_A2, min_size_nm=min_size_nm,
                            split_touching=split_touching, polarity=polarity)
    from cryomat.segmentation.classical import segment_classical

    return segment_classical(arr, pixel_size=pixel_size, dose_e_per_A2=dose_e_per_A2, min_size_nm=min_size_nm,
                             split_touching=split_touching, polarity=polarity, outline_fit=outline_fit)


def threshold_watershed(image, *, pixel_size: float, sigma_px: float = 2.0, polarity: str = "auto",
                        min_size_px: int = 30, footprint_px: int = 7) -> np.ndarray:
    """Baseline: Gaussian smoothing, Otsu threshold, distance-transform watershed (the textbook
    recipe, e.g. scikit-image's "watershed segmentation" example).

    References
    ----------
    Otsu, IEEE SMC 9, 62 (1979), doi:10.1109/TSMC.1979.4310076.
    """
    from skimage.feature import peak_local_max
    from skimage.filters import threshold_otsu
    from skimage.segmentation import watershed

    from cryomat.segmentation.classical import relative_contrast

    y, _ = relative_contrast(np.asarray(image, dtype=np.float64), polarity=polarity)
    ys = ndi.gaussian_filter(y, sigma_px)
    fg = ys > threshold_otsu(ys)
    fg = ndi.binary_opening(fg, iterations=1)
    dist = ndi.distance_transform_edt(fg)
    coords = peak_local_max(dist, footprint=np.ones((footprint_px, footprint_px)), labels=ndi.label(fg)[0])
    markers = np.zeros(fg.shape, np.int32)
    markers[tuple(coords.T)] = np.arange(1, len(coords) + 1)
    lab = watershed(-dist, markers, mask=fg)
    areas = np.bincount(lab.ravel())
    small = areas < min_size_px
    small[0] = False
    lab[small[lab]] = 0
    from cryomat.segmentation.classical import _relabel

    return _relabel(lab)
