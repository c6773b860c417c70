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

The nodes are anchored on the whole grid (at ``anchor + step * k``), not on
the region being mapped, and the inverse of a distorted WCS is solved point
by point, so a region (a tile of a coadd) evaluated with the same step gets
bit-identical positions to the whole image.  The overlap methods take the
input in fixed blocks of rows, add the blocks in order and clip in the
output grid's own coordinates, so their result does not depend on the
output region or the thread count either.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import InvalidParameterError, NoWCSError

__all__ = ["reproject", "MAP_TOLERANCE", "pixel_map", "choose_step"]

#: Largest interpolation error (pixels) allowed for the coarse-grid pixel map.
MAP_TOLERANCE = 1e-7

_METHODS = ("interp", "exact", "drizzle")
_ORDERS = {"nearest": 0, "nearest-neighbor": 0, "bilinear": 1, "bicubic": 3, 0: 0, 1: 1, 3: 3}
_ROW_BLOCK = 256
_IN_BLOCK = 64  # input rows per block of the overlap methods (fixed: results do not depend on threads)


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

    The inverse of a distorted WCS is solved to 1e-10 pixel, point by point
    (astropy's ``world_to_pixel`` stops at 1e-4 pixel, which leaves noise of
    up to ~1e-5 pixel in strongly distorted fields), so that a point's
    position does not depend on the other points of the call.
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
                xo, yo = _world2pix_distorted(wcs_to, ordered[0], ordered[1])
    return np.array(xo, dtype=float), np.array(yo, dtype=float)


def _world2pix_distorted(wcs, lon, lat, tolerance=1e-10, maxiter=60):
    """Inverse of a distorted WCS, point by point.

    The fixed-point iteration of astropy's ``all_world2pix``
    (``pix -= pix2foc(pix) - pix0``), except that every point stops when its
    own correction is below ``tolerance`` pixel: astropy iterates all points
    while any is unconverged, so a point's result would depend on the other
    points of the call (and a tile would not match the whole image).
    """
    shape = np.shape(lon)
    x0, y0 = wcs.wcs_world2pix(np.ravel(lon), np.ravel(lat), 0)
    pix0 = np.column_stack([x0, y0])
    pix = pix0.copy()
    active = np.flatnonzero(np.all(np.isfinite(pix0), axis=1))
    tol2 = tolerance * tolerance
    for _ in range(maxiter):
        if active.size == 0:
            break
        correction = wcs.pix2foc(pix[active], 0) - pix0[active]
        pix[active] -= correction
        with np.errstate(invalid="ignore"):
            active = active[np.sum(correction * correction, axis=1) >= tol2]
    return pix[:, 0].reshape(shape), pix[:, 1].reshape(shape)


def _transform_checked(wcs_from, wcs_to, x, y, roundtrip):
    xo, yo = _transform(wcs_from, wcs_to, x, y)
    if roundtrip:
        xb, yb = _transform(wcs_to, wcs_from, xo, yo)
        with np.errstate(invalid="ignore"):
            bad = ~((np.abs(xb - x) <= 1) & (np.abs(yb - y) <= 1))
        xo[bad] = np.nan
        yo[bad] = np.nan
    return xo, yo


def _node_range(g0, n, step):
    """First node index and node count covering grid offsets g0 .. g0 + n - 1 (4x4 stencils)."""
    first = g0 // step - 1
    return first, (g0 + n - 1) // step + 3 - first


def _grid_offset(value, anchor, name):
    offset = value - anchor
    if offset != int(offset):
        raise ValueError(f"{name}: grid start {value} is not a whole number of pixels from the anchor {anchor}")
    return int(offset)


def _nodes(wcs_from, wcs_to, gx0, gy0, ny, nx, step, anchor, roundtrip):
    """The exact map at the global nodes around a region: (nodes_x, nodes_y, kx0, ky0)."""
    ky0, ky = _node_range(gy0, ny, step)
    kx0, kx = _node_range(gx0, nx, step)
    gy, gx = np.meshgrid(anchor[1] + step * np.arange(ky0, ky0 + ky, dtype=float),
                         anchor[0] + step * np.arange(kx0, kx0 + kx, dtype=float), indexing="ij")
    nodes_x, nodes_y = _transform_checked(wcs_from, wcs_to, gx, gy, roundtrip)
    return nodes_x, nodes_y, kx0, ky0


