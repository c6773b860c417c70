"""Cosmic-ray detection with L.A.Cosmic (van Dokkum 2001), as astroscrappy does it.

The detector follows astroscrappy 1.3 step by step, in float32 like it, so
that the two masks agree pixel for pixel on finite images:

1. The image is turned into electrons (``image * gain``); the noise model is
   ``image + readnoise**2`` (or ``invar * gain**2``).
2. Saturated stars are masked: pixels at or above ``satlevel`` whose 7x7
   (separable) or 5x5 median is above ``satlevel / 10``, grown twice by a
   5x5 round kernel; the user's mask is grown by one pixel.
3. Each iteration: the Laplacian of the 2x subsampled image, clipped at
   zero and block-averaged back, is divided by twice the noise (the square
   root of the median-filtered variance) and its large-scale structure is
   removed with a median filter (``sp``).  Candidates have ``sp > sigclip``
   and a contrast ``sp / F > objlim`` against the fine-structure image
   ``F`` (3x3 minus 7x7 median, or a PSF-matched filter with
   ``fsmode='convolve'``), which keeps star cores out.  Candidates grow into
   neighbours above ``sigclip`` and then ``sigfrac * sigclip``.
4. Flagged pixels are replaced (``cleantype``) in the image and the
   variance, and the next iteration looks for what is left.

5. Star guard (``star_guard=True``, not in astroscrappy): each connected
   group of flagged pixels is tested against the hypothesis "this is the
   core of a point source with the PSF" (``psfmodel``, ``psffwhm``,
   ``psfbeta``; the profile may be up to 2.1 times wider, never sharper).
   The local background is the median of a box perimeter around the group;
   when the ring just outside the group holds significant flux, the profile
   is fitted to the ring (centre searched within the group, pixels of
   neighbouring sources left out) and extrapolated into the group; when it
   does not (a sharp PSF whose whole core is flagged), the profile is fitted
   to the group and its ring together.  The group is unflagged when the fit
   is good and no pixel of it stands more than ``sigclip`` sigmas above the
   prediction, sigma from the noise model (Poisson plus read noise, or
   ``invar``), the fit's errors and 1% of the predicted star flux.  A cosmic
   ray on a star leaves a sharp excess over the profile and stays flagged;
   an isolated one has no wings and stays flagged.  A ``psffwhm`` sharper
   than the stars makes the guard release fewer groups; one much wider
   than the stars may release a faint cosmic ray on a star.

Deliberate differences from astroscrappy: the star guard (on by default,
``star_guard=False`` for astroscrappy's mask); non-finite pixels are masked and filled before detection (astroscrappy propagates them); ``cleantype='median'``
is the 5x5 median of the neighbourhood as documented (astroscrappy 1.3 fills
its buffer wrongly and returns arbitrary values); the cleaned image keeps
the input's values and dtype outside the cosmic rays (astroscrappy returns
the whole image through float32).
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidParameterError
from ._calibrate import _positive

__all__ = ["detect_cosmics", "psf_kernel"]

_CLEANTYPES = ("meanmask", "median", "medmask", "idw")
_FSMODES = ("median", "convolve")
_PSFMODELS = ("gauss", "gaussx", "gaussy", "moffat")
_FWHM_TO_SIGMA = 2.35482
_IDW_WEIGHTS = np.array([[0.35355339, 0.4472136, 0.5, 0.4472136, 0.35355339],
                         [0.4472136, 0.70710678, 1.0, 0.70710678, 0.4472136],
                         [0.5, 1.0, 0.0, 1.0, 0.5],
                         [0.4472136, 0.70710678, 1.0, 0.70710678, 0.4472136],
                         [0.35355339, 0.4472136, 0.5, 0.4472136, 0.35355339]], dtype=np.float32)
_MIN_SIZE = 9


def psf_kernel(psfmodel="gauss", psffwhm=2.5, psfsize=7, psfbeta=4.765):
    """The PSF kernel L.A.Cosmic's matched filter uses with ``fsmode='convolve'``.

    Parameters
    ----------
    psfmodel : {'gauss', 'gaussx', 'gaussy', 'moffat'}
        Circular Gaussian, Gaussian along x or y only, or circular Moffat.
    psffwhm : float
        Full width at half maximum, pixels.
    psfsize : int
        The kernel is ``psfsize`` x ``psfsize`` (odd).
    psfbeta : float
        Moffat exponent.

    Returns
    -------
    numpy.ndarray of float32
        Normalized to a sum of 1, centred on the central pixel.
    """
    if psfmodel not in _PSFMODELS:
        raise InvalidParameterError(f"psfmodel must be one of {', '.join(_PSFMODELS)}; got {psfmodel!r}")
    fwhm = np.float32(_positive(psffwhm, "psffwhm"))
    size = _odd_size(psfsize)
    x = np.tile(np.arange(size) - size // 2, (size, 1)).astype(float)
    y = x.T.copy()
    kernel = np.zeros((size, size), dtype=np.float32)
    sigma2 = float(fwhm * fwhm) / _FWHM_TO_SIGMA / _FWHM_TO_SIGMA
    if psfmodel == "gauss":
        kernel[:, :] = np.exp(-0.5 * (x * x + y * y) / sigma2)
    elif psfmodel == "gaussx":
        kernel[:, :] = np.exp(-0.5 * x * x / sigma2)
    elif psfmodel == "gaussy":
        kernel[:, :] = np.exp(-0.5 * y * y / sigma2)
    else:
        beta = float(np.float32(_positive(psfbeta, "psfbeta")))
        r = np.sqrt(x * x + y * y)
        alpha = float(fwhm) / 2.0 / np.sqrt(np.power(2.0, 1.0 / beta) - 1.0)
        kernel[:, :] = np.power(1.0 + r * r / alpha / alpha, -beta)
    kernel /= kernel.sum()
    return kernel


def _odd_size(value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1 or value % 2 == 0:
        raise InvalidParameterError(f"psfsize must be an odd positive integer, got {value!r}")
    return int(value)


def _float32(value):
    return np.float32(value)


def _check(image, mask, invar, gain, readnoise, sigclip, sigfrac, objlim, satlevel, niter, cleantype, fsmode):
    try:
        data = np.asarray(image, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidParameterError("image must be a 2-D array of numbers") from None
    if data.ndim != 2:
        raise InvalidParameterError(f"image must be a 2-D array, got {data.ndim} dimension(s)")
    if min(data.shape) < _MIN_SIZE:
        raise InvalidParameterError(f"image must be at least {_MIN_SIZE}x{_MIN_SIZE} pixels, got shape {data.shape}")
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != data.shape:
            raise InvalidParameterError(f"mask has shape {mask.shape}, the image has shape {data.shape}")
        mask = mask.astype(bool)
    if invar is not None:
        invar = np.asarray(invar, dtype=np.float64)
        if invar.shape != data.shape:
            raise InvalidParameterError(f"invar has shape {invar.shape}, the image has shape {data.shape}")
    for name, value in (("gain", gain), ("sigclip", sigclip), ("sigfrac", sigfrac), ("objlim", objlim)):
        _positive(value, name)
    try:
        readnoise = float(readnoise)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"readnoise must be a number >= 0, got {readnoise!r}") from None
    if not (readnoise >= 0 and np.isfinite(readnoise)):
        raise InvalidParameterError(f"readnoise must be a finite number >= 0, got {readnoise!r}")
    try:
        satlevel = float(satlevel)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"satlevel must be a number (inf: no saturation), got {satlevel!r}") from None
    if np.isnan(satlevel):
        raise InvalidParameterError("satlevel must be a number (inf: no saturation), got nan")
    if isinstance(niter, (bool, np.bool_)) or not isinstance(niter, (int, np.integer)) or niter < 1:
        raise InvalidParameterError(f"niter must be an integer >= 1, got {niter!r}")
    if cleantype not in _CLEANTYPES:
        raise InvalidParameterError(f"cleantype must be one of {', '.join(_CLEANTYPES)}; got {cleantype!r}")
    if fsmode not in _FSMODES:
        raise InvalidParameterError(f"fsmode must be one of {', '.join(_FSMODES)}; got {fsmode!r}")
    return data, mask, invar, readnoise, satlevel


def _lower_median(values):
    if values.size == 0:
        return np.float32(0.0)
    k = (values.size - 1) // 2
    return np.partition(values, k)[k]


def detect_cosmics(image, mask=None, *, gain=1.0, readnoise=6.5, sigclip=4.5, sigfrac=0.3, objlim=5.0,
                   satlevel=50000.0, niter=4, sepmed=True, cleantype="meanmask", fsmode="median",
                   psfmodel="gauss", psffwhm=2.5, psfsize=7, psfk=None, psfbeta=4.765, invar=None, star_guard=True,
                   verbose=False):
    """Detect and clean cosmic rays with L.A.Cosmic, as :func:`astroscrappy.detect_cosmics`.

    Parameters
    ----------
    image : array_like, 2-D
        The image in ADU, sky included (the noise model needs it), at least
        9x9 pixels.  Non-finite pixels are masked.
    mask : array_like of bool, optional
        True for bad pixels: never flagged, never used to clean.  As in
        astroscrappy, the mask is grown by one pixel for detection.
    gain : float
        Electrons per ADU; the detection works in electrons.
    readnoise : float
        Read noise in electrons.
    sigclip : float
        Detection limit of the Laplacian-to-noise ratio.
    sigfrac : float
        Neighbours of a cosmic ray are flagged above ``sigfrac * sigclip``.
    objlim : float
        Least contrast between the Laplacian and the fine-structure image;
        raise it if star cores are flagged.
    satlevel : float
        Saturation level in electrons (``inf``: none).  Saturated stars are
        masked and never flagged.
    niter : int
        Most iterations (stops early when one finds nothing).
    sepmed : bool
        Separable (rows then columns) median filters: faster, nearly the same.
    cleantype : {'meanmask', 'median', 'medmask', 'idw'}
        How flagged pixels are replaced: mean, median or inverse-distance
        weighted mean of the good pixels of their 5x5 neighbourhood, or the
        plain 5x5 median ('median').
    fsmode : {'median', 'convolve'}
        Fine-structure image from median filters, or from a matched filter
        with the PSF kernel.
    psfmodel : {'gauss', 'gaussx', 'gaussy', 'moffat'}
        PSF model of the kernel for ``fsmode='convolve'`` when ``psfk`` is
        None, and of the star guard.
    psffwhm, psfsize, psfbeta : float, int, float
        FWHM (pixels), size (odd) and Moffat beta of that kernel; the star
        guard uses ``psffwhm`` and ``psfbeta``: give the image's seeing.
    psfk : array_like, optional
        A PSF kernel of your own for ``fsmode='convolve'`` (used as given:
        convolved, not correlated, as in astroscrappy).
    invar : array_like, optional
        Variance of the image in ADU**2, replacing the noise model.
    star_guard : bool
        After L.A.Cosmic, test every connected group of flagged pixels
        against a star core and unflag the groups that are one (see the
        module notes).  False gives astroscrappy's mask exactly.
    verbose : bool
        Log the number of pixels flagged by each iteration (``starpix`` logger).

    Returns
    -------
    crmask : numpy.ndarray of bool
        True on cosmic-ray pixels.
    cleaned : numpy.ndarray of float
        A copy of the image (float64, or float32 for a float32 input) with the
        cosmic-ray pixels replaced.
    """
    from . import _cosmics_kernels as k

    data, user_mask, invar, readnoise, satlevel = _check(image, mask, invar, gain, readnoise, sigclip, sigfrac,
                                                         objlim, satlevel, niter, cleantype, fsmode)
    if star_guard:
        if psfmodel not in _PSFMODELS:
            raise InvalidParameterError(f"psfmodel must be one of {', '.join(_PSFMODELS)}; got {psfmodel!r}")
        _positive(psffwhm, "psffwhm")
        _positive(psfbeta, "psfbeta")
    kernel = None
    if fsmode == "convolve":
        if psfk is None:
            kernel = np.ascontiguousarray(psf_kernel(psfmodel, psffwhm, psfsize, psfbeta)[::-1, ::-1])
        else:
            kernel = np.ascontiguousarray(psfk, dtype=np.float32)
            if kernel.ndim != 2 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
                raise InvalidParameterError(f"psfk must be a 2-D kernel of odd sizes, got shape {kernel.shape}")
    log = _logger() if verbose else None

    g32 = _float32(gain)
    gain_value = float(g32)
    finite = np.isfinite(data)
    bad = ~finite if user_mask is None else (user_mask | ~finite)
    clean = np.empty(data.shape, dtype=np.float32)
    np.multiply(data, gain_value, out=clean, casting="unsafe")
    if not finite.all():
        fill = np.median(clean[finite]) if finite.any() else np.float32(0.0)
        clean[~finite] = fill
    rn32 = _float32(readnoise)
    if invar is not None:
        var = (invar * (gain_value * gain_value)).astype(np.float32)
        var[~np.isfinite(var)] = np.float32(readnoise) ** 2
    else:
        var = clean + (rn32 * rn32)
    size_noise, size_fine, size_fine_med = (7, 5, 9) if sepmed else (5, 3, 7)
    # full-size float32 work arrays, reused by every iteration
    rows = np.empty_like(clean)
    noise = np.empty_like(clean)
    s = np.empty_like(clean)
    sp = np.empty_like(clean)
    fine = np.empty_like(clean)
    fine_med = np.empty_like(clean)

    def medfilt(array, size, out):
        if sepmed:
            k.separable_median(array, size, out, rows)
        else:
            out[...] = k.full_median(array, size)
        return out

    # saturated stars and the grown user mask
    sat32 = _float32(satlevel) if np.isfinite(satlevel) else np.float32(np.inf) * np.sign(satlevel)
    saturated = (clean >= sat32) & (medfilt(clean, size_noise, fine) > float(sat32) / 10.0)
    grown = np.zeros(data.shape, dtype=np.uint8)
    k.dilate3(bad.view(np.uint8), grown)
    sat_u8 = saturated.view(np.uint8)
    tmp = np.empty_like(sat_u8)
    k.dilate5(sat_u8, tmp)
    k.dilate5(tmp, sat_u8)
    fullmask = (sat_u8 | grown).astype(bool)
    del tmp, grown, saturated
    good = ~fullmask

    background = _lower_median(clean[good])
    background_var = _lower_median(var[good])

    sigclip32 = _float32(sigclip)
    sigcliplow = _float32(sigfrac) * sigclip32
    objlim32 = _float32(objlim)
    crmask = np.zeros(data.shape, dtype=bool)
    cand = np.empty(data.shape, dtype=np.uint8)
    work = np.empty_like(cand)
    flagged = np.empty_like(cand)
    good_u8 = good.view(np.uint8)
    mask_u8 = fullmask.view(np.uint8)
    for iteration in range(niter):
        k.noise_from_variance(medfilt(var, size_noise, noise), noise)
        k.laplacian_rebin(clean, noise, s)
        s_med = medfilt(s, size_noise, sp)  # sp is written over s_med by the candidates kernel
        if fsmode == "convolve":
            inv = np.float32(1.0) / noise / noise
            numerator = np.empty_like(clean)
            k.convolve(clean / noise / noise, kernel, numerator)
            k.convolve(inv, kernel, fine)
            np.divide(numerator, fine, out=fine)
            del inv, numerator
        else:
            medfilt(clean, size_fine, fine)
        medfilt(fine, size_fine_med, fine_med)
        k.candidates(s, s_med, fine, fine_med, noise, good_u8, float(sigclip32), float(objlim32), sp, cand)
        count = k.grow(cand, sp, good_u8, float(sigclip32), float(sigcliplow), work, flagged)
        crmask |= flagged.view(bool)
        if log is not None:
            log.info("detect_cosmics: iteration %d: %d cosmic-ray pixels", iteration + 1, count)
        if count == 0:
            break
        cr_u8 = crmask.view(np.uint8)
        if cleantype == "median":
            k.clean_median(clean.copy(), cr_u8, clean)
            k.clean_median(var.copy(), cr_u8, var)
        else:
            kind = {"meanmask": 0, "medmask": 1, "idw": 2}[cleantype]
            k.clean_masked(clean, cr_u8, mask_u8, kind, _IDW_WEIGHTS, background)
            k.clean_masked(var, cr_u8, mask_u8, kind, _IDW_WEIGHTS, background_var)
    del noise, s, sp, fine, fine_med, cand, work, flagged, var

    if star_guard and crmask.any():
        groups, pixels = _star_guard(data, gain_value, crmask, fullmask, invar,
                                     float(rn32 * rn32) if invar is None else 0.0, psfmodel, psffwhm, psfbeta,
                                     float(sigclip32))
        if log is not None:
            log.info("detect_cosmics: star guard: %d groups (%d pixels) left unflagged as star cores",
                     groups, pixels)

    out_dtype = np.float32 if np.asarray(image).dtype == np.float32 else np.float64
    cleaned = np.array(image, dtype=out_dtype, copy=True)
    cleaned[crmask] = clean[crmask] / g32
    return crmask, cleaned


# star guard: the ring is the group's box grown by 2 pixels; the fitted profiles are 1 to 2.1 times as wide as the
# PSF; the prediction may be off by 1% of the star's flux; groups of more than 400 pixels in their box are kept
_GUARD_MARGIN = 2
_GUARD_SCALES = np.array([1.0, 1.2, 1.45, 1.75, 2.1])
_GUARD_TOLERANCE = 0.01
_GUARD_MIN_SNR = 5.0
_GUARD_MAX_CHI2 = 4.0
_GUARD_MAX_AREA = 400


def _star_guard(data, gain, crmask, fullmask, invar, rn2, psfmodel, psffwhm, psfbeta, thresh):
    """Unflag, in place, the flagged groups that are star cores; returns (groups, pixels) unflagged."""
    from scipy import ndimage

    from . import _cosmics_kernels as k

    labels, count = ndimage.label(crmask, np.ones((3, 3), dtype=bool))
    boxes = np.array([(sl[0].start, sl[0].stop, sl[1].start, sl[1].stop) for sl in ndimage.find_objects(labels)],
                     dtype=np.int64).reshape(-1, 4)
    fwhm = float(psffwhm)
    sigma = fwhm / _FWHM_TO_SIGMA
    beta = float(psfbeta)
    alpha = fwhm / 2.0 / np.sqrt(2.0 ** (1.0 / beta) - 1.0)
    bg_margin = _GUARD_MARGIN + max(3, int(np.ceil(2.0 * fwhm)))
    status = np.ones(count, dtype=np.int8)
    use_invar = invar is not None
    k.star_guard(data, gain, crmask.view(np.uint8), fullmask.view(np.uint8), labels, boxes,
                 invar if use_invar else np.zeros((1, 1)), use_invar, rn2, _PSFMODELS.index(psfmodel),
                 0.5 / sigma / sigma, alpha * alpha, beta, _GUARD_SCALES, _GUARD_MARGIN, bg_margin, _GUARD_TOLERANCE,
                 thresh, _GUARD_MIN_SNR, _GUARD_MAX_CHI2, _GUARD_MAX_AREA, status)
    released = status == 0
    if not released.any():
        return 0, 0
    release = np.concatenate([[False], released])[labels]
    crmask &= ~release
    return int(released.sum()), int(release.sum())


def _logger():
    import logging

    return logging.getLogger("starpix")
