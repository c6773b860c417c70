"""Integer elliptical rings and per-ring statistics, all rings at once.

A pixel at ``(x, y)`` lies at the elliptical radius

    Xr =  dx cos(PA) + dy sin(PA)
    Yr = -dx sin(PA) + dy cos(PA)
    r  = sqrt(Xr**2 + (Yr / q)**2)

from a centre ``(xc, yc)`` (``dx = x - xc``, ``dy = y - yc``), with the
position angle PA in degrees counter-clockwise from +x and q the axis ratio
(minor / major).  Ring ``k`` holds the pixels with ``floor(r) == k``, the
rings of Gnuastro's MakeProfiles "distance" profile (radius stored as
float32 and truncated) that astscript-radial-profile measures in.
"""

from __future__ import annotations

import numpy as np

from ..stats import gnuastro_sigma_clip

__all__ = ["elliptical_radius", "ring_labels", "ring_statistics", "RING_MEASURES"]

# measure name -> how it is computed (see ring_statistics)
RING_MEASURES = ("mean", "median", "sigclip-mean", "sigclip-median", "sigclip-std", "sigclip-number",
                 "std", "sum", "maximum", "minimum", "area")


def elliptical_radius(shape, center, axis_ratio=1.0, position_angle=0.0):
    """Elliptical radius of every pixel of an array of ``shape`` (ny, nx) around ``center`` (x, y)."""
    ny, nx = shape
    xc, yc = center
    theta = np.deg2rad(position_angle)
    cos, sin = np.cos(theta), np.sin(theta)
    dx = np.arange(nx, dtype=np.float64) - xc
    dy = (np.arange(ny, dtype=np.float64) - yc)[:, None]
    xr = dx * cos + dy * sin
    yr = -dx * sin + dy * cos
    return np.sqrt(xr * xr + (yr / axis_ratio) ** 2)


def ring_labels(radius, nrings):
    """Ring index ``floor(float32(r))`` of each radius; -1 for rings >= ``nrings`` (left out)."""
    rings = np.floor(radius.astype(np.float32)).astype(np.int64)
    rings[rings >= nrings] = -1
    return rings


def ring_statistics(values, rings, nrings, measures, sigmaclip=(3.0, 0.2)):
    """Statistics of the finite values of each ring ``0 .. nrings-1``.

    Parameters
    ----------
    values : numpy.ndarray
        Pixel values (any shape; NaN values are left out).
    rings : numpy.ndarray of int
        Ring index of each value, same shape; negative indices are left out.
    nrings : int
        Number of rings.
    measures : sequence of str
        Names from :data:`RING_MEASURES`.
    sigmaclip : (float, float)
        Gnuastro sigma-clip parameters of the ``sigclip-*`` measures.

    Returns
    -------
    dict of str -> numpy.ndarray
        One float64 array of length ``nrings`` per measure (NaN for a ring
        without finite values; 0 for its ``area`` and ``sum``).
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    rings = np.asarray(rings).ravel()
    keep = (rings >= 0) & np.isfinite(values)
    v, k = values[keep], rings[keep]
    counts = np.bincount(k, minlength=nrings)[:nrings]
    out = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        sums = np.bincount(k, weights=v, minlength=nrings)[:nrings]
        empty = counts == 0
        order = None
        if any(m in ("median", "maximum", "minimum") or m.startswith("sigclip") for m in measures):
            order = np.lexsort((v, k))
            vs = v[order]
            starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        for name in measures:
            if name == "mean":
                result = sums / counts
            elif name == "sum":
                result = sums.astype(np.float64)
            elif name == "area":
                result = counts.astype(np.float64)
            elif name == "std":
                sq = np.bincount(k, weights=v * v, minlength=nrings)[:nrings]
                result = np.sqrt(np.maximum((sq - sums * sums / counts) / counts, 0.0))
            elif name == "median":
                lo = np.minimum(starts + (counts - 1) // 2, max(len(vs) - 1, 0))
                hi = np.minimum(starts + counts // 2, max(len(vs) - 1, 0))
                result = (vs[lo] + vs[hi]) / 2.0 if len(vs) else np.full(nrings, np.nan)
            elif name == "maximum":
                result = vs[np.maximum(starts + counts - 1, 0)] if len(vs) else np.full(nrings, np.nan)
            elif name == "minimum":
                result = vs[np.minimum(starts, max(len(vs) - 1, 0))] if len(vs) else np.full(nrings, np.nan)
            elif name.startswith("sigclip-"):
                result = _sigclip(vs, k[order], counts, starts, nrings, sigmaclip)[name]
            else:  # pragma: no cover - callers validate names
                raise ValueError(name)
            result = np.array(result, dtype=np.float64)
            if name not in ("sum", "area", "sigclip-number"):
                result[empty] = np.nan
            out[name] = result
    return out


def _sigclip(vs, ks, counts, starts, nrings, sigmaclip):
    """Gnuastro sigma clipping of every ring: rows of a NaN-padded (nrings, max count) array."""
    width = max(int(counts.max()) if nrings else 0, 1)
    rows = np.full((nrings, width), np.nan)
    if len(vs):
        rows[ks, np.arange(len(vs)) - starts[ks]] = vs
    number, median, mean, std = gnuastro_sigma_clip(rows, sigmaclip, axis=1)
    number = np.where(np.isfinite(number), number, 0.0)
    return {"sigclip-number": number, "sigclip-median": median, "sigclip-mean": mean, "sigclip-std": std}
