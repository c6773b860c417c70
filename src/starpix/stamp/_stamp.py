"""One normalized, sub-pixel-centred PSF stamp (Gnuastro's astscript-psf-stamp).

The steps follow Gnuastro 0.19's script (see the package documentation for
the bugs of the script that starpix fixes):

1. crop a box of odd width around the rounded centre (NaN outside the
   image);
2. with a segmentation: mask the other objects and the central object's
   other clumps (the clump mask dilated once, 4-connected);
3. with ``snthresh``: mask pixels whose ``value / SKY_STD`` is below the
   threshold (the mask dilated once, 8-connected), then the pixels no longer
   connected (8-connected) to the central pixel;
4. translate by the sub-pixel remainder with flux-conserving pixel mixing
   so the requested position falls on the central pixel;
5. divide by the normalization value: the ``normop`` of per-ring
   ``normop`` values over the integer elliptical rings ``rmin <= R < rmax``.

Deliberate differences from Gnuastro 0.19 (its bugs, fixed here): an exactly
integer centre is not shifted by one pixel; an even width at the left/bottom
edge and a stamp wider than the image are centred correctly; the
normalization rings are centred on the central pixel even when rmax reaches
half the stamp; the default centre of an odd-sized image is its middle
pixel; exact zeros stay zeros; a fully-NaN stamp has the odd width and an
undefined NORMVAL; CLABEL/OLABEL are 'none' when absent; everything is
computed in double precision (no numbers rounded through text); ``snthresh``
without ``segment`` is an error.  ``maximum`` is the true maximum (Gnuastro
0.19's MakeCatalog takes the mean of the top three clipped pixels).
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping

import numpy as np

from ..errors import FormatError, InvalidParameterError, NoWCSError
from ..interp import shift_image
from ..stats import _gnuastro_clip_params
from ._rings import elliptical_radius, ring_labels, ring_statistics

__all__ = ["psf_stamp", "NORMOPS"]

#: Accepted ``normop`` names (statistics computed per ring and over the rings).
NORMOPS = ("median", "mean", "sigclip-mean", "sigclip-median", "sigclip-std", "sigclip-number",
           "std", "maximum")

_CATALOG_CLIP = (3.0, 0.2)     # MakeCatalog's default (per-ring values)
_STATISTICS_CLIP = (3.0, 0.1)  # Statistics' default (over the ring values)


# --------------------------------------------------------------------------- parameters
def _crop_width(value, name):
    """Crop's width rule: round (halves down, as Crop's FLT_TO_INT), then make odd."""
    try:
        width = float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name}: expected a number of pixels, got {value!r}") from None
    if not (math.isfinite(width) and width >= 1):
        raise InvalidParameterError(f"{name}: a width must be a finite number >= 1 pixel, got {value!r}")
    whole = int(width)
    iw = whole + 1 if width - whole > 0.5 else whole
    return iw + 1 if iw % 2 == 0 else iw


def _parse_width(width, shape):
    """(nx, ny) of the stamp, both odd."""
    ny, nx = shape
    if width is None:
        return _crop_width(nx, "width"), _crop_width(ny, "width")
    if np.ndim(width) == 0:
        values = [width, width]
    else:
        values = list(width)
    if len(values) != 2:
        raise InvalidParameterError(f"width: expected one number or two (nx, ny), got {width!r}")
    return _crop_width(values[0], "width (x)"), _crop_width(values[1], "width (y)")


def _two_numbers(value, name):
    try:
        values = [float(v) for v in value]
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name}: expected two numbers, got {value!r}") from None
    if len(values) != 2 or not all(math.isfinite(v) for v in values):
        raise InvalidParameterError(f"{name}: expected two finite numbers, got {value!r}")
    return values


def _parse_normradii(normradii):
    if normradii is None:
        return None
    rmin, rmax = _two_numbers(normradii, "normradii")
    if not rmin < rmax:
        raise InvalidParameterError(f"normradii: the inner radius must be below the outer one, "
                                    f"got rmin={rmin:g}, rmax={rmax:g}")
    if rmax <= 0:
        raise InvalidParameterError(f"normradii: the outer radius must be positive, got {rmax:g}")
    return rmin, rmax


def _round_half_up(value):
    return int(math.floor(value + 0.5))


class _Segment:
    """The three layers of a segmentation, checked against the image shape."""

    def __init__(self, segment, shape):
        if isinstance(segment, Mapping):
            get = segment.get
        else:
            def get(key, default=None):
                return getattr(segment, key, default)
        self.clumps = get("clumps")
        self.objects = get("objects")
        self.sky_std = get("sky_std")
        for name in ("clumps", "objects"):
            layer = getattr(self, name)
            if layer is None:
                raise FormatError(f"segment: it has no {name.upper()} layer (a Segment output with "
                                  f"CLUMPS and OBJECTS is needed)")
        for name in ("clumps", "objects", "sky_std"):
            layer = getattr(self, name)
            if layer is None:
                continue
            if not hasattr(layer, "shape") or not hasattr(layer, "__getitem__"):
                layer = np.asarray(layer)
                setattr(self, name, layer)
            if tuple(layer.shape) != tuple(shape):
                raise FormatError(f"segment: its {name.upper()} layer has shape {tuple(layer.shape)}, "
                                  f"the image {tuple(shape)}; it must be pixel-aligned with the image")


# --------------------------------------------------------------------------- masks
def _dilate(mask, connectivity):
    """One binary dilation (4- or 8-connected) inside the array; nothing grows in from outside."""
    out = mask.copy()
    out[1:, :] |= mask[:-1, :]
    out[:-1, :] |= mask[1:, :]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    if connectivity == 8:
        out[1:, 1:] |= mask[:-1, :-1]
        out[1:, :-1] |= mask[:-1, 1:]
        out[:-1, 1:] |= mask[1:, :-1]
        out[:-1, :-1] |= mask[1:, 1:]
    return out


def _segment_mask(objects, clumps, olab, clab):
    """Pixels to mask (inside the image part of the box): other objects, other clumps dilated."""
    objects = np.asarray(objects)
    clumps = np.asarray(clumps)
    other_clumps = (clumps > 0) & (objects == olab) & (clumps != clab)
    cmask = _dilate(other_clumps, 4)
    omask = (objects != olab) & (objects != 0)
    return omask | cmask


def _keep_connected(finite, cy, cx):
    """Pixels of ``finite`` in the 8-connected region that holds (cy, cx)."""
    from scipy import ndimage

    if not (0 <= cy < finite.shape[0] and 0 <= cx < finite.shape[1]) or not finite[cy, cx]:
        return np.zeros_like(finite)
    labels, _ = ndimage.label(finite, structure=np.ones((3, 3), dtype=bool))
    return labels == labels[cy, cx]


# --------------------------------------------------------------------------- normalization
def _normalization(stamp, normradii, normop, axis_ratio, position_angle, sigmaclip):
    """normop over the per-ring normop values of the rings rmin <= R < rmax (NaN if none)."""
    rmin, rmax = normradii
    ny, nx = stamp.shape
    hy, hx = (ny - 1) // 2, (nx - 1) // 2
    # rings k with rmin <= k < rmax; their pixels have r < kmax + 1, so lie within (kmax + 1) * max(1, q)
    # pixels of the centre
    kmin = max(int(math.ceil(rmin)), 0)
    kmax = int(math.ceil(rmax)) - 1
    if kmax < kmin:
        return math.nan
    reach = int(math.ceil((kmax + 1) * max(axis_ratio, 1.0))) + 1
    y0, y1 = max(hy - reach, 0), min(hy + reach + 1, ny)
    x0, x1 = max(hx - reach, 0), min(hx + reach + 1, nx)
    sub = stamp[y0:y1, x0:x1]
    radius = elliptical_radius(sub.shape, (hx - x0, hy - y0), axis_ratio, position_angle)
    rings = ring_labels(radius, kmax + 1)
    rings[rings < kmin] = -1
    clip = _CATALOG_CLIP if sigmaclip is None else sigmaclip
    per_ring = ring_statistics(sub, rings, kmax + 1, (normop,), clip)[normop][kmin:]
    per_ring = per_ring[np.isfinite(per_ring)]
    if per_ring.size == 0:
        return math.nan
    clip = _STATISTICS_CLIP if sigmaclip is None else sigmaclip
    value = ring_statistics(per_ring, np.zeros(per_ring.size, dtype=np.int64), 1, (normop,), clip)[normop][0]
    return float(value)


# --------------------------------------------------------------------------- header
_WCS_CARDS = {}  # id(wcs) -> (weak reference, fingerprint, cards of the unshifted WCS)


def _wcs_fingerprint(wcs):
    core = wcs.wcs
    matrix = core.cd if core.has_cd() else (core.get_pc(), tuple(core.get_cdelt()))
    sip = None if wcs.sip is None else (wcs.sip.a.tobytes(), wcs.sip.b.tobytes(), tuple(wcs.sip.crpix))
    return (tuple(core.crpix), tuple(core.crval), tuple(core.ctype), np.asarray(matrix[0]).tobytes(),
            str(matrix[1:]), sip)


def _shifted_wcs_cards(wcs, origin, shape):
    """WCS cards of a sub-image whose pixel (0, 0) is ``origin`` of the image.

    A WCS without lookup-table distortions is turned into header cards once
    (cached while the WCS object lives and is unchanged); the shift moves
    CRPIX only, which moves SIP with it.  Other WCSs go through
    :func:`starpix.geometry.shift_wcs`.
    """
    import weakref

    from astropy.io import fits

    if any(getattr(wcs, name) is not None for name in ("cpdis1", "cpdis2", "det2im1", "det2im2")):
        from ..geometry import shift_wcs

        return list(shift_wcs(wcs, origin[0], origin[1], shape).to_header(relax=True).cards)
    key = id(wcs)
    fingerprint = _wcs_fingerprint(wcs)
    entry = _WCS_CARDS.get(key)
    if entry is None or entry[0]() is not wcs or entry[1] != fingerprint:
        header = wcs.to_header(relax=True)
        entry = (weakref.ref(wcs, lambda _ref, key=key: _WCS_CARDS.pop(key, None)), fingerprint,
                 [card.image for card in header.cards])
        _WCS_CARDS[key] = entry
    crpix = wcs.wcs.crpix
    cards = []
    for image in entry[2]:
        keyword = image[:8].rstrip()
        if keyword in ("CRPIX1", "CRPIX2"):
            axis = int(keyword[-1]) - 1
            cards.append(fits.Card(keyword, float(crpix[axis] - origin[axis]),
                                   "Pixel coordinate of reference point"))
        else:
            cards.append(fits.Card.fromstring(image))
    return cards


# keywords of a FITS WCS that depend on nothing but the reference pixel (all with an optional alternate letter)
_WCS_KEYWORD = re.compile(r"^(WCSAXES|CRPIX\d|CRVAL\d|CTYPE\d|CUNIT\d|CDELT\d|CROTA\d|CD\d_\d|PC\d_\d|PV\d_\d+|"
                          r"PS\d_\d+|LONPOLE|LATPOLE|RADESYS|RADECSYS|EQUINOX|EPOCH|WCSNAME|MJDREF|"
                          r"[AB]P?_ORDER|[AB]P?_\d+_\d+|[AB]_DMAX)[A-Z]?$")
_CRPIX = re.compile(r"^CRPIX([12])([A-Z]?)$")
# distortions tied to absolute pixel positions, which moving CRPIX does not move
_PIXEL_TIED = re.compile(r"^(CPDIS\d|D2IMDIS\d|CPERR\d|D2IMERR\d|DP\d|D2IM\d|WAT\d_\d+)")


def _header_wcs_cards(header, origin):
    """WCS cards of ``header`` for a sub-image whose pixel (0, 0) is ``origin``, without astropy.wcs.

    Moving CRPIX is the whole change for any WCS expressed relative to the
    reference pixel (linear, SIP, TPV, ...).  Returns an empty list for a
    header without a celestial WCS, and None where moving CRPIX is not enough
    (lookup-table distortions, table coordinates, more axes), so the caller
    goes through astropy.
    """
    ctypes = [str(header.get(f"CTYPE{axis}", "")) for axis in (1, 2)]
    if not any("-" in ctype for ctype in ctypes) and "CTYPE3" not in header:
        return []
    if not all("-" in ctype for ctype in ctypes) or any(ctype.endswith("-TAB") for ctype in ctypes):
        return None
    if header.get("WCSAXES", header.get("NAXIS", 2)) != 2:
        return None
    cards = []
    for card in header.cards:
        keyword = card.keyword
        if _PIXEL_TIED.match(keyword):
            return None
        if not _WCS_KEYWORD.match(keyword):
            continue
        crpix = _CRPIX.match(keyword)
        if crpix:
            cards.append((keyword, float(card.value) - origin[int(crpix.group(1)) - 1], card.comment))
        else:
            cards.append((keyword, card.value, card.comment))
    return cards


def _stamp_cards(wcs, origin, shape, normval, clabel, olabel, center_xy, header=None):
    """The stamp's header cards: (keyword, value, comment) tuples (value None: undefined), or astropy
    Cards for a WCS given as an astropy WCS; no astropy import unless ``wcs`` is given."""
    from .._version import __version__

    cards = []
    if wcs is not None:
        cards.extend(_shifted_wcs_cards(wcs, origin, shape))
    elif header is not None:
        cards.extend(_header_wcs_cards(header, origin) or [])
    cards += [("NORMVAL", normval if math.isfinite(normval) else None, "Normalization value"),
              ("CLABEL", clabel, "CLUMP label that was not masked"),
              ("OLABEL", olabel, "OBJECT label that was not masked"),
              ("STAMPX", float(center_xy[0]), "stamp centre: x in the input image (0-based)"),
              ("STAMPY", float(center_xy[1]), "stamp centre: y in the input image (0-based)"),
              ("STARPIX", __version__, "starpix version that wrote this file")]
    return cards


def _cards_header(cards):
    """An astropy Header of :func:`_stamp_cards`' cards (None values undefined)."""
    from astropy.io import fits

    return fits.Header([card if isinstance(card, fits.Card) or card[1] is not None
                        else (card[0], fits.card.UNDEFINED, card[2]) for card in cards])


