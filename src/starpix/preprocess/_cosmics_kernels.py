"""Numba kernels of the L.A.Cosmic cosmic-ray detector (``_cosmics``).

Every filter works in float32 and follows the boundary rules of the
reference implementation the detector reproduces: an n x n median filter
(separable or full) is not computed within n // 2 pixels of the edges, where
the input values are copied; dilations copy their border too; the
Laplacian of the 2x subsampled image treats pixels outside the image as zero.

The medians of 3, 5, 7 and 9 values are compare-exchange networks (pruned
odd-even merge networks); written as selects, they vectorize across a row.
"""

import numpy as np
from numba import njit, prange


@njit(inline="always", cache=True)
def _lo(a, b):
    return a if a < b else b


@njit(inline="always", cache=True)
def _hi(a, b):
    return b if a < b else a


@njit(inline="always", cache=True)
def _med3(a0, a1, a2):
    """Median of 3 values: a pruned odd-even merge network (3 compare-exchanges)."""
    a0, a1 = _lo(a0, a1), _hi(a0, a1)
    a0, a2 = _lo(a0, a2), _hi(a0, a2)
    a1, a2 = _lo(a1, a2), _hi(a1, a2)
    return a1


@njit(inline="always", cache=True)
def _med5(a0, a1, a2, a3, a4):
    """Median of 5 values: a pruned odd-even merge network (8 compare-exchanges)."""
    a0, a1 = _lo(a0, a1), _hi(a0, a1)
    a2, a3 = _lo(a2, a3), _hi(a2, a3)
    a0, a2 = _lo(a0, a2), _hi(a0, a2)
    a1, a3 = _lo(a1, a3), _hi(a1, a3)
    a1, a2 = _lo(a1, a2), _hi(a1, a2)
    a0, a4 = _lo(a0, a4), _hi(a0, a4)
    a2, a4 = _lo(a2, a4), _hi(a2, a4)
    a1, a2 = _lo(a1, a2), _hi(a1, a2)
    return a2


@njit(inline="always", cache=True)
def _med7(a0, a1, a2, a3, a4, a5, a6):
    """Median of 7 values: a pruned odd-even merge network (14 compare-exchanges)."""
    a0, a1 = _lo(a0, a1), _hi(a0, a1)
    a2, a3 = _lo(a2, a3), _hi(a2, a3)
    a4, a5 = _lo(a4, a5), _hi(a4, a5)
    a0, a2 = _lo(a0, a2), _hi(a0, a2)
    a1, a3 = _lo(a1, a3), _hi(a1, a3)
    a4, a6 = _lo(a4, a6), _hi(a4, a6)
    a1, a2 = _lo(a1, a2), _hi(a1, a2)
    a5, a6 = _lo(a5, a6), _hi(a5, a6)
    a0, a4 = _lo(a0, a4), _hi(a0, a4)
    a1, a5 = _lo(a1, a5), _hi(a1, a5)
    a2, a6 = _lo(a2, a6), _hi(a2, a6)
    a2, a4 = _lo(a2, a4), _hi(a2, a4)
    a3, a5 = _lo(a3, a5), _hi(a3, a5)
    a3, a4 = _lo(a3, a4), _hi(a3, a4)
    return a3


@njit(inline="always", cache=True)
def _med9(a0, a1, a2, a3, a4, a5, a6, a7, a8):
    """Median of 9 values: a pruned odd-even merge network (24 compare-exchanges)."""
    a0, a1 = _lo(a0, a1), _hi(a0, a1)
    a2, a3 = _lo(a2, a3), _hi(a2, a3)
    a4, a5 = _lo(a4, a5), _hi(a4, a5)
    a6, a7 = _lo(a6, a7), _hi(a6, a7)
    a0, a2 = _lo(a0, a2), _hi(a0, a2)
    a1, a3 = _lo(a1, a3), _hi(a1, a3)
    a4, a6 = _lo(a4, a6), _hi(a4, a6)
    a5, a7 = _lo(a5, a7), _hi(a5, a7)
    a1, a2 = _lo(a1, a2), _hi(a1, a2)
    a5, a6 = _lo(a5, a6), _hi(a5, a6)
    a0, a4 = _lo(a0, a4), _hi(a0, a4)
    a1, a5 = _lo(a1, a5), _hi(a1, a5)
    a2, a6 = _lo(a2, a6), _hi(a2, a6)
    a3, a7 = _lo(a3, a7), _hi(a3, a7)
    a2, a4 = _lo(a2, a4), _hi(a2, a4)
    a3, a5 = _lo(a3, a5), _hi(a3, a5)
    a1, a2 = _lo(a1, a2), _hi(a1, a2)
    a3, a4 = _lo(a3, a4), _hi(a3, a4)
    a5, a6 = _lo(a5, a6), _hi(a5, a6)
    a0, a8 = _lo(a0, a8), _hi(a0, a8)
    a4, a8 = _lo(a4, a8), _hi(a4, a8)
    a2, a4 = _lo(a2, a4), _hi(a2, a4)
    a3, a5 = _lo(a3, a5), _hi(a3, a5)
    a3, a4 = _lo(a3, a4), _hi(a3, a4)
    return a4


