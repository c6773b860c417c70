"""Sigma clipping and robust statistics shared by every part of starpix.

The results follow :func:`astropy.stats.sigma_clip` and
:func:`astropy.stats.sigma_clipped_stats`: the same iteration (centre and
spread from the values kept so far, values outside
``[centre - sigma_lower * std, centre + sigma_upper * std]`` dropped, until
nothing changes or ``maxiters`` passes were made), the same treatment of
NaN/inf values and masks (left out), and the same numbers to rounding.

Differences from astropy, all deliberate:

- :func:`sigma_clip` returns a boolean mask (True = rejected: clipped,
  masked or not finite), not a masked array.
- Invalid values are left out silently (astropy warns).
- Statistics of an empty or all-masked selection are NaN (astropy returns
  ``np.ma.masked`` for an all-masked input and warns on empty slices).
- When a pass rejects every value, :func:`sigma_clip` without an axis
  reports every value rejected (astropy then reports none: its bounds of an
  empty selection are NaN).
- ``cenfunc``/``stdfunc`` accept the names 'median'/'mean' and
  'std'/'mad_std' only, and ``grow`` is not offered.

Clipping along an axis (per mesh box, per annulus, per pixel of a stack) is
done for all rows at once by a parallel numba kernel that sorts each row once.
"""

from __future__ import annotations

import numpy as np

from .errors import InvalidParameterError

__all__ = ["sigma_clip", "sigma_clipped_stats", "sigma_clipped_rows", "mad_std", "MAD_TO_STD", "gnuastro_sigma_clip"]

#: Factor turning a median absolute deviation into a Gaussian standard deviation.
MAD_TO_STD = 1.482602218505602


def _check_options(sigma, sigma_lower, sigma_upper, maxiters, cenfunc, stdfunc):
    if cenfunc not in ("median", "mean"):
        raise InvalidParameterError(f"cenfunc must be 'median' or 'mean', got {cenfunc!r}")
    if stdfunc not in ("std", "mad_std"):
        raise InvalidParameterError(f"stdfunc must be 'std' or 'mad_std', got {stdfunc!r}")
    values = {}
    for name, value in (("sigma", sigma), ("sigma_lower", sigma_lower), ("sigma_upper", sigma_upper)):
        if value is None:
            continue
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise InvalidParameterError(f"{name} must be a positive number, got {value!r}") from None
        if not (value > 0 and np.isfinite(value)):
            raise InvalidParameterError(f"{name} must be a positive finite number, got {value!r}")
        values[name] = value
    lower = values.get("sigma_lower", values["sigma"])
    upper = values.get("sigma_upper", values["sigma"])
    if maxiters is None:
        iters = -1
    else:
        if isinstance(maxiters, (bool, np.bool_)) or not isinstance(maxiters, (int, np.integer)) or maxiters < 0:
            raise InvalidParameterError(f"maxiters must be an integer >= 0 or None, got {maxiters!r}")
        iters = int(maxiters)
    return lower, upper, iters


