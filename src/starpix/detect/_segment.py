"""Segmentation of an image into objects and clumps, in Gnuastro Segment's layout.

:func:`segment` finds the sky and its noise, detects sources by thresholding
a smoothed signal-to-noise image, splits every detection into objects and
every object into clumps, and returns a :class:`Segmentation`: the maps
that Gnuastro's NoiseChisel + Segment pair writes (INPUT-NO-SKY, SKY,
SKY_STD, CLUMPS, OBJECTS), with the same label conventions, so that
``psf_stamp(..., segment=...)`` and every script written for Segment's
output can use it.  :func:`read_segmentation` reads Gnuastro's own Segment
output as well.

Algorithm
---------
1. **Sky and noise.**  Sigma-clipped (3 sigma) box statistics
   (:class:`~starpix.detect.Background`, ``box_size`` boxes, median filter
   of 3 boxes, bicubic spline back to full resolution).  A first pass with
   SExtractor's mode estimator gives a crude sky; the detections it allows
   are masked (grown by 2 pixels) and a second pass with the median gives
   the final sky.  The standard deviation of 3-sigma-clipped Gaussian
   noise is 1.5 % low; the noise map is divided by that factor.
2. **Smoothed S/N.**  The sky-subtracted image is convolved with a
   Gaussian of ``kernel_fwhm`` pixels (normalized over valid pixels, so
   masked pixels and the image edge do not bias it) and divided by the
   noise of the smoothed image, ``sky_std * sqrt(sum k**2)``.
3. **Detection.**  Cores: 8-connected regions of smoothed S/N >= ``snr``
   with at least ``min_area`` pixels.  Detections: the 8-connected regions
   of smoothed S/N >= ``grow_snr`` that contain a core (hysteresis).
4. **Objects.**  Every core is one object; the rest of its detection is
   shared among the detection's objects by growing them into it, highest
   pixels first (each pixel joins its highest labelled neighbour).  Two
   sources are thus one object when their S/N stays above ``snr`` between
   them (a high saddle), and two objects when it dips below.
5. **Clumps.**  A watershed of each object's core from the local maxima of
   the smoothed S/N, highest pixels first; a local maximum whose peak rises
   less than ``clump_snr`` above the saddle to a higher clump is noise and
   is merged into it.  The highest clump of a core is kept when its peak
   is ``clump_snr`` above ``snr``.  Pixels where two kept clumps meet are
   rivers.

Labels, as Gnuastro's Segment: OBJECTS 1..N, 0 undetected; CLUMPS numbered
within each object from 1 (brightest peak first), -1 for an object's pixels
outside its clumps (its outskirts below ``snr`` and the rivers), 0
undetected.  An object may have no clump (a faint source whose peak is not
``clump_snr`` above the detection threshold), as in Gnuastro.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import FormatError, InputFileError, InvalidParameterError

__all__ = ["Segmentation", "segment", "read_segmentation", "SEGMENT_DEFAULTS"]

#: Default options of :func:`segment`.
SEGMENT_DEFAULTS = {
    "snr": 3.0,
    "grow_snr": 1.0,
    "min_area": 10,
    "clump_snr": 3.0,
    "kernel_fwhm": 2.0,
    "box_size": 64,
}

_CLIP_SIGMA = 3.0
_STRUCTURE = np.ones((3, 3), dtype=bool)
# keywords of an input header that must not be copied into the output HDUs
_DROP_KEYS = ("SIMPLE", "XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "EXTEND", "PCOUNT", "GCOUNT",
              "BSCALE", "BZERO", "BLANK", "EXTNAME", "EXTVER", "CHECKSUM", "DATASUM", "BUNIT", "NUMLABS", "CLUMPSN",
              "MEDSTD", "MINSTD", "MAXSTD")


@dataclass
class Segmentation:
    """Sky, noise, clump and object maps of one image (Gnuastro Segment's content).

    Attributes
    ----------
    input_no_sky : numpy.ndarray of float32 or None
        The image minus the sky (Segment's ``INPUT`` HDU, NoiseChisel's
        ``INPUT-NO-SKY``); None when the file has none.
    sky : numpy.ndarray of float32 or None
        The sky map (Gnuastro's Segment output has none: None when read from it).
    sky_std : numpy.ndarray of float32 or None
        The sky standard deviation map; None when the file has no SKY_STD.
    clumps : numpy.ndarray of int32
        Clump labels, numbered from 1 within each object; -1 for detected
        pixels outside clumps; 0 undetected.
    objects : numpy.ndarray of int32
        Object labels 1..N; 0 undetected.
    header : astropy.io.fits.Header, optional
        Header of the input image (its WCS keywords are written into every
        image HDU when :attr:`wcs` is None).
    wcs : astropy.wcs.WCS, optional
        Celestial WCS of the image, written into every image HDU.
    clump_snr : float, optional
        Threshold that made a clump significant (written as CLUMPSN).  For
        starpix it is the least prominence of a clump's peak in units of the
        smoothed noise; Gnuastro's CLUMPSN is its own clump S/N measure.
    options : dict
        The :func:`segment` options that produced the maps, and optionally
        ``'input'`` (the input file name); written as keywords of the
        primary HDU (SNR, GROWSNR, MINAREA, CLUMPSNR, KERNFWHM, SKYBOX, INPUT).
    """

    input_no_sky: np.ndarray | None
    sky: np.ndarray | None
    sky_std: np.ndarray | None
    clumps: np.ndarray
    objects: np.ndarray
    header: object = None
    wcs: object = None
    clump_snr: float | None = None
    options: dict = field(default_factory=dict)

    def __post_init__(self):
        self.clumps = _as_labels(self.clumps, "clumps")
        self.objects = _as_labels(self.objects, "objects")
        if self.clumps.ndim != 2:
            raise InvalidParameterError(f"clumps must be a 2-D array, got shape {self.clumps.shape}")
        shape = self.clumps.shape
        if self.objects.shape != shape:
            raise InvalidParameterError(f"objects has shape {self.objects.shape}, clumps has {shape}")
        for name in ("input_no_sky", "sky", "sky_std"):
            value = getattr(self, name)
            if value is None:
                continue
            value = np.asarray(value, dtype=np.float32)
            if value.shape != shape:
                raise InvalidParameterError(f"{name} has shape {value.shape}, clumps has {shape}")
            setattr(self, name, value)

    @property
    def shape(self):
        """Image shape ``(ny, nx)``."""
        return self.objects.shape

    @property
    def n_objects(self):
        """Number of objects (the largest object label)."""
        return int(self.objects.max(initial=0))

    @property
    def n_clumps(self):
        """Total number of clumps over all objects (Segment's NUMLABS of CLUMPS)."""
        return int(self.clumps_per_object().sum())

    def clumps_per_object(self):
        """Number of clumps of each object: array of length :attr:`n_objects`, index ``label - 1``."""
        n = self.n_objects
        inside = (self.clumps > 0) & (self.objects > 0)
        counts = np.zeros(n + 1, dtype=np.int64)
        np.maximum.at(counts, self.objects[inside], self.clumps[inside])
        return counts[1:]

    def write(self, path, overwrite=False):
        """Write the maps in Gnuastro Segment's layout, atomically.

        HDUs: 0 ``SEGMENT-CONFIG`` (no data; the options as keywords), then
        ``INPUT-NO-SKY`` (float32), ``CLUMPS`` (int32, NUMLABS, CLUMPSN),
        ``OBJECTS`` (int32, BUNIT='labels', NUMLABS), ``SKY_STD`` (float32,
        MEDSTD/MINSTD/MAXSTD) and ``SKY`` (float32); maps that are None are
        left out.  CLUMPS, OBJECTS and SKY_STD are at the positions Segment
        writes them (2, 3, 4); SKY comes last.

        Parameters
        ----------
        path : str or os.PathLike
        overwrite : bool
            Replace an existing file.

        Returns
        -------
        str
            The path written.
        """
        from astropy.io import fits

        from ..io import add_provenance, write_fits

        base = self._base_header()
        primary = fits.PrimaryHDU()
        primary.header["EXTNAME"] = "SEGMENT-CONFIG"
        for key, (value, comment) in _option_cards(self.options).items():
            primary.header[key] = (value, comment)
        add_provenance(primary.header)
        hdus = [primary]

        def image(data, name, cards=()):
            hdu = fits.ImageHDU(data, header=base.copy(), name=name)
            for key, value, comment in cards:
                hdu.header[key] = (value, comment)
            hdus.append(hdu)

        if self.input_no_sky is not None:
            image(self.input_no_sky, "INPUT-NO-SKY")
        clump_cards = [("NUMLABS", self.n_clumps, "Total number of clumps")]
        if self.clump_snr is not None:
            clump_cards.append(("CLUMPSN", float(self.clump_snr), "Minimum S/N of true clumps"))
        image(self.clumps, "CLUMPS", clump_cards)
        image(self.objects, "OBJECTS", [("BUNIT", "labels", None),
                                        ("NUMLABS", self.n_objects, "Total number of objects")])
        if self.sky_std is not None:
            finite = self.sky_std[np.isfinite(self.sky_std)]
            cards = []
            if finite.size:
                cards = [("MEDSTD", float(np.median(finite)), "Median sky standard deviation"),
                         ("MINSTD", float(finite.min()), "Minimum sky standard deviation"),
                         ("MAXSTD", float(finite.max()), "Maximum sky standard deviation")]
            image(self.sky_std, "SKY_STD", cards)
        if self.sky is not None:
            image(self.sky, "SKY")
        return write_fits(hdus, path, overwrite=overwrite)

    def _base_header(self):
        from astropy.io import fits

        if self.wcs is not None:
            return self.wcs.to_header(relax=True)
        header = fits.Header()
        if self.header is not None:
            for card in self.header.cards:
                key = card.keyword
                if key in _DROP_KEYS or key in ("", "COMMENT", "HISTORY") or key.startswith("NAXIS"):
                    continue
                header.append(card)
        return header


def _as_labels(values, name):
    arr = np.asarray(values)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise InvalidParameterError(f"{name} must hold integer labels")
    elif arr.dtype.kind not in "iub":
        raise InvalidParameterError(f"{name} must hold integer labels, got dtype {arr.dtype}")
    return arr.astype(np.int32)


def _option_cards(options):
    names = {"snr": ("SNR", "Smoothed S/N threshold of detection cores"),
             "grow_snr": ("GROWSNR", "Smoothed S/N to which detections grow"),
             "min_area": ("MINAREA", "Least area of a detection core, pixels"),
             "clump_snr": ("CLUMPSNR", "Least prominence of a clump, smoothed S/N"),
             "kernel_fwhm": ("KERNFWHM", "FWHM of the smoothing Gaussian, pixels"),
             "box_size": ("SKYBOX", "Sky box size (ny,nx), pixels"),
             "input": ("INPUT", "Input image")}
    cards = {}
    for key, value in options.items():
        if key in names:
            keyword, comment = names[key]
            if isinstance(value, tuple):
                value = ",".join(str(int(v)) for v in value)
            elif isinstance(value, str):
                value = os.path.basename(value)[:68]
            cards[keyword] = (value, comment)
    return cards


# ----------------------------------------------------------------------------------------------------------------
# reading


def read_segmentation(source):
    """Read a segmentation file: starpix's or Gnuastro Segment's output.

    HDUs are looked up by name (case-insensitive): ``CLUMPS`` and ``OBJECTS``
    are required; ``SKY_STD``, ``SKY`` and ``INPUT-NO-SKY`` (or Segment's
    ``INPUT``) are optional and None when absent.

    Parameters
    ----------
    source : str, os.PathLike or astropy.io.fits.HDUList
        The file, or an already-open HDU list (left open).

    Returns
    -------
    Segmentation
        All maps read into memory; the file is closed when a path was given.

    Raises
    ------
    InputFileError
        The file is missing or not FITS.
    FormatError
        CLUMPS or OBJECTS is missing, a map is not 2-D, or the maps differ in
        shape.
    """
    from astropy.io import fits

    from ..io import celestial_wcs, open_fits

    if isinstance(source, fits.HDUList):
        label = _hdul_name(source)
        return _read_hdul(source, label, celestial_wcs)
    if not isinstance(source, (str, os.PathLike)):
        raise InputFileError(f"read_segmentation needs a file name or an HDUList, got {type(source).__name__}")
    path = os.fspath(source)
    with open_fits(path) as hdul:
        return _read_hdul(hdul, path, celestial_wcs)


def _hdul_name(hdul):
    try:
        name = hdul.filename()
    except Exception:  # noqa: BLE001 - an in-memory list has no file
        name = None
    return name or "<HDUList>"


def _read_hdul(hdul, label, celestial_wcs):
    index = {}
    for number, hdu in enumerate(hdul):
        name = (hdu.name or "").upper()
        index.setdefault(name, number)
    present = ", ".join(hdu.name for hdu in hdul if hdu.name) or "none"
    for required in ("CLUMPS", "OBJECTS"):
        if required not in index:
            raise FormatError(f"{label}: no {required} HDU (a segmentation needs CLUMPS and OBJECTS; "
                              f"HDUs present: {present})")

    def get(name):
        if name not in index:
            return None, None
        hdu = hdul[index[name]]
        data = hdu.data
        if data is None or np.ndim(data) != 2:
            shape = None if data is None else np.shape(data)
            raise FormatError(f"{label}: HDU {name} must hold a 2-D image, got {shape}")
        return np.asarray(data), hdu.header

    clumps, _ = get("CLUMPS")
    objects, obj_header = get("OBJECTS")
    if clumps.shape != objects.shape:
        raise FormatError(f"{label}: CLUMPS has shape {clumps.shape} but OBJECTS has {objects.shape}")
    maps = {}
    header = None
    for attr, names in (("input_no_sky", ("INPUT-NO-SKY", "INPUT")), ("sky", ("SKY",)), ("sky_std", ("SKY_STD",))):
        for name in names:
            data, hdr = get(name)
            if data is None:
                continue
            if data.shape != objects.shape:
                raise FormatError(f"{label}: HDU {name} has shape {data.shape} but OBJECTS has {objects.shape}")
            maps[attr] = data.astype(np.float32)
            if attr == "input_no_sky":
                header = hdr
            break
    try:
        clumps = _as_labels(clumps, "CLUMPS")
        objects = _as_labels(objects, "OBJECTS")
    except InvalidParameterError as exc:
        raise FormatError(f"{label}: {exc}") from None
    header = (header if header is not None else obj_header).copy()
    clump_header = hdul[index["CLUMPS"]].header
    clump_snr = clump_header.get("CLUMPSN")
    wcs = celestial_wcs(header, path=label)
    return Segmentation(maps.get("input_no_sky"), maps.get("sky"), maps.get("sky_std"), clumps, objects,
                        header=header, wcs=wcs, clump_snr=None if clump_snr is None else float(clump_snr))


# ----------------------------------------------------------------------------------------------------------------
# segmentation


def _clip_bias(sigma):
    """Ratio of the converged sigma-clipped standard deviation of a Gaussian to its true sigma."""
    from scipy.special import erf

    ratio = 1.0
    for _ in range(100):
        t = sigma * ratio
        inside = erf(t / math.sqrt(2.0))
        density = math.exp(-0.5 * t * t) / math.sqrt(2.0 * math.pi)
        new = math.sqrt(1.0 - 2.0 * t * density / inside)
        if abs(new - ratio) < 1e-12:
            break
        ratio = new
    return ratio


def _gaussian_taps(fwhm):
    sigma = fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    radius = max(1, int(math.ceil(4.0 * sigma)))
    offsets = np.arange(-radius, radius + 1, dtype=float)
    taps = np.exp(-0.5 * (offsets / sigma) ** 2)
    return taps / taps.sum()


def _smooth(image, taps):
    from scipy.ndimage import correlate1d

    out = correlate1d(image, taps, axis=0, mode="constant", cval=0.0)
    return correlate1d(out, taps, axis=1, mode="constant", cval=0.0)


def _smoothed_sn(no_sky, valid, sky_std, taps):
    """S/N of the image smoothed by the separable kernel, normalized over valid pixels."""
    values = np.where(valid, no_sky, 0.0)
    if valid.all():  # the sum of k**2 over the image is separable: two 1-D passes
        from scipy.ndimage import correlate1d

        sq = taps * taps
        along_y = correlate1d(np.ones(valid.shape[0]), sq, mode="constant", cval=0.0)
        along_x = correlate1d(np.ones(valid.shape[1]), sq, mode="constant", cval=0.0)
        sum_k2 = np.outer(along_y, along_x)
    else:
        sum_k2 = _smooth(valid.astype(np.float64), taps * taps)
    smoothed = _smooth(values, taps)
    with np.errstate(invalid="ignore", divide="ignore"):
        # the weighted mean smoothed / sum(k w) has the noise std * sqrt(sum(k**2 w)) / sum(k w)
        sn = smoothed / (np.sqrt(np.maximum(sum_k2, 0.0)) * sky_std)
    good = valid & (sum_k2 > 1e-12) & np.isfinite(sn) & (sky_std > 0)
    return np.where(good, sn, 0.0)


def _detect(sn, snr, grow_snr, min_area):
    """Object seeds (cores, labels 1..N) and the detection mask."""
    from scipy.ndimage import label

    core_labels, n_core = label(sn >= snr, structure=_STRUCTURE)
    areas = np.bincount(core_labels.ravel(), minlength=n_core + 1)
    keep = areas >= min_area
    keep[0] = False
    lookup = np.zeros(n_core + 1, dtype=np.int32)
    lookup[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    seeds = lookup[core_labels]
    if grow_snr >= snr:
        return seeds, seeds > 0
    low_labels, n_low = label(sn >= grow_snr, structure=_STRUCTURE)
    kept_low = np.zeros(n_low + 1, dtype=bool)
    kept_low[low_labels[seeds > 0]] = True
    kept_low[0] = False
    return seeds, kept_low[low_labels]


def _sky(data, bad, box_size, estimator):
    from ._background import Background

    bkg = Background(data, box_size, mask=bad, sigma_clip={"sigma": _CLIP_SIGMA, "maxiters": 10},
                     bkg_estimator=estimator, exclude_percentile=50.0, filter_size=3)
    return bkg.background.astype(np.float64), bkg.background_rms.astype(np.float64) / _clip_bias(_CLIP_SIGMA)


def _check_options(snr, grow_snr, min_area, clump_snr, kernel_fwhm, box_size, shape):
    def number(value, name, low=0.0, strict=True):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise InvalidParameterError(f"{name} must be a number, got {value!r}") from None
        if not math.isfinite(value) or value < low or (strict and value == low):
            raise InvalidParameterError(f"{name} must be {'>' if strict else '>='} {low:g}, got {value!r}")
        return value

    snr = number(snr, "snr")
    grow_snr = number(grow_snr, "grow_snr", strict=False)
    if grow_snr > snr:
        raise InvalidParameterError(f"grow_snr ({grow_snr:g}) must not exceed snr ({snr:g})")
    clump_snr = number(clump_snr, "clump_snr", strict=False)
    kernel_fwhm = number(kernel_fwhm, "kernel_fwhm")
    if isinstance(min_area, bool) or not isinstance(min_area, (int, np.integer)) or min_area < 1:
        raise InvalidParameterError(f"min_area must be a positive integer, got {min_area!r}")
    sizes = np.atleast_1d(np.asarray(box_size))
    if sizes.dtype.kind not in "iu" or sizes.ndim != 1 or sizes.size not in (1, 2) or np.any(sizes < 1):
        raise InvalidParameterError(f"box_size must be one or two positive integers, got {box_size!r}")
    box = (min(int(sizes[0]), shape[0]), min(int(sizes[-1]), shape[1]))
    return snr, grow_snr, int(min_area), clump_snr, kernel_fwhm, box


def segment(image, *, mask=None, snr=SEGMENT_DEFAULTS["snr"], grow_snr=SEGMENT_DEFAULTS["grow_snr"],
            min_area=SEGMENT_DEFAULTS["min_area"], clump_snr=SEGMENT_DEFAULTS["clump_snr"],
            kernel_fwhm=SEGMENT_DEFAULTS["kernel_fwhm"], box_size=SEGMENT_DEFAULTS["box_size"],
            header=None, wcs=None):
    """Find the sky, detect sources and segment them into objects and clumps.

    See the module documentation for the algorithm.  The thresholds are in
    units of the noise of the *smoothed* image.

    Parameters
    ----------
    image : array_like
        2-D image (sky not subtracted).  NaN and inf pixels are left out.
    mask : array_like of bool, optional
        True for pixels to leave out (bad pixels): they are never detected
        and do not enter the sky estimate.
    snr : float
        Smoothed S/N threshold of detection cores (default 3).
    grow_snr : float
        Smoothed S/N down to which detections grow around their cores
        (default 1; at most ``snr``; equal to ``snr``: no growth).
    min_area : int
        Least number of pixels of a core (default 10); smaller cores are
        taken as noise.
    clump_snr : float
        Least rise of a clump's peak above the saddle to a higher clump (or,
        for the highest clump, above ``snr``), smoothed S/N (default 3).
    kernel_fwhm : float
        FWHM of the Gaussian that smooths the image, pixels (default 2, as
        NoiseChisel's kernel).
    box_size : int or (int, int)
        Box size of the sky and noise estimate, pixels (default 64, cut to
        the image size).
    header : astropy.io.fits.Header, optional
        Header of the image, kept in the result (for its WCS when written).
    wcs : astropy.wcs.WCS, optional
        Celestial WCS, kept in the result.

    Returns
    -------
    Segmentation
        ``input_no_sky`` (NaN where the image is not finite), ``sky``,
        ``sky_std`` (float32, full resolution), ``clumps`` and ``objects``
        (int32, Gnuastro Segment's label conventions).
    """
    from ._background import _image_and_mask
    from ._segment_kernels import grow_labels, persistence_clumps

    data, mask = _image_and_mask(image, mask, "image", "array")
    shape = data.shape
    snr, grow_snr, min_area, clump_snr, kernel_fwhm, box = _check_options(
        snr, grow_snr, min_area, clump_snr, kernel_fwhm, box_size, shape)
    data = data.astype(np.float64, copy=False)
    finite = np.isfinite(data)
    bad = ~finite
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != shape:
            raise InvalidParameterError(f"mask has shape {mask.shape}, image has shape {shape}")
        bad = bad | mask.astype(bool)
    if bad.all():
        raise InvalidParameterError("the image has no finite, unmasked pixel")
    valid = ~bad
    taps = _gaussian_taps(kernel_fwhm)

    # sky: a crude pass, then again with the detections it allows masked
    try:
        sky, sky_std = _sky(data, bad, box, "sextractor")
    except InvalidParameterError:
        raise InvalidParameterError(f"every sky box of box_size {box} (ny, nx) has more than half of its pixels "
                                    "masked or not finite: use a larger box_size or check the mask") from None
    sn = _smoothed_sn(data - sky, valid, sky_std, taps)
    _, detected = _detect(sn, snr, grow_snr, min_area)
    from scipy.ndimage import binary_dilation

    grown = binary_dilation(detected, structure=_STRUCTURE, iterations=2)
    try:
        sky, sky_std = _sky(data, bad | grown, box, "median")
    except InvalidParameterError:
        pass  # the detections cover too much of every box: keep the first estimate
    no_sky = data - sky
    sn = _smoothed_sn(no_sky, valid, sky_std, taps)
    seeds, detected = _detect(sn, snr, grow_snr, min_area)

    # objects: cores grown into the rest of their detection
    nx = shape[1]
    sn_flat = sn.ravel()
    objects = seeds.ravel().copy()
    low = np.flatnonzero(detected.ravel() & (objects == 0))
    low = low[np.argsort(-sn_flat[low], kind="stable")]
    grow_labels(objects, low, sn_flat, nx)

    # clumps: persistence watershed of the cores
    core = np.flatnonzero(seeds.ravel() > 0)
    core = core[np.argsort(-sn_flat[core], kind="stable")]
    lab, peak, peak_pixel, is_root = persistence_clumps(core, sn_flat, nx, clump_snr)
    roots = np.flatnonzero(is_root)
    roots = roots[peak[roots] - snr >= clump_snr]
    owner = objects[peak_pixel[roots]]
    ordering = np.lexsort((-peak[roots], owner))
    roots, owner = roots[ordering], owner[ordering]
    rank = np.arange(roots.size) - np.searchsorted(owner, owner, side="left") + 1
    number = np.zeros(peak.size, dtype=np.int32)
    number[roots] = rank
    clumps = np.where(objects > 0, -1, 0).astype(np.int32)
    core_labels = lab[core]
    core_numbers = np.where(core_labels > 0, number[np.maximum(core_labels, 0)], 0)
    inside = core_numbers > 0
    clumps[core[inside]] = core_numbers[inside]

    no_sky[~finite] = np.nan
    options = {"snr": snr, "grow_snr": grow_snr, "min_area": min_area, "clump_snr": clump_snr,
               "kernel_fwhm": kernel_fwhm, "box_size": box}
    return Segmentation(no_sky.astype(np.float32), sky.astype(np.float32), sky_std.astype(np.float32),
                        clumps.reshape(shape), objects.reshape(shape), header=header, wcs=wcs,
                        clump_snr=clump_snr, options=options)
