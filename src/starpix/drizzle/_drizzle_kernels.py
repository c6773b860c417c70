"""Numba kernels of the drizzle: input pixels onto an output grid through a pixel map.

Every kernel follows the drizzle package's combination rule: for each (input
pixel, output pixel) overlap of kernel weight ``k`` and input weight ``w``,
``dow = k * w``; when ``dow != 0`` the output becomes the weighted mean
``(img * wht + dow * d) / (wht + dow)`` and ``wht += dow``; the context bit is set
when ``dow > 0``.  Values are stored as float32, the arithmetic of one update is
done as drizzle's C does (float32 products, the division in double).

One thread: a single scan of the input rows in order, with no preparatory pass.
Several threads (no races, results identical for any thread count): the output
rows touched by the image are cut into horizontal bands, one band per task. A
first, cheap pass gives each input row the range of output rows its pixel
centres reach, and a bound on how far a footprint reaches from its centre; each
band then visits only the input rows that can reach it (a test per row), in
input order, keeping the contributions that fall in its own rows, so every
output pixel receives its contributions in the same (input row, input column)
order as the serial scan. Rows that only one band can reach count their
contributing pixels directly; the few rows shared by two bands mark them in a
common array, so each pixel is counted once.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, parallel_chunksize, prange

__all__ = ["KERNELS", "drizzle_add", "fill_where_unweighted", "lanczos_lut"]

#: kernel name -> id used by the numba driver
KERNELS = {"square": 0, "point": 1, "turbo": 2, "gaussian": 3, "lanczos3": 4}

LANCZOS_DELTA = 0.003


def lanczos_lut(order, delta=LANCZOS_DELTA):
    """One-sided Lanczos kernel ``sinc(x) sinc(x / order)`` sampled every ``delta`` (x >= 0)."""
    n = int(math.ceil(order / delta)) + 1
    x = np.arange(n) * delta
    lut = np.zeros(n)
    lut[0] = 1.0
    px = np.pi * x[1:]
    r = px / order
    inside = x[1:] <= order
    lut[1:][inside] = np.sin(px[inside]) * np.sin(r[inside]) / (px[inside] * r[inside])
    return lut


@njit(cache=True, inline="always", error_model="numpy")
def _nint(x):
    # Fortran NINT: halves away from zero
    if x >= 0.0:
        return int(math.floor(x + 0.5))
    return -int(math.floor(0.5 - x))


@njit(cache=True, inline="always", error_model="numpy")
def _sgarea(x1, y1, x2, y2):
    # signed area under the segment (x1, y1)-(x2, y2) inside the unit square [0,1]^2
    dx = x2 - x1
    dy = y2 - y1
    if dx == 0.0:
        return 0.0
    if dx < 0.0:
        sgn = -1.0
        xlo = x2
        xhi = x1
    else:
        sgn = 1.0
        xlo = x1
        xhi = x2
    if xlo >= 1.0 or xhi <= 0.0:
        return 0.0
    xlo = max(xlo, 0.0)
    xhi = min(xhi, 1.0)
    slope = dy / dx
    ylo = y1 + slope * (xlo - x1)
    yhi = y1 + slope * (xhi - x1)
    if ylo <= 0.0 and yhi <= 0.0:
        return 0.0
    if ylo >= 1.0 and yhi >= 1.0:
        return sgn * (xhi - xlo)
    det = x1 * y2 - y1 * x2
    if ylo < 0.0:
        ylo = 0.0
        xlo = det / dy
    if yhi < 0.0:
        yhi = 0.0
        xhi = det / dy
    if ylo <= 1.0:
        if yhi <= 1.0:
            return sgn * 0.5 * (xhi - xlo) * (yhi + ylo)
        xtop = (dx + det) / dy
        return sgn * (0.5 * (xtop - xlo) * (1.0 + ylo) + xhi - xtop)
    xtop = (dx + det) / dy
    return sgn * (0.5 * (xhi - xtop) * (1.0 + yhi) + xtop - xlo)


@njit(cache=True, inline="always", error_model="numpy")
def _boxer(ii, jj, xa, ya, xb, yb, xc, yc, xd, yd):
    # signed overlap area of the quadrilateral a-b-c-d with output pixel (ii, jj)
    x0 = ii - 0.5
    y0 = jj - 0.5
    total = 0.0
    total += _sgarea(xa - x0, ya - y0, xb - x0, yb - y0)
    total += _sgarea(xb - x0, yb - y0, xc - x0, yc - y0)
    total += _sgarea(xc - x0, yc - y0, xd - x0, yd - y0)
    total += _sgarea(xd - x0, yd - y0, xa - x0, ya - y0)
    return total


@njit(cache=True, inline="always", error_model="numpy")
def _interp_map(pixmap, x, y):
    # bilinear interpolation (extrapolation at the edges) of the pixel map at input point (x, y)
    ny = pixmap.shape[0]
    nx = pixmap.shape[1]
    i0 = int(x)
    j0 = int(y)
    if i0 < 0:
        i0 = 0
    elif i0 > nx - 2:
        i0 = nx - 2
    if j0 < 0:
        j0 = 0
    elif j0 > ny - 2:
        j0 = ny - 2
    fx = x - i0
    fy = y - j0
    gx = 1.0 - fx
    gy = 1.0 - fy
    a = gx * gy
    b = fx * gy
    c = gx * fy
    d = fx * fy
    ox = a * pixmap[j0, i0, 0] + b * pixmap[j0, i0 + 1, 0] + c * pixmap[j0 + 1, i0, 0] + d * pixmap[j0 + 1, i0 + 1, 0]
    oy = a * pixmap[j0, i0, 1] + b * pixmap[j0, i0 + 1, 1] + c * pixmap[j0 + 1, i0, 1] + d * pixmap[j0 + 1, i0 + 1, 1]
    return ox, oy


@njit(cache=True, inline="always", error_model="numpy")
def _combine(img, vc, d, dow):
    # (new value, new weight) of an output pixel (value img, weight vc) receiving d with weight dow != 0;
    # float32 products and sum, the division in double (drizzle's C update)
    total = np.float32(vc + dow)
    if vc == 0.0:
        return d, total
    return np.float32(np.float64(np.float32(img * vc + dow * d)) / np.float64(total)), total


@njit(cache=True, inline="always", error_model="numpy")
def _over(ii, jj, xlo, xhi, ylo, yhi):
    dx = min(xhi, ii + 0.5) - max(xlo, ii - 0.5)
    dy = min(yhi, jj + 0.5) - max(ylo, jj - 0.5)
    if dx > 0.0 and dy > 0.0:
        return dx * dy
    return 0.0


@njit(cache=True, inline="always", error_model="numpy")
def _row_alone(rowlo, rowhi, r, reach, y0, y1, first, last):
    # True when no other band can reach input row r (its hits are counted by this band alone)
    return (first or rowlo[r] - reach > y0 - 0.5) and (last or rowhi[r] + reach < y1 + 0.5)


# The band functions below write the output update in line (no helper taking arrays in
# the inner loops: numba would reference-count the arrays at every call).

@njit(cache=True, error_model="numpy")
def _band_square(data, weights, has_w, wscale, pixmap, out_img, out_wht, ctx, use_ctx, bit, iscale, pixfrac,
                 xmin, xmax, ymin, ymax, y0, y1, first, last, reach, rowlo, rowhi, hits):
    nx_out = out_img.shape[1]
    ny_in = pixmap.shape[0]
    nx_in = pixmap.shape[1]
    lo_edge = y0 - 0.5 - reach
    hi_edge = y1 + 0.5 + reach
    dh = 0.5 * pixfrac
    count = 0
    for j in range(ymin, ymax + 1):
        r = j - ymin
        if rowhi[r] < lo_edge or rowlo[r] > hi_edge:
            continue
        alone = _row_alone(rowlo, rowhi, r, reach, y0, y1, first, last)
        inner_row = 1 <= j and j < ny_in - 1
        # bilinear weights of the corners' rows (interior pixels: cells j and j - 1)
        fyt = (j + dh) - j
        fyb = (j - dh) - (j - 1)
        gyt = 1.0 - fyt
        gyb = 1.0 - fyb
        for i in range(xmin, xmax + 1):
            oy = pixmap[j, i, 1]
            if not (oy >= lo_edge and oy <= hi_edge) or math.isnan(pixmap[j, i, 0]):
                continue
            w = wscale
            if has_w:
                w = weights[j, i] * wscale
            if w == 0.0:
                continue
            d = np.float32(data[j, i] * iscale)
            if inner_row and 1 <= i and i < nx_in - 1:
                # the corners (i -+ dh, j -+ dh) interpolated in the cells at (i - 1 or i, j or j - 1)
                xl = i - dh
                xr = i + dh
                fxl = xl - (i - 1)
                fxr = xr - i
                gxl = 1.0 - fxl
                gxr = 1.0 - fxr
                p00 = gxl * gyt
                p01 = fxl * gyt
                p10 = gxl * fyt
                p11 = fxl * fyt
                xa = (p00 * pixmap[j, i - 1, 0] + p01 * pixmap[j, i, 0] + p10 * pixmap[j + 1, i - 1, 0]
                      + p11 * pixmap[j + 1, i, 0])
                ya = (p00 * pixmap[j, i - 1, 1] + p01 * pixmap[j, i, 1] + p10 * pixmap[j + 1, i - 1, 1]
                      + p11 * pixmap[j + 1, i, 1])
                p00 = gxr * gyt
                p01 = fxr * gyt
                p10 = gxr * fyt
                p11 = fxr * fyt
                xb = (p00 * pixmap[j, i, 0] + p01 * pixmap[j, i + 1, 0] + p10 * pixmap[j + 1, i, 0]
                      + p11 * pixmap[j + 1, i + 1, 0])
                yb = (p00 * pixmap[j, i, 1] + p01 * pixmap[j, i + 1, 1] + p10 * pixmap[j + 1, i, 1]
                      + p11 * pixmap[j + 1, i + 1, 1])
                p00 = gxr * gyb
                p01 = fxr * gyb
                p10 = gxr * fyb
                p11 = fxr * fyb
                xc = (p00 * pixmap[j - 1, i, 0] + p01 * pixmap[j - 1, i + 1, 0] + p10 * pixmap[j, i, 0]
                      + p11 * pixmap[j, i + 1, 0])
                yc = (p00 * pixmap[j - 1, i, 1] + p01 * pixmap[j - 1, i + 1, 1] + p10 * pixmap[j, i, 1]
                      + p11 * pixmap[j, i + 1, 1])
                p00 = gxl * gyb
                p01 = fxl * gyb
                p10 = gxl * fyb
                p11 = fxl * fyb
                xd = (p00 * pixmap[j - 1, i - 1, 0] + p01 * pixmap[j - 1, i, 0] + p10 * pixmap[j, i - 1, 0]
                      + p11 * pixmap[j, i, 0])
                yd = (p00 * pixmap[j - 1, i - 1, 1] + p01 * pixmap[j - 1, i, 1] + p10 * pixmap[j, i - 1, 1]
                      + p11 * pixmap[j, i, 1])
            else:
                xa, ya = _interp_map(pixmap, i - dh, j + dh)
                xb, yb = _interp_map(pixmap, i + dh, j + dh)
                xc, yc = _interp_map(pixmap, i + dh, j - dh)
                xd, yd = _interp_map(pixmap, i - dh, j - dh)
            if math.isnan(xa + xb + xc + xd) or math.isnan(ya + yb + yc + yd):
                continue
            jaco = 0.5 * ((xb - xd) * (ya - yc) - (xa - xc) * (yb - yd))
            if jaco == 0.0:
                continue
            wj = w / jaco
            jlo = max(_nint(min(min(ya, yb), min(yc, yd))), y0)
            jhi = min(_nint(max(max(ya, yb), max(yc, yd))), y1)
            ilo = max(_nint(min(min(xa, xb), min(xc, xd))), 0)
            ihi = min(_nint(max(max(xa, xb), max(xc, xd))), nx_out - 1)
            hit = False
            for jj in range(jlo, jhi + 1):
                for ii in range(ilo, ihi + 1):
                    dow = np.float32(_boxer(ii, jj, xa, ya, xb, yb, xc, yc, xd, yd) * wj)
                    if dow != 0.0:
                        out_img[jj, ii], out_wht[jj, ii] = _combine(out_img[jj, ii], out_wht[jj, ii], d, dow)
                        if use_ctx and dow > 0.0:
                            ctx[jj, ii] |= bit
                        hit = True
            if hit:
                if alone:
                    count += 1
                else:
                    hits[r, i - xmin] = 1
    return count


@njit(cache=True, error_model="numpy")
def _band_point(data, weights, has_w, wscale, pixmap, out_img, out_wht, ctx, use_ctx, bit, iscale,
                xmin, xmax, ymin, ymax, y0, y1, first, last, reach, rowlo, rowhi, hits):
    nx_out = out_img.shape[1]
    lo_edge = y0 - 0.5 - reach
    hi_edge = y1 + 0.5 + reach
    count = 0
    for j in range(ymin, ymax + 1):
        r = j - ymin
        if rowhi[r] < lo_edge or rowlo[r] > hi_edge:
            continue
        alone = _row_alone(rowlo, rowhi, r, reach, y0, y1, first, last)
        for i in range(xmin, xmax + 1):
            ox = pixmap[j, i, 0]
            oy = pixmap[j, i, 1]
            if not (oy >= lo_edge and oy <= hi_edge) or math.isnan(ox):
                continue
            ii = _nint(ox)
            jj = _nint(oy)
            if not (0 <= ii and ii < nx_out and y0 <= jj and jj <= y1):
                continue
            w = wscale
            if has_w:
                w = weights[j, i] * wscale
            dow = np.float32(w)
            if dow == 0.0:
                continue
            d = np.float32(data[j, i] * iscale)
            out_img[jj, ii], out_wht[jj, ii] = _combine(out_img[jj, ii], out_wht[jj, ii], d, dow)
            if use_ctx and dow > 0.0:
                ctx[jj, ii] |= bit
            if alone:
                count += 1
            else:
                hits[r, i - xmin] = 1
    return count


@njit(cache=True, error_model="numpy")
def _band_turbo(data, weights, has_w, wscale, pixmap, out_img, out_wht, ctx, use_ctx, bit, iscale, pixfrac, psr,
                xmin, xmax, ymin, ymax, y0, y1, first, last, reach, rowlo, rowhi, hits):
    nx_out = out_img.shape[1]
    lo_edge = y0 - 0.5 - reach
    hi_edge = y1 + 0.5 + reach
    pfo = pixfrac / psr / 2.0
    kscale = psr * psr / (pixfrac * pixfrac)
    count = 0
    for j in range(ymin, ymax + 1):
        r = j - ymin
        if rowhi[r] < lo_edge or rowlo[r] > hi_edge:
            continue
        alone = _row_alone(rowlo, rowhi, r, reach, y0, y1, first, last)
        for i in range(xmin, xmax + 1):
            ox = pixmap[j, i, 0]
            oy = pixmap[j, i, 1]
            if not (oy >= lo_edge and oy <= hi_edge) or math.isnan(ox):
                continue
            w = wscale
            if has_w:
                w = weights[j, i] * wscale
            if w == 0.0:
                continue
            d = np.float32(data[j, i] * iscale)
            xlo = ox - pfo
            xhi = ox + pfo
            ylo = oy - pfo
            yhi = oy + pfo
            ilo = max(_nint(xlo), 0)
            ihi = min(_nint(xhi), nx_out - 1)
            jlo = max(_nint(ylo), y0)
            jhi = min(_nint(yhi), y1)
            hit = False
            for jj in range(jlo, jhi + 1):
                for ii in range(ilo, ihi + 1):
                    dover = _over(ii, jj, xlo, xhi, ylo, yhi)
                    if dover > 0.0:
                        dow = np.float32(dover * kscale * w)
                        if dow != 0.0:
                            out_img[jj, ii], out_wht[jj, ii] = _combine(out_img[jj, ii], out_wht[jj, ii], d, dow)
                            if use_ctx and dow > 0.0:
                                ctx[jj, ii] |= bit
                            hit = True
            if hit:
                if alone:
                    count += 1
                else:
                    hits[r, i - xmin] = 1
    return count


@njit(cache=True, error_model="numpy")
def _band_smooth(kernel, data, weights, has_w, wscale, pixmap, out_img, out_wht, ctx, use_ctx, bit, iscale,
                 pixfrac, psr, lut, xmin, xmax, ymin, ymax, y0, y1, first, last, reach, rowlo, rowhi, hits):
    # gaussian (kernel 3) and lanczos3 (kernel 4)
    nx_out = out_img.shape[1]
    lo_edge = y0 - 0.5 - reach
    hi_edge = y1 + 0.5 + reach
    nlut = lut.size
    if kernel == 3:
        pfo = max(2.5 * pixfrac / 2.3548 / psr, 1.2 / psr)
        efac = 2.3548 * 2.3548 * psr * psr / (pixfrac * pixfrac) / 2.0
        es = efac / math.pi
        sdp = 0.0
    else:
        pfo = 3.0 / psr
        sdp = psr / LANCZOS_DELTA
        efac = 0.0
        es = 0.0
    count = 0
    for j in range(ymin, ymax + 1):
        r = j - ymin
        if rowhi[r] < lo_edge or rowlo[r] > hi_edge:
            continue
        alone = _row_alone(rowlo, rowhi, r, reach, y0, y1, first, last)
        for i in range(xmin, xmax + 1):
            ox = pixmap[j, i, 0]
            oy = pixmap[j, i, 1]
            if not (oy >= lo_edge and oy <= hi_edge) or math.isnan(ox):
                continue
            w = wscale
            if has_w:
                w = weights[j, i] * wscale
            if w == 0.0:
                continue
            d = np.float32(data[j, i] * iscale)
            hit = False
            if kernel == 3:
                ilo = max(_nint(ox - pfo), 0)
                ihi = min(_nint(ox + pfo), nx_out - 1)
                jlo = max(_nint(oy - pfo), y0)
                jhi = min(_nint(oy + pfo), y1)
                for jj in range(jlo, jhi + 1):
                    ddy = oy - jj
                    for ii in range(ilo, ihi + 1):
                        ddx = ox - ii
                        dover = es * math.exp(-(ddx * ddx + ddy * ddy) * efac)
                        dow = np.float32(np.float32(dover) * w)
                        if dow != 0.0:
                            out_img[jj, ii], out_wht[jj, ii] = _combine(out_img[jj, ii], out_wht[jj, ii], d, dow)
                            if use_ctx and dow > 0.0:
                                ctx[jj, ii] |= bit
                            hit = True
            else:
                ilo = max(int(math.floor(ox - pfo)) + 1, 0)
                ihi = min(int(math.floor(ox + pfo)), nx_out - 1)
                jlo = max(int(math.floor(oy - pfo)) + 1, y0)
                jhi = min(int(math.floor(oy + pfo)), y1)
                for jj in range(jlo, jhi + 1):
                    iy = _nint(abs((oy - jj) * sdp))
                    if iy >= nlut:
                        continue
                    for ii in range(ilo, ihi + 1):
                        ix = _nint(abs((ox - ii) * sdp))
                        if ix >= nlut:
                            continue
                        dow = np.float32(lut[ix] * lut[iy] * w)
                        if dow != 0.0:
                            out_img[jj, ii], out_wht[jj, ii] = _combine(out_img[jj, ii], out_wht[jj, ii], d, dow)
                            if use_ctx and dow > 0.0:
                                ctx[jj, ii] |= bit
                            hit = True
            if hit:
                if alone:
                    count += 1
                else:
                    hits[r, i - xmin] = 1
    return count


@njit(cache=True, error_model="numpy")
def _scan_band(kernel, data, weights, has_w, wscale, pixmap, out_img, out_wht, ctx, use_ctx, bit,
               iscale, pixfrac, psr, lut, xmin, xmax, ymin, ymax, y0, y1, first, last, reach, rowlo, rowhi, hits):
    if kernel == 0:
        return _band_square(data, weights, has_w, wscale, pixmap, out_img, out_wht, ctx, use_ctx, bit, iscale,
                            pixfrac, xmin, xmax, ymin, ymax, y0, y1, first, last, reach, rowlo, rowhi, hits)
    if kernel == 1:
        return _band_point(data, weights, has_w, wscale, pixmap, out_img, out_wht, ctx, use_ctx, bit, iscale,
                           xmin, xmax, ymin, ymax, y0, y1, first, last, reach, rowlo, rowhi, hits)
    if kernel == 2:
        return _band_turbo(data, weights, has_w, wscale, pixmap, out_img, out_wht, ctx, use_ctx, bit, iscale,
                           pixfrac, psr, xmin, xmax, ymin, ymax, y0, y1, first, last, reach, rowlo, rowhi, hits)
    return _band_smooth(kernel, data, weights, has_w, wscale, pixmap, out_img, out_wht, ctx, use_ctx, bit, iscale,
                        pixfrac, psr, lut, xmin, xmax, ymin, ymax, y0, y1, first, last, reach, rowlo, rowhi, hits)


@njit(cache=True, parallel=True, error_model="numpy")
def _row_ranges(pixmap, xmin, xmax, ymin, ymax, rowlo, rowhi, rowstep):
    # per input row: min / max output y of the pixel centres, and the largest
    # change of output x or y between neighbouring pixels (bounds a footprint's reach)
    nyp = pixmap.shape[0]
    nxp = pixmap.shape[1]
    for r in prange(ymax - ymin + 1):
        j = ymin + r
        lo = np.inf
        hi = -np.inf
        step = 0.0
        for i in range(xmin, xmax + 1):
            ox = pixmap[j, i, 0]
            oy = pixmap[j, i, 1]
            if math.isnan(ox) or math.isnan(oy):
                continue
            lo = min(lo, oy)
            hi = max(hi, oy)
            if i + 1 < nxp:
                ox2 = pixmap[j, i + 1, 0]
                oy2 = pixmap[j, i + 1, 1]
                if not math.isnan(oy2):
                    step = max(step, abs(oy2 - oy), abs(ox2 - ox))
            if j + 1 < nyp:
                ox2 = pixmap[j + 1, i, 0]
                oy2 = pixmap[j + 1, i, 1]
                if not math.isnan(oy2):
                    step = max(step, abs(oy2 - oy), abs(ox2 - ox))
        rowlo[r] = lo
        rowhi[r] = hi
        rowstep[r] = step


@njit(cache=True, parallel=True, error_model="numpy")
def _scan_bands(kernel, data, weights, has_w, wscale, pixmap, out_img, out_wht, ctx, use_ctx, bit,
                iscale, pixfrac, psr, lut, xmin, xmax, ymin, ymax, ystart, height, nbands, yend,
                reach, rowlo, rowhi, hits, counts):
    for b in prange(nbands):
        y0 = ystart + b * height
        y1 = min(yend, y0 + height - 1)
        if y0 > y1:
            continue
        counts[b] = _scan_band(kernel, data, weights, has_w, wscale, pixmap, out_img, out_wht, ctx, use_ctx, bit,
                               iscale, pixfrac, psr, lut, xmin, xmax, ymin, ymax, y0, y1, b == 0, b == nbands - 1,
                               reach, rowlo, rowhi, hits)


def drizzle_add(kernel, data, weights, wscale, pixmap, out_img, out_wht, ctx, bit, iscale, pixfrac, psr,
                xmin, xmax, ymin, ymax, nthreads):
    """Drizzle one image (sub-box ``[ymin..ymax] x [xmin..xmax]``) into the accumulators.

    Returns the number of input pixels that added weight to the output.
    """
    nrows = ymax - ymin + 1
    ny_out = out_img.shape[0]
    use_ctx = ctx is not None
    if ctx is None:
        ctx = np.zeros((1, 1), np.int32)
    has_w = weights is not None
    if weights is None:
        weights = np.ones((1, 1), np.float32)
    lut = lanczos_lut(3) if kernel == 4 else np.zeros(1)
    args = (kernel, data, weights, has_w, float(wscale), pixmap, out_img, out_wht, ctx, use_ctx, np.int32(bit),
            float(iscale), float(pixfrac), float(psr), lut, xmin, xmax, ymin, ymax)
    if nthreads <= 1:
        # one band covering the whole output, run in this thread: no row bounds, every hit counted directly
        rowlo = np.full(nrows, -np.inf)
        rowhi = np.full(nrows, np.inf)
        return int(_scan_band(*args, 0, ny_out - 1, True, True, np.inf, rowlo, rowhi, np.zeros((1, 1), np.uint8)))
    rowlo = np.empty(nrows)
    rowhi = np.empty(nrows)
    rowstep = np.empty(nrows)
    _row_ranges(pixmap, xmin, xmax, ymin, ymax, rowlo, rowhi, rowstep)
    finite = np.isfinite(rowlo)
    if not finite.any():
        return 0
    step = float(rowstep.max())
    if kernel == 0:
        reach = 2.0 * pixfrac * step + 2.0
    elif kernel == 1:
        reach = 1.0
    elif kernel == 2:
        reach = pixfrac / psr / 2.0 + 1.0
    elif kernel == 3:
        reach = max(2.5 * pixfrac / 2.3548 / psr, 1.2 / psr) + 1.0
    else:
        reach = 3.0 / psr + 1.0
    ystart = max(0, int(math.floor(rowlo[finite].min() - reach)))
    yend = min(ny_out - 1, int(math.ceil(rowhi[finite].max() + reach)))
    if ystart > yend:
        return 0
    span = yend - ystart + 1
    nbands = min(8 * nthreads, max(1, span // 8))
    height = -(-span // nbands)
    nbands = -(-span // height)
    # input pixels of rows that more than one band may reach mark their hits here (counted once)
    hits = np.zeros((nrows, xmax - xmin + 1), np.uint8)
    counts = np.zeros(nbands, np.int64)
    with parallel_chunksize(1):  # bands handed out one at a time: a thread slowed by other load does less
        _scan_bands(*args, ystart, height, nbands, yend, float(reach), rowlo, rowhi, hits, counts)
    return int(counts.sum()) + int(np.count_nonzero(hits))


@njit(cache=True, parallel=True, error_model="numpy")
def fill_where_unweighted(out_img, out_wht, value):
    """``out_img[out_wht == 0] = value``, row-parallel."""
    for j in prange(out_img.shape[0]):
        for i in range(out_img.shape[1]):
            if out_wht[j, i] == 0.0:
                out_img[j, i] = value
