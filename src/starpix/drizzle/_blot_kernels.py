"""Numba kernels of blot: interpolate an image at the positions a pixel map gives.

Interpolants as in drizzle's C ``tblot``: nearest, bilinear, the cubic and
quintic interpolating polynomials through 4 / 6 samples (Everett's central
difference form, with odd reflection ``f(-k) = 2 f(0) - f(k)`` past the edges),
IRAF's tapered sinc (15 samples, taper ``(1 - 0.4967 u^2 + 0.03705 u^4)^2``,
offsets scaled by ``sinscl``, edge samples replicated) and Lanczos 3 / 5
(``sinc(d) sinc(d / order)`` over the ``2 order + 1`` nearest samples, evaluated
exactly; no value within ``order`` pixels of the edge: fill instead).
Output rows are shared among threads; every pixel is independent.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = ["INTERPOLATIONS", "blot_kernel"]

INTERPOLATIONS = {"nearest": 0, "linear": 1, "poly3": 2, "poly5": 3, "sinc": 4, "lanczos3": 5, "lanczos5": 6}

NSINC = 7


def sinc_taper():
    """Signed taper of the 15-point sinc: ``(-1)^k (1 + a2 u^2 + a4 u^4)^2``, ``u = k pi / 14``."""
    k = np.arange(-NSINC, NSINC + 1)
    sconst = (np.float32(np.pi / 2) / NSINC) ** 2
    dx2 = sconst * k.astype(np.float64) ** 2
    taper = (1.0 - 0.49670 * dx2 + 0.03705 * dx2 * dx2) ** 2
    return (np.where(k % 2 == 0, 1.0, -1.0) * taper).astype(np.float32)


@njit(cache=True, inline="always", error_model="numpy")
def _getc(data, r, c):
    nx = data.shape[1]
    if c < 0:
        return np.float32(2.0) * data[r, 0] - data[r, min(-c, nx - 1)]
    if c >= nx:
        return np.float32(2.0) * data[r, nx - 1] - data[r, max(2 * nx - 2 - c, 0)]
    return data[r, c]


@njit(cache=True, inline="always", error_model="numpy")
def _get(data, r, c):
    ny = data.shape[0]
    if r < 0:
        return np.float32(2.0) * _getc(data, 0, c) - _getc(data, min(-r, ny - 1), c)
    if r >= ny:
        return np.float32(2.0) * _getc(data, ny - 1, c) - _getc(data, max(2 * ny - 2 - r, 0), c)
    return _getc(data, r, c)


@njit(cache=True, inline="always", error_model="numpy")
def _cubic(fm1, f0, f1, f2, s):
    t = np.float32(1.0) - s
    sixth = np.float32(1.0 / 6.0)
    cd20 = sixth * (f1 - np.float32(2.0) * f0 + fm1)
    cd21 = sixth * (f2 - np.float32(2.0) * f1 + f0)
    return s * (f1 + (s * s - np.float32(1.0)) * cd21) + t * (f0 + (t * t - np.float32(1.0)) * cd20)


@njit(cache=True, inline="always", error_model="numpy")
def _quintic(fm2, fm1, f0, f1, f2, f3, s):
    t = np.float32(1.0) - s
    s2 = s * s
    t2 = t * t
    sixth = np.float32(1.0 / 6.0)
    c120 = np.float32(1.0 / 120.0)
    two = np.float32(2.0)
    four = np.float32(4.0)
    six = np.float32(6.0)
    one = np.float32(1.0)
    cd20 = sixth * (f1 - two * f0 + fm1)
    cd21 = sixth * (f2 - two * f1 + f0)
    cd40 = c120 * (fm2 - four * fm1 + six * f0 - four * f1 + f2)
    cd41 = c120 * (fm1 - four * f0 + six * f1 - four * f2 + f3)
    return (s * (f1 + (s2 - one) * (cd21 + (s2 - four) * cd41))
            + t * (f0 + (t2 - one) * (cd20 + (t2 - four) * cd40)))


@njit(cache=True, inline="always", error_model="numpy")
def _lanczos(d, order):
    d = abs(d)
    if d == 0.0:
        return 1.0
    if d >= order:
        return 0.0
    px = math.pi * d
    return math.sin(px) * math.sin(px / order) / (px * px / order)


@njit(cache=True, error_model="numpy")
def _interp(method, data, x, y, lut, nbox, taper, sinscl, fillval):
    ny, nx = data.shape
    if method == 0:
        return data[min(int(y + np.float32(0.5)), ny - 1), min(int(x + np.float32(0.5)), nx - 1)]
    if method == 1:
        ix = int(x)
        iy = int(y)
        f00 = data[iy, ix]
        if ix == nx - 1:
            if iy == ny - 1:
                return f00
            sy = y - np.float32(iy)
            return (np.float32(1.0) - sy) * f00 + sy * data[iy + 1, ix]
        if iy == ny - 1:
            sx = x - np.float32(ix)
            return (np.float32(1.0) - sx) * f00 + sx * data[iy, ix + 1]
        sx = x - np.float32(ix)
        tx = np.float32(1.0) - sx
        sy = y - np.float32(iy)
        ty = np.float32(1.0) - sy
        return (tx * ty * f00 + sx * ty * data[iy, ix + 1] + sy * tx * data[iy + 1, ix]
                + sx * sy * data[iy + 1, ix + 1])
    if method == 2:
        ix = int(x)
        iy = int(y)
        sx = x - np.float32(ix)
        sy = y - np.float32(iy)
        z0 = np.float32(0.0)
        z1 = np.float32(0.0)
        z2 = np.float32(0.0)
        z3 = np.float32(0.0)
        for k in range(4):
            r = iy - 1 + k
            v = _cubic(_get(data, r, ix - 1), _get(data, r, ix), _get(data, r, ix + 1), _get(data, r, ix + 2), sx)
            if k == 0:
                z0 = v
            elif k == 1:
                z1 = v
            elif k == 2:
                z2 = v
            else:
                z3 = v
        return _cubic(z0, z1, z2, z3, sy)
    if method == 3:
        ix = int(x)
        iy = int(y)
        sx = x - np.float32(ix)
        sy = y - np.float32(iy)
        z = np.empty(6, np.float32)
        for k in range(6):
            r = iy - 2 + k
            z[k] = _quintic(_get(data, r, ix - 2), _get(data, r, ix - 1), _get(data, r, ix),
                            _get(data, r, ix + 1), _get(data, r, ix + 2), _get(data, r, ix + 3), sx)
        return _quintic(z[0], z[1], z[2], z[3], z[4], z[5], sy)
    if method == 4:
        ix = int(math.floor(x + 0.5))
        iy = int(math.floor(y + 0.5))
        ix = min(ix, nx - 1)
        iy = min(iy, ny - 1)
        dx = (x - np.float32(ix)) * sinscl
        dy = (y - np.float32(iy)) * sinscl
        if abs(dx) < 0.001 and abs(dy) < 0.001:
            return data[iy, ix]
        ac = np.empty(2 * NSINC + 1)
        ar = np.empty(2 * NSINC + 1)
        sumx = 0.0
        sumy = 0.0
        for k in range(2 * NSINC + 1):
            off = k - NSINC
            ax = dx - off
            ay = dy - off
            if ax == 0.0:
                px = 1.0
            elif dx == 0.0:
                px = 0.0
            else:
                px = taper[k] / ax
            if ay == 0.0:
                py = 1.0
            elif dy == 0.0:
                py = 0.0
            else:
                py = taper[k] / ay
            ac[k] = px
            ar[k] = py
            sumx += px
            sumy += py
        total = 0.0
        for kr in range(2 * NSINC + 1):
            if ar[kr] == 0.0:
                continue
            r = min(max(iy + kr - NSINC, 0), ny - 1)
            row = 0.0
            for kc in range(2 * NSINC + 1):
                if ac[kc] == 0.0:
                    continue
                c = min(max(ix + kc - NSINC, 0), nx - 1)
                row += ac[kc] * data[r, c]
            total += ar[kr] * row
        return total / sumx / sumy
    # Lanczos
    ixs = int(x) - nbox
    ixe = int(x) + nbox
    iys = int(y) - nbox
    iye = int(y) + nbox
    if ixs < 0 or ixe >= nx or iys < 0 or iye >= ny:
        return fillval
    total = 0.0
    for r in range(iys, iye + 1):
        luty = _lanczos(y - r, nbox)
        row = 0.0
        for c in range(ixs, ixe + 1):
            row += data[r, c] * _lanczos(x - c, nbox)
        total += row * luty
    return total


@njit(cache=True, inline="always", error_model="numpy")
def _poly5(data, x, y):
    # quintic interpolation: rows of 6 samples, then the column of the 6 row values
    ny, nx = data.shape
    ix = int(x)
    iy = int(y)
    sx = x - np.float32(ix)
    sy = y - np.float32(iy)
    if ix >= 2 and ix + 3 < nx and iy >= 2 and iy + 3 < ny:
        z0 = _quintic(data[iy - 2, ix - 2], data[iy - 2, ix - 1], data[iy - 2, ix], data[iy - 2, ix + 1],
                      data[iy - 2, ix + 2], data[iy - 2, ix + 3], sx)
        z1 = _quintic(data[iy - 1, ix - 2], data[iy - 1, ix - 1], data[iy - 1, ix], data[iy - 1, ix + 1],
                      data[iy - 1, ix + 2], data[iy - 1, ix + 3], sx)
        z2 = _quintic(data[iy, ix - 2], data[iy, ix - 1], data[iy, ix], data[iy, ix + 1],
                      data[iy, ix + 2], data[iy, ix + 3], sx)
        z3 = _quintic(data[iy + 1, ix - 2], data[iy + 1, ix - 1], data[iy + 1, ix], data[iy + 1, ix + 1],
                      data[iy + 1, ix + 2], data[iy + 1, ix + 3], sx)
        z4 = _quintic(data[iy + 2, ix - 2], data[iy + 2, ix - 1], data[iy + 2, ix], data[iy + 2, ix + 1],
                      data[iy + 2, ix + 2], data[iy + 2, ix + 3], sx)
        z5 = _quintic(data[iy + 3, ix - 2], data[iy + 3, ix - 1], data[iy + 3, ix], data[iy + 3, ix + 1],
                      data[iy + 3, ix + 2], data[iy + 3, ix + 3], sx)
        return _quintic(z0, z1, z2, z3, z4, z5, sy)
    z = np.empty(6, np.float32)
    for k in range(6):
        r = iy - 2 + k
        z[k] = _quintic(_get(data, r, ix - 2), _get(data, r, ix - 1), _get(data, r, ix),
                        _get(data, r, ix + 1), _get(data, r, ix + 2), _get(data, r, ix + 3), sx)
    return _quintic(z[0], z[1], z[2], z[3], z[4], z[5], sy)


@njit(cache=True, error_model="numpy")
def _lanczos_at(data, x, y, nbox, fillval):
    # separable Lanczos over the (2 nbox + 1)^2 nearest samples; fillval near the edges
    ny, nx = data.shape
    ixs = int(x) - nbox
    ixe = int(x) + nbox
    iys = int(y) - nbox
    iye = int(y) + nbox
    if ixs < 0 or ixe >= nx or iys < 0 or iye >= ny:
        return fillval
    wx = np.empty(2 * nbox + 1)
    for c in range(ixs, ixe + 1):
        wx[c - ixs] = _lanczos(x - c, nbox)
    total = 0.0
    for r in range(iys, iye + 1):
        luty = _lanczos(y - r, nbox)
        row = 0.0
        for c in range(ixs, ixe + 1):
            row += data[r, c] * wx[c - ixs]
        total += row * luty
    return total


@njit(cache=True, parallel=True, error_model="numpy")
def blot_kernel(method, data, pixmap, out, iscale, fillval, lut, nbox, taper, sinscl):
    """``out[j, i]`` = interpolation of ``data`` at ``pixmap[j, i]`` times ``iscale``, or ``fillval`` outside."""
    ny, nx = data.shape
    fnx = np.float32(nx)
    fny = np.float32(ny)
    for j in prange(out.shape[0]):
        for i in range(out.shape[1]):
            x = np.float32(pixmap[j, i, 0])
            y = np.float32(pixmap[j, i, 1])
            if x >= 0.0 and x < fnx and y >= 0.0 and y < fny:
                if method == 3:
                    v = _poly5(data, x, y)
                    out[j, i] = v * iscale
                elif method >= 5:
                    out[j, i] = _lanczos_at(data, x, y, nbox, fillval) * iscale
                else:
                    v = _interp(method, data, x, y, lut, nbox, taper, sinscl, fillval)
                    out[j, i] = v * iscale
            else:
                out[j, i] = fillval
