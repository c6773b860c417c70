"""Inputs of the AstroDrizzle pipeline: file lists, exposures, chips and their keywords.

An exposure is one FITS file holding one or more chips: ``SCI`` image HDUs
(with ``ERR`` and ``DQ`` HDUs of the same ``EXTVER``, as HST FLT files) or,
without any ``SCI`` HDU, its first image HDU. Exposures are described by small
picklable records (file name, HDU numbers, keywords); pixels are read from the
file when needed, so parallel workers get names, not arrays.
"""

from __future__ import annotations

import glob
import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import FormatError, InputFileError, InvalidParameterError, NoWCSError

__all__ = ["parse_input", "read_exposures", "Exposure", "Chip", "load_chip"]


@dataclass
class Chip:
    """One SCI (+ ERR, DQ) set of an exposure file."""

    sci: int                      # HDU numbers
    err: int | None
    dq: int | None
    extver: int
    shape: tuple
    gain: float
    rdnoise: float
    pixel_area: float             # arcsec^2 at the reference pixel
    ivm: tuple | None = None      # (path, hdu) of an inverse-variance map


@dataclass
class Exposure:
    """One input file: its chips, exposure time and units."""

    path: str
    rootname: str
    exptime: float
    units: str                    # 'counts' or 'cps'
    chips: list = field(default_factory=list)

    def label(self, chip):
        return f"{self.path}[SCI,{chip.extver}]"


