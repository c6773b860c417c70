"""AstroDrizzle's median step: weight masks and the combination of single-drizzled images."""

from __future__ import annotations

import numpy as np

from ..errors import InvalidParameterError
from . import _steps_kernels as _k

__all__ = ["COMBINE_TYPES", "combine_stack", "weight_masks"]

COMBINE_TYPES = ("minmed", "median", "mean", "imedian", "imean", "iminmed")

_BUFSIZE = 1024 * 1024  # AstroDrizzle's section buffer: 1 MiB per image


def weight_masks(weights, maskpt=0.3):
    """Masks of the low-weight pixels of single-drizzled images (``median_newmasks``).

    A pixel is masked (True = bad) where its weight is below ``maskpt`` times the
    mean of that weight image over its pixels with weight >= 1e-8.  A weight image
    with no such pixel masks nothing (as AstroDrizzle, whose mean then is 0).

    Parameters
    ----------
    weights : sequence of 2-D arrays or 3-D array
        The weight images of the single-drizzled exposures.
    maskpt : float
        Fraction of the mean weight below which a pixel is masked
        (AstroDrizzle's ``combine_maskpt``, default 0.3).

    Returns
    -------
    list of numpy.ndarray
        One bool array per weight image, True where masked.
    """
    maskpt = float(maskpt)
    if not np.isfinite(maskpt) or maskpt < 0:
        raise InvalidParameterError(f"combine_maskpt must be a finite number >= 0, got {maskpt!r}")
    out = []
    for i, w in enumerate(_as_list(weights, "weights")):
        w = np.asarray(w, dtype=np.float32)
        valid = w[w >= 1e-8]
        mean = float(valid.mean(dtype=np.float64)) if valid.size else 0.0
        out.append(w < np.float32(mean * maskpt))
    return out


def _as_list(images, name):
    if isinstance(images, np.ndarray):
        if images.ndim == 2:
            images = [images]
        elif images.ndim != 3:
            raise InvalidParameterError(f"{name} must be a list of 2-D arrays or a 3-D array, got shape {images.shape}")
        return list(images)
    images = list(images)
    for i, im in enumerate(images):
        if np.ndim(im) != 2:
            raise InvalidParameterError(f"{name}[{i}] must be a 2-D array, got {np.ndim(im)} dimensions")
    return images