def choose_step(wcs_from, wcs_to, x0, y0, ny, nx, *, anchor=(0.0, 0.0), roundtrip=False, tolerance=MAP_TOLERANCE):
    """Node spacing of the coarse pixel map for the grid points ``(x0 + c, y0 + r)``; 0: map exactly.

    Nodes lie on a grid anchored at ``anchor`` (global, not at ``(x0, y0)``):
    the step is halved from 32 until the cubic interpolation error, checked
    against the exact map at the centres of the node cells inside the region,
    is at most ``tolerance`` pixel.  Regions with few points are mapped
    exactly.  Returns ``(step, nodes)`` where ``nodes`` can be handed to
    :func:`pixel_map` for the same region (None when step is 0).
    """
    gx0, gy0 = _grid_offset(x0, anchor[0], "x0"), _grid_offset(y0, anchor[1], "y0")
    step = 32
    while step >= 4:
        ky = _node_range(gy0, ny, step)[1]
        kx = _node_range(gx0, nx, step)[1]
        if ny * nx <= 8 * ky * kx:
            break
        nodes = _nodes(wcs_from, wcs_to, gx0, gy0, ny, nx, step, anchor, roundtrip)
        nodes_x, nodes_y, kx0, ky0 = nodes
        # exact values at the centres of the node cells that lie inside the region
        cy = step * (np.arange(ky0, ky0 + ky) + 0.5)
        cx = step * (np.arange(kx0, kx0 + kx) + 0.5)
        cy = cy[(cy >= gy0) & (cy <= gy0 + ny - 1)]
        cx = cx[(cx >= gx0) & (cx <= gx0 + nx - 1)]
        if cy.size == 0:
            cy = np.array([gy0 + 0.5 * (ny - 1)])
        if cx.size == 0:
            cx = np.array([gx0 + 0.5 * (nx - 1)])
        cgy, cgx = np.meshgrid(cy, cx, indexing="ij")
        ex, ey = _transform_checked(wcs_from, wcs_to, cgx + anchor[0], cgy + anchor[1], roundtrip)
        ix, iy = _interp_points(nodes_x, nodes_y, step, kx0, ky0, cgx, cgy)
        with np.errstate(invalid="ignore"):
            error = np.hypot(ix - ex, iy - ey)
        finite = np.isfinite(error)
        if not finite.any() or np.max(error[finite]) <= tolerance:
            return step, nodes
        step //= 2
    return 0, None


def pixel_map(wcs_from, wcs_to, x0, y0, ny, nx, *, roundtrip=False, tolerance=MAP_TOLERANCE, step=None,
              anchor=(0.0, 0.0), nodes=None):
    """Positions in ``wcs_to``'s pixel grid of the grid points ``(x0 + c, y0 + r)`` of ``wcs_from``.

    Returns two float64 arrays of shape ``(ny, nx)`` (x then y); see the
    module notes for the coarse-grid evaluation and its error bound.  The
    coarse nodes sit at ``anchor + step * k`` (``x0 - anchor`` and
    ``y0 - anchor`` must be whole numbers), so any sub-region evaluated with
    the same ``step`` gets bit-identical positions; ``step`` (from
    :func:`choose_step`, 0 = exact map) defaults to the one chosen for this
    region.
    """
    from ._reproject_kernels import grid_map

    gx0, gy0 = _grid_offset(x0, anchor[0], "x0"), _grid_offset(y0, anchor[1], "y0")
    if step is None:
        step, nodes = choose_step(wcs_from, wcs_to, x0, y0, ny, nx, anchor=anchor, roundtrip=roundtrip,
                                  tolerance=tolerance)
    out_x = np.empty((ny, nx))
    out_y = np.empty((ny, nx))
    if step:
        if nodes is None:
            nodes = _nodes(wcs_from, wcs_to, gx0, gy0, ny, nx, step, anchor, roundtrip)
        nodes_x, nodes_y, kx0, ky0 = nodes
        grid_map(nodes_x, nodes_y, float(step), gx0, gy0, kx0, ky0, ny, nx, out_x, out_y)
        bad = ~(np.isfinite(out_x) & np.isfinite(out_y))
        if bad.any():
            rows, cols = np.nonzero(bad)
            out_x[bad], out_y[bad] = _transform_checked(wcs_from, wcs_to, cols + x0, rows + y0, roundtrip)
        return out_x, out_y
    for r0 in range(0, ny, _ROW_BLOCK):
        r1 = min(ny, r0 + _ROW_BLOCK)
        gy, gx = np.meshgrid(y0 + np.arange(r0, r1, dtype=float), x0 + np.arange(nx, dtype=float), indexing="ij")
        out_x[r0:r1], out_y[r0:r1] = _transform_checked(wcs_from, wcs_to, gx, gy, roundtrip)
    return out_x, out_y