def _resolve_wcs(wcs, header):
    if wcs is not None or header is None:
        return wcs
    import warnings

    from astropy.wcs import WCS, FITSFixedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            candidate = WCS(header, relax=True)
        except Exception:  # noqa: BLE001 - astropy raises many types here
            return None
    if candidate.has_celestial and candidate.naxis == 2:
        return candidate
    return None


def _center_pixel(center, mode, wcs, shape):
    ny, nx = shape
    if center is None:
        # the image's central pixel (for an even size, the first pixel right/above the middle)
        return float(nx // 2), float(ny // 2)
    if mode == "img":
        # a SkyCoord can only exist if astropy.coordinates was imported: do not import it for pixel centres
        coordinates = sys.modules.get("astropy.coordinates")
        if coordinates is not None and isinstance(center, coordinates.SkyCoord):
            raise InvalidParameterError("center: a SkyCoord needs mode='wcs'")
        x, y = _two_numbers(center, "center")
        return x, y
    from astropy.coordinates import SkyCoord

    if wcs is None:
        raise NoWCSError("center: mode='wcs' needs the image's celestial WCS (give wcs= or header=)")
    if not isinstance(center, SkyCoord):
        ra, dec = _two_numbers(center, "center")
        center = SkyCoord(ra, dec, unit="deg", frame="icrs")
    from ..geometry import resolve_center

    (x, y), _ = resolve_center(center, wcs, where="image")
    return x, y


# --------------------------------------------------------------------------- main
def psf_stamp(image, center=None, *, mode="img", width=None, normradii=None, segment=None, snthresh=None,
              normop="median", axis_ratio=1.0, position_angle=0.0, sigmaclip=None, centering=True,
              wcs=None, header=None):
    """A normalized, sub-pixel-centred stamp of one star, as Gnuastro's astscript-psf-stamp.

    Parameters
    ----------
    image : array_like, 2-D
        The (sky-subtracted) image, any numeric type; a memory map is read
        only inside the stamp's box.
    center : (float, float), SkyCoord or None
        ``(x, y)`` 0-based pixel in ``mode='img'``; ``(ra, dec)`` in degrees
        (ICRS) or a SkyCoord in ``mode='wcs'``.  None: the image's central
        pixel (``(nx // 2, ny // 2)``).
    mode : {'img', 'wcs'}
        How to read ``center``.
    width : int, (int, int) or None
        Stamp width, or ``(nx, ny)``, in pixels; rounded and made odd as
        Gnuastro's Crop does (150 gives 151).  None: the image size (made
        odd).
    normradii : (float, float), optional
        ``(rmin, rmax)``: normalize by the rings ``rmin <= R < rmax``.
        Without it the stamp is not normalized (NORMVAL = 1).
    segment : object or mapping, optional
        Segmentation pixel-aligned with the image, with ``clumps`` and
        ``objects`` (Gnuastro's layout: clump labels per object) and, for
        ``snthresh``, ``sky_std``.  The other objects and the central
        object's other clumps (grown by one pixel) are masked.
    snthresh : float, optional
        Mask the pixels with ``value / sky_std`` below this signal-to-noise
        ratio (the mask grown by one pixel, 8-connected), and then every
        pixel no longer connected to the central pixel.  Needs ``segment``.
    normop : str
        One of :data:`NORMOPS`: the statistic per ring and over the rings.
    axis_ratio, position_angle : float
        Axis ratio (minor/major, > 0) and position angle (degrees,
        counter-clockwise from +x) of the elliptical rings.
    sigmaclip : (float, float), optional
        Gnuastro sigma-clip ``(multiple, tolerance or number of clips)`` for
        both stages; default (3, 0.2) per ring and (3, 0.1) over the rings.
    centering : bool
        Translate the stamp so that ``center`` falls on its central pixel
        (flux-conserving pixel mixing; NaN regions grow by one pixel in the
        direction of the shift, and one edge row/column per shifted axis is
        NaN).  False: the box around the rounded centre, unshifted.
    wcs : astropy.wcs.WCS, optional
        The image's celestial WCS (for wcs mode and the stamp's WCS).
    header : astropy.io.fits.Header, optional
        The image's header, used for the WCS when ``wcs`` is not given.

    Returns
    -------
    stamp : numpy.ndarray
        float32 ``(ny, nx)``, both odd; all NaN where the box misses the
        image or the normalization value is NaN.
    header : astropy.io.fits.Header
        The stamp's WCS (when known; its central pixel maps to ``center``
        when centring), ``NORMVAL`` (undefined when NaN), ``CLABEL`` and
        ``OLABEL`` (the string 'none' without a segmentation or label),
        ``STAMPX``/``STAMPY`` (the 0-based centre used) and ``STARPIX``.
    """
    stamp, cards = _psf_stamp_cards(
        image, center, mode=mode, width=width, normradii=normradii, segment=segment, snthresh=snthresh,
        normop=normop, axis_ratio=axis_ratio, position_angle=position_angle, sigmaclip=sigmaclip,
        centering=centering, wcs=wcs, header=header)
    return stamp, _cards_header(cards)


def _psf_stamp_cards(image, center=None, *, mode="img", width=None, normradii=None, segment=None,
                     snthresh=None, normop="median", axis_ratio=1.0, position_angle=0.0, sigmaclip=None,
                     centering=True, wcs=None, header=None):
    """:func:`psf_stamp` with the header as a list of cards (see :func:`_stamp_cards`).

    Without ``wcs`` (and in img mode) nothing of astropy is imported; ``header``
    may then be any object with astropy Header's ``get``, ``in`` and ``cards``
    (such as :class:`starpix._fitsread.Header`).
    """
    array = image if hasattr(image, "shape") and hasattr(image, "dtype") else np.asarray(image)
    if array.ndim != 2:
        raise InvalidParameterError(f"image: expected a 2-D image, got {array.ndim} dimension(s)")
    shape = tuple(int(n) for n in array.shape)
    if mode not in ("img", "wcs"):
        raise InvalidParameterError(f"mode: expected 'img' or 'wcs', got {mode!r}")
    if normop not in NORMOPS:
        raise InvalidParameterError(f"normop: expected one of {', '.join(NORMOPS)}, got {normop!r}")
    nx, ny = _parse_width(width, shape)
    norm = _parse_normradii(normradii)
    try:
        axis_ratio = float(axis_ratio)
        position_angle = float(position_angle)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"axis_ratio/position_angle: expected numbers, got "
                                    f"{axis_ratio!r}, {position_angle!r}") from None
    if not (math.isfinite(axis_ratio) and axis_ratio > 0):
        raise InvalidParameterError(f"axis_ratio: expected a positive number, got {axis_ratio!r}")
    if not math.isfinite(position_angle):
        raise InvalidParameterError(f"position_angle: expected a finite number, got {position_angle!r}")
    if sigmaclip is not None:
        sigmaclip = _gnuastro_clip_params(sigmaclip)
    if snthresh is not None:
        if segment is None:
            raise InvalidParameterError("snthresh: the S/N threshold needs a segmentation (segment=) "
                                        "for its SKY_STD layer")
        try:
            snthresh = float(snthresh)
        except (TypeError, ValueError):
            raise InvalidParameterError(f"snthresh: expected a number, got {snthresh!r}") from None
        if not math.isfinite(snthresh):
            raise InvalidParameterError(f"snthresh: expected a finite number, got {snthresh!r}")
    seg = _Segment(segment, shape) if segment is not None else None
    if seg is not None and snthresh is not None and seg.sky_std is None:
        raise FormatError("segment: snthresh needs its SKY_STD layer, and it has none")
    wcs_header = None
    if mode == "img" and wcs is None and header is not None and _header_wcs_cards(header, (0.0, 0.0)) is not None:
        wcs_header = header  # the stamp's WCS is the header's with CRPIX moved: no astropy.wcs needed
    else:
        wcs = _resolve_wcs(wcs, header)
    xc, yc = _center_pixel(center, mode, wcs, shape)

    hx, hy = (nx - 1) // 2, (ny - 1) // 2
    tx, ty = _round_half_up(xc), _round_half_up(yc)
    bx0, by0 = tx - hx, ty - hy                      # box origin in the image
    ix0, ix1 = max(bx0, 0), min(bx0 + nx, shape[1])  # overlap with the image
    iy0, iy1 = max(by0, 0), min(by0 + ny, shape[0])
    clabel = olabel = "none"
    if centering:
        dx, dy = tx - xc, ty - yc                    # in [-0.5, 0.5]
        origin = (xc - hx, yc - hy)
    else:
        dx = dy = 0.0
        origin = (float(bx0), float(by0))

    if ix0 >= ix1 or iy0 >= iy1:
        stamp = np.full((ny, nx), np.nan, dtype=np.float32)
        return stamp, _stamp_cards(wcs, origin, (ny, nx), math.nan, clabel, olabel, (xc, yc), wcs_header)

    box = np.full((ny, nx), np.nan)
    inner = (slice(iy0 - by0, iy1 - by0), slice(ix0 - bx0, ix1 - bx0))
    outer = (slice(iy0, iy1), slice(ix0, ix1))
    box[inner] = array[outer]
    view = box[inner]

    if seg is not None:
        if 0 <= tx < shape[1] and 0 <= ty < shape[0]:
            clabel = int(seg.clumps[ty, tx])
            olabel = int(seg.objects[ty, tx])
            view[_segment_mask(seg.objects[outer], seg.clumps[outer], olabel, clabel)] = np.nan
        if snthresh is not None:
            std = np.asarray(seg.sky_std[outer], dtype=np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                low = view / std < snthresh
            view[_dilate(low, 8)] = np.nan
            finite = np.isfinite(box)
            box[~_keep_connected(finite, hy, hx)] = np.nan

    stamp = shift_image(box, dx, dy) if (dx != 0.0 or dy != 0.0) else box

    normval = 1.0
    if norm is not None:
        normval = _normalization(stamp, norm, normop, axis_ratio, position_angle, sigmaclip)
    with np.errstate(invalid="ignore"):
        out = (stamp / normval).astype(np.float32) if math.isfinite(normval) else \
            np.full((ny, nx), np.nan, dtype=np.float32)
    return out, _stamp_cards(wcs, origin, (ny, nx), normval, clabel, olabel, (xc, yc), wcs_header)
