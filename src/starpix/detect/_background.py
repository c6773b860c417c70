"""Mesh background and background-rms estimation (photutils' Background2D).

The image is cut into boxes of ``box_size`` (partial boxes along the top and
right edges, as photutils 3.0), every box is sigma-clipped, and a background
and an rms value are estimated from the clipped pixels.  Boxes with too few
kept pixels are dropped and filled by inverse-distance weighting of their
nearest good boxes; the mesh is median-filtered and interpolated back to the
image with a bicubic spline (scipy's ``zoom`` in grid mode, reflect
boundaries, clipped to the mesh range).

All boxes are clipped together by one numba kernel (:mod:`starpix.stats`);
the spline interpolation, being separable, is two small matrix products.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType

import numpy as np

from ..errors import InvalidParameterError
from ..stats import sigma_clipped_rows, sigma_clipped_stats

__all__ = ["Background", "background_scalar", "BKG_ESTIMATORS", "BKG_RMS_ESTIMATORS", "DEFAULT_SIGMA_CLIP"]

#: Names of the background estimators.
BKG_ESTIMATORS = ("sextractor", "median", "mean", "mode")
#: Names of the background-rms estimators.
BKG_RMS_ESTIMATORS = ("std", "mad_std")

#: photutils' default clipping of the boxes.
DEFAULT_SIGMA_CLIP = MappingProxyType({"sigma": 3.0, "maxiters": 10})

_CLIP_KEYS = ("sigma", "sigma_lower", "sigma_upper", "maxiters", "cenfunc", "stdfunc")


def _pair(value, name, *, odd=False):
    arr = np.atleast_1d(np.asarray(value))
    if arr.ndim != 1 or arr.size not in (1, 2) or arr.dtype.kind not in "iu":
        raise InvalidParameterError(f"{name} must be one or two positive integers, got {value!r}")
    arr = np.array([arr[0], arr[-1]], dtype=np.int64)
    if np.any(arr < 1):
        raise InvalidParameterError(f"{name} must be positive, got {value!r}")
    if odd and np.any(arr % 2 != 1):
        raise InvalidParameterError(f"{name} must be odd along both axes, got {value!r}")
    return int(arr[0]), int(arr[1])


def _clip_options(sigma_clip):
    """Sigma-clipping keywords from None, a dict, or an astropy SigmaClip."""
    if sigma_clip is None:
        return {"maxiters": 0}
    if isinstance(sigma_clip, Mapping):
        unknown = set(sigma_clip) - set(_CLIP_KEYS)
        if unknown:
            raise InvalidParameterError(f"sigma_clip: unknown keys {sorted(unknown)}; allowed: {_CLIP_KEYS}")
        options = {"sigma": 3.0, "maxiters": 10}
        options.update(sigma_clip)
        return options
    if all(hasattr(sigma_clip, key) for key in ("sigma", "sigma_lower", "sigma_upper", "maxiters")):
        cenfunc = getattr(sigma_clip, "cenfunc", "median")
        stdfunc = getattr(sigma_clip, "stdfunc", "std")
        if not isinstance(cenfunc, str) or not isinstance(stdfunc, str):
            raise InvalidParameterError("sigma_clip: only the 'median'/'mean' and 'std'/'mad_std' functions "
                                        "are supported, not callables")
        if getattr(sigma_clip, "grow", False):
            raise InvalidParameterError("sigma_clip: grow is not supported")
        maxiters = sigma_clip.maxiters
        return {"sigma": sigma_clip.sigma, "sigma_lower": sigma_clip.sigma_lower,
                "sigma_upper": sigma_clip.sigma_upper,
                "maxiters": None if maxiters is None or np.isinf(maxiters) else int(maxiters),
                "cenfunc": cenfunc, "stdfunc": stdfunc}
    raise InvalidParameterError(f"sigma_clip must be None, a dict of {_CLIP_KEYS} or an astropy SigmaClip, "
                                f"got {type(sigma_clip).__name__}")


def _check_mask(mask, shape, name):
    if mask is None or mask is np.ma.nomask:
        return None
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise InvalidParameterError(f"{name} has shape {mask.shape}, data has shape {shape}")
    return mask.astype(bool, copy=False)


def _fill_idw(mesh, n_neighbors=10):
    """Fill NaN mesh values by Shepard (1/d) weighting of the nearest good boxes (photutils)."""
    bad = np.isnan(mesh)
    if not bad.any():
        return mesh
    from scipy.spatial import cKDTree

    good_yx = np.column_stack(np.nonzero(~bad))
    values = mesh[~bad]
    bad_yx = np.column_stack(np.nonzero(bad))
    dist, idx = cKDTree(good_yx, leafsize=10).query(bad_yx, k=n_neighbors)
    valid = np.isfinite(dist)  # fewer good boxes than neighbours: missing ones have inf distance
    safe_idx = np.where(valid, idx, 0)
    weights = np.where(valid, 1.0 / np.where(valid, dist, 1.0), 0.0)
    filled = np.sum(weights * values[safe_idx], axis=1) / np.sum(weights, axis=1)
    out = mesh.copy()
    out[bad] = filled
    return out


def _median_filter(mesh, size):
    """NaN-ignoring median filter with NaN outside the mesh (generic_filter, mode='constant')."""
    fy, fx = size
    if (fy, fx) == (1, 1):
        return mesh
    padded = np.pad(mesh, ((fy // 2, fy // 2), (fx // 2, fx // 2)), constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (fy, fx))
    windows = windows.reshape(mesh.shape + (fy * fx,))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(windows, axis=-1)


@lru_cache(maxsize=16)
def _zoom_matrix(n, factor):
    """Matrix of scipy's cubic grid-mode zoom (reflect) of a length-``n`` axis by ``factor``."""
    from scipy.ndimage import zoom

    # zoom the unit vectors one at a time, in 1-D: a 2-D zoom of the identity
    # would also (approximately) spline-filter the second axis
    columns = [zoom(unit, factor, order=3, mode="reflect", grid_mode=True) for unit in np.eye(n)]
    matrix = np.stack(columns, axis=1)
    matrix.flags.writeable = False
    return matrix


