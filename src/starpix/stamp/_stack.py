"""Stacking PSF stamps into an extended PSF (``astarithmetic ... sigclip-mean``)."""

from __future__ import annotations

import os
import warnings

import numpy as np

from ..errors import InvalidParameterError
from ..stats import gnuastro_sigma_clip

__all__ = ["stack_stamps", "STACK_OPERATORS"]

#: Per-pixel statistics accepted by :func:`stack_stamps`.
STACK_OPERATORS = ("sigclip-mean", "sigclip-median", "mean", "median")

# float64 working values per chunk: about 32 MB, whatever the number of stamps
_CHUNK_VALUES = 1 << 22


def _load(stamps, hdu):
    """The stamps as one (n, ny, nx) array (float32, or float64 when any input is float64)."""
    if isinstance(stamps, np.ndarray):
        if stamps.ndim != 3:
            raise InvalidParameterError(f"stamps: expected a 3-D array (n, ny, nx) or a list of 2-D stamps, "
                                        f"got an array of {stamps.ndim} dimension(s)")
        return stamps, [f"stamp {i}" for i in range(len(stamps))]
    try:
        items = list(stamps)
    except TypeError:
        raise InvalidParameterError(f"stamps: expected a 3-D array, a list of 2-D arrays or a list of FITS "
                                    f"files, got {type(stamps).__name__}") from None
    if not items:
        raise InvalidParameterError("stamps: no stamps given")
    from ..io import read_image

    arrays, labels = [], []
    for index, item in enumerate(items):
        if isinstance(item, (str, os.PathLike)):
            with read_image(item, hdu) as source:
                if len(source.shape) != 2:
                    raise InvalidParameterError(f"{source.label}: a stamp must be a 2-D image, it has shape "
                                                f"{source.shape}")
                array = np.array(source.data)
                labels.append(source.label)
        else:
            array = np.asarray(item)
            labels.append(f"stamp {index}")
            if array.ndim != 2:
                raise InvalidParameterError(f"stamps[{index}]: a stamp must be a 2-D array, it has shape "
                                            f"{array.shape}")
        if arrays and array.shape != arrays[0].shape:
            raise InvalidParameterError(f"{labels[-1]}: shape {array.shape} differs from the first stamp's "
                                        f"{arrays[0].shape} ({labels[0]}); all stamps must have the same size")
        arrays.append(array)
    dtype = np.float64 if any(a.dtype == np.float64 for a in arrays) else np.float32
    stack = np.empty((len(arrays),) + arrays[0].shape, dtype=dtype)
    for index, array in enumerate(arrays):
        stack[index] = array
    return stack, labels


def stack_stamps(stamps, operator="sigclip-mean", sigmaclip=(3.0, 0.2), *, hdu=None, return_count=False):
    """Stack PSF stamps pixel by pixel, ignoring NaN pixels.

    With ``operator='sigclip-mean'`` and the default ``sigmaclip`` this is
    Gnuastro's ``astarithmetic $stamps $n 3 0.2 sigclip-mean -g1``, the stack
    of the "Building the extended PSF" tutorial: each pixel is the mean of
    its non-NaN values after Gnuastro's sigma clipping
    (:func:`starpix.stats.gnuastro_sigma_clip`).  Fully-NaN stamps (stars
    whose normalization failed) simply contribute nothing.

    Parameters
    ----------
    stamps : array_like (n, ny, nx), or sequence of 2-D arrays or FITS file names
        The stamps, all the same shape.  A 3-D array (a ``numpy.memmap``
        works) is read in blocks of rows; file names (``file.fits[HDU]``
        picks an HDU) are each read once.
    operator : {'sigclip-mean', 'sigclip-median', 'mean', 'median'}
        Per-pixel statistic.
    sigmaclip : (float, float)
        Sigma-clip multiple and tolerance (< 1) or number of clips (integer
        >= 1), as Gnuastro's ``3 0.2`` operands.  Used by the ``sigclip-*``
        operators only.
    hdu : int or str, optional
        HDU of the stamp files (default: the first image HDU).
    return_count : bool
        Also return the number of stamps that each pixel's value used
        (after clipping for the ``sigclip-*`` operators).

    Returns
    -------
    stacked : numpy.ndarray (ny, nx), float32
        NaN where no stamp has a value.
    count : numpy.ndarray (ny, nx), int32
        Only with ``return_count=True``.
    """
    if operator not in STACK_OPERATORS:
        raise InvalidParameterError(f"operator: unknown stacking operator {operator!r}; expected one of "
                                    f"{', '.join(STACK_OPERATORS)}")
    stack, _ = _load(stamps, hdu)
    if stack.shape[0] == 0 or 0 in stack.shape[1:]:
        raise InvalidParameterError(f"stamps: nothing to stack (shape {stack.shape})")
    if operator.startswith("sigclip"):
        gnuastro_sigma_clip(np.zeros(1), sigmaclip)  # validates sigmaclip before any work
    n, ny, nx = stack.shape
    dtype = np.float64 if stack.dtype == np.float64 else np.float32
    out = np.empty((ny, nx), dtype=np.float32)
    count = np.empty((ny, nx), dtype=np.int32)
    rows = max(1, _CHUNK_VALUES // max(1, n * nx))
    for y0 in range(0, ny, rows):
        block = np.asarray(stack[:, y0:y0 + rows], dtype=dtype)
        if operator.startswith("sigclip"):
            number, median, mean, _ = gnuastro_sigma_clip(block, sigmaclip, axis=0)
            out[y0:y0 + rows] = mean if operator == "sigclip-mean" else median
            count[y0:y0 + rows] = np.nan_to_num(number, nan=0.0)
        else:
            finite = np.isfinite(block)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels give NaN
                if operator == "mean":
                    total = np.where(finite, block, 0.0).sum(axis=0, dtype=np.float64)
                    with np.errstate(invalid="ignore", divide="ignore"):
                        out[y0:y0 + rows] = total / finite.sum(axis=0)
                else:
                    out[y0:y0 + rows] = np.nanmedian(block, axis=0)
            count[y0:y0 + rows] = finite.sum(axis=0)
    return (out, count) if return_count else out
