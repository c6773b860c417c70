"""Blot: resample an (output-grid) image back onto an input grid through a pixel map."""

from __future__ import annotations

import math

import numpy as np
from numba import parallel_chunksize

from ..errors import InvalidParameterError
from . import _blot_kernels as _k

__all__ = ["blot", "BLOT_INTERPOLATIONS"]

BLOT_INTERPOLATIONS = tuple(_k.INTERPOLATIONS)


def blot(data, pixmap, *, interp="poly5", sinscl=1.0, iscale=1.0, fillval=0.0, out=None):
    """Interpolate ``data`` at the positions of a pixel map (drizzle's blot; not flux conserving).

    Parameters
    ----------
    data : 2-D array
        The image to sample (e.g. a drizzled median), ``(ny_src, nx_src)``.
    pixmap : array ``(ny_out, nx_out, 2)``
        For each pixel of the blotted result, its ``(x, y)`` in ``data`` (0-based).
        To blot back onto exposure *k*, pass the pixel map that drizzled *k*.
    interp : {'nearest', 'linear', 'poly3', 'poly5', 'sinc', 'lanczos3', 'lanczos5'}
        Interpolant (AstroDrizzle's ``blot_interp``; default ``'poly5'``).
    sinscl : float
        Scale of the ``sinc`` interpolant's offsets (AstroDrizzle's ``blot_sinscl``);
        used only with ``interp='sinc'``.
    iscale : float
        Multiplies the result (AstroDrizzle: ``exptime / pixel_scale_ratio**2``
        turns a rate per output pixel into counts per input pixel).
    fillval : float
        Value where the map points outside ``0 <= x < nx_src, 0 <= y < ny_src``, is
        NaN, or (Lanczos) is within ``order`` pixels of the edge.
    out : numpy.ndarray of float32, optional
        Array to write into, shape ``(ny_out, nx_out)``.

    Returns
    -------
    numpy.ndarray
        float32 ``(ny_out, nx_out)``.
    """
    key = str(interp).lower()
    if key not in _k.INTERPOLATIONS:
        raise InvalidParameterError(f"interp must be one of {', '.join(BLOT_INTERPOLATIONS)}, got {interp!r}")
    data = np.asarray(data)
    if data.ndim != 2 or min(data.shape) < 1:
        raise InvalidParameterError(f"data must be a non-empty 2-D image, got shape {data.shape}")
    data = np.require(data, np.float32, ["C"])
    pixmap = np.asarray(pixmap)
    if pixmap.ndim != 3 or pixmap.shape[2] != 2:
        raise InvalidParameterError(f"pixmap must have shape (ny, nx, 2), got {pixmap.shape}")
    pixmap = np.require(pixmap, np.float64, ["C"])
    shape = pixmap.shape[:2]
    if out is None:
        out = np.empty(shape, np.float32)
    else:
        if not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != shape \
                or not out.flags.c_contiguous:
            raise InvalidParameterError(f"out must be a C-contiguous float32 array of shape {shape}")
    try:
        sinscl = float(sinscl)
        iscale = float(iscale)
        fillval = float(fillval)
    except (TypeError, ValueError):
        raise InvalidParameterError(
            f"sinscl, iscale and fillval must be numbers, got {sinscl!r}, {iscale!r}, {fillval!r}") from None
    if not (sinscl > 0.0 and math.isfinite(sinscl)):
        raise InvalidParameterError(f"sinscl must be a positive number, got {sinscl!r}")
    method = _k.INTERPOLATIONS[key]
    if key in ("lanczos3", "lanczos5"):
        lut, nbox = np.zeros(1, np.float32), (3 if key == "lanczos3" else 5)
    else:
        lut, nbox = np.zeros(1, np.float32), 0
    taper = _k.sinc_taper()
    with parallel_chunksize(16):  # rows handed out in small blocks: a thread slowed by other load does less
        _k.blot_kernel(method, data, pixmap, out, np.float32(iscale), np.float32(fillval), lut, nbox, taper,
                       np.float32(sinscl))
    return out