def _interp_points(nodes_x, nodes_y, step, kx0, ky0, gx, gy):
    """The coarse-grid interpolation at scattered grid offsets (for the error check)."""
    from ._reproject_kernels import _lagrange_numpy

    ux, uy = gx / step, gy / step
    kx, ky = np.floor(ux).astype(int), np.floor(uy).astype(int)
    wx, wy = _lagrange_numpy(ux - kx), _lagrange_numpy(uy - ky)
    kx, ky = kx - 1 - kx0, ky - 1 - ky0
    out_x = np.zeros(gx.shape)
    out_y = np.zeros(gx.shape)
    for a in range(4):
        for b in range(4):
            w = wy[a] * wx[b]
            out_x += w * nodes_x[ky + a, kx + b]
            out_y += w * nodes_y[ky + a, kx + b]
    return out_x, out_y


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
    reader = ArrayReader(array)
    if method == "interp":
        return _reproject_interp(reader, wcs_in, wcs_out, ny_out, nx_out, x0, y0, _ORDERS[order], roundtrip)
    return _reproject_overlap(reader, wcs_in, wcs_out, ny_out, nx_out, x0, y0, method == "drizzle", threads)


def prefilter(array):
    """Cubic B-spline coefficients of an image (NaN set to 0) and its mask of bad pixels."""
    from scipy.ndimage import spline_filter

    bad = ~np.isfinite(array)
    filled = np.where(bad, 0.0, array)
    return spline_filter(filled, order=3, mode="mirror", output=np.float64), bad


class ArrayReader:
    """Windows of an input image held in memory (float64, NaN = bad), and of its spline coefficients.

    The reprojection asks for the windows it needs through ``read(j0, j1,
    i0, i1)`` and ``spline(j0, j1, i0, i1)``; readers of files (see
    ``_coadd``) read only those pixels.
    """

    def __init__(self, array):
        self.array = array
        self.shape = array.shape
        self._spline = None

    def read(self, j0, j1, i0, i1):
        return self.array[j0:j1, i0:i1]

    def spline(self, j0, j1, i0, i1):
        if self._spline is None:
            self._spline = prefilter(self.array)
        coef, bad = self._spline
        return coef[j0:j1, i0:i1], bad[j0:j1, i0:i1]


def _window(xs, ys, ny, nx, low, high):
    """Rows and columns (j0, j1, i0, i1) of the input that positions inside it reach, or None."""
    with np.errstate(invalid="ignore"):
        inside = (xs >= -0.5) & (xs <= nx - 0.5) & (ys >= -0.5) & (ys <= ny - 0.5)
    if not inside.any():
        return None
    px, py = xs[inside], ys[inside]
    i0 = max(0, int(np.floor(max(px.min(), 0.0))) - low)
    i1 = min(nx, int(np.floor(px.max())) + high)
    j0 = max(0, int(np.floor(max(py.min(), 0.0))) - low)
    j1 = min(ny, int(np.floor(py.max())) + high)
    return j0, j1, i0, i1


def _reproject_interp(reader, wcs_in, wcs_out, ny_out, nx_out, x0, y0, order, roundtrip, step=None):
    from . import _reproject_kernels as k

    xs, ys = pixel_map(wcs_out, wcs_in, x0, y0, ny_out, nx_out, roundtrip=roundtrip, step=step)
    out = np.full((ny_out, nx_out), np.nan)
    ny_in, nx_in = reader.shape
    window = _window(xs, ys, ny_in, nx_in, 2, 4)
    if window is not None:
        j0, j1, i0, i1 = window
        if order == 3:
            coef, bad = reader.spline(j0, j1, i0, i1)
            k.interp_bicubic(np.ascontiguousarray(coef), np.ascontiguousarray(bad), j0, i0, ny_in, nx_in, xs, ys,
                             out)
        else:
            values = np.ascontiguousarray(reader.read(j0, j1, i0, i1), dtype=np.float64)
            kernel = k.interp_nearest if order == 0 else k.interp_bilinear
            kernel(values, j0, i0, ny_in, nx_in, xs, ys, out)
    footprint = np.isfinite(out).astype(float)
    return out, footprint


