"""Numba kernels of :mod:`starpix.stats`: sigma clipping of many rows at once.

Each row comes sorted (numpy's sort, NaN last); a clipping pass then keeps a contiguous window of the
sorted values (every value between two bounds), so an iteration is a median
read-off, one pass for the mean and standard deviation, and two binary
searches.  Rows are independent and run in parallel.
"""

import numpy as np
from numba import njit, prange

MAD_TO_STD = 1.482602218505602


@njit(cache=True, nogil=True)
def _median_sorted(values, lo, hi):
    n = hi - lo
    mid = lo + n // 2
    if n % 2 == 1:
        return values[mid]
    return 0.5 * (values[mid - 1] + values[mid])


@njit(cache=True, nogil=True)
def _mean(values, lo, hi):
    # summed as offsets from a middle value: exact for constant data and
    # free of the cancellation of a large common level
    ref = values[(lo + hi) // 2]
    total = 0.0
    for i in range(lo, hi):
        total += values[i] - ref
    return ref + total / (hi - lo)


@njit(cache=True, nogil=True)
def _sum_sq(values, lo, hi, center):
    total = 0.0
    for i in range(lo, hi):
        d = values[i] - center
        total += d * d
    return total


@njit(cache=True, nogil=True)
def _mad_std_sorted(values, lo, hi, median, work):
    n = hi - lo
    for i in range(n):
        work[i] = abs(values[lo + i] - median)
    return np.median(work[:n]) * MAD_TO_STD


@njit(cache=True, nogil=True)
def _search_left(values, lo, hi, x):
    # first index in [lo, hi) with values[i] >= x
    while lo < hi:
        mid = (lo + hi) // 2
        if values[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True)
def _search_right(values, lo, hi, x):
    # first index in [lo, hi) with values[i] > x
    while lo < hi:
        mid = (lo + hi) // 2
        if values[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True)
def _clip_row(values, n, use_median, use_mad_std, maxiters, sigma_lower, sigma_upper, cumulative, work):
    """Clip the sorted finite ``values[:n]``; returns (start, stop, lower, upper)."""
    lo = 0
    hi = n
    lower = np.nan
    upper = np.nan
    iteration = 0
    while hi > lo and (maxiters < 0 or iteration < maxiters):
        iteration += 1
        median = _median_sorted(values, lo, hi)
        mean = _mean(values, lo, hi)
        center = median if use_median else mean
        if use_mad_std:
            std = _mad_std_sorted(values, lo, hi, median, work)
        else:
            std = np.sqrt(_sum_sq(values, lo, hi, mean) / (hi - lo))
        lower = center - sigma_lower * std
        upper = center + sigma_upper * std
        if not (lower <= upper):  # NaN bounds keep nothing
            lo = hi
            break
        new_lo = _search_left(values, lo, hi, lower)
        new_hi = _search_right(values, new_lo, hi, upper)
        changed = new_lo != lo or new_hi != hi
        lo = new_lo
        hi = new_hi
        if not changed:
            break
    if not cumulative and iteration > 0 and lower <= upper:
        # the final bounds applied to every valid value (astropy with an axis)
        lo = _search_left(values, 0, n, lower)
        hi = _search_right(values, lo, n, upper)
    return lo, hi, lower, upper


@njit(cache=True, nogil=True, parallel=True)
def clip_rows(data, use_median, use_mad_std, maxiters, sigma_lower, sigma_upper, cumulative, ddof, final_mad):
    """Sigma-clip every row of a 2-D float64 array, each row sorted with its invalid values (NaN) last.

    Returns per row: mean, median, std (with ``ddof``), the number of values
    kept, the lower and upper clipping bounds (NaN when never computed), and,
    when ``final_mad`` is true, the MAD standard deviation of the kept values
    (NaN otherwise).
    """
    nrows, ncols = data.shape
    mean = np.full(nrows, np.nan)
    median = np.full(nrows, np.nan)
    std = np.full(nrows, np.nan)
    count = np.zeros(nrows, np.int64)
    lower = np.full(nrows, np.nan)
    upper = np.full(nrows, np.nan)
    mad = np.full(nrows, np.nan)
    for r in prange(nrows):
        values = data[r]
        n = ncols
        while n > 0 and not np.isfinite(values[n - 1]):
            n -= 1
        work = np.empty(n)
        lo, hi, lower[r], upper[r] = _clip_row(values, n, use_median, use_mad_std, maxiters,
                                               sigma_lower, sigma_upper, cumulative, work)
        kept = hi - lo
        count[r] = kept
        if kept > 0:
            m = _mean(values, lo, hi)
            mean[r] = m
            median[r] = _median_sorted(values, lo, hi)
            if kept - ddof > 0:
                std[r] = np.sqrt(_sum_sq(values, lo, hi, m) / (kept - ddof))
            if final_mad:
                mad[r] = _mad_std_sorted(values, lo, hi, median[r], work)
    return mean, median, std, count, lower, upper, mad


@njit(cache=True, nogil=True)
def _gnu_median(values, lo, hi, in_float32):
    # Gnuastro's median of a sorted range: the mean of the middle two values
    # for an even count, computed in the data's own type
    n = hi - lo
    mid = lo + n // 2
    if n % 2 == 1:
        return values[mid]
    if in_float32:
        return np.float64((np.float32(values[mid - 1]) + np.float32(values[mid])) / np.float32(2.0))
    return (values[mid - 1] + values[mid]) / 2.0


@njit(cache=True, nogil=True)
def _gnu_clip_row(values, n, multip, param, in_float32, out):
    """Gnuastro's sigma clipping of one sorted row (NaN last, ``n`` finite values).

    Writes (number, median, mean, std) into ``out``; see :func:`starpix.stats.gnuastro_sigma_clip`.
    """
    if n == 0:
        out[:] = np.nan
        return
    by_tolerance = param < 1.0
    maxnum = 50 if by_tolerance else int(param)
    lo = 0
    size = n
    num = 0
    old_median = np.nan
    old_mean = np.nan
    old_std = np.nan
    while num < maxnum and size > 0:
        hi = lo + size
        total = 0.0
        total_sq = 0.0
        for i in range(lo, hi):
            total += values[i]
            total_sq += values[i] * values[i]
        mean = total / size
        variance = (total_sq - total * total / size) / size
        std = np.sqrt(variance) if variance > 0 else 0.0
        median = _gnu_median(values, lo, hi, in_float32)
        if by_tolerance and num > 0:
            if std == 0.0 or (old_std - std) / std < param:
                if std == 0.0:
                    old_median = median
                    old_std = std
                    old_mean = mean
                break
        if std > 0.0:
            lower = median - multip * std
            upper = median + multip * std
            new_lo = lo
            for i in range(lo, hi):
                if values[i] > lower:
                    new_lo = i
                    break
            new_hi = hi
            for i in range(hi - 1, new_lo - 1, -1):
                if values[i] < upper:
                    new_hi = i + 1
                    break
            lo = new_lo
            size = new_hi - new_lo
        old_median = median
        old_std = std
        old_mean = mean
        num += 1
    if size == 0 or (by_tolerance and num == maxnum):
        out[:] = np.nan
        return
    out[0] = size
    out[1] = old_median
    out[2] = old_mean
    out[3] = old_std


@njit(cache=True, nogil=True, parallel=True)
def gnu_clip_rows(data, multip, param, in_float32):
    """Gnuastro's sigma clipping of every row of a 2-D float64 array, each row sorted with NaN last.

    Returns a (nrows, 4) array: number kept, median, mean and standard deviation.
    """
    nrows, ncols = data.shape
    result = np.empty((nrows, 4))
    for r in prange(nrows):
        n = ncols
        while n > 0 and np.isnan(data[r, n - 1]):
            n -= 1
        _gnu_clip_row(data[r], n, multip, param, in_float32, result[r])
    return result
