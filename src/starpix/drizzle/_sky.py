"""AstroDrizzle's sky step: clipped sky statistics and localmin / globalmin / match sky values."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidParameterError, NoOverlapError
from . import _steps_kernels as _k

__all__ = ["SKY_METHODS", "SKY_STATISTICS", "SkyChip", "compute_sky", "image_stats", "sky_statistic"]

SKY_METHODS = ("localmin", "globalmin", "match", "globalmin+match")
SKY_STATISTICS = ("median", "mode", "mean", "midpt")


@dataclass
class SkyChip:
    """One chip of one exposure, as the sky step needs it.

    Attributes
    ----------
    data : 2-D array
        The chip's pixel values (data units per pixel).
    mask : 2-D bool array or None
        True where a pixel must not be used (DQ-bad, static mask, sources).
    pixmap : array ``(ny, nx, 2)`` or None
        The chip's pixel map onto the common output grid (``skymethod`` with
        ``'match'`` only), ``(x, y)`` per input pixel, 0-based.
    out_shape : (int, int) or None
        Shape ``(ny, nx)`` of that common grid.
    pixel_area : float
        Area of the chip's pixels relative to the reference pixel area; sky values
        are compared per unit area (``data / pixel_area``).
    """

    data: np.ndarray
    mask: np.ndarray | None = None
    pixmap: np.ndarray | None = None
    out_shape: tuple | None = None
    pixel_area: float = 1.0


def image_stats(data, *, lower=None, upper=None, nclip=0, lsig=3.0, usig=3.0, binwidth=0.1):
    """Iteratively clipped statistics of an array, as ``stsci.imagestats.ImageStats``.

    Values are taken as float32.  The statistics of the values in
    ``[lower, upper]`` are computed, then ``nclip`` times the range is reset to
    ``[max(lower, mean - lsig std), min(upper, mean + usig std)]`` (``std`` with
    ``N - 1``) and the statistics recomputed on the values of the whole array in
    that range.  ``median`` is the median of the values in the final range (of all
    values when ``nclip=0``).  ``mode`` and ``midpt`` come from a histogram of all
    values from the clipped minimum, with bins of ``binwidth * std`` (``nbins =
    int((max - min) / hwidth) + 1`` spread evenly over ``[min, max]``): the mode is
    the parabolic interpolation of the peak bin, the midpoint the interpolated
    50 % point of the cumulative histogram.

    Returns
    -------
    dict
        ``npix, mean, stddev, min, max, median, mode, midpt, nbins``.
    """
    v = np.asarray(data, dtype=np.float32).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise InvalidParameterError("no valid (unmasked, finite) pixels to compute sky statistics from")
    nclip = int(nclip)
    if nclip < 0:
        raise InvalidParameterError(f"skyclip must be an integer >= 0, got {nclip}")
    if not lsig > 0 or not usig > 0:
        raise InvalidParameterError(f"skylsigma and skyusigma must be > 0, got {lsig}, {usig}")
    if not binwidth > 0:
        raise InvalidParameterError(f"skywidth must be > 0, got {binwidth}")
    vmin, vmax = float(v.min()), float(v.max())
    if lower is None:
        lower = vmin
    elif lower > vmax:
        raise InvalidParameterError(f"skylower={lower} is above the largest pixel value {vmax}")
    if upper is None:
        upper = vmax
    elif upper < vmin:
        raise InvalidParameterError(f"skyupper={upper} is below the smallest pixel value {vmin}")
    if lower > upper:
        raise InvalidParameterError(f"skylower={lower} is above skyupper={upper}")
    cmin, cmax = np.float32(lower), np.float32(upper)
    for it in range(nclip + 1):
        npix, s, s2, smin, smax = _k.clip_moments(v, cmin, cmax)
        if npix == 0:
            raise InvalidParameterError(
                f"no pixel left in the clipping range [{cmin}, {cmax}] at iteration {it} of the sky statistics")
        mean = float(np.float32(s / npix))
        std = float(np.float32(np.sqrt(max(s2 - mean * s, 0.0) / (npix - 1)))) if npix > 1 else 0.0
        if it < nclip:
            cmin = np.float32(max(lower, mean - lsig * std))
            cmax = np.float32(min(upper, mean + usig * std))
    median = float(np.median(v[(v >= cmin) & (v <= cmax)] if nclip > 0 else v))
    hwidth = binwidth * std
    drange = smax - smin
    tiny = 10.0 * np.finfo(np.float32).eps
    if hwidth < tiny or abs(drange) < tiny or hwidth > drange:
        nbins, dz = 1, drange
    else:
        nbins = int(drange / hwidth) + 1
        dz = drange / (nbins - 1)
    if dz > 0:
        hist = _k.histogram(v, smin, dz, nbins)
    else:
        hist = np.zeros(nbins, np.int64)
    if nbins == 1:
        mode = smin + 0.5 * hwidth
    elif nbins == 2:
        mode = smin + (0.5 if hist[0] > hist[1] else 1.5 if hist[0] < hist[1] else 1.0) * hwidth
    else:
        p = int(np.argmax(hist))
        if p == 0:
            mode = smin + 0.5 * hwidth
        elif p == nbins - 1:
            mode = smin + (nbins - 0.5) * hwidth
        else:
            dh1 = int(hist[p] - hist[p - 1])
            dh2 = int(hist[p] - hist[p + 1])
            if dh1 + dh2 == 0:
                mode = smin + (p + 0.5) * hwidth
            else:
                mode = smin + (p + 0.5 + 0.5 * (dh1 - dh2) / (dh1 + dh2)) * hwidth
    total = hist.sum()
    if total > 0:
        csum = (np.cumsum(hist) / total).astype(np.float32)
        lo = int(np.nonzero(csum >= 0.5)[0][0])
        h1 = smin + lo * hwidth
        hdiff = csum[lo] - (csum[lo - 1] if lo else 0.0)
        if hdiff == 0:
            midpt = h1
        elif lo == 0:
            midpt = h1 + 0.5 / hdiff * hwidth
        else:
            midpt = h1 + (0.5 - csum[lo - 1]) / hdiff * hwidth
    else:
        midpt = smin
    return {"npix": npix, "mean": mean, "stddev": std, "min": smin, "max": smax, "median": median,
            "mode": float(mode), "midpt": float(midpt), "nbins": nbins}


def sky_statistic(data, mask=None, *, skystat="median", skywidth=0.1, skylower=None, skyupper=None, skyclip=5,
                  skylsigma=4.0, skyusigma=4.0):
    """Clipped sky level of one chip (AstroDrizzle's sky statistics, via ``skypac``).

    Parameters
    ----------
    data : array
        Pixel values.
    mask : bool array or None
        True where a pixel must not be used (same shape as ``data``).
    skystat : {'median', 'mode', 'mean', 'midpt'}
        Statistic returned: the median of the clipped values, the histogram mode,
        the clipped mean, or the histogram midpoint (see :func:`image_stats`).
    skywidth : float
        Histogram bin width in units of the clipped standard deviation.
    skylower, skyupper : float or None
        Only values in ``[skylower, skyupper]`` are used.
    skyclip : int
        Number of clipping iterations (default 5).
    skylsigma, skyusigma : float
        Lower / upper clipping limits in standard deviations (default 4).

    Returns
    -------
    float
        The sky level, in the units of ``data``.
    """
    key = str(skystat).lower()
    if key not in SKY_STATISTICS:
        raise InvalidParameterError(f"skystat must be one of {', '.join(SKY_STATISTICS)}, got {skystat!r}")
    data = np.asarray(data)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != data.shape:
            raise InvalidParameterError(f"sky mask has shape {mask.shape}, data has {data.shape}")
        data = data[~mask]
    st = image_stats(data, lower=skylower, upper=skyupper, nclip=skyclip, lsig=skylsigma, usig=skyusigma,
                     binwidth=skywidth)
    return st[key]


def _check_exposures(exposures):
    exps = [list(e) for e in exposures]
    if not exps:
        raise InvalidParameterError("compute_sky needs at least one exposure")
    for i, chips in enumerate(exps):
        if not chips:
            raise InvalidParameterError(f"exposure {i} has no chips")
        for j, c in enumerate(chips):
            if not isinstance(c, SkyChip):
                raise InvalidParameterError(f"exposure {i} chip {j} must be a SkyChip, got {type(c).__name__}")
            if np.ndim(c.data) != 2:
                raise InvalidParameterError(f"exposure {i} chip {j}: data must be 2-D, got {np.ndim(c.data)} dims")
            if c.mask is not None and np.shape(c.mask) != np.shape(c.data):
                raise InvalidParameterError(
                    f"exposure {i} chip {j}: mask shape {np.shape(c.mask)} differs from data {np.shape(c.data)}")
            if not (np.isfinite(c.pixel_area) and c.pixel_area > 0):
                raise InvalidParameterError(f"exposure {i} chip {j}: pixel_area must be > 0, got {c.pixel_area}")
    return exps


def _footprints(exps):
    """Output-grid coverage of each exposure and, per chip, the output pixel of each good input pixel."""
    from scipy import ndimage

    out_shape = None
    covers, where = [], []
    for i, chips in enumerate(exps):
        cov = None
        locs = []
        for j, c in enumerate(chips):
            if c.pixmap is None or c.out_shape is None:
                raise InvalidParameterError(f"skymethod 'match' needs pixmap and out_shape (exposure {i} chip {j})")
            shp = tuple(int(s) for s in c.out_shape)
            if out_shape is None:
                out_shape = shp
            elif shp != out_shape:
                raise InvalidParameterError(f"exposure {i} chip {j}: out_shape {shp} differs from {out_shape}")
            pm = np.asarray(c.pixmap, dtype=np.float64)
            if pm.shape != np.shape(c.data) + (2,):
                raise InvalidParameterError(
                    f"exposure {i} chip {j}: pixmap shape {pm.shape}, expected {np.shape(c.data) + (2,)}")
            if cov is None:
                cov = np.zeros(out_shape, bool)
            with np.errstate(invalid="ignore"):
                ox = np.floor(pm[..., 0] + 0.5)
                oy = np.floor(pm[..., 1] + 0.5)
            ok = np.isfinite(ox) & np.isfinite(oy)
            ok &= (ox >= 0) & (ox < out_shape[1]) & (oy >= 0) & (oy < out_shape[0])
            data = np.asarray(c.data)
            good = ok & np.isfinite(data)
            if c.mask is not None:
                good &= ~np.asarray(c.mask, dtype=bool)
            flat = np.where(ok, oy * out_shape[1] + ox, -1).astype(np.int64)
            cov.ravel()[flat[ok]] = True
            locs.append((flat[good], data[good].astype(np.float32) / np.float32(c.pixel_area)))
        # fill the gaps a finer output grid leaves between mapped pixel centres
        cov = ndimage.binary_closing(cov, structure=np.ones((3, 3), bool), border_value=0) | cov
        covers.append(cov.ravel())
        where.append(locs)
    return covers, where


def _match_deltas(exps, stat_kwargs):
    covers, where = _footprints(exps)
    n = len(exps)
    A = np.zeros((n, n))
    W = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            vi = np.concatenate([v[covers[j][f]] for f, v in where[i]])
            vj = np.concatenate([v[covers[i][f]] for f, v in where[j]])
            if vi.size == 0 or vj.size == 0:
                continue
            try:
                si = sky_statistic(vi, **stat_kwargs)
                sj = sky_statistic(vj, **stat_kwargs)
            except InvalidParameterError:
                continue
            A[j, i], W[j, i] = si, vi.size
            A[i, j], W[i, j] = sj, vj.size
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n) if W[i, j] > 0 and W[j, i] > 0]
    if not pairs:
        raise NoOverlapError("skymethod 'match': no two exposures overlap on the output grid")
    wm = 0.5 * (W + W.T)
    K = np.zeros((len(pairs), n))
    F = np.zeros(len(pairs))
    used = np.zeros(n, bool)
    for e, (i, j) in enumerate(pairs):
        K[e, i], K[e, j] = wm[i, j], -wm[i, j]
        F[e] = wm[i, j] * (A[j, i] - A[i, j])
        used[i] = used[j] = True
    deltas = np.linalg.pinv(K, rcond=1e-12) @ F
    deltas[~used] = np.nan
    return deltas


def compute_sky(exposures, *, skymethod="localmin", skyuser=None, **stat_kwargs):
    """Sky level of each exposure, as AstroDrizzle's sky step (``skypac.skymatch``).

    Parameters
    ----------
    exposures : sequence of sequences of SkyChip
        Per exposure, its chips.
    skymethod : {'localmin', 'globalmin', 'match', 'globalmin+match'}
        ``'localmin'``: each exposure's sky is the minimum over its chips of the
        clipped sky statistic of the chip's unmasked pixels.  ``'globalmin'``: the
        minimum of those over all exposures, for every exposure.  ``'match'``: the
        sky *differences* between exposures, from the statistic of each exposure's
        pixels inside the footprint of the other on the common output grid (chips'
        ``pixmap``), solved by weighted least squares over all overlapping pairs
        (weights: pixel counts) and shifted so that the lowest is 0; an exposure
        that overlaps no other gets 0.  An exposure's footprint is the set of
        output pixels its chips' pixel centres land on (gaps closed with a 3x3
        binary closing), where skypac intersects sky polygons.  ``'globalmin+match'``: the matched
        differences plus the minimum over exposures of (localmin sky minus
        difference).
    skyuser : sequence of float or None
        Sky values given by the user, one per exposure: returned as they are (no
        computation), as AstroDrizzle's ``skyuser``.
    **stat_kwargs
        ``skystat, skywidth, skylower, skyupper, skyclip, skylsigma, skyusigma``
        of :func:`sky_statistic`.

    Returns
    -------
    list of float
        One sky value per exposure, per unit pixel area (multiply by a chip's
        ``pixel_area`` to get its sky per pixel; with the default area 1, in data
        units per pixel).
    """
    method = str(skymethod).lower()
    if method not in SKY_METHODS:
        raise InvalidParameterError(f"skymethod must be one of {', '.join(SKY_METHODS)}, got {skymethod!r}")
    allowed = {"skystat", "skywidth", "skylower", "skyupper", "skyclip", "skylsigma", "skyusigma"}
    unknown = sorted(set(stat_kwargs) - allowed)
    if unknown:
        raise InvalidParameterError(f"unknown sky parameter(s): {', '.join(unknown)}")
    stat = str(stat_kwargs.get("skystat", "median")).lower()
    if stat not in SKY_STATISTICS:
        raise InvalidParameterError(f"skystat must be one of {', '.join(SKY_STATISTICS)}, got {stat!r}")
    exps = _check_exposures(exposures)
    if skyuser is not None:
        vals = [float(v) for v in np.atleast_1d(np.asarray(skyuser, dtype=np.float64))]
        if len(vals) != len(exps):
            raise InvalidParameterError(f"skyuser has {len(vals)} values for {len(exps)} exposures")
        return vals

    def local(chips):
        return min(sky_statistic(c.data, c.mask, **stat_kwargs) / c.pixel_area for c in chips)

    if method == "localmin":
        return [float(local(ch)) for ch in exps]
    if method == "globalmin":
        g = min(local(ch) for ch in exps)
        return [float(g)] * len(exps)
    deltas = _match_deltas(exps, stat_kwargs)
    good = np.isfinite(deltas)
    deltas[good] -= deltas[good].min()
    if method == "match":
        return [float(d) if np.isfinite(d) else 0.0 for d in deltas]
    locs = np.array([local(ch) for ch in exps])
    g = float(np.min(np.where(good, locs - np.where(good, deltas, 0.0), locs)))
    return [float(d + g) if np.isfinite(d) else g for d in deltas]
