"""Masks of unusable pixels, as STDPipe's ``make_mask``."""

from __future__ import annotations

import logging
import re

import numpy as np

from ..errors import InvalidParameterError

__all__ = ["make_mask", "parse_section", "estimate_saturation"]

_SECTION = re.compile(r"^\s*\[\s*(\d+)\s*:\s*(\d+)\s*,\s*(\d+)\s*:\s*(\d+)\s*\]\s*$")
logger = logging.getLogger("starpix")


def parse_section(text, shape=None, *, keyword="section"):
    """Read a FITS image section such as ``'[1:2048,1:4096]'`` (DATASEC, TRIMSEC, BIASSEC).

    Parameters
    ----------
    text : str
        ``[x1:x2,y1:y2]``, 1-based and inclusive, x along the rows (FITS
        order).  Reversed ranges (``[2048:1,...]``) are accepted.
    shape : tuple of int, optional
        ``(ny, nx)`` of the image: the section must then overlap it (it is
        clipped to it).
    keyword : str
        Name used in error messages.

    Returns
    -------
    (slice, slice)
        The 0-based ``(rows, columns)`` slices of the section.
    """
    if not isinstance(text, str):
        raise InvalidParameterError(f"{keyword}: expected a section such as '[1:2048,1:4096]', got {text!r}")
    match = _SECTION.match(text)
    if match is None:
        raise InvalidParameterError(f"{keyword} = {text!r}: expected a FITS section such as '[1:2048,1:4096]'")
    x1, x2, y1, y2 = (int(value) for value in match.groups())
    if min(x1, x2, y1, y2) < 1:
        raise InvalidParameterError(f"{keyword} = {text!r}: section bounds are 1-based and must be >= 1")
    x1, x2 = sorted((x1, x2))
    y1, y2 = sorted((y1, y2))
    if shape is not None:
        ny, nx = shape
        if x1 > nx or y1 > ny:
            raise InvalidParameterError(
                f"{keyword} = {text!r}: the section lies outside the image ({nx} x {ny} pixels, NAXIS1 x NAXIS2)")
        x2, y2 = min(x2, nx), min(y2, ny)
    return slice(y1 - 1, y2), slice(x1 - 1, x2)


def estimate_saturation(image):
    """Saturation level estimated from the image: ``median + 0.95 * (max - median)`` of its finite pixels."""
    finite = np.asarray(image, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        raise InvalidParameterError("saturation=True: the image has no finite pixel to estimate it from")
    median = float(np.median(finite))
    return median + 0.95 * (float(finite.max()) - median)


def _saturation_level(saturation, image, header):
    if saturation is None:
        if header is not None and "SATURATE" in header:
            try:
                return float(header["SATURATE"])
            except (TypeError, ValueError):
                raise InvalidParameterError(
                    f"SATURATE = {header['SATURATE']!r}: the header's saturation level is not a number") from None
        return None
    if isinstance(saturation, (bool, np.bool_)):
        return estimate_saturation(image) if saturation else None
    try:
        level = float(saturation)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"saturation must be None, True or a number, got {saturation!r}") from None
    if np.isnan(level):
        raise InvalidParameterError("saturation must be a number, got nan")
    return level


def make_mask(image, header=None, saturation=None, external_mask=None, mask_cosmics=False, gain=None, *,
              verbose=False, **cosmics_options):
    """Mask the pixels unusable for further processing (True = excluded), as STDPipe's ``make_mask``.

    Parameters
    ----------
    image : array_like, 2-D
    header : astropy.io.fits.Header or dict, optional
        ``TRIMSEC`` and ``DATASEC`` (FITS sections, 1-based): pixels outside
        either are masked.  ``SATURATE`` gives the saturation level when
        ``saturation`` is None.
    saturation : None, True or float
        Pixels at or above this level (ADU) are masked; True estimates it as
        ``median + 0.95 * (max - median)``; None uses the header's
        ``SATURATE`` if any, else masks nothing for saturation.
    external_mask : array_like, optional
        Non-zero pixels are masked (OR-ed in); shape of ``image``.
    mask_cosmics : bool
        Also mask cosmic rays found by :func:`detect_cosmics` (with the
        background rms as noise model, as STDPipe does, and
        ``cleantype='medmask'``).
    gain : float, optional
        Electrons per ADU for the cosmic-ray noise model (Poisson term of
        the sources); without it only the background rms is used.
    verbose : bool
        Log what is masked (``starpix`` logger, INFO).
    **cosmics_options
        Further keyword arguments of :func:`detect_cosmics` (``sigclip``,
        ``objlim``, ...).

    Returns
    -------
    numpy.ndarray of bool
        True where a pixel is excluded.
    """
    data = np.asarray(image)
    if data.ndim != 2:
        raise InvalidParameterError(f"image must be a 2-D array, got {data.ndim} dimension(s)")
    if data.dtype.kind not in "fiub":
        raise InvalidParameterError(f"image must be numeric, got dtype {data.dtype}")
    data = data.astype(float, copy=False)
    log = logger.info if verbose else (lambda *args: None)

    mask = ~np.isfinite(data)
    log("make_mask: %d non-finite pixels", int(mask.sum()))
    if header is not None:
        for keyword in ("TRIMSEC", "DATASEC"):
            if keyword in header:
                rows, cols = parse_section(header[keyword], data.shape, keyword=keyword)
                outside = np.ones(data.shape, dtype=bool)
                outside[rows, cols] = False
                log("make_mask: masking outside %s = %s", keyword, header[keyword])
                mask |= outside
    level = _saturation_level(saturation, data, header)
    if level is not None:
        with np.errstate(invalid="ignore"):
            saturated = data >= level
        log("make_mask: %d pixels at or above the saturation level %.6g", int(saturated.sum()), level)
        mask |= saturated
    if external_mask is not None:
        external = np.asarray(external_mask)
        if external.shape != data.shape:
            raise InvalidParameterError(f"external_mask has shape {external.shape}, the image has shape {data.shape}")
        external = external.astype(bool)
        log("make_mask: external mask with %d masked pixels", int(external.sum()))
        mask |= external
    if mask_cosmics:
        crmask = _cosmics(data, mask, gain, level, cosmics_options)
        log("make_mask: %d cosmic-ray pixels", int(crmask.sum()))
        mask |= crmask
    log("make_mask: %d pixels (%.2f%%) masked in total", int(mask.sum()), 100.0 * mask.mean())
    return mask


def _cosmics(data, mask, gain, level, options):
    from ..detect import Background
    from ._cosmics import detect_cosmics

    if mask.all():
        return np.zeros(data.shape, dtype=bool)
    box = (min(64, data.shape[0]), min(64, data.shape[1]))
    background = Background(data, box, mask=mask)
    var = np.asarray(background.background_rms, dtype=float) ** 2
    if gain:
        gain = float(gain)
        if not (gain > 0 and np.isfinite(gain)):
            raise InvalidParameterError(f"gain must be a positive number, got {gain!r}")
        var = var + np.abs(data - background.background) / gain
    options = dict(options)
    options.setdefault("cleantype", "medmask")
    options.setdefault("satlevel", np.inf if level is None else level * (gain or 1.0))
    crmask, _ = detect_cosmics(data, mask, gain=gain or 1.0, invar=var, **options)
    return crmask
