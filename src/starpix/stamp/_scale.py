"""Scaling a PSF to a star and subtracting it (``astscript-psf-scale-factor``, ``astscript-psf-subtract``)."""

from __future__ import annotations

import math

import numpy as np

from ..errors import InvalidParameterError, NoWCSError
from ..interp import shift_image
from ..stats import gnuastro_sigma_clip
from ._unite import _as_image, elliptical_distance

__all__ = ["psf_scale_factor", "subtract_psf"]


def _resolve_center(center, mode, wcs, name="center"):
    """0-based (x, y) pixel of ``center`` in 'img' or 'wcs' mode."""
    if mode not in ("img", "wcs"):
        raise InvalidParameterError(f"mode must be 'img' or 'wcs', got {mode!r}")
    if mode == "wcs":
        if wcs is None:
            raise NoWCSError(f"{name}: mode='wcs' needs the image's WCS (wcs=...)")
        from astropy.coordinates import SkyCoord

        if isinstance(center, SkyCoord):
            x, y = wcs.world_to_pixel(center)
            center = (float(x), float(y))
        else:
            ra, dec = _two_numbers(center, name)
            x, y = wcs.all_world2pix([[ra, dec]], 0)[0]
            center = (float(x), float(y))
        if not all(math.isfinite(v) for v in center):
            raise InvalidParameterError(f"{name}: the sky position has no pixel position in this WCS")
        return center
    return _two_numbers(center, name)


def _two_numbers(value, name):
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name}: expected two numbers, got {value!r}") from None
    if not (math.isfinite(a) and math.isfinite(b)):
        raise InvalidParameterError(f"{name}: expected two finite numbers, got {value!r}")
    return a, b


def _box(image, x0, y0, nx, ny):
    """``image[y0:y0+ny, x0:x0+nx]`` as float64, NaN outside the image (reads only the box)."""
    out = np.full((ny, nx), np.nan)
    iy, ix = image.shape
    ya, yb = max(0, y0), min(iy, y0 + ny)
    xa, xb = max(0, x0), min(ix, x0 + nx)
    if ya < yb and xa < xb:
        out[ya - y0:yb - y0, xa - x0:xb - x0] = image[ya:yb, xa:xb]
    return out


def _segment_layers(segment, shape):
    """(clumps, objects) arrays of a segmentation object or mapping, checked against the image shape."""
    if isinstance(segment, dict):
        try:
            clumps, objects = segment["clumps"], segment["objects"]
        except KeyError as exc:
            raise InvalidParameterError(f"segment: the mapping has no {exc.args[0]!r} entry") from None
    else:
        clumps, objects = getattr(segment, "clumps", None), getattr(segment, "objects", None)
        if clumps is None or objects is None:
            raise InvalidParameterError("segment: expected an object with .clumps and .objects arrays "
                                        "(starpix.detect.read_segmentation) or a mapping with those keys")
    for label, layer in (("clumps", clumps), ("objects", objects)):
        if np.shape(layer) != tuple(shape):
            raise InvalidParameterError(f"segment: its {label} layer has shape {np.shape(layer)}, the image "
                                        f"{tuple(shape)}; the segmentation must be pixel-aligned with the image")
    return clumps, objects


def _round_half_up(value):
    return math.floor(value + 0.5)


def _odd_width(width, name="width"):
    """Crop's width rule: round (.5 up) and add one to an even value."""
    try:
        values = (width, width) if np.ndim(width) == 0 else tuple(width)
        values = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name}: expected a number or two numbers (nx, ny), got {width!r}") from None
    if len(values) != 2 or not all(math.isfinite(v) and v >= 1 for v in values):
        raise InvalidParameterError(f"{name}: expected one or two widths >= 1 pixel, got {width!r}")
    out = []
    for value in values:
        whole = int(value)
        whole = whole + 1 if value - whole > 0.5 else whole
        out.append(whole + 1 if whole % 2 == 0 else whole)
    return tuple(out)