def _normalize_axis(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if np.ndim(axis) == 0 else tuple(axis)
    out = []
    for ax in axes:
        if isinstance(ax, (bool, np.bool_)) or not isinstance(ax, (int, np.integer)) or not -ndim <= ax < ndim:
            raise InvalidParameterError(f"axis {ax!r} is out of range for an array of {ndim} dimension(s)")
        out.append(int(ax) % ndim)
    if len(set(out)) != len(out):
        raise InvalidParameterError(f"axis repeats a dimension: {axis!r}")
    return tuple(out)


def _prepare(data, mask, mask_value, axis):
    """Float64 rows (clipped axes last, flattened) with NaN for invalid values."""
    if isinstance(data, np.ma.MaskedArray):
        extra = np.ma.getmaskarray(data)
        data = np.asarray(data.data)
        mask = extra if mask is None else (extra | np.asarray(mask, dtype=bool))
    try:
        array = np.array(data, dtype=np.float64, copy=True)
    except (TypeError, ValueError):
        raise InvalidParameterError("data must be an array of numbers") from None
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != array.shape:
            raise InvalidParameterError(f"mask has shape {mask.shape}, data has shape {array.shape}")
        array[mask] = np.nan
    if mask_value is not None:
        array[array == mask_value] = np.nan
    array[~np.isfinite(array)] = np.nan
    if array.ndim == 0:
        array = array.reshape(1)
    axes = _normalize_axis(axis, array.ndim)
    keep = tuple(ax for ax in range(array.ndim) if ax not in axes)
    moved = np.transpose(array, keep + axes)
    out_shape = tuple(array.shape[ax] for ax in keep)
    ncols = int(np.prod([array.shape[ax] for ax in axes], dtype=np.int64))
    rows = np.ascontiguousarray(moved).reshape(-1, ncols)
    return array, rows, out_shape, axes, keep


def _run(rows, sigma_lower, sigma_upper, iters, cenfunc, stdfunc, cumulative, ddof, final_mad=False):
    from ._stats_kernels import clip_rows

    rows = np.sort(rows, axis=1)  # NaN last; numpy's vectorized sort beats one in numba
    return clip_rows(rows, cenfunc == "median", stdfunc == "mad_std", iters, sigma_lower, sigma_upper,
                     cumulative, int(ddof), bool(final_mad))


def sigma_clip(data, sigma=3.0, sigma_lower=None, sigma_upper=None, maxiters=5, cenfunc="median",
               stdfunc="std", axis=None, *, mask=None, return_bounds=False):
    """Sigma-clip data, as :func:`astropy.stats.sigma_clip`.

    Parameters
    ----------
    data : array_like or numpy.ma.MaskedArray
        The values.  Non-finite and masked values are left out of the
        statistics and are rejected in the result.
    sigma : float
        Clipping limit in standard deviations, both sides.
    sigma_lower, sigma_upper : float, optional
        Separate lower and upper limits (default ``sigma``).
    maxiters : int or None
        Most clipping passes; None iterates until nothing changes.  0 clips
        nothing.
    cenfunc : {'median', 'mean'}
        Centre of the clipping interval.
    stdfunc : {'std', 'mad_std'}
        Spread: population standard deviation or the MAD scaled to a
        Gaussian sigma.
    axis : None, int or tuple of int
        Clip along these axes independently for every other index
        (None: all values together).
    mask : array_like of bool, optional
        True where ``data`` is to be ignored.
    return_bounds : bool
        Also return the lower and upper bounds of the last pass (scalars
        when ``axis`` is None, otherwise arrays over the kept axes).

    Returns
    -------
    rejected : numpy.ndarray of bool
        Shape of ``data``; True for clipped, masked and non-finite values.
        Use ``numpy.ma.MaskedArray(data, rejected)`` for astropy's masked
        result.
    lower, upper : float or numpy.ndarray
        Only with ``return_bounds``.  NaN where no bound was computed
        (no valid values, or ``maxiters=0``).
    """
    lower_sigma, upper_sigma, iters = _check_options(sigma, sigma_lower, sigma_upper, maxiters, cenfunc, stdfunc)
    array, rows, out_shape, axes, keep = _prepare(data, mask, None, axis)
    _, _, _, _, lower, upper, _ = _run(rows, lower_sigma, upper_sigma, iters, cenfunc, stdfunc, False, 0)
    lower = lower.reshape(out_shape)
    upper = upper.reshape(out_shape)
    expand = tuple(sorted(axes))
    lo = np.expand_dims(lower, expand) if keep else lower.reshape((1,) * array.ndim)
    hi = np.expand_dims(upper, expand) if keep else upper.reshape((1,) * array.ndim)
    with np.errstate(invalid="ignore"):
        rejected = np.isnan(array) | (array < lo) | (array > hi)
    rejected = rejected.reshape(np.shape(data))
    if not return_bounds:
        return rejected
    if not keep:
        return rejected, float(lower.reshape(-1)[0]), float(upper.reshape(-1)[0])
    return rejected, lower, upper


def sigma_clipped_stats(data, mask=None, mask_value=None, sigma=3.0, sigma_lower=None, sigma_upper=None,
                        maxiters=5, cenfunc="median", stdfunc="std", std_ddof=0, axis=None):
    """Mean, median and standard deviation of sigma-clipped data.

    The same numbers as :func:`astropy.stats.sigma_clipped_stats` (to
    rounding) with the same arguments; see :func:`sigma_clip` for them.
    ``mask_value`` leaves out values equal to it; ``std_ddof`` is the
    delta degrees of freedom of the returned standard deviation.

    Returns
    -------
    mean, median, std : float or numpy.ndarray
        Floats when ``axis`` is None, otherwise arrays over the axes not
        clipped.  NaN where no value survives (or none was valid).
    """
    lower_sigma, upper_sigma, iters = _check_options(sigma, sigma_lower, sigma_upper, maxiters, cenfunc, stdfunc)
    if isinstance(std_ddof, (bool, np.bool_)) or not isinstance(std_ddof, (int, np.integer)) or std_ddof < 0:
        raise InvalidParameterError(f"std_ddof must be an integer >= 0, got {std_ddof!r}")
    _, rows, out_shape, _, keep = _prepare(data, mask, mask_value, axis)
    # astropy drops values pass by pass without an axis, and re-applies the
    # final bounds to all values with one: keep both behaviours.
    mean, median, std, _, _, _, _ = _run(rows, lower_sigma, upper_sigma, iters, cenfunc, stdfunc,
                                      axis is None, std_ddof)
    if not keep:
        return float(mean[0]), float(median[0]), float(std[0])
    return mean.reshape(out_shape), median.reshape(out_shape), std.reshape(out_shape)


def sigma_clipped_rows(rows, *, sigma=3.0, sigma_lower=None, sigma_upper=None, maxiters=5, cenfunc="median",
                       stdfunc="std", std_ddof=0, mad=False, cumulative=False):
    """Sigma-clipped statistics of every row of a 2-D array (invalid values NaN).

    The fast path used by the background mesh and ring statistics: NaN and
    inf values are left out.  Clipping follows astropy with an axis (each
    pass's bounds applied to all values), or with ``cumulative`` astropy on
    a flat array (values dropped pass after pass, as photutils' background
    estimators clip each annulus).  ``maxiters`` None clips to convergence.

    Returns
    -------
    mean, median, std : numpy.ndarray
    count : numpy.ndarray of int
        Number of values kept in each row.
    mad_std : numpy.ndarray
        Only with ``mad=True``: the MAD standard deviation of the kept values.
    """
    lower_sigma, upper_sigma, iters = _check_options(sigma, sigma_lower, sigma_upper, maxiters, cenfunc, stdfunc)
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim != 2:
        raise InvalidParameterError(f"rows must be a 2-D array, got {rows.ndim} dimension(s)")
    invalid = ~np.isfinite(rows)
    if invalid.any():
        rows = np.where(invalid, np.nan, rows)
    mean, median, std, count, _, _, mad_values = _run(rows, lower_sigma, upper_sigma, iters, cenfunc, stdfunc,
                                                      bool(cumulative), std_ddof, mad)
    if mad:
        return mean, median, std, count, mad_values
    return mean, median, std, count


def mad_std(data, axis=None, ignore_nan=False):
    """Median absolute deviation scaled to a Gaussian sigma (:func:`astropy.stats.mad_std`).

    Parameters
    ----------
    data : array_like
    axis : None, int or tuple of int
    ignore_nan : bool
        Leave NaN values out (otherwise a NaN makes the result NaN).
    """
    array = np.asanyarray(data, dtype=np.float64)
    if isinstance(array, np.ma.MaskedArray):
        array = array.filled(np.nan)
        ignore_nan = True
    median = np.nanmedian if ignore_nan else np.median
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN
        center = median(array, axis=axis, keepdims=True)
        result = median(np.abs(array - center), axis=axis) * MAD_TO_STD
    return float(result) if np.ndim(result) == 0 else result


def gnuastro_sigma_clip(data, sigmaclip=(3.0, 0.2), *, axis=None):
    """Sigma clipping as Gnuastro does it (``gal_statistics_sigma_clip``, Gnuastro 0.19).

    Gnuastro's rule differs from astropy's: bounds are ``median -+ multip *
    std`` (population std, strict inequalities), and with a tolerance
    (``param < 1``) the loop stops when the standard deviation fell by less
    than ``param`` of itself, returning the statistics of the set *before*
    the last clip.  With ``param >= 1`` it makes exactly ``param`` clips and
    returns the statistics before the last one.  A tolerance loop that does
    not converge in 50 rounds gives NaN.  Medians of float32 data are
    computed in float32 (the mean of the middle two for an even count).

    Parameters
    ----------
    data : array_like
        Values; NaN values are left out.
    sigmaclip : (float, float)
        ``(multip, param)``: the clipping multiple of the standard deviation
        and the tolerance (< 1) or number of clips (an integer >= 1).
    axis : None or int
        Clip the flattened data (None) or every 1-D slice along this axis
        (for example ``axis=0`` per pixel of a stack of images).

    Returns
    -------
    number, median, mean, std : float or numpy.ndarray
        Rounded to float32 as Gnuastro returns them; NaN where no value was
        left.
    """
    from ._stats_kernels import gnu_clip_rows

    multip, param = _gnuastro_clip_params(sigmaclip)
    array = np.asarray(data)
    in_float32 = array.dtype == np.float32
    array = np.asarray(array, dtype=np.float64)
    if axis is None:
        rows = array.reshape(1, -1)
        out_shape = ()
    else:
        if array.ndim == 0:
            raise InvalidParameterError("axis given for a scalar")
        axis = _normalize_axis(axis, array.ndim)[0]
        moved = np.moveaxis(array, axis, -1)
        out_shape = moved.shape[:-1]
        rows = moved.reshape(-1, moved.shape[-1])
    rows = np.where(np.isfinite(rows), rows, np.nan)
    rows = np.sort(rows, axis=1)
    result = gnu_clip_rows(np.ascontiguousarray(rows), multip, param, in_float32).astype(np.float32)
    columns = [result[:, k].reshape(out_shape) for k in range(4)]
    if axis is None:
        return tuple(float(c) for c in columns)
    return tuple(columns)


def _gnuastro_clip_params(sigmaclip):
    try:
        multip, param = (float(v) for v in sigmaclip)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"sigmaclip must be two numbers (multiple, tolerance or clips), "
                                    f"got {sigmaclip!r}") from None
    if not (multip > 0 and np.isfinite(multip)):
        raise InvalidParameterError(f"sigmaclip multiple must be a positive number, got {multip!r}")
    if not (param > 0 and np.isfinite(param)):
        raise InvalidParameterError(f"sigmaclip second value must be positive, got {param!r}")
    if param >= 1 and param != int(param):
        raise InvalidParameterError(f"sigmaclip second value of 1 or more is a number of clips and must be an "
                                    f"integer, got {param!r}")
    # Gnuastro takes both as C floats
    return float(np.float32(multip)), float(np.float32(param))
