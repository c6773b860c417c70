"""Radial profiles over integer elliptical rings (Gnuastro's astscript-radial-profile)."""

from __future__ import annotations

import math

import numpy as np

from ..errors import InvalidParameterError
from ..stats import _gnuastro_clip_params
from ._rings import RING_MEASURES, elliptical_radius, ring_labels, ring_statistics

__all__ = ["radial_profile", "RADIAL_MEASURES"]

#: Accepted ``measures`` of :func:`radial_profile`.
RADIAL_MEASURES = RING_MEASURES

_INTEGER_MEASURES = ("area", "sigclip-number")


def radial_profile(image, center, rmax, *, axis_ratio=1.0, position_angle=0.0, measures=("mean",),
                   sigmaclip=None):
    """Statistics of an image in integer elliptical rings around a centre.

    Ring ``R`` holds the pixels whose elliptical radius ``r`` (from the
    pixel centre; see :mod:`starpix.stamp._rings`) has ``floor(r) == R``;
    the rings ``0 <= R < rmax`` are measured, as astscript-radial-profile
    does.  NaN pixels are left out.

    Parameters
    ----------
    image : array_like, 2-D
        The image; a memory map is read only around the centre.
    center : (float, float)
        Centre ``(x, y)``, 0-based pixels.  (astscript-radial-profile's
        default is the image centre ``NAXIS/2 + 0.5`` in FITS pixels, that
        is ``(nx / 2 - 0.5, ny / 2 - 0.5)`` here.)
    rmax : float
        Rings ``R < rmax`` are measured (> 0).
    axis_ratio, position_angle : float
        Axis ratio (minor/major, > 0) and position angle (degrees,
        counter-clockwise from +x) of the rings.
    measures : sequence of str
        Names from :data:`RADIAL_MEASURES`: ``mean``, ``median``,
        ``sigclip-mean``, ``sigclip-median``, ``sigclip-std``,
        ``sigclip-number``, ``std`` (population), ``sum``, ``maximum``,
        ``minimum``, ``area`` (number of finite pixels).
    sigmaclip : (float, float), optional
        Gnuastro sigma-clip parameters of the ``sigclip-*`` measures
        (default ``(3, 0.2)``, MakeCatalog's).

    Returns
    -------
    astropy.table.QTable
        ``RADIUS`` (pix) and one column per measure, named as Gnuastro's
        (``MEAN``, ``SIGCLIP-MEAN``, ``AREA``, ...); NaN for a ring without
        finite pixels.
    """
    from astropy import units as u
    from astropy.table import QTable

    array = image if hasattr(image, "shape") and hasattr(image, "dtype") else np.asarray(image)
    if array.ndim != 2:
        raise InvalidParameterError(f"image: expected a 2-D image, got {array.ndim} dimension(s)")
    try:
        xc, yc = (float(v) for v in center)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"center: expected two numbers (x, y), got {center!r}") from None
    if not (math.isfinite(xc) and math.isfinite(yc)):
        raise InvalidParameterError(f"center: expected two finite numbers, got {center!r}")
    try:
        rmax = float(rmax)
        axis_ratio = float(axis_ratio)
        position_angle = float(position_angle)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"rmax/axis_ratio/position_angle: expected numbers, got "
                                    f"{rmax!r}, {axis_ratio!r}, {position_angle!r}") from None
    if not (math.isfinite(rmax) and rmax > 0):
        raise InvalidParameterError(f"rmax: expected a positive number of pixels, got {rmax!r}")
    if not (math.isfinite(axis_ratio) and axis_ratio > 0):
        raise InvalidParameterError(f"axis_ratio: expected a positive number, got {axis_ratio!r}")
    if not math.isfinite(position_angle):
        raise InvalidParameterError(f"position_angle: expected a finite number, got {position_angle!r}")
    if isinstance(measures, str):
        measures = (measures,)
    measures = tuple(measures)
    unknown = [m for m in measures if m not in RADIAL_MEASURES]
    if unknown or not measures:
        raise InvalidParameterError(f"measures: expected names from {', '.join(RADIAL_MEASURES)}, "
                                    f"got {list(measures)!r}")
    clip = (3.0, 0.2) if sigmaclip is None else _gnuastro_clip_params(sigmaclip)

    nrings = int(math.ceil(rmax))
    reach = int(math.ceil(nrings * max(axis_ratio, 1.0))) + 1
    ny, nx = array.shape
    x0, x1 = max(int(math.floor(xc)) - reach, 0), min(int(math.ceil(xc)) + reach + 1, nx)
    y0, y1 = max(int(math.floor(yc)) - reach, 0), min(int(math.ceil(yc)) + reach + 1, ny)
    table = QTable()
    table["RADIUS"] = np.arange(nrings, dtype=np.float64) * u.pix
    if x0 < x1 and y0 < y1:
        sub = np.asarray(array[y0:y1, x0:x1], dtype=np.float64)
        radius = elliptical_radius(sub.shape, (xc - x0, yc - y0), axis_ratio, position_angle)
        stats = ring_statistics(sub, ring_labels(radius, nrings), nrings, measures, clip)
    else:
        stats = ring_statistics(np.zeros(0), np.zeros(0, dtype=np.int64), nrings, measures, clip)
    for name in measures:
        values = stats[name]
        if name in _INTEGER_MEASURES:
            values = values.astype(np.int64)
        table[name.upper()] = values
    return table
