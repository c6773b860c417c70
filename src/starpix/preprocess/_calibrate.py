"""Bias, dark and flat-field calibration of a raw frame, as STDPipe's pre-processing example."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidParameterError
from ..stats import MAD_TO_STD

__all__ = ["calibrate", "Calibrated"]


@dataclass
class Calibrated:
    """Result of :func:`calibrate`.

    Attributes
    ----------
    image : numpy.ndarray
        The calibrated image (float64).
    mask : numpy.ndarray of bool
        True where the calibration made a pixel unusable: non-finite input,
        under-illuminated flat (below ``flat_low`` of its median), hot dark
        pixel (above its median + ``dark_sigma`` MAD-sigma).
    flat_median : float or None
        The median the flat was normalized by.
    dark_scale : float
        The factor the dark was multiplied by before subtraction.
    """

    image: np.ndarray
    mask: np.ndarray
    flat_median: float | None
    dark_scale: float


def _frame(value, shape, name):
    if value is None:
        return None
    array = np.asarray(value, dtype=float)
    if array.ndim == 0:
        return np.full(shape, float(array))
    if array.shape != shape:
        raise InvalidParameterError(f"{name} has shape {array.shape}, the image has shape {shape}")
    return array


def _positive(value, name):
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name} must be a positive number, got {value!r}") from None
    if not (number > 0 and np.isfinite(number)):
        raise InvalidParameterError(f"{name} must be a positive finite number, got {value!r}")
    return number


def calibrate(image, bias=None, dark=None, flat=None, *, exptime=None, dark_exptime=None, dark_includes_bias=False,
              flat_low=0.5, dark_sigma=10.0):
    """Subtract bias and dark, divide by the normalized flat, and mask what the calibration spoils.

    Parameters
    ----------
    image : array_like, 2-D
        The raw frame.
    bias, dark, flat : array_like or float, optional
        Master frames (shape of ``image``) or constants.
    exptime, dark_exptime : float, optional
        Exposure times of the image and of the dark: with both, the dark is
        scaled by ``exptime / dark_exptime`` before subtraction.
    dark_includes_bias : bool
        The dark was not bias-subtracted: subtract it instead of the bias
        (scaling then applies to ``dark - bias``).
    flat_low : float
        Flat pixels below ``flat_low`` times the flat's median are masked
        (under-illuminated: 0.5, as STDPipe's example).
    dark_sigma : float
        Dark pixels above the dark's median + ``dark_sigma`` times its MAD
        standard deviation are masked as hot (10, as STDPipe's example).

    Returns
    -------
    Calibrated
        ``image``, ``mask``, ``flat_median``, ``dark_scale``.
    """
    data = np.array(image, dtype=float, copy=True)
    if data.ndim != 2:
        raise InvalidParameterError(f"image must be a 2-D array, got {data.ndim} dimension(s)")
    shape = data.shape
    bias = _frame(bias, shape, "bias")
    dark = _frame(dark, shape, "dark")
    flat = _frame(flat, shape, "flat")
    flat_low = _positive(flat_low, "flat_low")
    dark_sigma = _positive(dark_sigma, "dark_sigma")
    mask = ~np.isfinite(data)

    scale = 1.0
    if (exptime is None) != (dark_exptime is None) and dark is not None:
        raise InvalidParameterError("dark scaling needs both exptime and dark_exptime (or neither)")
    if exptime is not None and dark_exptime is not None:
        scale = _positive(exptime, "exptime") / _positive(dark_exptime, "dark_exptime")

    if dark is not None:
        current = dark - bias if (dark_includes_bias and bias is not None) else dark
        finite = current[np.isfinite(current)]
        if finite.size:
            median = np.median(finite)
            sigma = MAD_TO_STD * np.median(np.abs(finite - median))
            with np.errstate(invalid="ignore"):
                mask |= current > median + dark_sigma * sigma
        mask |= ~np.isfinite(current)
    if bias is not None:
        data -= bias
        mask |= ~np.isfinite(bias)
    if dark is not None:
        data -= scale * current
    flat_median = None
    if flat is not None:
        finite = flat[np.isfinite(flat)]
        if finite.size == 0:
            raise InvalidParameterError("flat has no finite pixel")
        flat_median = float(np.median(finite))
        if not flat_median > 0:
            raise InvalidParameterError(f"flat must have a positive median, got {flat_median:g}")
        normalized = flat / flat_median
        with np.errstate(invalid="ignore", divide="ignore"):
            low = ~(normalized >= flat_low)
            data /= np.where(low, 1.0, normalized)
        mask |= low
    return Calibrated(data, mask, flat_median, scale)