def _interpolate(mesh, box_size, shape):
    """Bicubic spline zoom of the mesh to the image, cropped and clipped to the mesh range."""
    low, high = float(np.min(mesh)), float(np.max(mesh))
    if high == low:
        return np.full(shape, low)
    ay = _zoom_matrix(mesh.shape[0], box_size[0])[: shape[0]]
    ax = _zoom_matrix(mesh.shape[1], box_size[1])[: shape[1]]
    image = ay @ mesh @ ax.T
    np.clip(image, low, high, out=image)
    return image


def _image_and_mask(data, mask, name, noun):
    """``(array, mask)`` of a 2-D numeric image; a masked array's mask is or-ed into ``mask``.

    ``name`` and ``noun`` word the errors ("{name} must be a 2-D {noun}").
    """
    if isinstance(data, np.ma.MaskedArray):
        extra = np.ma.getmaskarray(data)
        mask = extra if mask is None else (extra | np.asarray(mask, dtype=bool))
        data = data.data
    data = np.asarray(data)
    if data.ndim != 2:
        raise InvalidParameterError(f"{name} must be a 2-D {noun}, got {data.ndim} dimension(s)")
    if data.dtype.kind not in "fiu":
        raise InvalidParameterError(f"{name} must be numeric, got dtype {data.dtype}")
    return data, mask