def _per_image(value, n, name, default):
    if value is None:
        return np.full(n, default, np.float64)
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise InvalidParameterError(f"{name} must be a number or one value per image ({n}), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InvalidParameterError(f"{name} must be finite, got {arr.tolist()}")
    return arr


def _box_any(flag, grow):
    """Count of flagged pixels in the (2 grow + 1)^2 box around each pixel, zero outside the image."""
    p = np.pad(flag.astype(np.int32), grow)
    ny, nx = flag.shape
    box = 2 * grow + 1
    rows = np.zeros((ny + 2 * grow, nx), np.int32)
    for d in range(box):
        rows += p[:, d:d + nx]
    out = np.zeros((ny, nx), np.int32)
    for d in range(box):
        out += rows[d:d + ny]
    return out


def _numcombine(stack, bad, kind, nlow, nhigh, fill):
    out = np.empty(stack.shape[1:], np.float64)
    use_mask = bad is not None
    if bad is None:
        bad = np.zeros((1, 1, 1), np.uint8)
    _k.combine_kernel(stack, bad, use_mask, _k.COMBINE_KINDS[kind], int(nlow), int(nhigh), bool(fill), out)
    return out


def _minmed_section(stack, bad, wht, rn, et, bg, nsigma1, nsigma2, grow, fill):
    n = stack.shape[0]
    if n <= 2:
        median = _numcombine(stack, bad, "mean", 0, 0, fill)
    else:
        median = _numcombine(stack, bad, "median", 0, 1, fill)
        if bad is not None:
            # one unmasked image left: use its value (IRAF imcombine's nkeep=1 behaviour)
            good = bad == 0
            one = good.sum(axis=0) == 1
            median[one] = (stack * good).sum(axis=0, dtype=np.float64)[one]
    if bad is not None:
        masked = bad != 0
        allbad = masked.all(axis=0)
        minimum = np.where(masked, np.inf, stack).min(axis=0).astype(np.float64)
        minimum[allbad] = 0.0
        rn2 = ((~masked) * (rn ** 2)[:, None, None]).sum(axis=0)
    else:
        allbad = None
        minimum = stack.min(axis=0).astype(np.float64)
        rn2 = float(np.sum(rn ** 2))
    bkgd = (wht * (bg / et)[:, None, None]).sum(axis=0, dtype=np.float64)
    wsum = wht.sum(axis=0, dtype=np.float64)
    min_w = minimum * wsum
    med_w = median * wsum
    rms = np.sqrt(np.fmax(med_w + bkgd + rn2, 0.0))
    thresh = med_w - nsigma1 * rms
    if grow != 0:
        near = _box_any(min_w < thresh, grow) > 0
        thresh = np.where(near, med_w - nsigma2 * rms, thresh)
    result = np.where(min_w < thresh, minimum, median)
    if allbad is not None:
        result[allbad] = 0.0
    return result


def combine_stack(images, masks=None, *, combine_type="minmed", nsigma=(4.0, 3.0), nlow=0, nhigh=0,
                  lthresh=None, hthresh=None, grow=1, weights=None, readnoise=None, exptime=None,
                  background=None, bufsize=None):
    """Combine single-drizzled images into AstroDrizzle's median image.

    ``'median'`` / ``'mean'``: per pixel, the unmasked values (and those inside
    ``[lthresh, hthresh)``) less the ``nlow`` lowest and ``nhigh`` highest, then
    their median (mean of the two middle values for an even count) or mean; where
    ``nlow + nhigh`` would drop every unmasked value, the median lowers both until
    one is left; a pixel masked in every image is 0 (``'imedian'`` / ``'imean'``:
    the first non-zero value of the stack at that pixel instead; ``stsci.image``'s C
    code resets its fill flag after the first pixel of each row, so AstroDrizzle
    fills only column 0 — here every such pixel is filled, as documented there).

    ``'minmed'`` (AstroDrizzle's default): per pixel, the median of the unmasked
    values after dropping the highest (the mean for two images; the value itself
    where one image is unmasked) and the minimum of the unmasked values; with
    ``W`` the sum of the weights, ``rms = sqrt(median W + sum(w_i sky_i / t_i) +
    sum of the unmasked rn_i^2)``, the minimum is used where ``minimum W < median W
    - nsigma[0] rms``, or ``nsigma[1]`` where a pixel within ``grow`` (a
    ``(2 grow + 1)^2`` box) passed the first test; else the median.  Pixels masked
    in every image are 0.  ``nlow``, ``nhigh`` and the thresholds do not apply to
    minmed (as in AstroDrizzle); ``grow`` applies only to minmed.

    The stack is processed in row sections of ``bufsize`` MiB per image that
    overlap by ``2 grow`` rows, so the result equals a whole-image combination;
    as in AstroDrizzle, ``grow`` is reduced when a section (or the image) has
    fewer than ``2 grow + 1`` rows.

    Parameters
    ----------
    images : sequence of 2-D arrays or 3-D array
        The single-drizzled images (rates), all the same shape.
    masks : sequence of 2-D bool arrays, 3-D bool array or None
        True where a pixel of an image must not be used (e.g. :func:`weight_masks`).
    combine_type : {'minmed', 'median', 'mean', 'imedian', 'imean', 'iminmed'}
        Combination (AstroDrizzle's ``combine_type``).
    nsigma : (float, float)
        minmed's two significances (``combine_nsigma``, default ``(4, 3)``).
    nlow, nhigh : int
        Number of low / high values dropped per pixel (``combine_nlow``,
        ``combine_nhigh``).
    lthresh, hthresh : float or None
        Values below ``lthresh`` or at / above ``hthresh`` are not used
        (``combine_lthresh``, ``combine_hthresh``, in the units of the images).
    grow : int
        minmed's neighbourhood radius (``combine_grow``, default 1).
    weights : sequence of 2-D arrays or None
        Weight images of the single-drizzled images (minmed; about the exposure
        time where an image is fully covered).  None: each image's exposure time.
    readnoise, exptime, background : float or sequence of float or None
        Per image read noise (electrons), exposure time (s; default 1) and sky
        level (electrons per input pixel, AstroDrizzle's ``bsky``) for minmed.
    bufsize : float or None
        Section size in MiB per image (``combine_bufsize``; default 1).

    Returns
    -------
    numpy.ndarray
        float32 2-D combined image.
    """
    key = str(combine_type).lower()
    if key not in COMBINE_TYPES:
        raise InvalidParameterError(f"combine_type must be one of {', '.join(COMBINE_TYPES)}, got {combine_type!r}")
    imgs = _as_list(images, "images")
    n = len(imgs)
    if n == 0:
        raise InvalidParameterError("combine_stack needs at least one image")
    shape = np.shape(imgs[0])
    for i, im in enumerate(imgs):
        if np.shape(im) != shape:
            raise InvalidParameterError(f"images[{i}] has shape {np.shape(im)}, images[0] has {shape}")
    if min(shape) < 1:
        raise InvalidParameterError(f"images must be non-empty, got shape {shape}")
    stack = np.empty((n,) + shape, np.float32)
    for i, im in enumerate(imgs):
        stack[i] = im
    bad = None
    if masks is not None:
        mlist = _as_list(masks, "masks")
        if len(mlist) != n:
            raise InvalidParameterError(f"masks has {len(mlist)} entries for {n} images")
        bad = np.empty((n,) + shape, np.uint8)
        for i, m in enumerate(mlist):
            if np.shape(m) != shape:
                raise InvalidParameterError(f"masks[{i}] has shape {np.shape(m)}, images have {shape}")
            bad[i] = np.asarray(m, dtype=bool)
    nlow, nhigh, grow = _nonneg_int(nlow, "combine_nlow"), _nonneg_int(nhigh, "combine_nhigh"), _nonneg_int(
        grow, "combine_grow")
    try:
        nsigma1, nsigma2 = (float(v) for v in nsigma)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"combine_nsigma must be two numbers, got {nsigma!r}") from None
    fill = key.startswith("i")
    minmed = key.endswith("minmed")
    if minmed:
        et = _per_image(exptime, n, "exptime", 1.0)
        if np.any(et <= 0):
            raise InvalidParameterError(f"exptime must be > 0 for minmed, got {et.tolist()}")
        rn = _per_image(readnoise, n, "readnoise", 0.0)
        bg = _per_image(background, n, "background", 0.0)
        if weights is None:
            wht = np.broadcast_to(et.astype(np.float32)[:, None, None], stack.shape)
        else:
            wlist = _as_list(weights, "weights")
            if len(wlist) != n:
                raise InvalidParameterError(f"weights has {len(wlist)} entries for {n} images")
            wht = np.empty_like(stack)
            for i, w in enumerate(wlist):
                if np.shape(w) != shape:
                    raise InvalidParameterError(f"weights[{i}] has shape {np.shape(w)}, images have {shape}")
                wht[i] = w
    else:
        grow = 0
        if n - nlow - nhigh < 1:
            raise InvalidParameterError(
                f"combine_nlow={nlow} and combine_nhigh={nhigh} reject all of the {n} images")
        if lthresh is not None or hthresh is not None:
            thr = np.zeros(stack.shape, bool)
            if lthresh is not None:
                thr |= stack < np.float32(lthresh)
            if hthresh is not None:
                thr |= stack >= np.float32(hthresh)
            bad = thr.astype(np.uint8) if bad is None else (bad | thr).astype(np.uint8)

    ny, nx = shape
    buf = _BUFSIZE if bufsize is None else _BUFSIZE * float(bufsize)
    if not buf > 0:
        raise InvalidParameterError(f"combine_bufsize must be > 0, got {bufsize!r}")
    nrows = max(1, min(ny, int(buf / (nx * 4))))
    if nrows < 2 * grow + 1:
        grow = (nrows - 1) // 2
    overlap = 2 * grow
    step = nrows - overlap
    nsec = -(-(ny - overlap) // step)
    result = np.zeros(shape, np.float32)
    for k in range(nsec):
        e1, e2 = k * step, k * step + nrows
        u1 = 0 if k == 0 else grow
        u2 = u1 + step if k else step + grow
        if k == nsec - 1:
            e2 = min(e2, ny)
            e1 = min(e1, e2 - overlap - 1)
            e1 = max(e1, 0)
            u2 = e2 - e1
        sec = slice(e1, e2)
        sbad = None if bad is None else bad[:, sec]
        if minmed:
            res = _minmed_section(stack[:, sec], sbad, wht[:, sec], rn, et, bg, nsigma1, nsigma2, grow, fill)
        else:
            res = _numcombine(stack[:, sec], sbad, "mean" if key.endswith("mean") else "median", nlow, nhigh, fill)
        result[e1 + u1:e1 + u2] = res[u1:u2]
    return result


def _nonneg_int(value, name):
    try:
        iv = int(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name} must be an integer >= 0, got {value!r}") from None
    if iv != value or iv < 0:
        raise InvalidParameterError(f"{name} must be an integer >= 0, got {value!r}")
    return iv
