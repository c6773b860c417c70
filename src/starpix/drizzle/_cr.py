"""AstroDrizzle's cosmic-ray step: the derivative of the blotted median and driz_cr's two tests.

``driz_cr(method='starpix')`` (the default) adds a starpix test to AstroDrizzle's
rule; ``method='astrodrizzle'`` is AstroDrizzle's rule alone.

Why a second test: AstroDrizzle tolerates ``|data - blot|`` up to
``driz_cr_scale x deriv`` plus the noise, ``deriv`` being the largest difference
between a blotted pixel and its four neighbours. That term absorbs the blotted
median's errors (drizzling and blotting broaden sources, and registration or
pixel-phase errors shift them), but on the steep flanks of a star it is one-sided
and several times the real slope, so a cosmic ray 2-5 pixels from a bright star
can hide under it. The blotted median is *broader* than the exposure: its
excess over the exposure is positive on the convex flanks (where the curvature
of the profile is positive) and negative only in the concave cores. Cosmic rays
add charge, so starpix also flags pixels whose *positive* residual exceeds a
tighter bound built from the smooth slope (central differences) and the concave
curvature of the blotted image, with a higher noise floor, and then pixels next
to a flag whose positive residual passes a lower bound (the faint ends of
tracks). Both rules keep AstroDrizzle's two-threshold structure with the 3x3
neighbourhood.

The curvature tolerance has to be loose at the cores of bright stars, where
the blotted median falls short of the exposure by tens of sigma, and cosmic-ray
charge on a core then stays unflagged. Most of that shortfall is the
broadening itself, ``exposure ~ blot - a laplacian(blot)`` with ``a`` about 0.15
for the square kernel and a polynomial blot; so starpix fits ``a`` by least
squares (clipped) on each exposure over the unflagged pixels of large
curvature, adds ``-a laplacian`` to the blotted image where the Laplacian is
negative (the cores: on the outer flanks the model over-corrects), and runs the
starpix test again with a fifth of the curvature tolerance (0.4 instead of 2).
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidParameterError

__all__ = ["driz_cr", "quick_deriv", "DRIZ_CR_METHODS"]

#: The cosmic-ray rules of :func:`driz_cr`.
DRIZ_CR_METHODS = ("starpix", "astrodrizzle")

# starpix test (positive residuals only): added to driz_cr_snr; the multipliers of the
# central-difference slope and of the concave curvature (the tight test uses 0.7/1.2 of
# them, as driz_cr_scale's pair); the neighbour test (noise multiple, fraction of the bound)
_SP_EXTRA_SNR = 1.5
_SP_SLOPE = 0.05
_SP_CURVATURE = 2.0
_SP_TIGHT = 0.7 / 1.2
_SP_NEIGHBOUR_SNR = 3.0
_SP_NEIGHBOUR_FRACTION = 0.3
# broadening correction of the concave cores: blot_corrected = blot - a min(laplacian(blot), 0), ``a``
# fitted per call over pixels whose |laplacian| exceeds _SP_FIT_LAPLACIAN noise (at least _SP_FIT_MIN of
# them, else no correction), clipped at _SP_FIT_CLIP robust sigma, a within [0, _SP_FIT_MAX]; the
# curvature multiplier of the bound after the correction (instead of _SP_CURVATURE)
_SP_FIT_LAPLACIAN = 10.0
_SP_FIT_MIN = 30
_SP_FIT_CLIP = 4.0
_SP_FIT_MAX = 0.5
_SP_CURVATURE_CORR = 0.4


def quick_deriv(image):
    """Absolute derivative of an image, as AstroDrizzle's ``quickDeriv.qderiv``.

    Each pixel gets the largest ``|image - neighbour|`` over its four nearest
    neighbours.  AstroDrizzle's shifts leave some neighbours unfilled, and those
    compare against 0 (so the result there is at least ``|image|``); this quirk is
    reproduced: the left neighbour is missing on the last row and on the first and
    last columns, the right one on the last row and the last two columns, the one
    below (row - 1) on the first and last rows and the last column, the one above
    (row + 1) on the last two rows and the last column.

    Parameters
    ----------
    image : 2-D array

    Returns
    -------
    numpy.ndarray
        float32 derivative image (computed in float64).
    """
    a = np.asarray(image, dtype=np.float64)
    if a.ndim != 2 or min(a.shape) < 1:
        raise InvalidParameterError(f"image must be a non-empty 2-D array, got shape {a.shape}")
    ny, nx = a.shape
    out = np.zeros_like(a)
    shifted = np.zeros_like(a)
    # (destination slice, source slice) of each of AstroDrizzle's four shifts
    shifts = (
        ((slice(0, ny - 1), slice(1, nx - 1)), (slice(0, ny - 1), slice(0, nx - 2))),
        ((slice(0, ny - 1), slice(0, nx - 2)), (slice(0, ny - 1), slice(1, nx - 1))),
        ((slice(1, ny - 1), slice(0, nx - 1)), (slice(0, ny - 2), slice(0, nx - 1))),
        ((slice(0, ny - 2), slice(0, nx - 1)), (slice(1, ny - 1), slice(0, nx - 1))),
    )
    for dst, src in shifts:
        shifted[...] = 0.0
        sd = shifted[dst]
        ss = a[src]
        if sd.size and sd.shape == ss.shape:
            shifted[dst] = ss
        np.maximum(out, np.abs(a - shifted), out=out)
    return out.astype(np.float32)


def _convolve_same(mask, kernel):
    """``scipy.signal.convolve2d(mask, kernel, mode='same', boundary='symm')`` for a small 0/1 kernel."""
    kernel = np.asarray(kernel)
    kh, kw = kernel.shape
    ny, nx = mask.shape
    m = mask.astype(np.int32)
    # full convolution index: out_full[i, j] = sum_k,l K[k, l] in[i - k, j - l]; 'same' keeps the centre
    p = np.pad(m, ((kh - 1, kh - 1), (kw - 1, kw - 1)), mode="symmetric")
    out = np.zeros((ny, nx), np.int32)
    oy, ox = (kh - 1) // 2, (kw - 1) // 2
    for k in range(kh):
        for l in range(kw):
            if kernel[k, l]:
                # in[i + oy - k, j + ox - l] lives at p[i + oy - k + kh - 1, ...]
                r0 = oy - k + kh - 1
                c0 = ox - l + kw - 1
                out += p[r0:r0 + ny, c0:c0 + nx]
    return out


def _slope_laplacian(b):
    """Central-difference gradient modulus and 4-neighbour Laplacian of ``b`` (edges repeated)."""
    p = np.pad(b, 1, mode="edge")
    left, right, down, up = p[1:-1, :-2], p[1:-1, 2:], p[:-2, 1:-1], p[2:, 1:-1]
    return 0.5 * np.hypot(right - left, up - down), left + right + down + up - 4.0 * b


def _starpix_pass(resid, bound, noise, pass1, pass2, snr1, snr2):
    """Good-pixel map of the starpix test on top of AstroDrizzle's two passes (3x3 logic, track ends)."""
    p1 = pass1 & (resid <= bound + (snr1 + _SP_EXTRA_SNR) * noise)
    p2 = pass2 & (resid <= _SP_TIGHT * bound + (snr2 + _SP_EXTRA_SNR) * noise)
    base = p2 | (_convolve_same(p1, np.ones((3, 3), np.uint8)) >= 9)
    # the faint ends of tracks: positive residuals next to a flagged pixel
    near = _convolve_same(~base, np.ones((3, 3), np.uint8)) > 0
    return base & ~(near & (resid > _SP_NEIGHBOUR_FRACTION * bound + _SP_NEIGHBOUR_SNR * noise))


