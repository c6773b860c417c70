"""AstroDrizzle's pipeline for any imager: static mask, sky, separate drizzle, median, blot,
cosmic rays, final drizzle.

:func:`astrodrizzle` takes FITS files with a celestial WCS and an exposure time
(optionally ERR and DQ extensions, several chips per file) and runs the seven
steps with AstroDrizzle's parameter names, meanings and defaults. Work per
exposure (separate drizzle, blot, driz_cr) runs through
:mod:`starpix.parallel`: its job functions get file names and small records,
and read the pixels themselves.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import FormatError, InputFileError, InvalidParameterError, NoOverlapError, StarpixError
from . import _inputs
from ._bits import good_pixel_mask, interpret_bit_flags
from ._blot import BLOT_INTERPOLATIONS
from ._drizzle import KERNELS
from ._outputs import ProductNames, plot_final, write_image, write_runfile

__all__ = ["astrodrizzle", "DrizzleResult", "PARAMETERS", "STEPS"]

log = logging.getLogger("starpix.drizzle")

#: The steps, in order, with the parameter that switches each.
STEPS = (("static mask", "static"), ("sky", "skysub"), ("separate drizzle", "driz_separate"),
         ("median", "median"), ("blot", "blot"), ("driz_cr", "driz_cr"), ("final drizzle", "driz_combine"))

#: Every parameter with its default (AstroDrizzle's where it has one).
PARAMETERS = {
    # general
    "build": True, "in_memory": False, "clean": False, "num_cores": None, "stepsize": 10, "resetbits": 4096,
    "runfile": True, "plot": None, "overwrite": False,
    # instrument
    "gain": None, "gnkeyword": "GAIN", "rdnoise": None, "rnkeyword": "RDNOISE", "exptime": None,
    "expkeyword": "EXPTIME",
    # 1 static mask
    "static": True, "static_sig": 4.0, "static_min_exposures": 2,
    # 2 sky
    "skysub": True, "skymethod": "localmin", "skystat": "median", "skywidth": 0.1, "skylower": None,
    "skyupper": None, "skyclip": 5, "skylsigma": 4.0, "skyusigma": 4.0, "skyuser": "", "skyfile": "",
    "sky_bits": 0, "skymask_cat": "", "use_static": True,
    # 3 separate drizzle
    "driz_separate": True, "driz_sep_kernel": "turbo", "driz_sep_wt_scl": "exptime", "driz_sep_pixfrac": 1.0,
    "driz_sep_fillval": None, "driz_sep_bits": 0, "driz_sep_wcs": False, "driz_sep_refimage": "",
    "driz_sep_rot": None, "driz_sep_scale": None, "driz_sep_outnx": None, "driz_sep_outny": None,
    "driz_sep_ra": None, "driz_sep_dec": None,
    # 4 median
    "median": True, "median_newmasks": True, "combine_maskpt": 0.3, "combine_type": "minmed",
    "combine_nsigma": "4 3", "combine_nlow": 0, "combine_nhigh": 0, "combine_lthresh": None,
    "combine_hthresh": None, "combine_grow": 1, "combine_bufsize": None,
    # 5 blot
    "blot": True, "blot_interp": "poly5", "blot_sinscl": 1.0, "blot_addsky": True, "blot_skyval": 0.0,
    # 6 driz_cr
    "driz_cr": True, "driz_cr_corr": False, "driz_cr_snr": "3.5 3.0", "driz_cr_grow": 1, "driz_cr_ctegrow": 0,
    "driz_cr_scale": "1.2 0.7", "crbit": 4096, "driz_cr_method": "starpix",
    # 7 final drizzle
    "driz_combine": True, "final_wht_type": "EXP", "final_kernel": "square", "final_wt_scl": "exptime",
    "final_pixfrac": 1.0, "final_fillval": None, "final_bits": 0, "final_units": "cps", "final_wcs": False,
    "final_refimage": "", "final_rot": 0.0, "final_scale": None, "final_outnx": None, "final_outny": None,
    "final_ra": None, "final_dec": None,
}


@dataclass
class DrizzleResult:
    """What :func:`astrodrizzle` made and learnt.

    Attributes
    ----------
    sci, wht : numpy.ndarray or None
        Final image (e-/s, or e- with ``final_units='counts'``) and weight; None
        without ``driz_combine``.
    ctx : numpy.ndarray or None
        Context ``(nplanes, ny, nx)`` int32: bit ``k % 32`` of plane ``k // 32``
        for the k-th chip (files in order, chips in order).
    wcs : astropy.wcs.WCS
        The final grid (the separate grid without ``driz_combine``).
    header : astropy.io.fits.Header or None
        Header of the final SCI image (WCS, units, exposure times, MDRIZSKY
        per input); None without ``driz_combine``.
    inputs : list of str
        The input files, in order.
    sky : list of float
        Per exposure, the sky subtracted (input data units per pixel of its
        first chip: AstroDrizzle's MDRIZSKY).
    crmasks : list of list of numpy.ndarray
        Per exposure and chip, True where driz_cr flagged a cosmic ray (None
        without ``driz_cr``).
    dq : list of list of numpy.ndarray
        Per exposure and chip, a copy of the DQ array after ``resetbits`` with
        ``crbit`` set on the cosmic rays (None for chips without DQ).
    static_masks : dict
        Per chip EXTVER, the static mask (True = bad).
    median : numpy.ndarray or None
        The median image (e-/s), when made.
    files : dict
        The files written, by kind.
    timings : dict
        Seconds per step.
    params : dict
        Every parameter as used.
    """

    sci: np.ndarray | None = None
    wht: np.ndarray | None = None
    ctx: np.ndarray | None = None
    wcs: object = None
    header: object = None
    inputs: list = field(default_factory=list)
    sky: list = field(default_factory=list)
    crmasks: list | None = None
    dq: list = field(default_factory=list)
    static_masks: dict = field(default_factory=dict)
    median: np.ndarray | None = None
    files: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- parameters
def _pair(value, name):
    if isinstance(value, str):
        parts = value.replace(",", " ").split()
    else:
        try:
            parts = list(value)
        except TypeError:
            parts = [value]
    try:
        nums = [float(p) for p in parts]
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name}: expected two numbers such as '4 3', got {value!r}") from None
    if len(nums) == 1:
        nums = nums * 2
    if len(nums) != 2 or not all(math.isfinite(v) for v in nums):
        raise InvalidParameterError(f"{name}: expected two numbers such as '4 3', got {value!r}")
    return tuple(nums)


def _opt_float(p, name, positive=False):
    value = p[name]
    if value is None or (isinstance(value, str) and value.strip().upper() in ("", "NONE", "INDEF")):
        p[name] = None
        return
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name}: expected a number, got {p[name]!r}") from None
    if not math.isfinite(value) or (positive and value <= 0):
        raise InvalidParameterError(f"{name}: expected a {'positive ' if positive else ''}number, got {p[name]!r}")
    p[name] = value


def _number(p, name, *, low=None, high=None, integer=False, low_open=False):
    value = p[name]
    try:
        if isinstance(value, bool):
            raise TypeError
        value = int(value) if integer and float(value) == int(float(value)) else float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name}: expected a number, got {p[name]!r}") from None
    if integer and not isinstance(value, int):
        raise InvalidParameterError(f"{name}: expected an integer, got {p[name]!r}")
    if not math.isfinite(value) or (low is not None and (value <= low if low_open else value < low)) or (
            high is not None and value > high):
        rng = f"{'>' if low_open else '>='} {low}" if low is not None else ""
        rng += f"{', ' if rng else ''}<= {high}" if high is not None else ""
        raise InvalidParameterError(f"{name}: must be {rng}, got {p[name]!r}")
    p[name] = value


def _choice(p, name, choices, *, upper=False):
    value = str(p[name]).strip()
    value = value.upper() if upper else value.lower()
    if value not in choices:
        raise InvalidParameterError(f"{name}: must be one of {', '.join(choices)}, got {p[name]!r}")
    p[name] = value


def _wt_scl(p, name):
    value = p[name]
    if isinstance(value, str) and value.strip().lower() in ("exptime", "expsq"):
        p[name] = value.strip().lower()
        return
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name}: must be 'exptime', 'expsq' or a positive number, got {value!r}") \
            from None
    if not (math.isfinite(number) and number > 0):
        raise InvalidParameterError(f"{name}: must be 'exptime', 'expsq' or a positive number, got {value!r}")
    p[name] = number


def _check_params(params):
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise InvalidParameterError(f"unknown parameter(s): {', '.join(unknown)} (see starpix.drizzle.PARAMETERS)")
    p = dict(PARAMETERS)
    p.update(params)
    for name in ("build", "in_memory", "clean", "overwrite", "static", "skysub", "use_static", "driz_separate",
                 "driz_sep_wcs", "median", "median_newmasks", "blot", "blot_addsky", "driz_cr", "driz_cr_corr",
                 "driz_combine", "final_wcs"):
        if not isinstance(p[name], (bool, np.bool_)):
            raise InvalidParameterError(f"{name}: expected True or False, got {p[name]!r}")
        p[name] = bool(p[name])
    _number(p, "static_sig", low=0, low_open=True)
    _number(p, "static_min_exposures", low=1, integer=True)
    _number(p, "stepsize", low=1, integer=True)
    for name in ("resetbits", "crbit"):
        _number(p, name, low=0, integer=True)
    if p["crbit"] and p["crbit"] & (p["crbit"] - 1):
        raise InvalidParameterError(f"crbit: must be a power of two (one DQ bit) or 0, got {p['crbit']}")
    if p["num_cores"] is not None:
        _number(p, "num_cores", low=1, integer=True)
    for name in ("gain", "rdnoise", "exptime"):
        _opt_float(p, name, positive=(name != "rdnoise"))
    from ._sky import SKY_METHODS, SKY_STATISTICS

    _choice(p, "skymethod", SKY_METHODS)
    _choice(p, "skystat", SKY_STATISTICS)
    _number(p, "skywidth", low=0, low_open=True)
    _number(p, "skyclip", low=0, integer=True)
    for name in ("skylsigma", "skyusigma"):
        _number(p, name, low=0, low_open=True)
    for name in ("skylower", "skyupper", "combine_lthresh", "combine_hthresh", "driz_sep_rot", "driz_sep_ra",
                 "driz_sep_dec", "final_ra", "final_dec"):
        _opt_float(p, name)
    _opt_float(p, "final_rot")
    for name in ("driz_sep_scale", "final_scale", "combine_bufsize"):
        _opt_float(p, name, positive=True)
    for name in ("driz_sep_outnx", "driz_sep_outny", "final_outnx", "final_outny"):
        if p[name] is not None:
            _number(p, name, low=1, integer=True)
    for name in ("sky_bits", "driz_sep_bits", "final_bits"):
        interpret_bit_flags(p[name])  # raises on a malformed expression
    for name in ("driz_sep_kernel", "final_kernel"):
        value = str(p[name]).lower()
        if value not in KERNELS:
            raise InvalidParameterError(f"{name}: unknown kernel {p[name]!r} (one of {', '.join(KERNELS)})")
        p[name] = value
    for name in ("driz_sep_pixfrac", "final_pixfrac"):
        _number(p, name, low=0, high=1, low_open=True)
    _wt_scl(p, "driz_sep_wt_scl")
    _wt_scl(p, "final_wt_scl")
    for name in ("driz_sep_fillval", "final_fillval"):
        _opt_float(p, name)
    from ._median import COMBINE_TYPES

    _choice(p, "combine_type", COMBINE_TYPES)
    _number(p, "combine_maskpt", low=0)
    for name in ("combine_nlow", "combine_nhigh", "combine_grow", "driz_cr_grow", "driz_cr_ctegrow"):
        _number(p, name, low=0, integer=True)
    p["combine_nsigma"] = _pair(p["combine_nsigma"], "combine_nsigma")
    p["driz_cr_snr"] = _pair(p["driz_cr_snr"], "driz_cr_snr")
    p["driz_cr_scale"] = _pair(p["driz_cr_scale"], "driz_cr_scale")
    from ._cr import DRIZ_CR_METHODS

    _choice(p, "driz_cr_method", DRIZ_CR_METHODS)
    _choice(p, "blot_interp", BLOT_INTERPOLATIONS)
    _number(p, "blot_sinscl", low=0, low_open=True)
    _number(p, "blot_skyval")
    _choice(p, "final_wht_type", ("EXP", "ERR", "IVM"), upper=True)
    _choice(p, "final_units", ("cps", "counts"))
    for name in ("skyuser", "skyfile", "skymask_cat", "driz_sep_refimage", "final_refimage"):
        p[name] = "" if p[name] is None else os.fspath(p[name]).strip()
    return p


# ----------------------------------------------------------------------------- output grids
def _tan_wcs(ra, dec, scale_deg, rot_deg, shape):
    from astropy.wcs import WCS

    ny, nx = shape
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.wcs.radesys = "ICRS"
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = [(nx + 1) / 2.0, (ny + 1) / 2.0]
    t = np.deg2rad(rot_deg)
    wcs.wcs.cd = scale_deg * np.array([[-np.cos(t), np.sin(t)], [np.sin(t), np.cos(t)]])
    wcs.wcs.set()
    wcs.pixel_shape = (nx, ny)
    return wcs


def _edges(shape, n=9):
    ny, nx = shape
    t = np.linspace(0.0, 1.0, n)
    xs = np.concatenate([-0.5 + nx * t, np.full(n, nx - 0.5), nx - 0.5 - nx * t, np.full(n, -0.5)])
    ys = np.concatenate([np.full(n, -0.5), -0.5 + ny * t, np.full(n, ny - 0.5), ny - 0.5 - ny * t])
    return xs, ys


def _read_refimage(spec, name):
    from ..io import read_image

    try:
        with read_image(spec) as source:
            wcs = source.wcs
            shape = tuple(source.shape[-2:])
            if wcs is None:
                raise InvalidParameterError(f"{name}: {spec} has no celestial WCS")
            wcs = wcs.celestial if wcs.naxis != 2 else wcs
    except InputFileError as exc:
        raise InvalidParameterError(f"{name}: {exc}") from None
    wcs.pixel_shape = shape[::-1]
    return wcs, shape


def _output_grid(prefix, p, chip_wcs, shapes, default):
    """The (wcs, shape) of a step's output grid: the default (covering all inputs) or the custom one."""
    from astropy.wcs.utils import proj_plane_pixel_scales

    if not p[f"{prefix}_wcs"]:
        return default
    ref = p[f"{prefix}_refimage"]
    rot, scale = p[f"{prefix}_rot"], p[f"{prefix}_scale"]
    nx, ny, ra, dec = p[f"{prefix}_outnx"], p[f"{prefix}_outny"], p[f"{prefix}_ra"], p[f"{prefix}_dec"]
    if ref:
        base_wcs, base_shape = _read_refimage(ref, f"{prefix}_refimage")
        if all(v is None for v in (rot, scale, nx, ny, ra, dec)):
            return base_wcs, base_shape
    else:
        base_wcs, base_shape = default
    base_scale = float(np.min(proj_plane_pixel_scales(base_wcs)))
    if ra is None or dec is None:
        cx, cy = (base_shape[1] - 1) / 2.0, (base_shape[0] - 1) / 2.0
        cra, cdec = base_wcs.pixel_to_world_values(cx, cy)
        ra = float(cra) if ra is None else ra
        dec = float(cdec) if dec is None else dec
    if not -90.0 <= dec <= 90.0:
        raise InvalidParameterError(f"{prefix}_dec: must be within [-90, 90], got {dec}")
    scale_deg = base_scale if scale is None else scale / 3600.0
    if rot is None:
        if ref:
            cd = base_wcs.wcs.get_pc() * base_wcs.wcs.get_cdelt()[:, None]
            rot = float(np.rad2deg(np.arctan2(cd[0, 1], cd[1, 1])))
        else:
            rot = 0.0
    probe = _tan_wcs(ra, dec, scale_deg, rot, (1, 1))
    if nx is None or ny is None:
        xs_all, ys_all = [], []
        for wcs, shape in zip(chip_wcs, shapes):
            ex, ey = _edges(shape)
            world = wcs.pixel_to_world_values(ex, ey)
            ox, oy = probe.world_to_pixel_values(*world)
            xs_all.append(np.asarray(ox))
            ys_all.append(np.asarray(oy))
        xs_all, ys_all = np.concatenate(xs_all), np.concatenate(ys_all)
        # centred on (ra, dec): symmetric extent that covers every input
        half_x = float(np.max(np.abs(xs_all))) + 0.5
        half_y = float(np.max(np.abs(ys_all))) + 0.5
        nx = nx if nx is not None else max(1, int(math.ceil(2 * half_x)))
        ny = ny if ny is not None else max(1, int(math.ceil(2 * half_y)))
    return _tan_wcs(ra, dec, scale_deg, rot, (ny, nx)), (ny, nx)


def _check_overlap(exposures, chip_wcs, grid, name):
    wcs, shape = grid
    ny, nx = shape
    for exposure, wcss in zip(exposures, chip_wcs):
        hit = False
        for chip, cw in zip(exposure.chips, wcss):
            ex, ey = _edges(chip.shape, 17)
            iy, ix = np.mgrid[0:chip.shape[0]:complex(0, 9), 0:chip.shape[1]:complex(0, 9)]
            px = np.concatenate([ex, ix.ravel()])
            py = np.concatenate([ey, iy.ravel()])
            ox, oy = wcs.world_to_pixel_values(*cw.pixel_to_world_values(px, py))
            ox, oy = np.asarray(ox), np.asarray(oy)
            ok = np.isfinite(ox) & np.isfinite(oy)
            if not ok.any():
                continue
            if (ox[ok].max() >= -0.5 and ox[ok].min() <= nx - 0.5 and oy[ok].max() >= -0.5
                    and oy[ok].min() <= ny - 0.5):
                hit = True
                break
        if not hit:
            raise NoOverlapError(f"{exposure.path}: does not overlap the {name} output grid ({nx} x {ny} pixels)")


def _header_of(wcs, shape):
    return wcs.to_header_string(), tuple(shape)


def _wcs_from(item):
    from astropy.io import fits
    from astropy.wcs import WCS

    text, shape = item
    wcs = WCS(fits.Header.fromstring(text))
    wcs.pixel_shape = shape[::-1]
    return wcs


# ----------------------------------------------------------------------------- jobs (module level)
def _pixmap(exposure, chip, out_wcs, stepsize):
    from ._drizzle import pixmap_scale_ratio
    from ._pixmap import calc_pixmap

    wcs = _inputs.wcs_of(exposure, chip)
    pm = calc_pixmap(wcs, out_wcs, chip.shape, stepsize=stepsize)
    ratio = 1.0 / pixmap_scale_ratio(pm)  # output pixel size / input pixel size
    return pm, ratio


def _unpack(bits, shape):
    if bits is None:
        return np.zeros(shape, bool)
    return np.unpackbits(bits, count=shape[0] * shape[1]).reshape(shape).astype(bool)


def _good(dq, bits, shape):
    good = good_pixel_mask(dq, bits)
    return np.ones(shape, bool) if good is None else good


def _read_fits_image(path):
    from ..io import open_fits

    with open_fits(path) as hdul:
        return np.array(hdul[0].data, dtype=np.float32)


def _job_single(item):
    """Drizzle one exposure alone onto the separate grid; arrays, or the paths written."""
    from ._drizzle import Drizzle

    p, exposure = item["params"], item["exposure"]
    out_wcs = _wcs_from(item["grid"])
    shape = item["grid"][1]
    drz = Drizzle(kernel=p["driz_sep_kernel"], fillval=p["driz_sep_fillval"], out_shape=shape, disable_ctx=True)
    for n, chip in enumerate(exposure.chips):
        sci, dq, _, _ = _inputs.load_chip(exposure, chip, resetbits=p["resetbits"])
        pm, ratio = _pixmap(exposure, chip, out_wcs, p["stepsize"])
        good = _good(dq, p["driz_sep_bits"], chip.shape) & ~_unpack(item["static"][n], chip.shape)
        good &= np.isfinite(sci)
        data = np.where(good, sci - np.float32(item["sky_in_data"][n]), 0).astype(np.float32)
        drz.add_image(data, exposure.exptime, pm, weight_map=good.astype(np.float32), wht_scale=p["driz_sep_wt_scl"],
                      iscale=ratio**2, pixel_scale_ratio=ratio, pixfrac=p["driz_sep_pixfrac"], in_units="counts")
    if item["paths"] is None:
        return drz.out_img, drz.out_wht
    sci_path, wht_path = item["paths"]
    extra = {"EXPTIME": exposure.exptime, "BUNIT": "ELECTRONS/S", "DRIZKERN": p["driz_sep_kernel"]}
    write_image(sci_path, drz.out_img, wcs=out_wcs, overwrite=p["overwrite"], extra=extra)
    write_image(wht_path, drz.out_wht, wcs=out_wcs, overwrite=p["overwrite"], extra={"EXPTIME": exposure.exptime})
    return item["paths"]


def _job_blot(item):
    """Blot the median back onto every chip of one exposure (electrons, sky added); arrays or paths."""
    from ._blot import blot

    p, exposure = item["params"], item["exposure"]
    out_wcs = _wcs_from(item["grid"])
    median = item["median"]
    if isinstance(median, str):
        median = _read_fits_image(median)
    results = []
    for n, chip in enumerate(exposure.chips):
        pm, ratio = _pixmap(exposure, chip, out_wcs, p["stepsize"])
        blotted = blot(median, pm, interp=p["blot_interp"], sinscl=p["blot_sinscl"],
                       iscale=exposure.exptime / ratio**2, fillval=0.0)
        blotted += np.float32(item["blot_add"][n])
        if item["paths"] is None:
            results.append(blotted)
        else:
            path = item["paths"][n]
            write_image(path, blotted, wcs=_inputs.wcs_of(exposure, chip), overwrite=p["overwrite"],
                        extra={"EXPTIME": exposure.exptime, "BUNIT": "ELECTRONS"})
            results.append(path)
    return results


def _job_cr(item):
    """driz_cr on every chip of one exposure: CR masks (True = CR); writes _crmask/_crclean when asked."""
    from astropy.io import fits

    from ..io import add_provenance, open_fits, write_fits
    from ._cr import driz_cr

    p, exposure = item["params"], item["exposure"]
    masks, cleaned_all, dqs = [], [], []
    for n, chip in enumerate(exposure.chips):
        sci, dq, _, _ = _inputs.load_chip(exposure, chip, resetbits=p["resetbits"])
        blotted = item["blotted"][n]
        if isinstance(blotted, str):
            blotted = _read_fits_image(blotted)
        data = sci + np.float32(item["sky_missing"][n])
        trusted = None
        if item.get("untrusted") is not None:
            from ._blot import blot

            pm = _pixmap(exposure, chip, _wcs_from(item["grid"]), p["stepsize"])[0]
            trusted = blot(item["untrusted"], pm, interp="linear", fillval=1.0) < 1e-3
        good, cleaned = driz_cr(np.nan_to_num(data), blotted, gain=1.0, readnoise=chip.rdnoise,
                                backg=item["backg"][n], snr=p["driz_cr_snr"], scale=p["driz_cr_scale"],
                                grow=p["driz_cr_grow"], ctegrow=p["driz_cr_ctegrow"], method=p["driz_cr_method"],
                                trusted=trusted)
        cr = ~good
        masks.append(cr)
        if dq is not None and p["crbit"]:
            dq = dq.copy()
            dq[cr] |= p["crbit"]
        dqs.append(dq)
        cleaned_all.append(cleaned - np.float32(item["sky_missing"][n]))
        if p["driz_cr_corr"]:
            hdr = fits.Header()
            hdr["EXTVER"] = chip.extver
            write_image(item["crmask_paths"][n], good.astype(np.uint8), header=hdr, overwrite=p["overwrite"],
                        wcs=_inputs.wcs_of(exposure, chip), extra={"COMMENT": "1 = good, 0 = cosmic ray"})
    if p["driz_cr_corr"]:
        with open_fits(exposure.path) as hdul:
            out = [fits.PrimaryHDU(header=hdul[0].header.copy())]
            add_provenance(out[0].header, [exposure.path])
            for n, chip in enumerate(exposure.chips):
                scale = chip.gain * (exposure.exptime if exposure.units == "cps" else 1.0)
                out.append(fits.ImageHDU((cleaned_all[n] / np.float32(scale)).astype(np.float32),
                                         header=hdul[chip.sci].header.copy()))
                if chip.err is not None:
                    out.append(fits.ImageHDU(np.array(hdul[chip.err].data), header=hdul[chip.err].header.copy()))
                if chip.dq is not None:
                    out.append(fits.ImageHDU(dqs[n].astype(hdul[chip.dq].data.dtype),
                                             header=hdul[chip.dq].header.copy()))
            write_fits(fits.HDUList(out), item["crclean_path"], overwrite=p["overwrite"], checksum=False)
    return masks


# ----------------------------------------------------------------------------- sky helpers
def _partial(w):
    """Pixels of one single-drizzle weight image below 95% of its typical (median positive) weight."""
    w = np.asarray(w, dtype=np.float32)
    positive = w[w > 0]
    full = float(np.median(positive)) if positive.size else 0.0
    return w < 0.95 * full


def _mask_partial(weights, masks):
    """Median masks with the partly covered single-drizzled pixels added (``driz_cr_method='starpix'``).

    A single-drizzled pixel that its exposure covers only in part (next to a
    DQ-flagged or static-masked input pixel, or at an edge) holds the value of
    the covered part alone; on a star's core that is far below the pixel's
    mean, minmed takes it as the minimum and the median is biased low there,
    so driz_cr then flags the star's core in the other exposures.  Such pixels
    are masked where at least one exposure covers the pixel fully and is not
    masked; elsewhere the masks are left as they are.
    """
    partial = [_partial(w) for w in weights]
    full_ok = np.zeros(np.shape(masks[0]), bool)
    for m, part in zip(masks, partial):
        full_ok |= ~np.asarray(m, dtype=bool) & ~part
    return [np.asarray(m, dtype=bool) | (part & full_ok) for m, part in zip(masks, partial)]


def _untrusted_median(weights):
    """Separate-grid pixels where the median may be biased (float32, 1 = untrusted, 0 = trusted).

    A single-drizzled pixel that an input covers only in part (next to masked
    pixels, or at an edge) takes the value of the covering part alone, which on a
    steep profile is far from the pixel's mean; minmed may then pick it. Such
    pixels (weight below 95% of the exposure's typical weight) and their 3x3
    neighbours are untrusted, for every exposure; the starpix cosmic-ray test is
    not applied there (AstroDrizzle's rule still is).
    """
    bad = None
    for w in weights:
        partial = _partial(w)
        bad = partial if bad is None else bad | partial
    grown = bad.copy()
    grown[1:] |= bad[:-1]
    grown[:-1] |= bad[1:]
    row = grown.copy()
    grown[:, 1:] |= row[:, :-1]
    grown[:, :-1] |= row[:, 1:]
    return grown.astype(np.float32)


def _sky_file_values(path, exposures):
    """Per exposure, per chip sky values (input units) from a skyfile: 'image value [value per chip ...]'."""
    if not os.path.isfile(path):
        raise InputFileError(f"skyfile: {path} does not exist")
    table = {}
    with open(path) as handle:
        for number, line in enumerate(handle, start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            cols = line.replace(",", " ").split()
            try:
                values = [float(v) for v in cols[1:]]
            except ValueError:
                raise InvalidParameterError(f"skyfile {path}, line {number}: sky values must be numbers: {line!r}") \
                    from None
            if not values:
                raise InvalidParameterError(f"skyfile {path}, line {number}: no sky value for {cols[0]}")
            table[os.path.basename(cols[0])] = values
    out = []
    for exposure in exposures:
        name = os.path.basename(exposure.path)
        values = table.get(name, table.get(exposure.rootname))
        if values is None:
            raise InvalidParameterError(f"skyfile {path}: no sky value for {name}")
        if len(values) == 1:
            values = values * len(exposure.chips)
        if len(values) != len(exposure.chips):
            raise InvalidParameterError(
                f"skyfile {path}: {name} has {len(exposure.chips)} chips but {len(values)} sky values")
        out.append(values)
    return out


def _skymask_cat(path, exposures):
    """Per exposure, per chip user masks (True = excluded) from a catalogue 'image mask1[,mask2...]'."""
    if not os.path.isfile(path):
        raise InputFileError(f"skymask_cat: {path} does not exist")
    base = os.path.dirname(os.path.abspath(path))
    table = {}
    with open(path) as handle:
        for line in handle:
            line = line.split("#", 1)[0].strip()
            if line:
                cols = line.replace(",", " ").split()
                table[os.path.basename(cols[0])] = [c if os.path.isabs(c) or os.path.exists(c)
                                                    else os.path.join(base, c) for c in cols[1:]]
    out = []
    for exposure in exposures:
        names = table.get(os.path.basename(exposure.path))
        if not names:
            out.append([None] * len(exposure.chips))
            continue
        if len(names) == 1:
            names = names * len(exposure.chips)
        masks = []
        for chip, name in zip(exposure.chips, names):
            data = _read_fits_image(name)
            if data.shape != tuple(chip.shape):
                raise FormatError(f"skymask_cat: {name} has shape {data.shape}, {exposure.label(chip)} has "
                                  f"{chip.shape}")
            masks.append(data == 0)
        out.append(masks)
    return out


def _header_sky(exposure, chip, keyword):
    from ..io import open_fits

    with open_fits(exposure.path) as hdul:
        for header in (hdul[chip.sci].header, hdul[0].header):
            if keyword in header:
                try:
                    return float(header[keyword])
                except (TypeError, ValueError):
                    raise FormatError(f"{exposure.label(chip)}: skyuser keyword {keyword} is not a number: "
                                      f"{header[keyword]!r}") from None
    raise FormatError(f"{exposure.label(chip)}: the skyuser keyword {keyword} is missing")


# ----------------------------------------------------------------------------- the pipeline
def _executor(p, executor):
    if executor is not None:
        return executor, None
    if p["num_cores"] is None or p["num_cores"] == 1:
        return None, None
    return "processes", p["num_cores"]


def _default_output(pairs):
    if len(pairs) == 1:
        return os.path.join(os.path.dirname(pairs[0][0]), _inputs._rootname(pairs[0][0]))
    return "final"


def astrodrizzle(input, output=None, *, executor=None, **params):
    """Combine dithered exposures with cosmic-ray rejection: AstroDrizzle's pipeline for any imager.

    Steps, each switched by its parameter (AstroDrizzle's names and defaults):

    1. ``static``: static mask of pixels low in ``static_min_exposures`` exposures (``static_sig``;
       AstroDrizzle: any one exposure, ``static_min_exposures=1``; starpix's default 2 keeps noise
       excursions of single exposures from masking a pixel in all of them);
    2. ``skysub``: sky per exposure (``skymethod`` localmin|globalmin|match|globalmin+match,
       ``skystat``, ``skywidth``, ``skylower``, ``skyupper``, ``skyclip``, ``skylsigma``,
       ``skyusigma``, ``sky_bits``, ``skymask_cat``, ``use_static``); or the user's values:
       ``skyuser`` (a header keyword holding a sky the user already subtracted) or ``skyfile``
       (lines ``image value [value per chip]`` in data units, subtracted);
    3. ``driz_separate``: each exposure drizzled alone (``driz_sep_kernel``, ``driz_sep_wt_scl``,
       ``driz_sep_pixfrac``, ``driz_sep_fillval``, ``driz_sep_bits``; custom grid with
       ``driz_sep_wcs`` and ``driz_sep_refimage``, ``_rot``, ``_scale`` (arcsec), ``_outnx``,
       ``_outny``, ``_ra``, ``_dec``);
    4. ``median``: their combination (``median_newmasks``, ``combine_maskpt``, ``combine_type``
       median|mean|minmed|imedian|imean|iminmed, ``combine_nsigma``, ``combine_nlow``,
       ``combine_nhigh``, ``combine_lthresh``, ``combine_hthresh``, ``combine_grow``,
       ``combine_bufsize``);
    5. ``blot``: the median back onto every chip (``blot_interp``, ``blot_sinscl``,
       ``blot_addsky``, or ``blot_skyval`` in data units when ``blot_addsky`` is off);
    6. ``driz_cr``: cosmic rays (``driz_cr_snr``, ``driz_cr_scale``, ``driz_cr_grow``,
       ``driz_cr_ctegrow``; ``driz_cr_corr`` writes ``_crclean`` images and ``_crmask``
       files); ``crbit`` is set in the DQ copies, never in the inputs.
       ``driz_cr_method='starpix'`` (default, a starpix addition) adds to AstroDrizzle's
       rule a test of positive residuals on the flanks of sources, where AstroDrizzle's
       derivative term hides cosmic rays; ``'astrodrizzle'`` is AstroDrizzle's rule alone
       (see :func:`starpix.drizzle.driz_cr`);
    7. ``driz_combine``: the final image (``final_wht_type`` EXP|ERR|IVM, ``final_kernel``,
       ``final_wt_scl`` exptime|expsq|a number, ``final_pixfrac``, ``final_fillval``,
       ``final_bits``, ``final_units`` cps|counts; custom grid with ``final_wcs`` and
       ``final_refimage``, ``final_rot``, ``final_scale``, ``final_outnx``, ``final_outny``,
       ``final_ra``, ``final_dec``). ``final_wt_scl`` scales EXP weights only: ERR and IVM
       weights are the inverse variances of the rates, unscaled.

    A step switched off reads the products of an earlier run from their files
    (``_single_*``, ``_med``, ``_blt``) when a later step needs them.

    Parameters
    ----------
    input : str, os.PathLike or list
        FITS files (a list, a wildcard, ``'a.fits,b.fits'``, or ``'@list.txt'`` with an
        optional second column naming each file's inverse-variance map for
        ``final_wht_type='IVM'``). Each needs a celestial WCS on every chip and an
        exposure time (``expkeyword``, or ``exptime=``). Multi-chip files hold
        ``SCI``/``ERR``/``DQ`` HDUs with matching ``EXTVER``.
    output : str, optional
        Root of the products: ``'final'`` gives ``final_drz.fits`` (``build=True``) or
        ``final_drz_sci.fits``, ``_wht``, ``_ctx``; intermediates are written beside it.
        Default: the input's root name for one input, else ``'final'``.
    executor : None, 'processes', concurrent.futures.Executor or dask Client, optional
        Where the jobs run (overrides ``num_cores``): the separate drizzles, blots and
        cosmic-ray tests per exposure, and the final drizzle by output row bands (the serial
        result, bit for bit).
    **params
        Every AstroDrizzle parameter above, plus ``build`` (default True), ``in_memory``
        (False: intermediates written as files), ``clean`` (remove the intermediates at
        the end), ``num_cores`` (None: serial; N: N local processes), ``stepsize``
        (pixel-map grid step, 10), ``resetbits`` (DQ bits cleared first, 4096),
        ``crbit`` (4096), ``gain``/``gnkeyword``, ``rdnoise``/``rnkeyword``,
        ``exptime``/``expkeyword`` (overrides and header keywords), ``runfile`` (True:
        ``{root}_astrodrizzle.log``; a path; False: none), ``plot`` (True: ``{root}_drz.png``;
        a path), ``overwrite`` (False: an existing product is an error).

    Returns
    -------
    DrizzleResult

    Notes
    -----
    Data are processed in electrons (counts times gain, rates times gain and
    exposure time); the final image is in e-/s (``final_units='cps'``) or e-
    (``'counts'``) per output pixel. Every parameter and product name is checked,
    and every input read, before anything is written; a failure removes what the
    run had written.
    """
    t_start = time.perf_counter()
    p = _check_params(params)
    pairs = _inputs.parse_input(input)
    exposures, chip_wcs = _inputs.read_exposures(pairs, gain=p["gain"], gnkeyword=p["gnkeyword"],
                                                 rdnoise=p["rdnoise"], rnkeyword=p["rnkeyword"],
                                                 exptime=p["exptime"], expkeyword=p["expkeyword"])
    if p["final_wht_type"] == "ERR" and p["driz_combine"]:
        for exposure in exposures:
            for chip in exposure.chips:
                if chip.err is None:
                    raise FormatError(f"{exposure.label(chip)}: final_wht_type='ERR' needs an ERR extension")
    names = ProductNames(output if output is not None else _default_output(pairs))
    all_wcs = [w for ws in chip_wcs for w in ws]
    all_shapes = [c.shape for e in exposures for c in e.chips]
    from ..reproject import optimal_wcs

    default_grid = optimal_wcs([(shape, wcs) for shape, wcs in zip(all_shapes, all_wcs)], projection="TAN")
    sep_grid = _output_grid("driz_sep", p, all_wcs, all_shapes, default_grid)
    final_grid = _output_grid("final", p, all_wcs, all_shapes, default_grid)
    for grid, name in ((sep_grid, "separate"), (final_grid, "final")):
        if grid[1][0] * grid[1][1] > 2**31 - 1:
            raise InvalidParameterError(f"the {name} output grid {grid[1]} is too large")
    if p["driz_separate"] or p["median"] or p["blot"]:
        _check_overlap(exposures, chip_wcs, sep_grid, "separate")
    if p["driz_combine"]:
        _check_overlap(exposures, chip_wcs, final_grid, "final")
    if p["driz_cr"] and p["crbit"] == 0:
        log.info("crbit is 0: cosmic rays are left out of the final drizzle but not recorded in DQ")

    # ---- plan the products, refuse existing ones before any work
    keep = not p["in_memory"]
    planned = {}
    if p["driz_combine"]:
        planned.update({f"final_{k}": v for k, v in names.final(p["build"]).items()})
    if keep and p["static"]:
        extvers = sorted({c.extver for e in exposures for c in e.chips})
        planned.update({f"static_{v}": names.static(v) for v in extvers})
    if keep and p["driz_separate"]:
        for e in exposures:
            planned[f"single_sci:{e.rootname}"], planned[f"single_wht:{e.rootname}"] = names.single(e.rootname)
    if keep and p["median"]:
        planned["median"] = names.median()
    if keep and p["blot"]:
        for e in exposures:
            for c in e.chips:
                planned[f"blot:{e.rootname}:{c.extver}"] = names.blot(e.rootname, c.extver)
    if p["driz_cr"] and p["driz_cr_corr"]:
        for e in exposures:
            planned[f"crclean:{e.rootname}"] = names.crclean(e.rootname)
            for c in e.chips:
                planned[f"crmask:{e.rootname}:{c.extver}"] = names.crmask(e.rootname, c.extver)
    runfile = p["runfile"]
    if runfile is True:
        runfile = names.runfile()
    elif runfile in (False, None, ""):
        runfile = None
    if runfile:
        planned["runfile"] = os.fspath(runfile)
    plot = p["plot"]
    if plot is True:
        plot = names.plot()
    elif plot in (False, None, ""):
        plot = None
    if plot and p["driz_combine"]:
        planned["plot"] = os.fspath(plot)
    inputs_abs = {os.path.abspath(path) for path, _ in pairs}
    from ..io import check_output

    seen = {}
    for key, path in planned.items():
        if os.path.abspath(path) in inputs_abs:
            raise InvalidParameterError(f"output: product {path} would replace an input file")
        if path in seen:
            raise InvalidParameterError(f"output: products {seen[path]} and {key} would both be {path}")
        seen[path] = key
        check_output(path, p["overwrite"])
    # products that jobs write themselves (on other processes) are removed on failure even when the
    # failing step never reported them
    fresh = [os.fspath(path) for path in planned.values() if not os.path.exists(path)]
    directory = names.directory
    if not os.path.isdir(directory):
        raise InputFileError(f"output: the directory {directory} does not exist")

    # ---- needed products of earlier runs when a step is off
    def need(path, what):
        if p["in_memory"] or not os.path.exists(path):
            raise InvalidParameterError(
                f"{what}: the step that makes it is off and {path} from an earlier run "
                f"{'cannot be used with in_memory=True' if p['in_memory'] else 'does not exist'}")
        return path

    result = DrizzleResult(inputs=[e.path for e in exposures], params=dict(p))
    written = []
    executor, max_workers = _executor(p, executor)
    from ..parallel import map_jobs

    def run_jobs(func, items, label):
        return map_jobs(func, items, executor=executor, max_workers=max_workers, desc=label)

    timings = result.timings
    notes = []
    try:
        sep_wcs, sep_shape = sep_grid
        grid_item = _header_of(sep_wcs, sep_shape)
        n_exp = len(exposures)
        # ---------------------------------------------------------------- 1 static mask
        t0 = time.perf_counter()
        static_bits = [[None] * len(e.chips) for e in exposures]
        need_pixels = p["static"] or (p["skysub"] and not p["skyuser"] and not p["skyfile"])
        chip_data = None
        if need_pixels:
            chip_data = [[_inputs.load_chip(e, c, resetbits=p["resetbits"])[:2] for c in e.chips]
                         for e in exposures]
            timings["read inputs"] = time.perf_counter() - t0  # shared by the static mask and the sky
            t0 = time.perf_counter()
        if p["static"]:
            from ._static import static_mask

            groups = {}
            for i, e in enumerate(exposures):
                for n, c in enumerate(e.chips):
                    groups.setdefault((c.extver, c.shape), []).append((i, n))
            for (extver, shape), members in groups.items():
                chips = [chip_data[i][n][0] for i, n in members]
                masks = [~_good(chip_data[i][n][1], p["driz_sep_bits"], shape) for i, n in members]
                bad = static_mask(chips, masks, static_sig=p["static_sig"],
                                  static_min_exposures=p["static_min_exposures"])
                result.static_masks[extver] = bad
                packed = np.packbits(bad.ravel())
                for i, n in members:
                    static_bits[i][n] = packed
                if keep:
                    path = write_image(names.static(extver), bad.astype(np.uint8), overwrite=p["overwrite"],
                                       extra={"COMMENT": "1 = bad (static mask)"})
                    written.append(path)
                    result.files[f"static_{extver}"] = path
            timings["static mask"] = time.perf_counter() - t0
            log.info("static mask: %d pixels flagged (%.2f s)",
                     sum(int(m.sum()) for m in result.static_masks.values()), timings["static mask"])

        # ---------------------------------------------------------------- 2 sky
        t0 = time.perf_counter()
        scale_e = [[c.gain * (e.exptime if e.units == "cps" else 1.0) for c in e.chips] for e in exposures]
        sky_e = [[0.0] * len(e.chips) for e in exposures]          # sky level in the data (e- per pixel)
        in_data = [[0.0] * len(e.chips) for e in exposures]        # sky present in the data, to subtract
        if p["skyfile"]:
            values = _sky_file_values(p["skyfile"], exposures)
            for i in range(n_exp):
                for n in range(len(exposures[i].chips)):
                    sky_e[i][n] = values[i][n] * scale_e[i][n]
                    in_data[i][n] = sky_e[i][n] if p["skysub"] else 0.0
            if not p["skysub"]:
                sky_e = [[0.0] * len(e.chips) for e in exposures]
        elif p["skyuser"]:
            for i, e in enumerate(exposures):
                for n, c in enumerate(e.chips):
                    sky_e[i][n] = _header_sky(e, c, p["skyuser"]) * scale_e[i][n]
        elif p["skysub"]:
            from ._sky import SkyChip, compute_sky

            user_masks = _skymask_cat(p["skymask_cat"], exposures) if p["skymask_cat"] else None
            ref_area = exposures[0].chips[0].pixel_area
            match = "match" in p["skymethod"]
            sky_chips = []
            for i, e in enumerate(exposures):
                row = []
                for n, c in enumerate(e.chips):
                    data, dq = chip_data[i][n]
                    mask = ~_good(dq, p["sky_bits"], c.shape) | ~np.isfinite(data)
                    if p["use_static"] and static_bits[i][n] is not None:
                        mask |= _unpack(static_bits[i][n], c.shape)
                    if user_masks is not None and user_masks[i][n] is not None:
                        mask |= user_masks[i][n]
                    pm = None
                    if match:
                        pm = _pixmap(e, c, sep_wcs, p["stepsize"])[0]
                    row.append(SkyChip(data=data, mask=mask, pixmap=pm, out_shape=sep_shape if match else None,
                                       pixel_area=c.pixel_area / ref_area))
                sky_chips.append(row)
            values = compute_sky(sky_chips, skymethod=p["skymethod"], skystat=p["skystat"], skywidth=p["skywidth"],
                                 skylower=None if p["skylower"] is None else p["skylower"],
                                 skyupper=None if p["skyupper"] is None else p["skyupper"], skyclip=p["skyclip"],
                                 skylsigma=p["skylsigma"], skyusigma=p["skyusigma"])
            for i, e in enumerate(exposures):
                for n, c in enumerate(e.chips):
                    sky_e[i][n] = float(values[i]) * c.pixel_area / ref_area
                    in_data[i][n] = sky_e[i][n]
            del sky_chips
        chip_data = None
        result.sky = [sky_e[i][0] / scale_e[i][0] for i in range(n_exp)]
        if p["skysub"] or p["skyuser"] or p["skyfile"]:
            timings["sky"] = time.perf_counter() - t0
            for e, value in zip(exposures, result.sky):
                log.info("sky: %s MDRIZSKY = %.6g", os.path.basename(e.path), value)
            notes += [f"MDRIZSKY {os.path.basename(e.path)} = {v:.6g}" for e, v in zip(exposures, result.sky)]

        base_params = {k: p[k] for k in ("driz_sep_kernel", "driz_sep_fillval", "driz_sep_bits", "driz_sep_wt_scl",
                                         "driz_sep_pixfrac", "stepsize", "resetbits", "overwrite", "blot_interp",
                                         "blot_sinscl", "driz_cr_snr", "driz_cr_scale", "driz_cr_grow",
                                         "driz_cr_ctegrow", "crbit", "driz_cr_corr", "driz_cr_method")}

        # ---------------------------------------------------------------- 3 separate drizzle
        singles = None
        if p["driz_separate"]:
            t0 = time.perf_counter()
            items = [{"params": base_params, "exposure": e, "grid": grid_item, "static": static_bits[i],
                      "sky_in_data": in_data[i], "paths": names.single(e.rootname) if keep else None}
                     for i, e in enumerate(exposures)]
            singles = run_jobs(_job_single, items, "separate drizzle")
            if keep:
                for e, paths in zip(exposures, singles):
                    written.extend(paths)
                    result.files[f"single_sci:{e.rootname}"], result.files[f"single_wht:{e.rootname}"] = paths
            timings["separate drizzle"] = time.perf_counter() - t0
            log.info("separate drizzle: %d exposures (%.2f s)", n_exp, timings["separate drizzle"])

        # ---------------------------------------------------------------- 4 median
        median = None
        if p["median"]:
            t0 = time.perf_counter()
            from ._median import combine_stack, weight_masks

            if singles is None:
                singles = [(need(names.single(e.rootname)[0], "median"), need(names.single(e.rootname)[1], "median"))
                           for e in exposures]
            images, weights = [], []
            for sci, wht in singles:
                images.append(_read_fits_image(sci) if isinstance(sci, str) else sci)
                weights.append(_read_fits_image(wht) if isinstance(wht, str) else wht)
            images = [np.nan_to_num(im) for im in images]
            if p["median_newmasks"]:
                masks = weight_masks(weights, p["combine_maskpt"])
            else:
                masks = [w <= 0 for w in weights]
            if p["driz_cr_method"] == "starpix":
                masks = _mask_partial(weights, masks)
            ratio2 = []
            for e in exposures:
                pm_ratio = _pixmap(e, e.chips[0], sep_wcs, max(p["stepsize"], 50))[1]
                ratio2.append(pm_ratio**2)
            rn = [float(np.sqrt(np.mean([c.rdnoise**2 for c in e.chips]))) for e in exposures]
            bsky = [min(sky_e[i]) * ratio2[i] for i in range(n_exp)]
            median = combine_stack(images, masks, combine_type=p["combine_type"], nsigma=p["combine_nsigma"],
                                   nlow=p["combine_nlow"], nhigh=p["combine_nhigh"], lthresh=p["combine_lthresh"],
                                   hthresh=p["combine_hthresh"], grow=p["combine_grow"], weights=weights,
                                   readnoise=rn, exptime=[e.exptime for e in exposures], background=bsky,
                                   bufsize=p["combine_bufsize"])
            del images, weights
            result.median = median
            if keep:
                path = write_image(names.median(), median, wcs=sep_wcs, overwrite=p["overwrite"],
                                   extra={"BUNIT": "ELECTRONS/S", "COMBTYPE": p["combine_type"]})
                written.append(path)
                result.files["median"] = path
            timings["median"] = time.perf_counter() - t0
            log.info("median (%s): %.2f s", p["combine_type"], timings["median"])

        # ---------------------------------------------------------------- 5 blot
        blotted = None
        blot_add = []
        for i, e in enumerate(exposures):
            if p["blot_addsky"]:
                blot_add.append(list(sky_e[i]))
            else:
                blot_add.append([p["blot_skyval"] * s for s in scale_e[i]])
        if p["blot"]:
            t0 = time.perf_counter()
            if median is None:
                med_source = need(names.median(), "blot")
            elif keep and executor is not None:
                med_source = result.files["median"]
            else:
                med_source = median
            items = [{"params": base_params, "exposure": e, "grid": grid_item, "median": med_source,
                      "blot_add": blot_add[i],
                      "paths": [names.blot(e.rootname, c.extver) for c in e.chips] if keep else None}
                     for i, e in enumerate(exposures)]
            blotted = run_jobs(_job_blot, items, "blot")
            if keep:
                for e, paths in zip(exposures, blotted):
                    written.extend(paths)
                    for c, path in zip(e.chips, paths):
                        result.files[f"blot:{e.rootname}:{c.extver}"] = path
            timings["blot"] = time.perf_counter() - t0
            log.info("blot (%s): %.2f s", p["blot_interp"], timings["blot"])

        # ---------------------------------------------------------------- 6 driz_cr
        cr_masks = None
        if p["driz_cr"]:
            t0 = time.perf_counter()
            if blotted is None:
                blotted = [[need(names.blot(e.rootname, c.extver), "driz_cr") for c in e.chips] for e in exposures]
            untrusted = None
            if p["driz_cr_method"] == "starpix":
                # the starpix test needs the single-drizzle weights (see _untrusted_median)
                if singles is not None:
                    whts = [w for _, w in singles]
                else:
                    whts = [names.single(e.rootname)[1] for e in exposures]
                    if p["in_memory"] or not all(os.path.exists(w) for w in whts):
                        whts = None
                        log.info("driz_cr: no single-drizzle weights; the starpix test is applied everywhere")
                if whts is not None:
                    untrusted = _untrusted_median([_read_fits_image(w) if isinstance(w, str) else w for w in whts])
            items = []
            for i, e in enumerate(exposures):
                items.append({"params": base_params, "exposure": e, "blotted": blotted[i], "grid": grid_item,
                              "untrusted": untrusted,
                              "sky_missing": [sky_e[i][n] - in_data[i][n] for n in range(len(e.chips))],
                              # the sky the blotted image lacks (AstroDrizzle passes the whole sky
                              # again, counting it twice in the noise: see the module notes)
                              "backg": [max(sky_e[i][n] - blot_add[i][n], 0.0) for n in range(len(e.chips))],
                              "crmask_paths": [names.crmask(e.rootname, c.extver) for c in e.chips],
                              "crclean_path": names.crclean(e.rootname)})
            cr_masks = run_jobs(_job_cr, items, "driz_cr")
            if p["driz_cr_corr"]:
                for e in exposures:
                    written.append(names.crclean(e.rootname))
                    result.files[f"crclean:{e.rootname}"] = names.crclean(e.rootname)
                    for c in e.chips:
                        written.append(names.crmask(e.rootname, c.extver))
                        result.files[f"crmask:{e.rootname}:{c.extver}"] = names.crmask(e.rootname, c.extver)
            result.crmasks = cr_masks
            timings["driz_cr"] = time.perf_counter() - t0
            log.info("driz_cr: %d pixels flagged (%.2f s)", sum(int(m.sum()) for ms in cr_masks for m in ms),
                     timings["driz_cr"])
        blotted = None

        # DQ copies: resetbits cleared, crbit set
        for i, e in enumerate(exposures):
            row = []
            for n, c in enumerate(e.chips):
                dq = _inputs.load_chip(e, c, resetbits=p["resetbits"])[1] if c.dq is not None else None
                if dq is not None and cr_masks is not None and p["crbit"]:
                    dq[cr_masks[i][n]] |= p["crbit"]
                row.append(dq)
            result.dq.append(row)

        # ---------------------------------------------------------------- 7 final drizzle
        if p["driz_combine"]:
            t0 = time.perf_counter()
            from ._drizzle import Drizzle
            from ._tiles import final_chip_inputs, final_drizzle_by_bands

            # the grid as its header gives it, which is what workers rebuild: the same pixel maps on every path
            fwcs, fshape = _wcs_from(_header_of(*final_grid)), final_grid[1]
            if executor is not None:  # by output row bands on the executor: the serial result, bit for bit
                drz = final_drizzle_by_bands(p, exposures, (fwcs, fshape), static_bits=static_bits, cr_masks=cr_masks,
                                             sky_e=sky_e, in_data=in_data, executor=executor,
                                             max_workers=max_workers)
            else:
                n_chips = sum(len(e.chips) for e in exposures)
                drz = Drizzle(kernel=p["final_kernel"], fillval=p["final_fillval"], out_shape=fshape,
                              max_ctx_id=n_chips - 1)
                for i, e in enumerate(exposures):
                    for n, c in enumerate(e.chips):
                        data, wmap, wscale, pm, ratio = final_chip_inputs(
                            p, e, c, fwcs, dq=result.dq[i][n],
                            static=None if static_bits[i][n] is None else _unpack(static_bits[i][n], c.shape),
                            crmask=None if cr_masks is None else cr_masks[i][n], sky=sky_e[i][n],
                            in_data=in_data[i][n])
                        drz.add_image(data, e.exptime, pm, weight_map=wmap, wht_scale=wscale, iscale=ratio**2,
                                      pixel_scale_ratio=ratio, pixfrac=p["final_pixfrac"], in_units="counts")
            texptime = float(sum(e.exptime for e in exposures))
            sci = drz.out_img
            if p["final_units"] == "counts":
                sci = sci * np.float32(texptime)
            result.sci, result.wht, result.ctx, result.wcs = sci, drz.out_wht, drz.out_ctx, fwcs
            header = _final_header(p, exposures, result.sky, texptime, fwcs)
            result.header = header
            timings["final drizzle"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            files = _write_final(names, p, header, sci, drz.out_wht, drz.out_ctx, [e.path for e in exposures])
            written.extend(files.values())
            result.files.update({f"final_{k}": v for k, v in files.items()})
            if plot:
                written.append(plot_final(os.fspath(plot), sci, drz.out_wht, title=names.root,
                                          overwrite=p["overwrite"]))
                result.files["plot"] = os.fspath(plot)
            timings["write final"] = time.perf_counter() - t0
            log.info("final drizzle (%s, pixfrac %g): %.2f s", p["final_kernel"], p["final_pixfrac"],
                     timings["final drizzle"])
        else:
            result.wcs = sep_wcs

        # ---------------------------------------------------------------- clean, log
        if p["clean"] and keep:
            temporary = [names.median()] + [names.static(v) for v in {c.extver for e in exposures for c in e.chips}]
            for e in exposures:
                temporary += list(names.single(e.rootname)) + [names.blot(e.rootname, c.extver) for c in e.chips]
            for path in temporary:
                if os.path.exists(path):
                    os.remove(path)
                if path in written:
                    written.remove(path)
            result.files = {k: v for k, v in result.files.items() if v not in temporary}
        if runfile:
            timings_all = dict(timings)
            timings_all["(everything)"] = time.perf_counter() - t_start
            products = list(result.files.values())
            write_runfile(os.fspath(runfile), inputs=[path for path, _ in pairs], params=p, timings=timings,
                          products=products, notes=notes, overwrite=p["overwrite"])
            written.append(os.fspath(runfile))
            result.files["runfile"] = os.fspath(runfile)
    except BaseException:
        for path in dict.fromkeys(written + fresh):
            if path and os.path.exists(path):
                try:
                    os.remove(path)
                except OSError:
                    pass
        raise
    return result


def _final_header(p, exposures, sky, texptime, wcs):
    from astropy.io import fits

    from ..io import add_provenance

    header = fits.Header()
    header.update(wcs.to_header())
    header["BUNIT"] = ("ELECTRONS/S" if p["final_units"] == "cps" else "ELECTRONS", "units of the SCI image")
    header["EXPTIME"] = (texptime, "total exposure time of the inputs (s)")
    header["TEXPTIME"] = (texptime, "total exposure time of the inputs (s)")
    header["NDRIZIM"] = (sum(len(e.chips) for e in exposures), "number of chips drizzled")
    header["DRIZKERN"] = (p["final_kernel"], "final drizzle kernel")
    header["DRIZPIXF"] = (p["final_pixfrac"], "final drizzle pixfrac")
    header["DRIZWHT"] = (p["final_wht_type"], "final weight type")
    for number, (e, value) in enumerate(zip(exposures, sky), start=1):
        header[f"D{number:03d}DATA"] = os.path.basename(e.path)[:68]
        header[f"D{number:03d}SKY"] = (float(value), "MDRIZSKY: sky subtracted (input units)")
        header[f"D{number:03d}EXPT"] = (e.exptime, "exposure time (s)")
    add_provenance(header, [e.path for e in exposures])
    return header


def _write_final(names, p, header, sci, wht, ctx, inputs):
    from astropy.io import fits

    from ..io import write_fits

    ctx_out = ctx[0] if ctx is not None and ctx.shape[0] == 1 else ctx
    paths = names.final(p["build"])
    if p["build"]:
        primary = fits.PrimaryHDU()
        primary.header["NEXTEND"] = 3
        for key in ("TEXPTIME", "EXPTIME", "NDRIZIM", "DRIZKERN", "DRIZPIXF", "DRIZWHT", "STARPIX"):
            if key in header:
                primary.header[key] = header[key]
        hdus = [primary, fits.ImageHDU(sci, header=header.copy(), name="SCI"),
                fits.ImageHDU(wht, header=header.copy(), name="WHT"),
                fits.ImageHDU(ctx_out, header=header.copy(), name="CTX")]
        for hdu in hdus[2:]:
            hdu.header["BUNIT"] = "UNITLESS"
        write_fits(fits.HDUList(hdus), paths["drz"], overwrite=p["overwrite"], checksum=False)
        return paths
    done = {}
    try:
        for kind, data in (("sci", sci), ("wht", wht), ("ctx", ctx_out)):
            hdr = header.copy()
            if kind != "sci":
                hdr["BUNIT"] = "UNITLESS"
            write_fits(fits.HDUList([fits.PrimaryHDU(data, header=hdr)]), paths[kind], overwrite=p["overwrite"],
                       checksum=False)
            done[kind] = paths[kind]
    except StarpixError:
        for path in done.values():
            os.remove(path)
        raise
    return paths