def _centred_star(image, center, width, *, centering, segment):
    """The star's W x H crop (float32), masked with the segmentation and sub-pixel centred.

    The crop is the box of the requested odd width around the star's
    nearest pixel, NaN outside the image.  With ``segment``, other objects
    and the other clumps of the star's object are set to NaN (no dilation,
    as astscript-psf-scale-factor).  Centring translates the crop with
    Warp's pixel mixing so that the star lands on the central pixel; the
    edge row/column the translation uncovers is NaN.
    """
    nx, ny = width
    cx, cy = (nx - 1) // 2, (ny - 1) // 2
    x, y = center
    tx, ty = _round_half_up(x), _round_half_up(y)
    crop = _box(image, tx - cx, ty - cy, nx, ny)
    if segment is not None:
        clumps, objects = _segment_layers(segment, image.shape)
        iy, ix = image.shape
        if 0 <= tx < ix and 0 <= ty < iy:
            clab, olab = int(clumps[ty, tx]), int(objects[ty, tx])
            c = _box(clumps, tx - cx, ty - cy, nx, ny)
            o = _box(objects, tx - cx, ty - cy, nx, ny)
            with np.errstate(invalid="ignore"):
                omask = (o != olab) & (o != 0) & np.isfinite(o)
                cmask = (o == olab) & (c != clab) & (c > 0)
            crop[omask | cmask] = np.nan
    if not centering:
        return crop.astype(np.float32)
    # target pixel: Gnuastro's rule (a fraction of exactly .5 goes down), translation in [-0.5, 0.5)
    gx, gy = math.ceil(x - 0.5), math.ceil(y - 0.5)
    dx, dy = gx - x, gy - y
    if dx == 0 and dy == 0:
        return crop.astype(np.float32)
    padded = np.full((ny + 2, nx + 2), np.nan)
    padded[1:-1, 1:-1] = crop
    shifted = shift_image(padded, dx, dy)
    oy, ox = 1 + gy - ty, 1 + gx - tx
    return shifted[oy:oy + ny, ox:ox + nx].astype(np.float32)


