"""AstroDrizzle's static mask: pixels that are low in any exposure of a chip (bad columns, dead pixels)."""

from __future__ import annotations

import numpy as np

from ..errors import InvalidParameterError
from ._sky import image_stats

__all__ = ["static_mask"]


def static_mask(chips, masks=None, *, static_sig=4.0, static_min_exposures=1):
    """AstroDrizzle's static mask of one chip over all exposures (True = bad).

    For each exposure's version of the chip, the histogram mode and the clipped
    standard deviation are computed as ``ImageStats(chip, nclip=3, fields='mode')``
    (3 iterations of 3-sigma clipping); pixels below ``mode - static_sig * rms``
    are flagged.  A pixel is bad if it is flagged in ``static_min_exposures``
    exposures (AstroDrizzle: any one).  An exposure
    whose clipped values fall in fewer than two histogram bins (a flat image)
    flags nothing, as in AstroDrizzle.

    Parameters
    ----------
    chips : sequence of 2-D arrays
        The same chip of every exposure, all the same shape.
    masks : sequence of 2-D bool arrays or None
        True where a pixel is known bad; such pixels are left out of the
        statistics (AstroDrizzle uses all pixels: identical when None).
        NaN pixels are always left out.
    static_sig : float
        Number of standard deviations below the mode (``static_sig``, default 4).
    static_min_exposures : int
        A pixel is bad when it is low in at least this many exposures (capped
        at the number of exposures).  1 is AstroDrizzle's rule; 2 (a starpix
        option) keeps single noise excursions from masking a pixel in every
        exposure, while a dead pixel or column, low everywhere, is still caught.

    Returns
    -------
    numpy.ndarray
        bool 2-D array, True where the pixel is bad.
    """
    chips = list(chips)
    if not chips:
        raise InvalidParameterError("static_mask needs at least one image")
    static_sig = float(static_sig)
    if not np.isfinite(static_sig) or static_sig <= 0:
        raise InvalidParameterError(f"static_sig must be a number > 0, got {static_sig!r}")
    shape = np.shape(chips[0])
    if len(shape) != 2 or min(shape) < 1:
        raise InvalidParameterError(f"chips must be non-empty 2-D arrays, got shape {shape}")
    if masks is not None:
        masks = list(masks)
        if len(masks) != len(chips):
            raise InvalidParameterError(f"masks has {len(masks)} entries for {len(chips)} chips")
    need = int(static_min_exposures)
    if need < 1 or need != static_min_exposures:
        raise InvalidParameterError(f"static_min_exposures must be an integer >= 1, got {static_min_exposures!r}")
    need = min(need, len(chips))
    low_count = np.zeros(shape, np.int32)
    for i, chip in enumerate(chips):
        chip = np.asarray(chip, dtype=np.float32)
        if chip.shape != shape:
            raise InvalidParameterError(f"chips[{i}] has shape {chip.shape}, chips[0] has {shape}")
        sel = np.isfinite(chip)
        if masks is not None:
            m = np.asarray(masks[i], dtype=bool)
            if m.shape != shape:
                raise InvalidParameterError(f"masks[{i}] has shape {m.shape}, chips have {shape}")
            sel &= ~m
        if not sel.any():
            continue
        st = image_stats(chip[sel], nclip=3)
        if st["nbins"] >= 2:
            low_count += chip < np.float32(st["mode"] - static_sig * st["stddev"])
    return low_count >= need