@njit(parallel=True, cache=True)
def _rowmed(data, rows, size):
    """Medians of ``size`` (3, 5, 7 or 9) consecutive values along each row; the border is copied."""
    ny, nx = data.shape
    h = size // 2
    for j in prange(ny):
        for i in range(h):
            rows[j, i] = data[j, i]
            rows[j, nx - 1 - i] = data[j, nx - 1 - i]
        if size == 3:  # one loop per network: each vectorizes as the per-size kernels did
            for i in range(1, nx - 1):
                rows[j, i] = _med3(data[j, i - 1], data[j, i], data[j, i + 1])
        elif size == 5:
            for i in range(2, nx - 2):
                rows[j, i] = _med5(data[j, i - 2], data[j, i - 1], data[j, i], data[j, i + 1], data[j, i + 2])
        elif size == 7:
            for i in range(3, nx - 3):
                rows[j, i] = _med7(data[j, i - 3], data[j, i - 2], data[j, i - 1], data[j, i], data[j, i + 1],
                                   data[j, i + 2], data[j, i + 3])
        else:
            for i in range(4, nx - 4):
                rows[j, i] = _med9(data[j, i - 4], data[j, i - 3], data[j, i - 2], data[j, i - 1], data[j, i],
                                   data[j, i + 1], data[j, i + 2], data[j, i + 3], data[j, i + 4])


@njit(parallel=True, cache=True)
def _colmed(data, rows, out, size):
    """Medians of ``size`` (3, 5, 7 or 9) consecutive row medians along each column; the border is copied."""
    ny, nx = data.shape
    h = size // 2
    for j in prange(ny):
        if j < h or j >= ny - h:
            for i in range(nx):
                out[j, i] = data[j, i]
            continue
        for i in range(h):
            out[j, i] = data[j, i]
            out[j, nx - 1 - i] = data[j, nx - 1 - i]
        if size == 3:
            for i in range(1, nx - 1):
                out[j, i] = _med3(rows[j - 1, i], rows[j, i], rows[j + 1, i])
        elif size == 5:
            for i in range(2, nx - 2):
                out[j, i] = _med5(rows[j - 2, i], rows[j - 1, i], rows[j, i], rows[j + 1, i], rows[j + 2, i])
        elif size == 7:
            for i in range(3, nx - 3):
                out[j, i] = _med7(rows[j - 3, i], rows[j - 2, i], rows[j - 1, i], rows[j, i], rows[j + 1, i],
                                  rows[j + 2, i], rows[j + 3, i])
        else:
            for i in range(4, nx - 4):
                out[j, i] = _med9(rows[j - 4, i], rows[j - 3, i], rows[j - 2, i], rows[j - 1, i], rows[j, i],
                                  rows[j + 1, i], rows[j + 2, i], rows[j + 3, i], rows[j + 4, i])


def separable_median(data, size, out=None, rows=None):
    """Separable (rows, then columns) ``size`` x ``size`` median filter of a float32 image.

    ``size`` is 3, 5, 7 or 9.  ``out`` (not ``data``) and ``rows`` (scratch) are allocated when not given.
    """
    if size not in (3, 5, 7, 9):
        raise KeyError(size)
    rows = np.empty_like(data) if rows is None else rows
    out = np.empty_like(data) if out is None else out
    _rowmed(data, rows, size)
    _colmed(data, rows, out, size)
    return out


