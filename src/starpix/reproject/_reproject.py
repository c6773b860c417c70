"""Reprojection of an image onto another celestial WCS grid.

Three methods:

``'interp'``
    Each output pixel centre is mapped through world coordinates into the
    input pixel grid and the input is interpolated there (nearest, bilinear or
    cubic B-spline).  Surface brightness is kept, not flux.  Conventions as
    reproject's ``reproject_interp``: positions in the outer half of a border
    pixel take the border pixel's centre, positions farther out are NaN, and a
    position whose round trip (output -> input -> output) misses by more than
    one pixel is NaN.
``'exact'``
    Each input pixel is the quadrilateral of its four corners mapped exactly
    into output pixel coordinates; its overlap with every output pixel is
    computed by polygon clipping.  The output is the overlap-weighted mean of
    the input values (surface brightness, as ``reproject_exact``), and
    ``sum(output * pixel area)`` is conserved.
``'drizzle'``
    The same quadrilaterals (square kernel, pixfrac 1), but each input pixel's
    value is treated as a flux and shared among the output pixels in
    proportion to the overlap: ``out[j] = sum_i value_i * A_ij / A_i`` with
    ``A_i`` the quadrilateral's area.  The sum of the output equals the sum of
    the input that lands on the output grid.

The expensive part of a reprojection is the pixel map (astropy's
``all_pix2world`` and the iterative ``all_world2pix`` for SIP).  It is
evaluated exactly on a coarse grid of nodes and interpolated between them
with a 4x4 cubic Lagrange stencil; the step is halved until the
interpolation error, measured against the exact map at the centre of every
cell, is below ``1e-7`` pixel (step 32 usually suffices).  Where a node is not
finite (off the projection, or failing the round trip) the exact map is used.
"""

from __future__ import annotations

import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import InvalidParameterError, NoWCSError

__all__ = ["reproject", "MAP_TOLERANCE"]

#: Largest interpolation error (pixels) allowed for the coarse-grid pixel map.
MAP_TOLERANCE = 1e-7

_METHODS = ("interp", "exact", "drizzle")
_ORDERS = {"nearest": 0, "nearest-neighbor": 0, "bilinear": 1, "bicubic": 3, 0: 0, 1: 1, 3: 3}
_ROW_BLOCK = 256
_lock = threading.Lock()


def _as_wcs(wcs, name):
    """A two-axis celestial astropy WCS from a WCS or a FITS header."""
    from astropy.io.fits import Header
    from astropy.wcs import WCS, FITSFixedWarning

    if isinstance(wcs, Header):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(wcs, relax=True)
    if not isinstance(wcs, WCS):
        raise NoWCSError(f"{name}: expected an astropy WCS or a FITS header, got {type(wcs).__name__}")
    if not wcs.has_celestial:
        raise NoWCSError(f"{name}: reprojection needs a celestial WCS, and this one has none "
                         f"(CTYPE {list(wcs.wcs.ctype)})")
    if wcs.naxis != 2:
        wcs = wcs.celestial
        if wcs.naxis != 2:
            raise NoWCSError(f"{name}: expected a two-axis celestial WCS, got {wcs.naxis} axes")
    return wcs


def _same_frame(wcs_a, wcs_b):
    from astropy.wcs.utils import wcs_to_celestial_frame

    try:
        return wcs_to_celestial_frame(wcs_a).is_equivalent_frame(wcs_to_celestial_frame(wcs_b))
    except ValueError:
        return False


