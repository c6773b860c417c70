"""Numba kernels of the AstroDrizzle steps: per-pixel combination of an image stack.

The combination follows IRAF ``imcombine``'s minimal form that AstroDrizzle's
median step uses: for each pixel, sort the unmasked values, drop ``nlow`` lowest
and ``nhigh`` highest, then take the median (mean of the two middle values for an
even count) or the mean of the rest.  When ``nlow + nhigh`` would drop every
unmasked value, both are decreased by one (each while positive) until a value is
left (median only); when nothing is unmasked the result is 0, or, with ``fill``
(``imedian`` / ``imean``), the first non-zero value of the stack in input order
is used as the only value.  Rows are shared among threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["COMBINE_KINDS", "combine_kernel"]

COMBINE_KINDS = {"median": 0, "mean": 1}


@njit(cache=True, inline="always")
def _median_of(buf, good, nlow, nhigh):
    npx = good - nlow - nhigh
    if npx <= 0 and good > 0:
        while nlow + nhigh >= good:
            if nhigh > 0:
                nhigh -= 1
            if nlow > 0:
                nlow -= 1
        npx = good - nlow - nhigh
    if npx <= 0:
        return 0.0
    mid = npx // 2
    if npx % 2 == 1:
        return buf[mid + nlow]
    return 0.5 * (buf[mid + nlow] + buf[mid + nlow - 1])


@njit(cache=True, inline="always")
def _mean_of(buf, good, n, nlow, nhigh):
    npx = good - nlow - nhigh
    if npx <= 0:
        # numcombine returns the last slot of its (zero-padded) sorted buffer:
        # the largest value when every input was used, else 0
        if good == n and n > 0:
            return buf[n - 1]
        return 0.0
    s = 0.0
    for i in range(nlow, nlow + npx):
        s += buf[i]
    return s / npx


@njit(cache=True, parallel=True)
def combine_kernel(stack, bad, use_mask, kind, nlow, nhigh, fill, out):
    """Combine ``stack`` (n, ny, nx) into ``out`` (ny, nx); ``bad`` (n, ny, nx) uint8, 1 = masked."""
    n, ny, nx = stack.shape
    for y in prange(ny):
        buf = np.empty(n, np.float64)
        for x in range(nx):
            good = 0
            for k in range(n):
                if use_mask and bad[k, y, x] != 0:
                    continue
                v = np.float64(stack[k, y, x])
                # insertion sort into buf[0:good]
                j = good
                while j > 0 and buf[j - 1] > v:
                    buf[j] = buf[j - 1]
                    j -= 1
                buf[j] = v
                good += 1
            if good == 0 and fill:
                for k in range(n):
                    if stack[k, y, x] != 0:
                        buf[0] = stack[k, y, x]
                        good = 1
                        break
            for k in range(good, n):
                buf[k] = 0.0
            if kind == 0:
                out[y, x] = _median_of(buf, good, nlow, nhigh)
            else:
                out[y, x] = _mean_of(buf, good, n, nlow, nhigh)


@njit(cache=True)
def clip_moments(v, lo, hi):
    """Count, sum, sum of squares, min and max of the values of ``v`` in ``[lo, hi]`` (one pass)."""
    n = 0
    s = 0.0
    s2 = 0.0
    vmin = np.inf
    vmax = -np.inf
    for i in range(v.size):
        x = v[i]
        if x >= lo and x <= hi:
            n += 1
            xd = np.float64(x)
            s += xd
            s2 += xd * xd
            if xd < vmin:
                vmin = xd
            if xd > vmax:
                vmax = xd
    return n, s, s2, vmin, vmax


@njit(cache=True)
def histogram(v, vmin, dz, nbins):
    """Counts of ``v`` in ``nbins`` bins of width ``dz`` from ``vmin`` (values past the end are dropped)."""
    hist = np.zeros(nbins, np.int64)
    top = vmin + nbins * dz
    for i in range(v.size):
        x = np.float64(v[i])
        if x >= vmin and x < top:
            k = int((x - vmin) / dz)
            if k < 0:
                k = 0
            elif k >= nbins:
                k = nbins - 1
            hist[k] += 1
    return hist
