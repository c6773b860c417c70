"""Master bias, dark and flat frames: a pixel-by-pixel median, mean or sigma-clipped mean of a stack,
computed block of rows by block of rows so that memory stays bounded however many frames there are."""

from __future__ import annotations

import os
from contextlib import ExitStack

import numpy as np

from ..errors import InvalidParameterError

__all__ = ["combine_frames"]

_METHODS = ("median", "mean", "sigclip-mean")


def _open(frames, stack, hdu):
    """Sliceable 2-D sources (arrays, memory maps or lazy FITS sections) and their labels."""
    sources, labels = [], []
    for index, frame in enumerate(frames):
        if isinstance(frame, (str, os.PathLike)):
            from ..io import read_image

            source = stack.enter_context(read_image(frame, hdu))
            if len(source.shape) != 2:
                raise InvalidParameterError(f"{source.label}: expected a 2-D image, got shape {source.shape}")
            sources.append(source.section)
            labels.append(source.label)
        else:
            array = np.asarray(frame)
            if array.ndim != 2:
                raise InvalidParameterError(f"frame {index}: expected a 2-D image, got shape {array.shape}")
            sources.append(array)
            labels.append(f"frame {index}")
    return sources, labels


def combine_frames(frames, method="median", *, sigma=3.0, maxiters=5, normalize=False, hdu=None,
                   max_memory_mb=256.0, return_count=False):
    """Combine frames pixel by pixel into a master frame, in bounded memory.

    Parameters
    ----------
    frames : sequence of array_like or paths
        2-D images of one shape, or FITS files (``file.fits[HDU]`` picks an
        HDU), read a block of rows at a time.
    method : {'median', 'mean', 'sigclip-mean'}
        Median, mean, or mean after sigma clipping each pixel's values
        (median centre, standard deviation, ``sigma``, ``maxiters``:
        :func:`starpix.stats.sigma_clipped_rows`).
    sigma, maxiters : float, int
        Clipping options of 'sigclip-mean'.
    normalize : bool
        Divide each frame by its median first (flat fields).
    hdu : int or str, optional
        HDU of the files that name none.
    max_memory_mb : float
        Rows are processed in blocks whose stacked values take at most
        about this much memory (at least one row at a time).
    return_count : bool
        Also return the number of values combined at each pixel.

    Returns
    -------
    master : numpy.ndarray of float64
        NaN where a pixel has no finite value.  Non-finite values are left
        out pixel by pixel.
    count : numpy.ndarray of int
        Only with ``return_count``.
    """
    if method not in _METHODS:
        raise InvalidParameterError(f"method must be one of {', '.join(_METHODS)}; got {method!r}")
    if isinstance(frames, (str, os.PathLike, np.ndarray)):
        frames = [frames] if not isinstance(frames, np.ndarray) or frames.ndim == 2 else list(frames)
    frames = list(frames)
    if not frames:
        raise InvalidParameterError("combine_frames: the list of frames is empty")
    try:
        budget = float(max_memory_mb)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"max_memory_mb must be a positive number, got {max_memory_mb!r}") from None
    if not budget > 0:
        raise InvalidParameterError(f"max_memory_mb must be a positive number, got {max_memory_mb!r}")
    with ExitStack() as stack:
        sources, labels = _open(frames, stack, hdu)
        shape = tuple(sources[0].shape)
        for source, label in zip(sources, labels):
            if tuple(source.shape) != shape:
                raise InvalidParameterError(
                    f"{label} has shape {tuple(source.shape)}, the first frame ({labels[0]}) has {shape}")
        ny, nx = shape
        n = len(sources)
        scales = np.ones(n)
        if normalize:
            for index, (source, label) in enumerate(zip(sources, labels)):
                scales[index] = _frame_median(source, ny, nx, budget)
                if not (np.isfinite(scales[index]) and scales[index] != 0):
                    raise InvalidParameterError(f"{label}: cannot normalize by its median ({scales[index]:g})")
        # the stacked block, its float64 copy and the sorted rows of the clipped mean: ~3 copies
        rows = max(1, int(budget * 2**20 / (3 * 8 * n * nx)))
        master = np.empty(shape)
        count = np.empty(shape, dtype=np.int64)
        block = np.empty((n, min(rows, ny), nx))
        for y0 in range(0, ny, rows):
            y1 = min(ny, y0 + rows)
            cube = block[:, : y1 - y0]
            for index, source in enumerate(sources):
                cube[index] = source[y0:y1]
                if normalize:
                    cube[index] /= scales[index]
            master[y0:y1], count[y0:y1] = _combine_block(cube, method, sigma, maxiters)
    return (master, count) if return_count else master


def _frame_median(source, ny, nx, budget):
    rows = max(1, int(budget * 2**20 / (8 * nx)))
    values = np.concatenate([np.asarray(source[y0:min(ny, y0 + rows)], dtype=float).ravel()
                             for y0 in range(0, ny, rows)])
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else float("nan")


def _combine_block(cube, method, sigma, maxiters):
    finite = np.isfinite(cube)
    count = finite.sum(axis=0)
    if method == "sigclip-mean":
        from ..stats import sigma_clipped_rows

        n = cube.shape[0]
        rows = np.moveaxis(cube, 0, -1).reshape(-1, n)
        mean, _, _, kept = sigma_clipped_rows(rows, sigma=sigma, maxiters=maxiters)
        return mean.reshape(cube.shape[1:]), kept.reshape(cube.shape[1:])
    with np.errstate(invalid="ignore", divide="ignore"):
        if finite.all():
            result = np.median(cube, axis=0) if method == "median" else cube.mean(axis=0)
        else:
            filled = np.where(finite, cube, np.nan)
            if method == "median":
                result = _nanmedian(filled)
            else:
                result = np.where(count > 0, np.nansum(filled, axis=0) / np.maximum(count, 1), np.nan)
    return result, count


def _nanmedian(cube):
    """np.nanmedian along axis 0 without its all-NaN warning."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(cube, axis=0)