def _rootname(path):
    name = os.path.basename(path)
    for ext in (".fits.gz", ".fits", ".fit", ".fts"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return os.path.splitext(name)[0]


def _expand(word):
    if any(ch in word for ch in "*?["):
        found = sorted(glob.glob(word))
        if not found:
            raise InputFileError(f"{word}: the wildcard matches no file")
        return found
    return [word]


def parse_input(input):
    """Input files (and IVM files) from a list, a wildcard, a comma-separated string or an ``@file`` list.

    Parameters
    ----------
    input : str, os.PathLike or sequence of them
        ``'*.fits'``, ``'a.fits,b.fits'``, ``'@list.txt'`` (one file per line,
        optionally followed by the name of its inverse-variance map — the IVM
        column; ``#`` starts a comment), or a list of any of these.

    Returns
    -------
    list of (str, str or None)
        ``(image, ivm)`` pairs in the order given.
    """
    if input is None:
        raise InvalidParameterError("input: no input files given")
    words = [os.fspath(input)] if isinstance(input, (str, os.PathLike)) else [os.fspath(w) for w in input]
    pairs = []
    for word in words:
        for part in [p.strip() for p in word.split(",") if p.strip()] if not word.startswith("@") else [word]:
            if part.startswith("@"):
                listfile = part[1:]
                if not os.path.isfile(listfile):
                    raise InputFileError(f"{part}: the list file {listfile} does not exist")
                base = os.path.dirname(os.path.abspath(listfile))
                with open(listfile) as handle:
                    for number, line in enumerate(handle, start=1):
                        line = line.split("#", 1)[0].strip()
                        if not line:
                            continue
                        cols = line.replace(",", " ").split()
                        if len(cols) > 2:
                            raise InvalidParameterError(
                                f"{listfile}, line {number}: expected 'image [ivm]', got {line!r}")
                        names = [c if os.path.exists(c) or os.path.isabs(c) else os.path.join(base, c)
                                 for c in cols]
                        for name in _expand(names[0]):
                            pairs.append((name, names[1] if len(names) > 1 else None))
            else:
                pairs.extend((name, None) for name in _expand(part))
    if not pairs:
        raise InvalidParameterError("input: no input files given")
    seen = {}
    for path, _ in pairs:
        root = _rootname(path)
        if root in seen and os.path.abspath(seen[root]) != os.path.abspath(path):
            raise InvalidParameterError(
                f"input: {seen[root]} and {path} have the same root name {root!r}: their intermediate "
                "products would collide")
        if root in seen:
            raise InvalidParameterError(f"input: {path} is given twice")
        seen[root] = path
    return pairs


def _keyword(headers, name):
    for header in headers:
        if name in header:
            return header[name]
    return None


def _number(value, what, where):
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FormatError(f"{where}: {what} is not a number: {value!r}") from None
    if not math.isfinite(number):
        raise FormatError(f"{where}: {what} is not finite: {value!r}")
    return number


def _chip_value(override, keyword, headers, default, what, where):
    if override is not None:
        return _number(override, what, "parameter")
    if keyword:
        value = _keyword(headers, keyword)
        if value is not None:
            return _number(value, f"{what} keyword {keyword}", where)
    return default


def read_exposures(pairs, *, gain=None, gnkeyword="GAIN", rdnoise=None, rnkeyword="RDNOISE", exptime=None,
                   expkeyword="EXPTIME"):
    """Describe the input files: chips, WCSs, exposure times, gains and read noises.

    ``gain``/``rdnoise``/``exptime`` override the header values, which are read
    from the SCI header or else the primary header under ``gnkeyword``,
    ``rnkeyword``, ``expkeyword``; without either, gain is 1 e-/unit and read
    noise 0 e-. Data whose ``BUNIT`` ends in ``/S`` are rates (cps), others counts.

    Returns
    -------
    exposures : list of Exposure
    wcs : list of list of astropy.wcs.WCS
        The celestial WCS of every chip.
    """
    from astropy.wcs.utils import proj_plane_pixel_area

    from ..io import celestial_wcs, is_image_hdu, open_fits

    exposures, wcss = [], []
    for path, ivm in pairs:
        with open_fits(path) as hdul:
            primary = hdul[0].header
            sci = [i for i, h in enumerate(hdul) if h.header.get("EXTNAME", "").strip().upper() == "SCI"
                   and is_image_hdu(h)]
            if not sci:
                sci = [i for i, h in enumerate(hdul) if is_image_hdu(h) and h.header.get("NAXIS", 0) >= 2]
                if not sci:
                    raise FormatError(f"{path}: no image HDU")
                sci = sci[:1]
            byname = {}
            for i, h in enumerate(hdul):
                name = h.header.get("EXTNAME", "").strip().upper()
                byname[(name, int(h.header.get("EXTVER", 1)))] = i
            headers0 = [hdul[sci[0]].header, primary]
            if exptime is not None:
                texp = _number(exptime, "exptime", "parameter")
            else:
                value = _keyword(headers0, expkeyword)
                if value is None:
                    raise FormatError(f"{path}: no exposure time: keyword {expkeyword} is missing "
                                      "(give exptime= / --exptime, or expkeyword=)")
                texp = _number(value, f"exposure time {expkeyword}", path)
            if not texp > 0:
                raise FormatError(f"{path}: the exposure time must be positive, got {texp}")
            bunit = str(_keyword(headers0, "BUNIT") or "").strip().lower()
            units = "cps" if bunit.endswith("/s") or bunit.endswith("/sec") or bunit == "cps" else "counts"
            exposure = Exposure(path=path, rootname=_rootname(path), exptime=texp, units=units)
            chip_wcs = []
            for n, index in enumerate(sci):
                hdu = hdul[index]
                extver = int(hdu.header.get("EXTVER", n + 1))
                where = f"{path}[{index}]"
                shape = tuple(int(v) for v in hdu.shape)
                if len(shape) != 2:
                    raise FormatError(f"{where}: expected a 2-D image, got shape {shape}")
                wcs = celestial_wcs(hdu.header, path=path, hdu=index, fobj=hdul)
                if wcs is None:
                    raise NoWCSError(f"{where}: no celestial WCS: drizzling needs one on every chip")
                wcs.pixel_shape = shape[::-1]
                headers = [hdu.header, primary]
                chip_gain = _chip_value(gain, gnkeyword, headers, 1.0, "gain", where)
                chip_rn = _chip_value(rdnoise, rnkeyword, headers, 0.0, "read noise", where)
                if not chip_gain > 0:
                    raise FormatError(f"{where}: the gain must be positive, got {chip_gain}")
                if chip_rn < 0:
                    raise FormatError(f"{where}: the read noise must be >= 0, got {chip_rn}")
                err = byname.get(("ERR", extver))
                dq = byname.get(("DQ", extver))
                for other, name in ((err, "ERR"), (dq, "DQ")):
                    if other is not None and tuple(hdul[other].shape) != shape:
                        raise FormatError(f"{path}: {name},{extver} has shape {tuple(hdul[other].shape)}, "
                                          f"SCI,{extver} has {shape}")
                area = float(proj_plane_pixel_area(wcs)) * 3600.0**2
                ivm_ref = None
                if ivm is not None:
                    ivm_ref = (ivm, n)
                exposure.chips.append(Chip(sci=index, err=err, dq=dq, extver=extver, shape=shape, gain=chip_gain,
                                           rdnoise=chip_rn, pixel_area=area, ivm=ivm_ref))
                chip_wcs.append(wcs)
        exposures.append(exposure)
        wcss.append(chip_wcs)
    return exposures, wcss


def _read_ivm(ref, shape):
    from ..io import is_image_hdu, open_fits

    path, n = ref
    with open_fits(path) as hdul:
        images = [i for i, h in enumerate(hdul) if h.header.get("EXTNAME", "").strip().upper() == "IVM"]
        if not images:
            images = [i for i, h in enumerate(hdul) if is_image_hdu(h) and h.header.get("NAXIS", 0) >= 2]
        if n >= len(images):
            raise FormatError(f"{path}: inverse-variance map for chip {n + 1} is missing "
                              f"(the file has {len(images)} image HDUs)")
        data = np.array(hdul[images[n]].data, dtype=np.float32)
    if data.shape != tuple(shape):
        raise FormatError(f"{path}: the IVM image has shape {data.shape}, the chip {tuple(shape)}")
    return data


def wcs_of(exposure, chip):
    """The chip's celestial WCS, read from its file."""
    from ..io import celestial_wcs, open_fits

    with open_fits(exposure.path) as hdul:
        wcs = celestial_wcs(hdul[chip.sci].header, path=exposure.path, hdu=chip.sci, fobj=hdul, required=True)
    wcs.pixel_shape = chip.shape[::-1]
    return wcs


def load_chip(exposure, chip, *, resetbits=0, want_err=False, want_ivm=False):
    """Pixels of one chip: ``(sci_electrons, dq, err_electrons, ivm)``.

    The science data are converted to electrons (counts times gain; rates times
    gain and exposure time); ERR likewise. ``resetbits`` are cleared from the DQ
    copy. Missing ERR/DQ/IVM give None.
    """
    from ..io import open_fits

    scale = chip.gain * (exposure.exptime if exposure.units == "cps" else 1.0)
    with open_fits(exposure.path) as hdul:
        sci = np.array(hdul[chip.sci].data, dtype=np.float32) * np.float32(scale)
        dq = None
        if chip.dq is not None:
            dq = np.array(hdul[chip.dq].data)
            if dq.dtype.kind not in "iu":
                raise FormatError(f"{exposure.path}[DQ,{chip.extver}]: DQ must hold integers, got {dq.dtype}")
            dq = dq.astype(np.int64 if dq.dtype.itemsize > 4 else np.int32)
            if resetbits:
                dq &= ~int(resetbits)
        err = None
        if want_err and chip.err is not None:
            err = np.array(hdul[chip.err].data, dtype=np.float32) * np.float32(scale)
    ivm = _read_ivm(chip.ivm, chip.shape) if (want_ivm and chip.ivm is not None) else None
    return sci, dq, err, ivm
