"""Hot loops of reprojection: pixel-map interpolation, image interpolation,
polygon clipping and per-pixel combination of a stack.

The kernels never see a WCS: pixel maps (positions in another image's pixel
grid) go in, values and accumulators come out.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

# --------------------------------------------------------------------------------------------
# pixel map from a coarse grid (cubic Lagrange interpolation, nodes at -1, 0, 1, 2)


@njit(cache=True, nogil=True, inline="always")
def _lagrange(t, w):
    w[0] = -t * (t - 1.0) * (t - 2.0) / 6.0
    w[1] = (t + 1.0) * (t - 1.0) * (t - 2.0) / 2.0
    w[2] = -(t + 1.0) * t * (t - 2.0) / 2.0
    w[3] = (t + 1.0) * t * (t - 1.0) / 6.0


def _lagrange_numpy(t):
    """The four cubic Lagrange weights (nodes -1, 0, 1, 2) for an array of t."""
    return (-t * (t - 1.0) * (t - 2.0) / 6.0, (t + 1.0) * (t - 1.0) * (t - 2.0) / 2.0,
            -(t + 1.0) * t * (t - 2.0) / 2.0, (t + 1.0) * t * (t - 1.0) / 6.0)


@njit(cache=True, nogil=True, parallel=True)
def grid_map(nodes_x, nodes_y, step, gx0, gy0, kx0, ky0, ny, nx, out_x, out_y):
    """Evaluate a map known at coarse nodes on every point of an (ny, nx) grid.

    Nodes sit at global grid positions: node ``k`` of an axis is at offset
    ``step * k`` from the anchor of the whole grid, and ``nodes_*[a, b]``
    holds node ``(ky0 + a, kx0 + b)``.  Point ``(r, c)`` of the array is at
    offset ``(gy0 + r, gx0 + c)`` (integers) from the anchor and uses the
    4x4 nodes around it, so the same grid point gets the same value whatever
    sub-array it is evaluated in.  A non-finite node makes the points that
    use it NaN.
    """
    for r in prange(ny):
        wy = np.empty(4)
        wx = np.empty(4)
        ur = (gy0 + r) / step
        ky = int(math.floor(ur))
        _lagrange(ur - ky, wy)
        ry0 = ky - 1 - ky0
        for c in range(nx):
            uc = (gx0 + c) / step
            kx = int(math.floor(uc))
            _lagrange(uc - kx, wx)
            rx0 = kx - 1 - kx0
            sx = 0.0
            sy = 0.0
            for a in range(4):
                rx = 0.0
                ry = 0.0
                for b in range(4):
                    rx += wx[b] * nodes_x[ry0 + a, rx0 + b]
                    ry += wx[b] * nodes_y[ry0 + a, rx0 + b]
                sx += wy[a] * rx
                sy += wy[a] * ry
            out_x[r, c] = sx
            out_y[r, c] = sy


# --------------------------------------------------------------------------------------------
# interpolation of an image at pixel positions (reproject / scipy map_coordinates conventions)


@njit(cache=True, nogil=True, inline="always")
def _clip_coord(v, n):
    """Positions in the outer half of a border pixel move to its centre; outside -> -1e300."""
    if v != v or v < -0.5 or v > n - 0.5:
        return -1e300
    if v < 0.0:
        return 0.0
    if v > n - 1.0:
        return n - 1.0
    return v


_SNAP = 1e-9


@njit(cache=True, nogil=True, inline="always")
def _split(v):
    """Integer part and fraction of a position; fractions within 1e-9 of 0 or 1 snap to 0, so that a
    pixel-aligned map (e.g. the identity, evaluated through world coordinates) does not pull in a
    neighbour with a weight of 1e-10, nor spread its NaN."""
    i = int(math.floor(v))
    f = v - i
    if f < _SNAP:
        f = 0.0
    elif f > 1.0 - _SNAP:
        i += 1
        f = 0.0
    return i, f


@njit(cache=True, nogil=True, parallel=True)
def interp_nearest(image, j0, i0, ny, nx, xs, ys, out):
    """Nearest-pixel values; ``image`` is the window starting at pixel (i0, j0) of an (ny, nx) image."""
    for r in prange(xs.shape[0]):
        for c in range(xs.shape[1]):
            x = _clip_coord(xs[r, c], nx)
            y = _clip_coord(ys[r, c], ny)
            if x == -1e300 or y == -1e300:
                out[r, c] = np.nan
                continue
            i = min(int(math.floor(x + 0.5)), nx - 1)
            j = min(int(math.floor(y + 0.5)), ny - 1)
            out[r, c] = image[j - j0, i - i0]


@njit(cache=True, nogil=True, parallel=True)
def interp_bilinear(image, j0, i0, ny, nx, xs, ys, out):
    """Bilinear interpolation; ``image`` is the window starting at pixel (i0, j0) of an (ny, nx) image."""
    for r in prange(xs.shape[0]):
        for c in range(xs.shape[1]):
            x = _clip_coord(xs[r, c], nx)
            y = _clip_coord(ys[r, c], ny)
            if x == -1e300 or y == -1e300:
                out[r, c] = np.nan
                continue
            ia, fx = _split(x)
            ja, fy = _split(y)
            ia = min(ia, nx - 1) - i0
            ja = min(ja, ny - 1) - j0
            ib = min(ia + i0 + 1, nx - 1) - i0
            jb = min(ja + j0 + 1, ny - 1) - j0
            top = image[ja, ia]
            if fx > 0.0:
                top = top * (1.0 - fx) + image[ja, ib] * fx
            if fy > 0.0:
                bottom = image[jb, ia]
                if fx > 0.0:
                    bottom = bottom * (1.0 - fx) + image[jb, ib] * fx
                top = top * (1.0 - fy) + bottom * fy
            out[r, c] = top


@njit(cache=True, nogil=True, inline="always")
def _mirror(i, n):
    if n == 1:
        return 0
    period = 2 * (n - 1)
    i = abs(i) % period
    if i >= n:
        i = period - i
    return i


@njit(cache=True, nogil=True, inline="always")
def _bspline3(t, w):
    u = 1.0 - t
    w[0] = u * u * u / 6.0
    w[1] = (3.0 * t * t * t - 6.0 * t * t + 4.0) / 6.0
    w[2] = (-3.0 * t * t * t + 3.0 * t * t + 3.0 * t + 1.0) / 6.0
    w[3] = t * t * t / 6.0


@njit(cache=True, nogil=True, parallel=True)
def interp_bicubic(coef, bad, j0, i0, ny, nx, xs, ys, out):
    """Cubic B-spline interpolation from prefiltered coefficients (mirror boundaries);
    a point whose 4x4 support holds a bad (NaN or masked) pixel is NaN.  ``coef`` and ``bad`` are
    the windows starting at pixel (i0, j0) of an (ny, nx) image."""
    for r in prange(xs.shape[0]):
        wx = np.empty(4)
        wy = np.empty(4)
        ix = np.empty(4, dtype=np.int64)
        iy = np.empty(4, dtype=np.int64)
        for c in range(xs.shape[1]):
            x = _clip_coord(xs[r, c], nx)
            y = _clip_coord(ys[r, c], ny)
            if x == -1e300 or y == -1e300:
                out[r, c] = np.nan
                continue
            ia, fx = _split(x)
            ja, fy = _split(y)
            _bspline3(fx, wx)
            _bspline3(fy, wy)
            for k in range(4):
                ix[k] = _mirror(ia - 1 + k, nx) - i0
                iy[k] = _mirror(ja - 1 + k, ny) - j0
            total = 0.0
            flagged = False
            for a in range(4):
                row = 0.0
                for b in range(4):
                    if bad[iy[a], ix[b]] and wx[b] != 0.0 and wy[a] != 0.0:
                        flagged = True
                    row += wx[b] * coef[iy[a], ix[b]]
                total += wy[a] * row
            out[r, c] = np.nan if flagged else total


# --------------------------------------------------------------------------------------------
# polygon clipping: overlap of input pixel quadrilaterals with output pixels


@njit(cache=True, nogil=True, inline="always")
def _clip_half(px, py, n, axis, bound, keep_above, qx, qy):
    """Sutherland-Hodgman clip of polygon (px, py)[:n] by an axis-aligned half-plane."""
    m = 0
    if n == 0:
        return 0
    for k in range(n):
        ax = px[k]
        ay = py[k]
        bx = px[(k + 1) % n]
        by = py[(k + 1) % n]
        va = ax if axis == 0 else ay
        vb = bx if axis == 0 else by
        ina = va >= bound if keep_above else va <= bound
        inb = vb >= bound if keep_above else vb <= bound
        if ina:
            qx[m] = ax
            qy[m] = ay
            m += 1
        if ina != inb:
            t = (bound - va) / (vb - va)
            qx[m] = ax + t * (bx - ax)
            qy[m] = ay + t * (by - ay)
            m += 1
    return m


@njit(cache=True, nogil=True, inline="always")
def _area(px, py, n):
    s = 0.0
    for k in range(n):
        j = (k + 1) % n
        s += px[k] * py[j] - px[j] * py[k]
    return 0.5 * s


@njit(cache=True, nogil=True, inline="always")
def _tan_density(px, py, n, area, jac):
    """Solid angle per unit plane area of a TAN projection at the polygon's centroid:
    (1 + xi^2 + eta^2)^-1.5 with (xi, eta) = jac[:, :2] @ (x - jac[0, 2], y - jac[1, 2]) in radians."""
    gx = 0.0
    gy = 0.0
    for k in range(n):
        j = (k + 1) % n
        cross = px[k] * py[j] - px[j] * py[k]
        gx += (px[k] + px[j]) * cross
        gy += (py[k] + py[j]) * cross
    gx /= 6.0 * area
    gy /= 6.0 * area
    dx = gx - jac[0, 2]
    dy = gy - jac[1, 2]
    xi = jac[0, 0] * dx + jac[0, 1] * dy
    eta = jac[1, 0] * dx + jac[1, 1] * dy
    return (1.0 + xi * xi + eta * eta) ** -1.5


def overlap_accumulate(cx, cy, values, row0, nx_out, ny_out, drizzle, acc, wacc, jac=None):
    """Spread input pixels over output pixels by exact planar overlap.

    ``cx, cy`` (rows+1, ncols+1): input pixel corners in output pixel
    coordinates; ``values`` (rows, ncols): the pixels (NaN: skipped).
    ``acc`` and ``wacc`` cover output rows ``row0 .. row0 + acc.shape[0] - 1``
    (all ``nx_out`` columns) of an ``(ny_out, nx_out)`` grid.  See
    :func:`overlap_accumulate_region`.
    """
    last = min(row0 + acc.shape[0], ny_out) - 1
    overlap_accumulate_region(cx, cy, values, row0, last, 0, nx_out - 1, row0, 0, drizzle, acc, wacc, jac)


@njit(cache=True, nogil=True)
def overlap_accumulate_region(cx, cy, values, q_lo, q_hi, p_lo, p_hi, row0, col0, drizzle, acc, wacc, jac=None):
    """Spread input pixels over the output pixels (p, q), p_lo <= p <= p_hi, q_lo <= q <= q_hi.

    ``cx, cy`` (rows+1, ncols+1): input pixel corners in output pixel
    coordinates; ``values`` (rows, ncols): the pixels (NaN: skipped).
    ``acc[q - row0, p - col0]`` and ``wacc`` accumulate output pixel (p, q).
    Without ``drizzle``: acc += value * area, wacc += area.  With ``drizzle``:
    acc += value * area / quad_area (each input pixel's flux is shared out),
    wacc += area.  With ``jac`` (a 2x3 array: the TAN output's linear map to
    the projection plane in radians, and its reference pixel), every overlap
    area is weighted by the solid angle per unit area at its centroid, so
    that areas are spherical to first order.  The clipping works in the
    coordinates given (no shift), so an output pixel gets bit-identical
    contributions whatever region it is computed in.
    """
    rows, ncols = values.shape
    quad_x = np.empty(4)
    quad_y = np.empty(4)
    sx = np.empty(16)
    sy = np.empty(16)
    tx = np.empty(16)
    ty = np.empty(16)
    ux = np.empty(16)
    uy = np.empty(16)
    vx = np.empty(16)
    vy = np.empty(16)
    for j in range(rows):
        for i in range(ncols):
            v = values[j, i]
            if v != v:
                continue
            quad_x[0] = cx[j, i]
            quad_y[0] = cy[j, i]
            quad_x[1] = cx[j, i + 1]
            quad_y[1] = cy[j, i + 1]
            quad_x[2] = cx[j + 1, i + 1]
            quad_y[2] = cy[j + 1, i + 1]
            quad_x[3] = cx[j + 1, i]
            quad_y[3] = cy[j + 1, i]
            xmin = 1e300
            xmax = -1e300
            ymin = 1e300
            ymax = -1e300
            finite = True
            for k in range(4):
                if not (math.isfinite(quad_x[k]) and math.isfinite(quad_y[k])):
                    finite = False
                xmin = min(xmin, quad_x[k])
                xmax = max(xmax, quad_x[k])
                ymin = min(ymin, quad_y[k])
                ymax = max(ymax, quad_y[k])
            if not finite:
                continue
            p0 = max(int(math.floor(xmin + 0.5)), p_lo)
            p1 = min(int(math.floor(xmax + 0.5)), p_hi)
            q0 = max(int(math.floor(ymin + 0.5)), q_lo)
            q1 = min(int(math.floor(ymax + 0.5)), q_hi)
            if p0 > p1 or q0 > q1:
                continue
            scale = 1.0
            if drizzle:
                quad_area = abs(_area(quad_x, quad_y, 4))
                if quad_area <= 0.0:
                    continue
                scale = 1.0 / quad_area
            for q in range(q0, q1 + 1):
                n1 = _clip_half(quad_x, quad_y, 4, 1, q - 0.5, True, sx, sy)
                n2 = _clip_half(sx, sy, n1, 1, q + 0.5, False, tx, ty)
                if n2 < 3:
                    continue
                for p in range(p0, p1 + 1):
                    n3 = _clip_half(tx, ty, n2, 0, p - 0.5, True, ux, uy)
                    n4 = _clip_half(ux, uy, n3, 0, p + 0.5, False, vx, vy)
                    if n4 < 3:
                        continue
                    signed = _area(vx, vy, n4)
                    a = abs(signed)
                    if a == 0.0:
                        continue
                    if jac is not None:
                        a *= _tan_density(vx, vy, n4, signed, jac)
                    acc[q - row0, p - col0] += v * a * scale
                    wacc[q - row0, p - col0] += a


# --------------------------------------------------------------------------------------------
# per-pixel combination of a stack (NaN = no data)


@njit(cache=True, nogil=True, inline="always")
def _median_sorted(buf, n):
    if n % 2 == 1:
        return buf[n // 2]
    return 0.5 * (buf[n // 2 - 1] + buf[n // 2])


@njit(cache=True, nogil=True, parallel=True)
def stack_median(stack, out, count):
    """Median over axis 0 of (n, rows, cols), ignoring NaN; count = finite values."""
    n, rows, cols = stack.shape
    for r in prange(rows):
        buf = np.empty(n)
        for c in range(cols):
            m = 0
            for k in range(n):
                v = stack[k, r, c]
                if v == v:
                    buf[m] = v
                    m += 1
            count[r, c] = m
            if m == 0:
                out[r, c] = np.nan
            else:
                s = np.sort(buf[:m])
                out[r, c] = _median_sorted(s, m)