def _fit_broadening(resid, laplacian, noise, use):
    """Least-squares ``a`` of ``resid ~ -a laplacian`` over ``use`` pixels with a large Laplacian, clipped.

    Returns 0 when fewer than ``_SP_FIT_MIN`` pixels qualify or the fit is negative.
    """
    sel = use & (np.abs(laplacian) > _SP_FIT_LAPLACIAN * noise)
    r, lap, sig = resid[sel], laplacian[sel], noise[sel]
    a = 0.0
    for _ in range(5):
        if r.size < _SP_FIT_MIN:
            return 0.0
        a = float(np.sum(-lap * r) / np.sum(lap * lap))
        z = (r + a * lap) / sig
        spread = 1.4826 * float(np.median(np.abs(z - np.median(z))))
        keep = np.abs(z - np.median(z)) <= _SP_FIT_CLIP * max(spread, 1.0)
        if keep.all():
            break
        r, lap, sig = r[keep], lap[keep], sig[keep]
    return min(max(a, 0.0), _SP_FIT_MAX)


def driz_cr(data, blotted, *, gain, readnoise, backg=0.0, snr=(3.5, 3.0), scale=(1.2, 0.7), grow=1, ctegrow=0,
            cte_dir=1, method="starpix", trusted=None):
    """Flag cosmic rays by comparing an exposure with the blotted median (AstroDrizzle's ``driz_cr``).

    With ``deriv = quick_deriv(blotted)``, ``t = |data - blotted|`` and ``ta =
    sqrt(gain |blotted + backg| + readnoise^2)``, a pixel fails a test when ``t >
    scale_i deriv + snr_i ta / gain``.  A pixel is a cosmic ray if it fails the
    first (loose) test, or the second (tight) test while a pixel of its 3x3
    neighbourhood (mirrored at the edges) fails the first.

    ``method='starpix'`` (a starpix addition, not in AstroDrizzle) also fails a
    pixel when its positive residual ``r = data - blotted`` exceeds ``(snr_i + 1.5)
    ta / gain + k_i (0.05 slope + 2 max(-laplacian, 0))``, with ``slope`` the
    central-difference gradient and ``laplacian`` the 4-neighbour Laplacian of
    ``blotted``, ``k_1 = 1`` and ``k_2 = 0.7 / 1.2`` (the ratio of AstroDrizzle's
    scales); then a pixel next to a cosmic ray is one too when ``r > 3 ta / gain +
    0.3 (0.05 slope + 2 max(-laplacian, 0))``.  It flags cosmic rays on the flanks
    of stars that AstroDrizzle's derivative term hides (see the module notes).
    The starpix test then runs a second time against ``blotted + a max(-laplacian,
    0)``, with ``a`` (the blotted median's broadening, between 0 and 0.5) fitted
    to the residuals of the unflagged pixels of large curvature and the
    curvature multiplier 0.4 instead of 2 (no second pass when fewer than 30
    pixels qualify).
    ``method='astrodrizzle'`` is AstroDrizzle's rule alone.  Then ``grow`` marks
    bad every pixel whose ``grow x grow`` box (a box, not a radius; 1 does
    nothing) holds a bad pixel, and ``ctegrow`` marks bad the ``ctegrow`` pixels
    along the columns from each bad pixel toward lower row indices (``cte_dir=1``)
    or higher ones (``cte_dir=-1``); ``cte_dir=0`` or ``ctegrow=0`` does nothing.

    AstroDrizzle adds the subtracted sky back into the blotted image
    (``blot_addsky``) and also passes it as ``backg``, so the sky enters the noise
    twice; pass the same values to reproduce it.

    Parameters
    ----------
    data : 2-D array
        The exposure (electrons, sky included).
    blotted : 2-D array
        The median blotted back onto the exposure (electrons, same shape).
    gain : float
        Gain (e-/DN) in the noise model (AstroDrizzle's effective gain of the
        chip); ``data`` and ``blotted`` are in electrons all the same.
    readnoise : float
        Read noise (electrons).
    backg : float
        Background added to ``blotted`` in the noise term (the subtracted sky).
    snr : (float, float)
        ``driz_cr_snr`` (default ``(3.5, 3.0)``).
    scale : (float, float)
        ``driz_cr_scale``, the multipliers of the derivative (default ``(1.2, 0.7)``).
    grow : int
        ``driz_cr_grow`` (default 1; 0 and 1 do nothing).
    ctegrow : int
        ``driz_cr_ctegrow`` (default 0).
    cte_dir : {1, -1, 0}
        Read-out direction of the CTE tails.
    method : {'starpix', 'astrodrizzle'}
        ``'starpix'`` (default): AstroDrizzle's rule plus the starpix test of
        positive residuals; ``'astrodrizzle'``: AstroDrizzle's rule alone.
    trusted : 2-D bool array, optional
        Where False, the blotted image is not trusted and the starpix test is not
        applied (AstroDrizzle's rule still is); None: trusted everywhere.

    Returns
    -------
    good : numpy.ndarray
        bool, True where the pixel is not a cosmic ray.
    cleaned : numpy.ndarray
        ``data`` where good, ``blotted`` elsewhere (AstroDrizzle's ``_crclean``), float32.
    """
    data = np.asarray(data)
    blotted = np.asarray(blotted)
    if data.ndim != 2 or min(data.shape) < 1:
        raise InvalidParameterError(f"data must be a non-empty 2-D array, got shape {data.shape}")
    if blotted.shape != data.shape:
        raise InvalidParameterError(f"blotted image has shape {blotted.shape}, data has {data.shape}")
    try:
        snr1, snr2 = (float(v) for v in snr)
        mult1, mult2 = (float(v) for v in scale)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"driz_cr_snr and driz_cr_scale must be two numbers each, got {snr!r}, "
                                    f"{scale!r}") from None
    gain = float(gain)
    if not np.isfinite(gain) or gain <= 0:
        raise InvalidParameterError(f"gain must be > 0, got {gain!r}")
    readnoise, backg = float(readnoise), float(backg)
    for name, v in (("driz_cr_grow", grow), ("driz_cr_ctegrow", ctegrow)):
        if int(v) != v or v < 0:
            raise InvalidParameterError(f"{name} must be an integer >= 0, got {v!r}")
    grow, ctegrow = int(grow), int(ctegrow)
    if cte_dir not in (1, -1, 0):
        raise InvalidParameterError(f"cte_dir must be 1, -1 or 0, got {cte_dir!r}")
    if method not in DRIZ_CR_METHODS:
        raise InvalidParameterError(f"driz_cr_method must be one of {', '.join(DRIZ_CR_METHODS)}, got {method!r}")
    if trusted is not None:
        trusted = np.asarray(trusted, dtype=bool)
        if trusted.shape != data.shape:
            raise InvalidParameterError(f"trusted mask has shape {trusted.shape}, data has {data.shape}")
    d = data.astype(np.float64)
    b = blotted.astype(np.float64)
    deriv = quick_deriv(b).astype(np.float64)
    resid = d - b
    t1 = np.abs(resid)
    noise = np.sqrt(gain * np.abs(b + backg) + readnoise * readnoise) / gain
    pass1 = t1 <= mult1 * deriv + snr1 * noise
    pass2 = t1 <= mult2 * deriv + snr2 * noise
    if method == "starpix":
        slope, laplacian = _slope_laplacian(b)
        bound = _SP_SLOPE * slope + _SP_CURVATURE * np.maximum(-laplacian, 0.0)
        if trusted is not None:
            bound[~trusted] = np.inf
        base = _starpix_pass(resid, bound, noise, pass1, pass2, snr1, snr2)
        # the blotted median is broader than the exposure: fit resid ~ -a laplacian(blot) over the pixels
        # the first pass keeps (no flag in their 3x3 box, blot trusted), then test again against the blot
        # sharpened in its concave cores (blot - a laplacian where laplacian < 0) with a smaller curvature
        # tolerance (the flanks keep the plain blot: the Laplacian model over-corrects the outer wings)
        use = _convolve_same(base, np.ones((3, 3), np.uint8)) >= 9
        if trusted is not None:
            use &= trusted
        a = _fit_broadening(resid, laplacian, noise, use)
        if a > 0:
            concave = np.maximum(-laplacian, 0.0)
            sharp = b + a * concave
            noise_c = np.sqrt(gain * np.abs(sharp + backg) + readnoise * readnoise) / gain
            bound = _SP_SLOPE * slope + _SP_CURVATURE_CORR * concave
            if trusted is not None:
                bound[~trusted] = np.inf
            base = _starpix_pass(d - sharp, bound, noise_c, pass1, pass2, snr1, snr2)
    else:
        n1 = _convolve_same(pass1, np.ones((3, 3), np.uint8))
        base = pass2 | (n1 >= 9)
    if grow > 1:
        good = base & (_convolve_same(base, np.ones((grow, grow), np.uint8)) >= grow * grow)
    else:
        good = base.copy()
    if ctegrow > 0 and cte_dir != 0:
        k = np.zeros((2 * ctegrow + 1, 2 * ctegrow + 1), np.uint8)
        if cte_dir == 1:
            k[:ctegrow, ctegrow] = 1
        else:
            k[ctegrow + 1:, ctegrow] = 1
        good &= _convolve_same(good, k) >= ctegrow  # on the grown mask, as AstroDrizzle applies them in turn
    cleaned = np.where(good, data, blotted).astype(np.float32)
    return good, cleaned