@njit(parallel=True, cache=True)
def _medfilt3(data, out):
    ny, nx = data.shape
    for j in prange(ny):
        if j < 1 or j >= ny - 1:
            for i in range(nx):
                out[j, i] = data[j, i]
            continue
        out[j, 0] = data[j, 0]
        out[j, nx - 1] = data[j, nx - 1]
        for i in range(1, nx - 1):
            out[j, i] = _med9(data[j - 1, i - 1], data[j - 1, i], data[j - 1, i + 1],
                              data[j, i - 1], data[j, i], data[j, i + 1],
                              data[j + 1, i - 1], data[j + 1, i], data[j + 1, i + 1])


@njit(inline="always", cache=True)
def _select(buf, n, k):
    """The k-th smallest of buf[:n] (reorders buf): Wirth's selection."""
    lo = 0
    hi = n - 1
    while lo < hi:
        pivot = buf[k]
        a = lo
        b = hi
        while True:
            while buf[a] < pivot:
                a += 1
            while pivot < buf[b]:
                b -= 1
            if a <= b:
                t = buf[a]
                buf[a] = buf[b]
                buf[b] = t
                a += 1
                b -= 1
            if a > b:
                break
        if b < k:
            lo = a
        if k < a:
            hi = b
    return buf[k]


@njit(parallel=True, cache=True)
def _medfilt_full(data, out, half):
    ny, nx = data.shape
    width = 2 * half + 1
    for j in prange(ny):
        if j < half or j >= ny - half:
            for i in range(nx):
                out[j, i] = data[j, i]
            continue
        buf = np.empty(width * width, dtype=data.dtype)
        for i in range(half):
            out[j, i] = data[j, i]
            out[j, nx - 1 - i] = data[j, nx - 1 - i]
        for i in range(half, nx - half):
            n = 0
            for dy in range(-half, half + 1):
                for dx in range(-half, half + 1):
                    buf[n] = data[j + dy, i + dx]
                    n += 1
            out[j, i] = _select(buf, n, n // 2)


def full_median(data, size):
    """Full ``size`` x ``size`` median filter (3, 5 or 7) of a float32 image."""
    out = np.empty_like(data)
    if size == 3:
        _medfilt3(data, out)
    else:
        _medfilt_full(data, out, size // 2)
    return out


@njit(inline="always", cache=True)
def _lap(v, right, left, down, up):
    zero = np.float32(0.0)
    p = np.float32(4.0) * v
    p = p - right
    p = p - left
    p = p - down
    p = p - up
    return p if p > zero else zero


@njit(inline="always", cache=True)
def _lap_top(v, right, left, down):
    # the reference evaluates the top edge row in double precision, rounded once
    p = np.float32(4.0 * np.float64(v) - np.float64(right) - np.float64(left) - np.float64(down))
    return p if p > np.float32(0.0) else np.float32(0.0)


@njit(parallel=True, cache=True)
def laplacian_rebin(data, noise, out):
    """Laplacian of the 2x subsampled image, clipped at 0, block-averaged back, over 2 * noise.

    Subsampling replicates each pixel into 2x2; the 4 sub-pixels of a block
    see the block's own value on two sides and a neighbour block on the
    other two (zero outside the image).
    """
    ny, nx = data.shape
    zero = np.float32(0.0)
    for j in prange(ny):
        for i in range(nx):
            v = data[j, i]
            up = data[j - 1, i] if j > 0 else zero
            down = data[j + 1, i] if j < ny - 1 else zero
            left = data[j, i - 1] if i > 0 else zero
            right = data[j, i + 1] if i < nx - 1 else zero
            if j > 0:
                tl = _lap(v, v, left, v, up)
                tr = _lap(v, right, v, v, up)
            else:
                tl = _lap_top(v, v, left, v)
                tr = _lap_top(v, right, v, v)
            bl = _lap(v, v, left, down, v)
            br = _lap(v, right, v, down, v)
            p = tl + bl
            p = p + br
            p = p + tr
            p = p / np.float32(4.0)
            out[j, i] = p / (np.float32(2.0) * noise[j, i])


@njit(parallel=True, cache=True)
def noise_from_variance(m5, out):
    """sqrt of the median-filtered variance, floored at 1e-5."""
    floor = np.float32(0.00001)
    ny, nx = m5.shape
    for j in prange(ny):
        for i in range(nx):
            v = m5[j, i]
            out[j, i] = np.sqrt(v if v >= floor else floor)


@njit(parallel=True, cache=True)
def candidates(s, s_med, fine, fine_med, noise, good, sigclip, objlim, sp, cand):
    """Laplacian-to-noise minus its median (sp), and the first cosmic-ray candidates."""
    ny, nx = s.shape
    floor = np.float32(0.01)
    for j in prange(ny):
        for i in range(nx):
            value = s[j, i] - s_med[j, i]
            sp[j, i] = value
            f = (fine[j, i] - fine_med[j, i]) / noise[j, i]
            if f < floor:
                f = floor
            cand[j, i] = 1 if (value > sigclip and good[j, i] and value / f > objlim) else 0


@njit(inline="always", cache=True)
def _any3(mask, j, i):
    return (mask[j - 1, i - 1] | mask[j - 1, i] | mask[j - 1, i + 1] | mask[j, i - 1] | mask[j, i]
            | mask[j, i + 1] | mask[j + 1, i - 1] | mask[j + 1, i] | mask[j + 1, i + 1])


@njit(parallel=True, cache=True)
def dilate3(mask, out):
    """3x3 binary dilation; the 1-pixel border is copied from the input."""
    ny, nx = mask.shape
    for j in prange(ny):
        if j == 0 or j == ny - 1:
            for i in range(nx):
                out[j, i] = mask[j, i]
            continue
        out[j, 0] = mask[j, 0]
        out[j, nx - 1] = mask[j, nx - 1]
        for i in range(1, nx - 1):
            out[j, i] = _any3(mask, j, i)


@njit(parallel=True, cache=True)
def dilate5(mask, out):
    """Dilation by a 5x5 square without its corners; the 2-pixel border is copied."""
    ny, nx = mask.shape
    for j in prange(ny):
        if j < 2 or j >= ny - 2:
            for i in range(nx):
                out[j, i] = mask[j, i]
            continue
        for i in range(2):
            out[j, i] = mask[j, i]
            out[j, nx - 1 - i] = mask[j, nx - 1 - i]
        for i in range(2, nx - 2):
            p = _any3(mask, j, i)
            p |= mask[j, i - 2] | mask[j, i + 2] | mask[j - 2, i] | mask[j + 2, i]
            p |= mask[j - 1, i - 2] | mask[j + 1, i - 2] | mask[j - 1, i + 2] | mask[j + 1, i + 2]
            p |= mask[j - 2, i - 1] | mask[j - 2, i + 1] | mask[j + 2, i - 1] | mask[j + 2, i + 1]
            out[j, i] = p


@njit(parallel=True, cache=True)
def grow(cand, sp, good, sigclip, sigcliplow, work, out):
    """Grow candidates: neighbours above ``sigclip``, then their neighbours above ``sigcliplow``.

    Returns the number of pixels flagged.
    """
    ny, nx = cand.shape
    dilate3(cand, work)
    for j in prange(ny):
        for i in range(nx):
            work[j, i] = 1 if (work[j, i] and good[j, i] and sp[j, i] > sigclip) else 0
    dilate3(work, out)
    total = 0
    for j in prange(ny):
        count = 0
        for i in range(nx):
            flag = 1 if (out[j, i] and good[j, i] and sp[j, i] > sigcliplow) else 0
            out[j, i] = flag
            count += flag
        total += count
    return total


@njit(parallel=True, cache=True)
def clean_masked(data, crmask, mask, kind, weights, fill):
    """Replace the cosmic-ray pixels at least 2 pixels from the edges from their 5x5 neighbourhood.

    kind 0: mean of the neighbours that are neither cosmic rays nor masked;
    1: their median (the lower of the two middle values for an even count);
    2: their inverse-distance weighted mean (``weights``).  ``fill`` replaces
    a pixel without such neighbours.  Only cosmic-ray pixels are written and
    they are never read, so the result does not depend on the order.
    """
    ny, nx = data.shape
    for j in prange(2, ny - 2):
        buf = np.empty(25, dtype=data.dtype)
        for i in range(2, nx - 2):
            if not crmask[j, i]:
                continue
            n = 0
            total = np.float32(0.0)
            wsum = np.float32(0.0)
            for dy in range(-2, 3):
                for dx in range(-2, 3):
                    if crmask[j + dy, i + dx] or mask[j + dy, i + dx]:
                        continue
                    value = data[j + dy, i + dx]
                    if kind == 0:
                        total = total + value
                    elif kind == 2:
                        w = weights[dy + 2, dx + 2]
                        total = total + w * value
                        wsum = wsum + w
                    else:
                        buf[n] = value
                    n += 1
            if kind == 0:
                data[j, i] = fill if n == 0 else total / np.float32(n)
            elif kind == 2:
                data[j, i] = fill if wsum < np.float32(1e-6) else total / wsum
            else:
                data[j, i] = fill if n == 0 else _select(buf, n, (n - 1) // 2)


@njit(parallel=True, cache=True)
def clean_median(source, crmask, out):
    """Replace cosmic-ray pixels (2 pixels from the edges) by the unmasked 5x5 median of ``source``."""
    ny, nx = source.shape
    for j in prange(2, ny - 2):
        buf = np.empty(25, dtype=source.dtype)
        for i in range(2, nx - 2):
            if not crmask[j, i]:
                continue
            n = 0
            for dy in range(-2, 3):
                for dx in range(-2, 3):
                    buf[n] = source[j + dy, i + dx]
                    n += 1
            out[j, i] = _select(buf, 25, 12)


@njit(parallel=True, cache=True)
def convolve(data, kernel, out):
    """2-D convolution with zero padding outside the image (float32 sums)."""
    ny, nx = data.shape
    ky, kx = kernel.shape
    by = (ky - 1) // 2
    bx = (kx - 1) // 2
    for j in prange(ny):
        for i in range(nx):
            total = np.float32(0.0)
            for dy in range(-by, by + 1):
                y = j + dy
                for dx in range(-bx, bx + 1):
                    x = i + dx
                    if 0 <= y < ny and 0 <= x < nx:
                        total = total + kernel[by - dy, bx - dx] * data[y, x]
            out[j, i] = total


@njit(inline="always", cache=True)
def _profile(dx, dy, model, inv2s2, alpha2, beta):
    """Peak-normalized PSF profile: 0 Gaussian, 1 Gaussian along x, 2 along y, 3 Moffat."""
    if model == 0:
        return np.exp(-(dx * dx + dy * dy) * inv2s2)
    if model == 1:
        return np.exp(-dx * dx * inv2s2)
    if model == 2:
        return np.exp(-dy * dy * inv2s2)
    return (1.0 + (dx * dx + dy * dy) / alpha2) ** (-beta)


@njit(inline="always", cache=True)
def _fit_amplitude(rx, ry, re, rw, nr, cx, cy, model, inv2s2, alpha2, beta):
    """Weighted least-squares amplitude of the profile centred on (cx, cy), its sum of w p**2, and the chi-square
    (less its constant term)."""
    spp = 0.0
    sep = 0.0
    for k in range(nr):
        p = _profile(rx[k] - cx, ry[k] - cy, model, inv2s2, alpha2, beta)
        spp += rw[k] * p * p
        sep += rw[k] * re[k] * p
    if spp <= 0.0:
        return 0.0, 0.0, np.inf
    amp = sep / spp
    return amp, spp, -amp * sep


@njit(cache=True)
def _search(rx, ry, re, rw, nr, y0, y1, x0, x1, model, inv2s2, alpha2, beta, scales):
    """Best (amplitude, sum w p**2, chi-square, x, y, scale index) of a positive profile over a grid of centres
    in the box [y0 - 0.5, y1 - 0.5] x [x0 - 0.5, x1 - 0.5] (steps of 0.25, then 0.05) and of widths."""
    best = (0.0, 0.0, np.inf, 0.0, 0.0, -1)
    for w in range(scales.size):
        s2 = scales[w] * scales[w]
        i2, a2 = inv2s2 / s2, alpha2 * s2
        bw = (0.0, 0.0, np.inf, 0.0, 0.0, w)
        for a in range(4 * (y1 - y0) + 1):
            cy = y0 - 0.5 + 0.25 * a
            for b in range(4 * (x1 - x0) + 1):
                cx = x0 - 0.5 + 0.25 * b
                amp, spp, chi = _fit_amplitude(rx, ry, re, rw, nr, cx, cy, model, i2, a2, beta)
                if amp > 0.0 and chi < bw[2]:
                    bw = (amp, spp, chi, cx, cy, w)
        if bw[2] == np.inf:
            continue
        gx, gy = bw[3], bw[4]
        for a in range(-5, 6):
            cy = gy + 0.05 * a
            for b in range(-5, 6):
                cx = gx + 0.05 * b
                amp, spp, chi = _fit_amplitude(rx, ry, re, rw, nr, cx, cy, model, i2, a2, beta)
                if amp > 0.0 and chi < bw[2]:
                    bw = (amp, spp, chi, cx, cy, w)
        if bw[2] < best[2]:
            best = bw
    return best


@njit(parallel=True, cache=True)
def star_guard(data, gain, crmask, mask, labels, boxes, invar, use_invar, rn2, model, inv2s2, alpha2, beta,
               scales, margin, bg_margin, tol, thresh, min_snr, max_chi2, max_area, status):
    """Test each flagged group (``labels == g + 1``, bounding box ``boxes[g]``) against a star core.

    The local background is the lower median of the unflagged, unmasked pixels
    on the perimeter of the group's box grown by ``bg_margin``.  A profile
    (``model``, widths ``scales`` times the PSF's, never sharper) is fitted by
    weighted least squares to the background-subtracted ring (the box grown
    by ``margin``, less flagged and masked pixels), its centre searched on a
    grid within the group's box; ring pixels more than 5 sigmas above the fit
    (neighbouring sources) are left out and the fit repeated.  The group is a
    star core (``status[g] = 0``) when the ring holds a significant source
    (amplitude above ``min_snr`` sigmas), the fit is good (reduced chi-square
    below ``max_chi2``, a quarter of the ring at most left out) and no pixel
    of the group exceeds the prediction by more than ``thresh`` sigmas (noise,
    amplitude and background errors, and ``tol`` times the predicted source
    flux).  Otherwise ``status[g]`` says which test kept the group flagged:
    1 too large, 2 no background, 3 no significant flux around it, 4 no fit,
    5 faint fit, 6 poor fit, 7 a pixel stands out, 8 (no flux around) poor fit of
    the group and its ring together.  ``data`` is in ADU,
    times ``gain`` in electrons.
    """
    ny, nx = data.shape
    for g in prange(boxes.shape[0]):
        y0, y1, x0, x1 = boxes[g, 0], boxes[g, 1], boxes[g, 2], boxes[g, 3]
        if (y1 - y0) * (x1 - x0) > max_area:
            status[g] = 1
            continue
        label = g + 1
        # local background
        by0, by1, bx0, bx1 = y0 - bg_margin, y1 - 1 + bg_margin, x0 - bg_margin, x1 - 1 + bg_margin
        buf = np.empty(2 * (by1 - by0 + 1) + 2 * (bx1 - bx0 + 1), dtype=np.float64)
        nb = 0
        for yy in range(by0, by1 + 1):
            step = 1 if (yy == by0 or yy == by1) else bx1 - bx0
            for xx in range(bx0, bx1 + 1, step):
                if 0 <= yy < ny and 0 <= xx < nx and not crmask[yy, xx] and not mask[yy, xx]:
                    buf[nb] = data[yy, xx] * gain
                    nb += 1
        if nb < 8:
            status[g] = 2
            continue
        back = _select(buf, nb, (nb - 1) // 2)
        # ring pixels
        ry0, ry1 = max(0, y0 - margin), min(ny, y1 + margin)
        rx0, rx1 = max(0, x0 - margin), min(nx, x1 + margin)
        size = (ry1 - ry0) * (rx1 - rx0)
        rx = np.empty(size)
        ry = np.empty(size)
        re = np.empty(size)
        rw = np.empty(size)
        rv = np.empty(size)
        nr = 0
        sum_e = 0.0
        sum_v = 0.0
        for yy in range(ry0, ry1):
            for xx in range(rx0, rx1):
                if crmask[yy, xx] or mask[yy, xx]:
                    continue
                value = data[yy, xx] * gain
                if use_invar:
                    var = invar[yy, xx] * gain * gain
                else:
                    var = (value if value > 0.0 else 0.0) + rn2
                if not var > 0.0:
                    var = rn2 if rn2 > 0.0 else 1.0
                rx[nr] = xx
                ry[nr] = yy
                re[nr] = value - back
                rv[nr] = var
                rw[nr] = 1.0 / var
                sum_e += value - back
                sum_v += var
                nr += 1
        if nr < 6:
            status[g] = 3
            continue
        if sum_e < min_snr * np.sqrt(sum_v):
            # no flux around the group: the whole source may be flagged (sharp PSF); fit the group and
            # its ring together and ask for a good fit everywhere
            ng = 0
            for yy in range(y0, y1):
                for xx in range(x0, x1):
                    if labels[yy, xx] != label:
                        continue
                    value = data[yy, xx] * gain
                    if use_invar:
                        var = invar[yy, xx] * gain * gain
                    else:
                        var = (value if value > 0.0 else 0.0) + rn2
                    if not var > 0.0:
                        var = rn2 if rn2 > 0.0 else 1.0
                    k = nr + ng
                    rx[k], ry[k], re[k], rv[k], rw[k] = xx, yy, value - back, var, 1.0 / var
                    ng += 1
            n = nr + ng
            fit = _search(rx, ry, re, rw, n, y0, y1, x0, x1, model, inv2s2, alpha2, beta, scales)
            if fit[5] < 0:
                status[g] = 4
                continue
            amp, spp, cx, cy = fit[0], fit[1], fit[3], fit[4]
            if amp * np.sqrt(spp) < min_snr:
                status[g] = 5
                continue
            s2 = scales[fit[5]] * scales[fit[5]]
            i2, a2 = inv2s2 / s2, alpha2 * s2
            var_back = 1.5708 * (sum_v / nr) / nb
            chi_all = 0.0
            chi_group = 0.0
            worst = 0.0
            for k in range(n):
                p = _profile(rx[k] - cx, ry[k] - cy, model, i2, a2, beta)
                m = amp * p
                if use_invar or k < nr:
                    var = rv[k]
                else:
                    var = (back + m if back + m > 0.0 else 0.0) + rn2
                z2 = (re[k] - m) ** 2 / (var + (tol * m) ** 2 + var_back)
                chi_all += z2
                if k >= nr:
                    chi_group += z2
                    if re[k] > m and z2 > worst:
                        worst = z2
            if (chi_all > n + 4.0 * np.sqrt(2.0 * n) or chi_group > ng + 4.0 * np.sqrt(2.0 * ng)
                    or worst > thresh * thresh):
                status[g] = 8
                continue
            status[g] = 0
            continue
        n_all = nr
        fit = _search(rx, ry, re, rw, nr, y0, y1, x0, x1, model, inv2s2, alpha2, beta, scales)
        if fit[5] < 0:
            status[g] = 4
            continue
        # leave out the ring pixels well above the fit (neighbouring sources) and fit again
        s2 = scales[fit[5]] * scales[fit[5]]
        kept = 0
        for k in range(nr):
            m = fit[0] * _profile(rx[k] - fit[3], ry[k] - fit[4], model, inv2s2 / s2, alpha2 * s2, beta)
            if re[k] - m > 5.0 * np.sqrt(rv[k] + (tol * m) ** 2):
                continue
            rx[kept], ry[kept], re[kept], rw[kept], rv[kept] = rx[k], ry[k], re[k], rw[k], rv[k]
            kept += 1
        if kept < nr:
            if 4 * (n_all - kept) > n_all or kept < 6:
                status[g] = 6
                continue
            nr = kept
            fit = _search(rx, ry, re, rw, nr, y0, y1, x0, x1, model, inv2s2, alpha2, beta, scales)
            if fit[5] < 0:
                status[g] = 4
                continue
        amp, spp, cx, cy = fit[0], fit[1], fit[3], fit[4]
        s2 = scales[fit[5]] * scales[fit[5]]
        i2, a2 = inv2s2 / s2, alpha2 * s2
        if amp * np.sqrt(spp) < min_snr:
            status[g] = 5
            continue
        var_amp = 1.0 / spp
        chi2 = 0.0
        for k in range(nr):
            m = amp * _profile(rx[k] - cx, ry[k] - cy, model, i2, a2, beta)
            resid = re[k] - m
            chi2 += resid * resid / (rv[k] + (tol * m) ** 2)
        if chi2 > max_chi2 * (nr - 4):
            status[g] = 6
            continue
        var_back = 1.5708 * (sum_v / n_all) / nb
        # no pixel of the group may stand out of the prediction
        star = True
        for yy in range(y0, y1):
            for xx in range(x0, x1):
                if labels[yy, xx] != label:
                    continue
                p = _profile(xx - cx, yy - cy, model, i2, a2, beta)
                predicted = back + amp * p
                if use_invar:
                    var = invar[yy, xx] * gain * gain
                else:
                    var = (predicted if predicted > 0.0 else 0.0) + rn2
                var += p * p * var_amp + (tol * amp * p) ** 2 + var_back
                if data[yy, xx] * gain - predicted > thresh * np.sqrt(var):
                    star = False
                    break
            if not star:
                break
        status[g] = 0 if star else 7