def psf_scale_factor(image, psf, center, *, normradii, mode="img", wcs=None, width=None, segment=None,
                     sigmaclip=(3.0, 0.1), centering=True, axis_ratio=1.0, position_angle=0.0):
    """The factor that scales a PSF image to a star, as ``astscript-psf-scale-factor``.

    The star is cut out as a PSF stamp is (a box of odd width around it,
    other sources masked with the segmentation, sub-pixel centred with
    Warp's pixel mixing) but not normalized; the PSF image is cut to the
    same size around its central pixel.  The factor is the sigma-clipped
    median (Gnuastro's rule) of star / PSF over the pixels of the ring
    ``rmin <= r < rmax``.

    Parameters
    ----------
    image : array_like, 2-D
        The image holding the star (a ``numpy.memmap`` is read only around
        the star).
    psf : array_like, 2-D
        The PSF image, centred on its central pixel ``(n // 2)``.
    center : (float, float) or SkyCoord
        0-based (x, y) pixel of the star in 'img' mode; (RA, Dec) in degrees
        or a SkyCoord in 'wcs' mode.
    normradii : (float, float)
        ``(rmin, rmax)`` of the ring, in pixels; ``rmin < rmax``.
    mode : {'img', 'wcs'}
    wcs : astropy.wcs.WCS, optional
        The image's WCS, for 'wcs' mode.
    width : int or (int, int), optional
        Stamp size (nx, ny), rounded and made odd; default ``2 * rmax + 1``.
    segment : segmentation or mapping, optional
        ``.clumps`` and ``.objects`` label images pixel-aligned with
        ``image`` (Gnuastro's Segment layout): other objects and the other
        clumps of the star's object are left out.  Unlike :func:`psf_stamp`
        the clump mask is not dilated, as in the Gnuastro script.
    sigmaclip : (float, float)
        Multiple and tolerance (or number of clips) of the sigma clipping;
        Gnuastro's script default is (3, 0.1).
    centering : bool
        Sub-pixel centre the star (``--nocentering`` turns it off).
    axis_ratio, position_angle : float
        Shape of the ring (the Gnuastro script only has circles).

    Returns
    -------
    float
        The factor (float32 precision, as Gnuastro's statistic); NaN when
        no pixel of the ring has a finite ratio.
    """
    image = _as_image(image, "image")
    psf = _as_image(psf, "psf")
    rmin, rmax = _two_numbers(normradii, "normradii")
    if not 0 <= rmin < rmax:
        raise InvalidParameterError(f"normradii: expected 0 <= rmin < rmax, got {normradii!r}")
    center = _resolve_center(center, mode, wcs)
    width = _odd_width(2 * rmax + 1 if width is None else width)
    star = _centred_star(image, center, width, centering=centering, segment=segment)
    nx, ny = width
    pny, pnx = psf.shape
    model = _box(psf, pnx // 2 - (nx - 1) // 2, pny // 2 - (ny - 1) // 2, nx, ny).astype(np.float32)
    radius = elliptical_distance((ny, nx), ((nx - 1) / 2, (ny - 1) / 2), axis_ratio, position_angle)
    ring = (radius >= rmin) & (radius < rmax)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = star[ring] / model[ring]
    ratio = ratio[np.isfinite(ratio)]
    if ratio.size == 0:
        return math.nan
    return gnuastro_sigma_clip(ratio, sigmaclip)[1]


def subtract_psf(image, psf, center, scale, *, mode="img", wcs=None, model_only=False):
    """Subtract a scaled PSF placed at a star's sub-pixel position, as ``astscript-psf-subtract``.

    The PSF times ``scale`` is translated (flux-conserving pixel mixing,
    as Warp) so that its geometric centre (``(n - 1) / 2``, the central
    pixel of an odd-sized PSF) falls on ``center``; NaN PSF pixels and
    the partly covered edge of the translated PSF count as 0; the model is
    subtracted from the image.

    Parameters
    ----------
    image : array_like, 2-D
    psf : array_like, 2-D
    center : (float, float) or SkyCoord
        0-based (x, y) pixel in 'img' mode; (RA, Dec) degrees or SkyCoord in
        'wcs' mode.
    scale : float
        Flux factor of the PSF (for example from :func:`psf_scale_factor`).
    mode : {'img', 'wcs'}
    wcs : astropy.wcs.WCS, optional
        Needed in 'wcs' mode.
    model_only : bool
        Return the model star image instead of the subtracted image
        (Gnuastro's ``--modelonly``).

    Returns
    -------
    numpy.ndarray
        Image shape; float32 for float32 (or integer) images, float64 for
        float64 images.

    Notes
    -----
    Gnuastro 0.19 places the PSF half a pixel up and right of ``--center``
    (its translation is ``center - n/2`` in FITS pixels, where the PSF's
    centre is at ``(n+1)/2``); starpix puts the centre on the star, so
    ``subtract_psf(..., (x + 0.5, y + 0.5), ...)`` reproduces Gnuastro's
    ``--center`` at 0-based ``(x, y)``.
    """
    image = _as_image(image, "image")
    psf = _as_image(psf, "psf")
    if not np.isfinite(scale):
        raise InvalidParameterError(f"scale must be a finite number, got {scale!r}")
    x, y = _resolve_center(center, mode, wcs)
    dtype = np.float64 if image.dtype == np.float64 else np.float32
    pny, pnx = psf.shape
    # Gnuastro multiplies in the PSF's float32 before translating
    kind = np.float64 if psf.dtype == np.float64 else np.float32
    scaled = np.asarray(psf, dtype=kind) * kind(scale)
    # where PSF pixel 0 lands: the PSF's geometric centre goes on the star
    x0, y0 = x - (pnx - 1) / 2, y - (pny - 1) / 2
    ix, iy = math.floor(x0), math.floor(y0)
    padded = np.full((pny + 2, pnx + 2), np.nan)
    padded[1:-1, 1:-1] = scaled
    fx, fy = x0 - ix, y0 - iy
    placed = shift_image(padded, fx, fy) if (fx or fy) else padded
    placed = np.nan_to_num(placed, nan=0.0)
    # placed pixel (a, b) is image pixel (iy - 1 + a, ix - 1 + b)
    ny, nx = image.shape
    out = np.zeros((ny, nx), dtype=dtype) if model_only else np.array(image, dtype=dtype)
    ya, yb = max(0, iy - 1), min(ny, iy - 1 + pny + 2)
    xa, xb = max(0, ix - 1), min(nx, ix - 1 + pnx + 2)
    if ya < yb and xa < xb:
        part = placed[ya - (iy - 1):yb - (iy - 1), xa - (ix - 1):xb - (ix - 1)]
        if model_only:
            out[ya:yb, xa:xb] = part
        else:
            out[ya:yb, xa:xb] = out[ya:yb, xa:xb] - part
    return out
