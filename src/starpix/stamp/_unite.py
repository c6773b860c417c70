"""Uniting an inner and an outer PSF (``astscript-psf-unite``)."""

from __future__ import annotations

import math

import numpy as np

from ..errors import InvalidParameterError
from ..interp import shift_image

__all__ = ["unite_psfs", "elliptical_distance"]


def elliptical_distance(shape, center, axis_ratio=1.0, position_angle=0.0):
    """Elliptical radius of every pixel centre, as MakeProfiles measures it.

    Parameters
    ----------
    shape : (ny, nx)
    center : (x, y)
        0-based pixel position of the centre.
    axis_ratio : float
        Minor over major axis, in (0, 1].
    position_angle : float
        Degrees, counter-clockwise from the +x axis to the major axis.

    Returns
    -------
    numpy.ndarray (ny, nx), float64
        ``sqrt(X**2 + (Y / axis_ratio)**2)`` with (X, Y) the offset from
        ``center`` rotated into the ellipse's frame.
    """
    _check_ellipse(axis_ratio, position_angle)
    ny, nx = shape
    dx = np.arange(nx, dtype=np.float64) - center[0]
    dy = np.arange(ny, dtype=np.float64)[:, None] - center[1]
    angle = math.radians(position_angle)
    cos, sin = math.cos(angle), math.sin(angle)
    major = dx * cos + dy * sin
    minor = -dx * sin + dy * cos
    return np.sqrt(major**2 + (minor / axis_ratio) ** 2)


def _check_ellipse(axis_ratio, position_angle):
    if not (np.isfinite(axis_ratio) and 0 < axis_ratio <= 1):
        raise InvalidParameterError(f"axis_ratio must be in (0, 1], got {axis_ratio!r}")
    if not np.isfinite(position_angle):
        raise InvalidParameterError(f"position_angle must be a finite number of degrees, got {position_angle!r}")


def _as_image(array, name):
    image = np.asarray(array)
    if image.ndim != 2 or 0 in image.shape:
        raise InvalidParameterError(f"{name}: expected a non-empty 2-D image, got shape {image.shape}")
    if not np.issubdtype(image.dtype, np.number) or np.issubdtype(image.dtype, np.complexfloating):
        raise InvalidParameterError(f"{name}: expected real numbers, got dtype {image.dtype}")
    return image


def unite_psfs(inner, outer, radius, scale, *, axis_ratio=1.0, position_angle=0.0, center=None):
    """Replace the core of an outer PSF by a scaled inner PSF.

    The inner image is translated so that its geometric centre falls on the
    outer image's (with flux-conserving pixel mixing when the two sizes
    differ in parity, as Gnuastro's Warp), cut to the outer image's size,
    its NaN pixels (and the partly covered edge pixels) set to 0 and
    multiplied by ``scale``.  Within the ellipse of ``radius`` around
    ``center`` the result is that scaled inner image, outside it the outer
    image.  This is ``astscript-psf-unite outer --inner=inner
    --scale=scale --radius=radius``.

    Parameters
    ----------
    inner, outer : array_like, 2-D
        The PSF images; the result has the outer image's shape.
    radius : float
        Pixels whose elliptical radius is ``<= radius`` come from the inner
        image.
    scale : float
        Factor applied to the inner image (the outer-over-inner flux ratio,
        for example from :func:`psf_scale_factor`).
    axis_ratio, position_angle : float
        Shape of the junction ellipse (degrees, counter-clockwise from +x).
    center : (float, float), optional
        0-based (x, y) centre of the junction ellipse.  Default: the outer
        image's central pixel ``((nx - 1) / 2, (ny - 1) / 2)``.  Gnuastro
        0.19 centres it at ``(nx / 2, ny / 2)``, half a pixel up and right
        of the centre; pass that to reproduce it.

    Returns
    -------
    numpy.ndarray, float32
        The united PSF.
    """
    inner = _as_image(inner, "inner")
    outer = _as_image(outer, "outer")
    for name, value in (("radius", radius), ("scale", scale)):
        if not np.isfinite(value):
            raise InvalidParameterError(f"{name} must be a finite number, got {value!r}")
    if radius < 0:
        raise InvalidParameterError(f"radius must be >= 0 pixels, got {radius!r}")
    _check_ellipse(axis_ratio, position_angle)
    ny, nx = outer.shape
    if center is None:
        center = ((nx - 1) / 2.0, (ny - 1) / 2.0)
    else:
        center = tuple(float(v) for v in center)
        if len(center) != 2 or not all(np.isfinite(center)):
            raise InvalidParameterError(f"center must be two finite numbers (x, y), got {center!r}")
    placed = _place(inner, (ny, nx), (nx - inner.shape[1]) / 2.0, (ny - inner.shape[0]) / 2.0)
    scaled = np.nan_to_num(placed, nan=0.0) * float(scale)
    inside = elliptical_distance((ny, nx), center, axis_ratio, position_angle) <= radius
    return np.where(inside, scaled, outer).astype(np.float32)


def _place(image, shape, dx, dy):
    """``image`` translated by (dx, dy) onto a grid of ``shape`` (NaN where it does not reach)."""
    ny, nx = shape
    ix, iy = math.floor(dx), math.floor(dy)
    canvas = np.full((ny + 2, nx + 2), np.nan)
    # image pixel (j, i) -> canvas (j + iy + 1, i + ix + 1), one-pixel margin for the fractional shift
    hy, hx = image.shape
    y0, y1 = max(0, -(iy + 1)), min(hy, ny + 2 - (iy + 1))
    x0, x1 = max(0, -(ix + 1)), min(hx, nx + 2 - (ix + 1))
    if y0 < y1 and x0 < x1:
        canvas[y0 + iy + 1:y1 + iy + 1, x0 + ix + 1:x1 + ix + 1] = image[y0:y1, x0:x1]
    fx, fy = dx - ix, dy - iy
    if fx or fy:
        canvas = shift_image(canvas, fx, fy)
    return canvas[1:-1, 1:-1]