class Background:
    """A 2-D background and background-rms map from sigma-clipped box statistics.

    photutils' ``Background2D`` algorithm, with the same numbers (to
    rounding) for the same options.

    Parameters
    ----------
    data : array_like
        2-D image.  NaN and inf pixels are left out.
    box_size : int or (int, int)
        Box size ``(ny, nx)``; at most the image size along each axis.
        Boxes along the top and right edges may be partial.
    mask : array_like of bool, optional
        True for pixels to leave out of the statistics.
    coverage_mask : array_like of bool, optional
        True where the image has no data: left out of the statistics and
        set to ``fill_value`` in :attr:`background` and :attr:`background_rms`.
    fill_value : float
        Value of the output maps under ``coverage_mask``.
    exclude_percentile : float
        A box whose kept (unmasked, finite, unclipped) pixels number no
        more than ``(1 - exclude_percentile / 100) * ny * nx`` is dropped
        and filled from its neighbours.  0 to 100.
    filter_size : int or (int, int)
        Odd size of the median filter applied to the mesh (1 = none).
    filter_threshold : float, optional
        Median-filter only the boxes whose background exceeds this value.
    sigma_clip : dict, astropy.stats.SigmaClip or None
        Clipping of each box: keys ``sigma``, ``sigma_lower``,
        ``sigma_upper``, ``maxiters``, ``cenfunc``, ``stdfunc`` (default
        ``{'sigma': 3, 'maxiters': 10}``, photutils' default); None clips
        nothing.
    bkg_estimator : {'sextractor', 'median', 'mean', 'mode'}
        Background of a box from its clipped pixels: SourceExtractor's
        ``2.5 median - 1.5 mean`` (the mean when the std is 0, the median
        when ``|mean - median| / std >= 0.3``), the median, the mean, or
        ``3 median - 2 mean``.
    bkg_rms_estimator : {'std', 'mad_std'}
        rms of a box: standard deviation or MAD standard deviation of its
        clipped pixels.

    Attributes
    ----------
    background, background_rms : numpy.ndarray
        The maps, shape of ``data`` (float32 for float32 input, otherwise
        float64).
    background_mesh, background_rms_mesh : numpy.ndarray
        The filled, filtered box values.
    background_median, background_rms_median : float
        Medians of the meshes.
    n_pixels_mesh : numpy.ndarray of int
        Kept pixels per box (``npixels_mesh`` is an alias).
    """

    def __init__(self, data, box_size, *, mask=None, coverage_mask=None, fill_value=0.0, exclude_percentile=10.0,
                 filter_size=(3, 3), filter_threshold=None, sigma_clip=DEFAULT_SIGMA_CLIP,
                 bkg_estimator="sextractor", bkg_rms_estimator="std"):
        data, mask = _image_and_mask(data, mask, "data", "image")
        shape = data.shape
        box = _pair(box_size, "box_size")
        if box[0] > shape[0] or box[1] > shape[1]:
            raise InvalidParameterError(f"box_size {box} (ny, nx) is larger than the image {shape}")
        self.box_size = box
        self.filter_size = _pair(filter_size, "filter_size", odd=True)
        try:
            exclude_percentile = float(exclude_percentile)
        except (TypeError, ValueError):
            raise InvalidParameterError(f"exclude_percentile must be a number, got {exclude_percentile!r}") from None
        if not 0.0 <= exclude_percentile <= 100.0:
            raise InvalidParameterError(f"exclude_percentile must be between 0 and 100, got {exclude_percentile}")
        self.exclude_percentile = exclude_percentile
        if filter_threshold is not None:
            filter_threshold = float(filter_threshold)
        self.filter_threshold = filter_threshold
        if bkg_estimator not in BKG_ESTIMATORS:
            raise InvalidParameterError(f"bkg_estimator must be one of {BKG_ESTIMATORS}, got {bkg_estimator!r}")
        if bkg_rms_estimator not in BKG_RMS_ESTIMATORS:
            raise InvalidParameterError(
                f"bkg_rms_estimator must be one of {BKG_RMS_ESTIMATORS}, got {bkg_rms_estimator!r}")
        self.bkg_estimator = bkg_estimator
        self.bkg_rms_estimator = bkg_rms_estimator
        self.sigma_clip = _clip_options(sigma_clip)
        self.fill_value = fill_value
        mask = _check_mask(mask, shape, "mask")
        self.coverage_mask = _check_mask(coverage_mask, shape, "coverage_mask")
        self._shape = shape
        self._dtype = data.dtype if data.dtype == np.float32 else np.dtype(np.float64)

        bad = ~np.isfinite(data)
        if bad.all():
            raise InvalidParameterError("data has no finite pixels: cannot estimate a background")
        for extra in (mask, self.coverage_mask):
            if extra is not None:
                bad = bad | extra
        if bad.all():
            raise InvalidParameterError("mask and coverage_mask leave no pixel: cannot estimate a background")
        self._compute_mesh(data, bad)

    def _compute_mesh(self, data, bad):
        by, bx = self.box_size
        ny, nx = self._shape
        nby, nbx = -(-ny // by), -(-nx // bx)
        padded = np.full((nby * by, nbx * bx), np.nan)
        padded[:ny, :nx] = data
        padded[:ny, :nx][bad] = np.nan
        rows = padded.reshape(nby, by, nbx, bx).transpose(0, 2, 1, 3).reshape(nby * nbx, by * bx)
        rows = np.ascontiguousarray(rows)
        del padded
        options = dict(self.sigma_clip)
        mean, median, std, count, *rest = sigma_clipped_rows(rows, mad=self.bkg_rms_estimator == "mad_std",
                                                             **options)
        bkg = self._estimate(mean, median, std)
        rms = rest[0] if self.bkg_rms_estimator == "mad_std" else std
        threshold = (1.0 - self.exclude_percentile / 100.0) * by * bx
        dropped = count <= threshold
        bkg = np.where(dropped, np.nan, bkg).reshape(nby, nbx)
        rms = np.where(dropped, np.nan, rms).reshape(nby, nbx)
        if np.isnan(bkg).all():
            raise InvalidParameterError(
                f"every box has <= {threshold:g} usable pixels (box_size={self.box_size}, "
                f"exclude_percentile={self.exclude_percentile:g}): increase exclude_percentile or box_size, "
                "or check the mask")
        self.n_pixels_mesh = count.reshape(nby, nbx)
        self._bkg_stats = bkg
        bkg_filled = _fill_idw(bkg)
        rms_filled = _fill_idw(rms)
        self.background_mesh = self._filter(bkg_filled, bkg_filled, np.nanmin(bkg))
        self.background_rms_mesh = self._filter(rms_filled, bkg_filled, np.nanmin(bkg))

    def _estimate(self, mean, median, std):
        name = self.bkg_estimator
        if name == "median":
            return median
        if name == "mean":
            return mean
        if name == "mode":
            return 3.0 * median - 2.0 * mean
        with np.errstate(invalid="ignore", divide="ignore"):
            result = 2.5 * median - 1.5 * mean
            flat = std == 0
            skewed = (np.abs(mean - median) / std >= 0.3) & ~flat
        result = np.where(flat, mean, result)
        return np.where(skewed, median, result)

    def _filter(self, mesh, bkg_filled, min_bkg):
        if self.filter_size == (1, 1):
            return mesh
        filtered = _median_filter(mesh, self.filter_size)
        if self.filter_threshold is None or self.filter_threshold < min_bkg:
            return filtered
        return np.where(bkg_filled > self.filter_threshold, filtered, mesh)

    @property
    def npixels_mesh(self):
        """Alias of :attr:`n_pixels_mesh` (photutils before 3.0)."""
        return self.n_pixels_mesh

    @property
    def background_median(self):
        """Median of :attr:`background_mesh`."""
        return float(np.median(self.background_mesh))

    @property
    def background_rms_median(self):
        """Median of :attr:`background_rms_mesh`."""
        return float(np.median(self.background_rms_mesh))

    def _image(self, mesh):
        image = _interpolate(mesh, self.box_size, self._shape)
        if self.coverage_mask is not None:
            image[self.coverage_mask] = self.fill_value
        return image.astype(self._dtype, copy=False)

    @property
    def background(self):
        """The background map (computed on each access)."""
        return self._image(self.background_mesh)

    @property
    def background_rms(self):
        """The background-rms map (computed on each access)."""
        return self._image(self.background_rms_mesh)


def background_scalar(data, mask=None, sigma=3.0, maxiters=5):
    """Sigma-clipped median and standard deviation of an image: one background level and rms.

    Returns
    -------
    median, std : float
        NaN if no pixel is finite and unmasked.
    """
    data = np.asarray(data)
    if data.size == 0:
        raise InvalidParameterError("data is empty")
    _, median, std = sigma_clipped_stats(data, mask=mask, sigma=sigma, maxiters=maxiters)
    return median, std