def _threads(threads):
    if threads is None:
        from numba import get_num_threads

        threads = get_num_threads()
    return max(1, int(threads))


def corner_step(wcs_in, wcs_out, shape_in):
    """Node step of the map of an input's pixel corners into the output grid (chosen over the whole input)."""
    ny_in, nx_in = shape_in
    return choose_step(wcs_in, wcs_out, -0.5, -0.5, ny_in + 1, nx_in + 1, anchor=(-0.5, -0.5))[0]


def _reproject_overlap(reader, wcs_in, wcs_out, ny_out, nx_out, x0, y0, drizzle, threads, step=None, rect=None):
    """Overlap reprojection onto output pixels x0..x0+nx_out-1, y0..y0+ny_out-1 of ``wcs_out``'s grid.

    Input pixels are taken in fixed blocks of ``_IN_BLOCK`` rows (counted
    from row 0 of the input), each block's contributions summed in pixel
    order and the blocks added in order, and the clipping works in the
    output grid's own coordinates: an output pixel gets the same value
    whatever output region (and ``rect``, the input rows and columns
    ``(j0, j1, i0, i1)`` read, as long as it holds every pixel that reaches
    the region) it is computed with, and whatever the thread count.
    """
    from ._reproject_kernels import overlap_accumulate_region

    ny_in, nx_in = reader.shape
    ja, jb, ia, ib = rect if rect is not None else (0, ny_in, 0, nx_in)
    if step is None:
        step = corner_step(wcs_in, wcs_out, reader.shape)
    jac = None if drizzle else _tan_jacobian(wcs_out, 0, 0)
    acc = np.zeros((ny_out, nx_out))
    wacc = np.zeros((ny_out, nx_out))
    q_lo, q_hi, p_lo, p_hi = y0, y0 + ny_out - 1, x0, x0 + nx_out - 1
    blocks = [(max(s, ja), min(s + _IN_BLOCK, jb)) for s in range(ja - ja % _IN_BLOCK, jb, _IN_BLOCK)]

    def work(block):
        r0, r1 = block
        values = np.ascontiguousarray(reader.read(r0, r1, ia, ib), dtype=np.float64)
        if not np.isfinite(values).any():
            return None
        cx, cy = pixel_map(wcs_in, wcs_out, ia - 0.5, r0 - 0.5, r1 - r0 + 1, ib - ia + 1, step=step,
                           anchor=(-0.5, -0.5))
        with np.errstate(invalid="ignore"):
            rows = cy[np.isfinite(cy)]
        if rows.size == 0:
            return None
        q0 = max(q_lo, int(np.floor(rows.min() + 0.5)))
        q1 = min(q_hi, int(np.floor(rows.max() + 0.5)))
        if q1 < q0:
            return None
        part = np.zeros((q1 - q0 + 1, nx_out))
        wpart = np.zeros((q1 - q0 + 1, nx_out))
        overlap_accumulate_region(cx, cy, values, q0, q1, p_lo, p_hi, q0, x0, drizzle, part, wpart, jac)
        return q0, part, wpart

    def add(result):
        if result is not None:
            q0, part, wpart = result
            acc[q0 - y0:q0 - y0 + part.shape[0]] += part
            wacc[q0 - y0:q0 - y0 + part.shape[0]] += wpart

    threads = min(_threads(threads), len(blocks), os.cpu_count() or 1)
    if threads <= 1:
        for block in blocks:
            add(work(block))
    else:
        from collections import deque

        with ThreadPoolExecutor(max_workers=threads) as pool:
            pending = deque()
            for block in blocks:  # a sliding window of blocks in flight, added in block order
                pending.append(pool.submit(work, block))
                if len(pending) > 2 * threads:
                    add(pending.popleft().result())
            while pending:
                add(pending.popleft().result())
    with np.errstate(invalid="ignore", divide="ignore"):
        if drizzle:
            out = np.where(wacc > 0, acc, np.nan)
        else:
            out = acc / wacc
    if jac is not None:  # footprint: spherical overlap over the output pixel's solid angle
        gy, gx = np.mgrid[y0:y0 + ny_out, x0:x0 + nx_out]
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