def _transform(wcs_from, wcs_to, x, y):
    """Exact map of pixel positions (0-based) of ``wcs_from`` into ``wcs_to``'s pixels.

    The inverse of a distorted WCS is solved to 1e-10 pixel (astropy's
    ``world_to_pixel`` stops at 1e-4 pixel, which leaves noise of up to
    ~1e-5 pixel in strongly distorted fields).
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            if _same_frame(wcs_from, wcs_to):
                world = wcs_from.all_pix2world(x, y, 0)
                lon, lat = world[wcs_from.wcs.lng], world[wcs_from.wcs.lat]
            else:
                from astropy import units as u
                from astropy.wcs.utils import wcs_to_celestial_frame

                sky = wcs_from.pixel_to_world(x, y).transform_to(wcs_to_celestial_frame(wcs_to))
                sph = sky.represent_as("unitspherical")
                lon, lat = sph.lon.to_value(u.deg), sph.lat.to_value(u.deg)
            ordered = [None, None]
            ordered[wcs_to.wcs.lng], ordered[wcs_to.wcs.lat] = lon, lat
            if wcs_to.sip is None and wcs_to.cpdis1 is None and wcs_to.cpdis2 is None \
                    and wcs_to.det2im1 is None and wcs_to.det2im2 is None:
                xo, yo = wcs_to.wcs_world2pix(ordered[0], ordered[1], 0)
            else:
                xo, yo = wcs_to.all_world2pix(ordered[0], ordered[1], 0, tolerance=1e-10, maxiter=60, quiet=True)
    return np.array(xo, dtype=float), np.array(yo, dtype=float)


def _transform_checked(wcs_from, wcs_to, x, y, roundtrip):
    xo, yo = _transform(wcs_from, wcs_to, x, y)
    if roundtrip:
        xb, yb = _transform(wcs_to, wcs_from, xo, yo)
        with np.errstate(invalid="ignore"):
            bad = ~((np.abs(xb - x) <= 1) & (np.abs(yb - y) <= 1))
        xo[bad] = np.nan
        yo[bad] = np.nan
    return xo, yo


def pixel_map(wcs_from, wcs_to, x0, y0, ny, nx, *, roundtrip=False, tolerance=MAP_TOLERANCE):
    """Positions in ``wcs_to``'s pixel grid of the grid points ``(x0 + c, y0 + r)`` of ``wcs_from``.

    Returns two float64 arrays of shape ``(ny, nx)`` (x then y); see the
    module notes for the coarse-grid evaluation and its error bound.
    """
    from ._reproject_kernels import grid_map

    out_x = np.empty((ny, nx))
    out_y = np.empty((ny, nx))
    step = 32
    while step >= 4 and ny * nx > 8 * ((ny - 1) // step + 4) * ((nx - 1) // step + 4):
        ky = (ny - 1) // step + 4
        kx = (nx - 1) // step + 4
        gy, gx = np.meshgrid(y0 + step * (np.arange(ky) - 1.0), x0 + step * (np.arange(kx) - 1.0), indexing="ij")
        nodes_x, nodes_y = _transform_checked(wcs_from, wcs_to, gx, gy, roundtrip)
        # exact values at the centres of the cells that lie inside the grid
        cy = y0 + step * (np.arange(ky - 3) + 0.5)
        cx = x0 + step * (np.arange(kx - 3) + 0.5)
        cy, cx = cy[cy <= y0 + ny - 1], cx[cx <= x0 + nx - 1]
        cgy, cgx = np.meshgrid(cy, cx, indexing="ij")
        ex, ey = _transform_checked(wcs_from, wcs_to, cgx, cgy, roundtrip)
        ix, iy = np.empty(cgx.shape), np.empty(cgx.shape)
        _interp_points(nodes_x, nodes_y, step, cgx - x0, cgy - y0, ix, iy)
        with np.errstate(invalid="ignore"):
            error = np.hypot(ix - ex, iy - ey)
        finite = np.isfinite(error)
        if not finite.any() or np.max(error[finite]) <= tolerance:
            grid_map(nodes_x, nodes_y, float(step), ny, nx, out_x, out_y)
            bad = ~(np.isfinite(out_x) & np.isfinite(out_y))
            if bad.any():
                rows, cols = np.nonzero(bad)
                out_x[bad], out_y[bad] = _transform_checked(wcs_from, wcs_to, cols + x0, rows + y0, roundtrip)
            return out_x, out_y
        step //= 2
    for r0 in range(0, ny, _ROW_BLOCK):
        r1 = min(ny, r0 + _ROW_BLOCK)
        gy, gx = np.meshgrid(y0 + np.arange(r0, r1, dtype=float), x0 + np.arange(nx, dtype=float), indexing="ij")
        out_x[r0:r1], out_y[r0:r1] = _transform_checked(wcs_from, wcs_to, gx, gy, roundtrip)
    return out_x, out_y


def _interp_points(nodes_x, nodes_y, step, px, py, out_x, out_y):
    """The coarse-grid interpolation at scattered offsets (for the error check)."""
    from ._reproject_kernels import _lagrange_numpy

    ux, uy = px / step, py / step
    kx, ky = np.floor(ux).astype(int), np.floor(uy).astype(int)
    wx, wy = _lagrange_numpy(ux - kx), _lagrange_numpy(uy - ky)
    out_x[...] = 0.0
    out_y[...] = 0.0
    for a in range(4):
        for b in range(4):
            w = wy[a] * wx[b]
            out_x += w * nodes_x[ky + a, kx + b]
            out_y += w * nodes_y[ky + a, kx + b]


def _check_image(image, mask, name="image"):
    array = np.asarray(image)
    if array.ndim != 2:
        raise InvalidParameterError(f"{name}: expected a 2-d image, got shape {array.shape}")
    if array.dtype.kind not in "fiub":
        raise InvalidParameterError(f"{name}: expected numbers, got dtype {array.dtype}")
    array = array.astype(np.float64, copy=True) if array.dtype != np.float64 or not array.dtype.isnative \
        else array.copy()
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != array.shape:
            raise InvalidParameterError(f"mask: shape {mask.shape} differs from the image's {array.shape}")
        array[mask] = np.nan
    return array


def _check_shape(shape_out):
    try:
        shape = tuple(int(s) for s in shape_out)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"shape_out: expected (ny, nx), got {shape_out!r}") from None
    if len(shape) != 2 or min(shape) < 1:
        raise InvalidParameterError(f"shape_out: expected two positive sizes (ny, nx), got {shape_out!r}")
    return shape


def reproject(image, wcs_in, wcs_out, shape_out, *, method="interp", order="bilinear", mask=None,
              roundtrip=True, threads=None, offset=(0, 0)):
    """Reproject an image onto the pixel grid of another celestial WCS.

    Parameters
    ----------
    image : array_like, shape (ny, nx)
        The input pixels; NaN pixels carry no data.
    wcs_in, wcs_out : astropy.wcs.WCS or astropy.io.fits.Header
        Celestial WCSs of the input and output grids (SIP and lookup-table
        distortions are honoured; frames may differ, e.g. ICRS and Galactic).
    shape_out : tuple of int
        Output shape ``(ny, nx)``.
    method : {'interp', 'exact', 'drizzle'}
        Interpolation (keeps surface brightness), exact pixel overlap
        (area-weighted mean, as ``reproject_exact``) or square-kernel drizzle
        with pixfrac 1 (flux-conserving: pixel sums are kept).  See the
        module documentation for the precise definitions.
    order : {'nearest', 'bilinear', 'bicubic'}
        Interpolation order for ``'interp'``; ignored otherwise.  'bicubic'
        is the cubic B-spline of ``scipy.ndimage.map_coordinates``.
    mask : array_like of bool, optional
        True for input pixels to leave out (treated as NaN).
    roundtrip : bool
        ``'interp'`` only: set to NaN output pixels whose round trip
        output -> input -> output misses by more than one pixel.
    threads : int, optional
        Worker threads of the overlap methods (default: numba's thread count).
    offset : (int, int)
        ``(x0, y0)``: the output array starts at pixel (x0, y0) of ``wcs_out``'s
        grid (to reproject onto a sub-region of a large output grid).

    Returns
    -------
    array : numpy.ndarray, shape ``shape_out``
        Reprojected image; NaN where no input data lands.
    footprint : numpy.ndarray, shape ``shape_out``
        ``'interp'``: 1 where the output is finite, else 0.  ``'exact'`` and
        ``'drizzle'``: the fraction of each output pixel covered by valid
        input pixels.

    Notes
    -----
    NaN handling: 'nearest' and 'bilinear' give NaN when any pixel with which
    they interpolate is NaN (as ``reproject_interp``); 'bicubic' gives NaN
    when any of the 4x4 pixels under the spline is NaN (the spline
    coefficients are computed with NaNs set to 0, whereas scipy's prefilter
    would spread a NaN along whole rows and columns).  The overlap methods
    skip NaN pixels.
    """
    if method not in _METHODS:
        raise InvalidParameterError(f"method: expected one of {', '.join(_METHODS)}, got {method!r}")
    if order not in _ORDERS:
        raise InvalidParameterError(f"order: expected 'nearest', 'bilinear' or 'bicubic', got {order!r}")
    wcs_in = _as_wcs(wcs_in, "wcs_in")
    wcs_out = _as_wcs(wcs_out, "wcs_out")
    ny_out, nx_out = _check_shape(shape_out)
    array = _check_image(image, mask)
    x0, y0 = (int(v) for v in offset)
    if method == "interp":
        return _reproject_interp(array, wcs_in, wcs_out, ny_out, nx_out, x0, y0, _ORDERS[order], roundtrip)
    return _reproject_overlap(array, wcs_in, wcs_out, ny_out, nx_out, x0, y0, method == "drizzle", threads)


def _reproject_interp(array, wcs_in, wcs_out, ny_out, nx_out, x0, y0, order, roundtrip):
    from . import _reproject_kernels as k

    xs, ys = pixel_map(wcs_out, wcs_in, x0, y0, ny_out, nx_out, roundtrip=roundtrip)
    out = np.empty((ny_out, nx_out))
    if order == 0:
        k.interp_nearest(array, xs, ys, out)
    elif order == 1:
        k.interp_bilinear(array, xs, ys, out)
    else:
        from scipy.ndimage import spline_filter

        bad = ~np.isfinite(array)
        filled = np.where(bad, 0.0, array)
        coef = spline_filter(filled, order=3, mode="mirror", output=np.float64)
        k.interp_bicubic(coef, bad, xs, ys, out)
    footprint = np.isfinite(out).astype(float)
    return out, footprint


def _threads(threads):
    if threads is None:
        from numba import get_num_threads

        threads = get_num_threads()
    return max(1, int(threads))


def _reproject_overlap(array, wcs_in, wcs_out, ny_out, nx_out, x0, y0, drizzle, threads):
    from ._reproject_kernels import overlap_accumulate

    ny_in, nx_in = array.shape
    jac = None if drizzle else _tan_jacobian(wcs_out, x0, y0)
    acc = np.zeros((ny_out, nx_out))
    wacc = np.zeros((ny_out, nx_out))
    threads = _threads(threads)
    block = max(16, min(_ROW_BLOCK, -(-ny_in // threads)))
    starts = list(range(0, ny_in, block))

    def work(start):
        stop = min(ny_in, start + block)
        cx, cy = pixel_map(wcs_in, wcs_out, -0.5, start - 0.5, stop - start + 1, nx_in + 1)
        cx -= x0
        cy -= y0
        with np.errstate(invalid="ignore"):
            rows = cy[np.isfinite(cy)]
        if rows.size == 0:
            return
        q0 = max(0, int(np.floor(rows.min() + 0.5)))
        q1 = min(ny_out - 1, int(np.floor(rows.max() + 0.5)))
        if q1 < q0:
            return
        part = np.zeros((q1 - q0 + 1, nx_out))
        wpart = np.zeros((q1 - q0 + 1, nx_out))
        overlap_accumulate(cx, cy, array[start:stop], q0, nx_out, ny_out, drizzle, part, wpart, jac)
        with _lock:
            acc[q0:q1 + 1] += part
            wacc[q0:q1 + 1] += wpart

    if threads == 1 or len(starts) == 1:
        for start in starts:
            work(start)
    else:
        with ThreadPoolExecutor(max_workers=min(threads, len(starts), os.cpu_count() or 1)) as pool:
            list(pool.map(work, starts))
    with np.errstate(invalid="ignore", divide="ignore"):
        if drizzle:
            out = np.where(wacc > 0, acc, np.nan)
        else:
            out = acc / wacc
    if jac is not None:  # footprint: spherical overlap over the output pixel's solid angle
        gy, gx = np.mgrid[:ny_out, :nx_out]
        dx, dy = gx - jac[0, 2], gy - jac[1, 2]
        density = (1.0 + (jac[0, 0] * dx + jac[0, 1] * dy) ** 2 + (jac[1, 0] * dx + jac[1, 1] * dy) ** 2) ** -1.5
        wacc /= density
    return out, wacc


def _tan_jacobian(wcs, x0, y0):
    """For an undistorted TAN WCS: its pixel -> projection-plane (radians) matrix and reference pixel
    (in the coordinates of an array starting at pixel (x0, y0)); None for other projections."""
    ctype = [c.upper() for c in wcs.wcs.ctype]
    if not all(c.endswith("-TAN") for c in ctype) or wcs.sip is not None or wcs.cpdis1 is not None \
            or wcs.cpdis2 is not None or wcs.det2im1 is not None or wcs.det2im2 is not None:
        return None
    matrix = np.deg2rad(wcs.pixel_scale_matrix) if all(u in ("", "deg") for u in map(str, wcs.wcs.cunit)) else None
    if matrix is None:
        return None
    jac = np.empty((2, 3))
    jac[:, :2] = matrix
    jac[0, 2] = wcs.wcs.crpix[0] - 1 - x0
    jac[1, 2] = wcs.wcs.crpix[1] - 1 - y0
    return jac
