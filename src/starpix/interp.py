"""Sub-pixel shifts shared by PSF stamps, PSF uniting and blotting.

:func:`shift_image` translates an image by a fraction of a pixel the way
Gnuastro's Warp does with ``--translate`` (its defaults ``coveredfrac=1``,
``edgesampling=0``): each output pixel is the sum of the input pixels that
overlap it after the translation, weighted by the overlap area ("pixel
mixing"), so flux is conserved.  For a translation the overlap areas are
separable, ``(1 - |f|, |f|)`` along each axis, so the result is exact (no
polygon clipping is needed).  An output pixel any of whose overlapping area
falls on a NaN input pixel or outside the input is NaN, as Warp's
``coveredfrac=1`` demands: NaN regions grow by one pixel in the direction of
the shift.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import InvalidParameterError

__all__ = ["shift_image"]


def _axis_terms(shift):
    """Integer offsets and weights of the (at most two) input pixels overlapping an output pixel."""
    whole = math.floor(shift)
    frac = shift - whole
    # out[i] = (1 - frac) * in[i - whole] + frac * in[i - whole - 1]
    terms = [(whole, 1.0 - frac)]
    if frac > 0.0:
        terms.append((whole + 1, frac))
    return terms


def shift_image(image, dx, dy, *, dtype=None):
    """Translate an image by ``(dx, dy)`` pixels with flux-conserving pixel mixing.

    A source at pixel ``(x, y)`` of ``image`` lands at ``(x + dx, y + dy)``
    of the result, which has the input's shape.

    Parameters
    ----------
    image : array_like, 2-D
        Input pixels; NaN marks blank pixels.
    dx, dy : float
        Translation along x (columns) and y (rows), in pixels.  Any real
        value; whole-pixel parts move the image without mixing.
    dtype : numpy dtype, optional
        Output type (default float64).  Sums are computed in float64.

    Returns
    -------
    numpy.ndarray
        The shifted image; NaN where any part of an output pixel is covered
        by a NaN input pixel or lies outside the input.
    """
    array = np.asarray(image, dtype=np.float64)
    if array.ndim != 2:
        raise InvalidParameterError(f"shift_image needs a 2-D image, got {array.ndim} dimension(s)")
    for name, value in (("dx", dx), ("dy", dy)):
        if not np.isfinite(value):
            raise InvalidParameterError(f"{name} must be a finite number of pixels, got {value!r}")
    ny, nx = array.shape
    out = np.zeros((ny, nx))
    covered = np.zeros((ny, nx), dtype=bool)
    covered[:] = True
    for oy, wy in _axis_terms(float(dy)):
        for ox, wx in _axis_terms(float(dx)):
            weight = wy * wx
            if weight == 0.0:
                continue
            # out[j, i] += weight * in[j - oy, i - ox], outside the input -> not covered
            src = np.full((ny, nx), np.nan)
            y0, y1 = max(0, oy), min(ny, ny + oy)
            x0, x1 = max(0, ox), min(nx, nx + ox)
            if y0 < y1 and x0 < x1:
                src[y0:y1, x0:x1] = array[y0 - oy:y1 - oy, x0 - ox:x1 - ox]
            out += weight * np.nan_to_num(src, nan=0.0)
            covered &= np.isfinite(src)
    out[~covered] = np.nan
    return out if dtype is None else out.astype(dtype)
