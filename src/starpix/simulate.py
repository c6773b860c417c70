"""Simulated data: star fields with a WCS, and TESS-like full-frame images.

The demo, the tests and the benchmarks make all their data here, so that
nothing has to be downloaded and every result can be checked against the
inputs it was made from.
"""

from __future__ import annotations

import os

import numpy as np

from ._progress import progress
from .errors import InvalidParameterError

__all__ = [
    "make_wcs",
    "make_tess_wcs",
    "gaussian_star_image",
    "make_star_field",
    "tess_ffi_name",
    "make_tess_ffis",
    "make_model_image",
    "make_noise_image",
    "make_dithered_exposures",
]


def make_wcs(shape, center=(150.0, 2.0), pixel_scale_arcsec=0.2, rotation_deg=0.0, sip=False):
    """A TAN (optionally TAN-SIP) WCS centred on an image.

    Parameters
    ----------
    shape : tuple of int
        Image shape ``(ny, nx)``.
    center : tuple of float
        (RA, Dec) of the image centre, degrees.
    pixel_scale_arcsec : float
        Pixel size, arcsec.
    rotation_deg : float
        Rotation of the pixel grid, degrees east of north.
    sip : bool
        Add a second-order SIP distortion (a few pixels at the corners of a
        2048-pixel image).

    Returns
    -------
    astropy.wcs.WCS
    """
    from astropy.wcs import WCS, Sip

    ny, nx = shape
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"] if sip else ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = center
    wcs.wcs.crpix = [(nx + 1) / 2, (ny + 1) / 2]
    scale = pixel_scale_arcsec / 3600.0
    theta = np.deg2rad(rotation_deg)
    wcs.wcs.cd = scale * np.array([[-np.cos(theta), np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    wcs.wcs.radesys = "ICRS"
    wcs.wcs.cunit = ["deg", "deg"]
    if sip:
        norm = max(nx, ny) / 2.0
        a = np.zeros((3, 3))
        b = np.zeros((3, 3))
        a[2, 0], a[1, 1], a[0, 2] = 2.0 / norm**2, 1.0 / norm**2, 0.5 / norm**2
        b[2, 0], b[1, 1], b[0, 2] = 0.6 / norm**2, 1.2 / norm**2, 1.8 / norm**2
        wcs.sip = Sip(a, b, None, None, wcs.wcs.crpix)
    wcs.pixel_shape = (nx, ny)
    return wcs


def make_tess_wcs(shape=(2078, 2136), center=(250.35, 2.28), seed=None):
    """A TESS-like TAN-SIP WCS (21 arcsec pixels, camera-like distortion).

    The forward (A, B) and inverse (AP, BP) polynomials are both present,
    as in SPOC full-frame images.
    """
    from astropy.wcs import WCS, Sip

    ny, nx = shape
    rng = np.random.default_rng(seed)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    wcs.wcs.crval = center
    wcs.wcs.crpix = [nx / 2 - 23.0, ny / 2 - 38.0]
    angle = np.deg2rad(10.6 + (rng.normal(0, 0.1) if seed is not None else 0.0))
    scale = 21.0 / 3600.0
    wcs.wcs.cd = scale * np.array([[-np.cos(angle), -np.sin(angle)], [np.sin(angle), -np.cos(angle)]])
    wcs.wcs.radesys = "ICRS"
    wcs.wcs.equinox = 2000.0
    # SPOC-like second-order distortion: about 20 pixels at the chip corners.
    a = np.zeros((3, 3))
    b = np.zeros((3, 3))
    a[2, 0], a[1, 1], a[0, 2] = 2.02e-6, 1.73e-6, 3.32e-7
    b[2, 0], b[1, 1], b[0, 2] = 3.33e-7, 1.71e-6, 2.04e-6
    ap, bp = _invert_sip(a, b, shape, wcs.wcs.crpix)
    wcs.sip = Sip(a, b, ap, bp, wcs.wcs.crpix)
    wcs.pixel_shape = (nx, ny)
    return wcs


def _invert_sip(a, b, shape, crpix, order=3):
    """Least-squares inverse SIP polynomials (AP, BP) of a forward (A, B)."""
    ny, nx = shape
    u, v = np.meshgrid(np.linspace(-crpix[0], nx - crpix[0], 40), np.linspace(-crpix[1], ny - crpix[1], 40))
    u, v = u.ravel(), v.ravel()
    du = sum(a[p, q] * u**p * v**q for p in range(3) for q in range(3) if p + q >= 2)
    dv = sum(b[p, q] * u**p * v**q for p in range(3) for q in range(3) if p + q >= 2)
    uu, vv = u + du, v + dv
    terms = [(p, q) for p in range(order + 1) for q in range(order + 1) if 1 <= p + q <= order]
    design = np.stack([uu**p * vv**q for p, q in terms], axis=1)
    coef_u = np.linalg.lstsq(design, u - uu, rcond=None)[0]
    coef_v = np.linalg.lstsq(design, v - vv, rcond=None)[0]
    ap = np.zeros((order + 1, order + 1))
    bp = np.zeros((order + 1, order + 1))
    for (p, q), cu, cv in zip(terms, coef_u, coef_v):
        ap[p, q], bp[p, q] = cu, cv
    return ap, bp


def gaussian_star_image(shape, x, y, flux, fwhm=2.0, radius=None, dtype=np.float32):
    """Render circular Gaussian stars, each integrated over pixels.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)``.
    x, y, flux : array_like
        Star positions (0-based pixel centres) and total fluxes.
    fwhm : float
        Full width at half maximum, pixels.
    radius : int, optional
        Half-size of each star's footprint; default ``ceil(3 * fwhm)``.

    Returns
    -------
    numpy.ndarray
    """
    from scipy.special import erf

    x = np.atleast_1d(np.asarray(x, float))
    y = np.atleast_1d(np.asarray(y, float))
    flux = np.broadcast_to(np.asarray(flux, float), x.shape)
    image = np.zeros(shape, dtype=np.float64)
    if x.size == 0:
        return image.astype(dtype)
    sigma = fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    radius = int(np.ceil(3 * fwhm)) if radius is None else int(radius)
    offsets = np.arange(-radius, radius + 1)
    ix0 = np.rint(x).astype(int)
    iy0 = np.rint(y).astype(int)
    cols = ix0[:, None] + offsets[None, :]
    rows = iy0[:, None] + offsets[None, :]
    scale = np.sqrt(2.0) * sigma

    def profile(centres, pixels):
        upper = erf((pixels + 0.5 - centres[:, None]) / scale)
        lower = erf((pixels - 0.5 - centres[:, None]) / scale)
        return 0.5 * (upper - lower)

    px = profile(x, cols)
    py = profile(y, rows)
    stamps = flux[:, None, None] * py[:, :, None] * px[:, None, :]
    rr = np.broadcast_to(rows[:, :, None], stamps.shape)
    cc = np.broadcast_to(cols[:, None, :], stamps.shape)
    inside = (rr >= 0) & (rr < shape[0]) & (cc >= 0) & (cc < shape[1])
    np.add.at(image, (rr[inside], cc[inside]), stamps[inside])
    return image.astype(dtype)


def make_star_field(shape, n_stars, *, fwhm=2.5, flux=(500.0, 50000.0), background=100.0,
                    noise=5.0, wcs=None, seed=0, dtype=np.float32):
    """A star field with Gaussian stars, sky and Gaussian noise.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)``.
    n_stars : int
        Number of stars, placed uniformly.
    fwhm : float
        Star FWHM in pixels.
    flux : tuple of float
        Fluxes are drawn log-uniformly between these.
    background, noise : float
        Sky level and Gaussian noise standard deviation.
    wcs : astropy.wcs.WCS, optional
        If given, the truth table also has ``ra`` and ``dec``.
    seed : int
        Random seed.

    Returns
    -------
    image : numpy.ndarray
    truth : astropy.table.QTable
        ``id``, ``x_0``, ``y_0``, ``flux`` (and ``ra``, ``dec``).
    """
    from astropy.table import QTable

    if n_stars < 0:
        raise InvalidParameterError(f"n_stars must be >= 0, got {n_stars}")
    rng = np.random.default_rng(seed)
    ny, nx = shape
    x = rng.uniform(0, nx - 1, n_stars)
    y = rng.uniform(0, ny - 1, n_stars)
    fluxes = np.exp(rng.uniform(np.log(flux[0]), np.log(flux[1]), n_stars))
    image = gaussian_star_image(shape, x, y, fluxes, fwhm=fwhm, dtype=np.float64)
    image += background + rng.normal(0.0, noise, shape) if noise else background
    truth = QTable({"id": np.arange(1, n_stars + 1), "x_0": x, "y_0": y, "flux": fluxes})
    if wcs is not None:
        sky = wcs.pixel_to_world(x, y)
        truth["ra"] = sky.ra.deg
        truth["dec"] = sky.dec.deg
    return image.astype(dtype), truth


def tess_ffi_name(index, sector=14, camera=1, ccd=1, start_day=199):
    """A SPOC-style FFI file name (44 characters), one per cadence index."""
    minutes = index * 30
    day = start_day + minutes // 1440
    rest = minutes % 1440
    stamp = f"2019{day:03d}{rest // 60:02d}{rest % 60:02d}29"
    return f"tess{stamp}-s{sector:04d}-{camera}-{ccd}-0150-s_ffic.fits"


def _ffi_headers(index, n_total, wcs, sector, camera, ccd):
    from astropy.io import fits

    tstart = 1683.35 + index * (30.0 / 1440.0)
    tstop = tstart + 29.9 / 1440.0
    date_obs = f"2019-07-18T{index % 24:02d}:{(index * 7) % 60:02d}:26.816Z"
    date_end = f"2019-07-18T{index % 24:02d}:{(index * 7 + 29) % 60:02d}:26.816Z"
    primary = fits.Header()
    primary["ORIGIN"] = ("NASA/Ames", "institution responsible for creating this file")
    primary["TELESCOP"] = ("TESS", "telescope")
    primary["INSTRUME"] = ("TESS Photometer", "detector type")
    primary["DATA_REL"] = (19, "data release version number")
    primary["SECTOR"] = (sector, "Observing sector")
    primary["CAMERA"] = (camera, "Camera number")
    primary["CCD"] = (ccd, "CCD chip number")
    primary["TSTART"] = (tstart, "observation start time in TJD")
    primary["TSTOP"] = (tstop, "observation stop time in TJD")
    primary["DATE-OBS"] = (date_obs, "TSTART as UTC calendar date")
    primary["DATE-END"] = (date_end, "TSTOP as UTC calendar date")
    primary["FFIINDEX"] = (151696 + index, "number of FFI cadence interval of first cadence")
    primary["SC_RA"] = (250.0, "spacecraft pointing RA")
    primary["CRMITEN"] = (True, "spacecraft cosmic ray mitigation enabled")

    image = fits.Header()
    image["EXTNAME"] = (f"CAMERA.CCD {camera}.{ccd} cal", "extension name")
    image["TELESCOP"] = ("TESS", "telescope")
    image["INSTRUME"] = ("TESS Photometer", "detector type")
    image["CAMERA"] = (camera, "Camera number")
    image["CCD"] = (ccd, "CCD chip number")
    image["TIMEREF"] = ("SOLARSYSTEM", "barycentric correction applied to times")
    image["TSTART"] = (tstart, "observation start time in TJD")
    image["TSTOP"] = (tstop, "observation stop time in TJD")
    image["DATE-OBS"] = (date_obs, "TSTART as UTC calendar date")
    image["DATE-END"] = (date_end, "TSTOP as UTC calendar date")
    image["BARYCORR"] = (5.0085597e-03 + 1e-6 * index, "[d] barycentric time correction")
    image["TELAPSE"] = (tstop - tstart, "[d] TSTOP - TSTART")
    image["LIVETIME"] = (0.0166, "[d] TELAPSE multiplied by DEADC")
    image["EXPOSURE"] = (0.0166, "[d] time on source")
    image["DEADC"] = (0.792, "deadtime correction")
    image["TIMEPIXR"] = (0.5, "bin time beginning=0 middle=0.5 end=1")
    image["TIERRELA"] = (1.16e-05, "[d] relative time error")
    image["INT_TIME"] = (1.98, "[s] photon accumulation time per frame")
    image["READTIME"] = (0.02, "[s] readout time per frame")
    image["FRAMETIM"] = (2.0, "[s] frame time (INT_TIME + READTIME)")
    image["NUM_FRM"] = (900, "number of frames per time stamp")
    image["TIMEDEL"] = (0.0208333, "[d] time resolution of data")
    image["BACKAPP"] = (True, "background is subtracted")
    image["DEADAPP"] = (True, "deadtime applied")
    image["VIGNAPP"] = (True, "vignetting or collimator correction applied")
    image["GAINA"] = (5.22, "[electrons/count] CCD output A gain")
    image["READNOIA"] = (9.5, "[electrons] read noise CCD output A")
    image["NREADOUT"] = (48, "number of read per cadence")
    image["FXDOFF"] = (209715200, "compression fixed offset")
    image["MEANBLCA"] = (6400, "[count] FSW mean black level CCD output A")
    image["BUNIT"] = ("electrons/s", "physical units of image data")
    image["DQUALITY"] = (128 if index % 7 == 3 else 0, "data quality flags")
    image["IMAGTYPE"] = ("cal", "FFI image type: raw, cal, uncert")
    wcs_header = wcs.to_header(relax=True)
    image["WCSAXES"] = (2, "number of World Coordinate System axes")
    for card in wcs_header.cards:
        if card.keyword in ("WCSAXES", "MJDREF", "DATEREF", "MJD-OBS", "DATE-OBS"):
            continue
        image[card.keyword] = (card.value, card.comment)
    image["A_DMAX"] = (44.7, "maximum distortion in A")
    image["B_DMAX"] = (44.6, "maximum distortion in B")
    image["WCSNAMEP"] = ("PHYSICAL", "name of world coordinate system alternate P")
    image["WCSAXESP"] = (2, "number of WCS physical axes")
    image["CTYPE1P"] = ("RAWX", "physical WCS axis 1 type CCD col")
    image["CUNIT1P"] = ("PIXEL", "physical WCS axis 1 unit")
    image["CRPIX1P"] = (1, "reference CCD column")
    image["CRVAL1P"] = (45, "value at reference CCD column")
    image["CDELT1P"] = (1.0, "physical WCS axis 1 step")
    image["CTYPE2P"] = ("RAWY", "physical WCS axis 2 type CCD col")
    image["CUNIT2P"] = ("PIXEL", "physical WCS axis 2 unit")
    image["CRPIX2P"] = (1, "reference CCD row")
    image["CRVAL2P"] = (1, "value at reference CCD row")
    image["CDELT2P"] = (1.0, "physical WCS axis 2 step")
    image["CHECKSUM"] = ("", "HDU checksum")
    uncert = image.copy()
    uncert["EXTNAME"] = (f"CAMERA.CCD {camera}.{ccd} uncert", "extension name")
    uncert["IMAGTYPE"] = ("uncert", "FFI image type: raw, cal, uncert")
    return primary, image, uncert


def make_tess_ffis(directory, n_files, *, shape=(2078, 2136), n_stars=300, center=(250.35, 2.28),
                   sector=14, camera=1, ccd=1, seed=0, sip=True, variable_star=None, progress_bar=False):
    """Write a time series of TESS-like SPOC full-frame images.

    Each file has an empty primary HDU, the calibrated image (HDU 1) and its
    uncertainty (HDU 2), float32, with every header keyword that cube
    building and target pixel files use, and a TAN-SIP WCS.  Stars stay at
    fixed sky positions; one star can vary sinusoidally.

    Parameters
    ----------
    directory : str or os.PathLike
        Where to write; created if missing.
    n_files : int
        Number of cadences.
    shape : tuple of int
        ``(ny, nx)`` of each image (TESS: 2078 x 2136).
    n_stars : int
        Number of stars.
    sector, camera, ccd : int
        Written into the headers and the file names.
    seed : int
        Random seed.
    sip : bool
        False writes a plain TAN WCS (CTYPE without -SIP).
    variable_star : tuple of float, optional
        ``(x, y, amplitude, period_in_cadences)``: a star whose flux is
        ``amplitude * (1 + 0.5 sin(2 pi t / period))``.
    progress_bar : bool
        Show a tqdm progress bar.

    Returns
    -------
    files : list of str
        File paths in time order.
    truth : astropy.table.QTable
        The stars: ``x_0``, ``y_0``, ``flux``, ``ra``, ``dec``.
    """
    from astropy.io import fits

    if n_files < 1:
        raise InvalidParameterError(f"n_files must be >= 1, got {n_files}")
    os.makedirs(directory, exist_ok=True)
    wcs = make_tess_wcs(shape, center=center)
    if not sip:
        wcs.sip = None
        wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    static, truth = make_star_field(shape, n_stars, fwhm=1.6, flux=(200.0, 2e5), background=0.0,
                                    noise=0.0, wcs=wcs, seed=seed, dtype=np.float32)
    rng = np.random.default_rng(seed + 1)
    files = []
    for index in progress(range(n_files), enabled=progress_bar, desc="FFIs"):
        primary, image_header, uncert_header = _ffi_headers(index, n_files, wcs, sector, camera, ccd)
        frame = static + np.float32(50.0)
        if variable_star is not None:
            vx, vy, amplitude, period = variable_star
            vflux = amplitude * (1.0 + 0.5 * np.sin(2 * np.pi * index / period))
            frame = frame + gaussian_star_image(shape, vx, vy, vflux, fwhm=1.6)
        frame = frame + rng.standard_normal(shape, dtype=np.float32) * np.float32(3.0)
        error = np.sqrt(np.abs(frame) + np.float32(9.0)).astype(np.float32)
        path = os.path.join(os.fspath(directory), tess_ffi_name(index, sector, camera, ccd))
        hdul = fits.HDUList([
            fits.PrimaryHDU(header=primary),
            fits.ImageHDU(frame.astype(np.float32), header=image_header),
            fits.ImageHDU(error, header=uncert_header),
        ])
        hdul.writeto(path, overwrite=True, checksum=True)
        files.append(path)
    return files, truth


# ---------------------------------------------------------------------------
# Model images of point sources from a PSF model, and noise images
# (photutils' make_psf_model_image and make_noise_image, rendered per footprint).


def _random_positions(n_sources, x_range, y_range, min_separation, rng, oversample=10):
    """Uniform (x, y) positions thinned to a minimum separation.

    The draws are photutils' (make_random_xycoords): ``n_sources`` x values
    then ``n_sources`` y values from ``rng.uniform``, ten times as many when
    ``min_separation > 0``; the candidates are thinned greedily in draw order
    (a candidate is dropped when an earlier kept one lies within
    ``min_separation``, inclusive) and the first ``n_sources`` survivors kept.
    """
    from scipy.spatial import KDTree

    from .errors import StarpixWarning
    from .psf._render_kernels import greedy_separation_keep

    if n_sources == 0:
        return np.empty(0), np.empty(0)
    n_draw = n_sources * oversample if min_separation > 0 else n_sources
    x = rng.uniform(x_range[0], x_range[1], n_draw)
    y = rng.uniform(y_range[0], y_range[1], n_draw)
    if min_separation > 0:
        pairs = KDTree(np.column_stack((x, y))).query_pairs(min_separation, output_type="ndarray")
        if len(pairs):
            pairs = pairs[np.argsort(pairs[:, 0], kind="stable")]
            keep = greedy_separation_keep(n_draw, pairs[:, 0].astype(np.int64),
                                          pairs[:, 1].astype(np.int64))
            x, y = x[keep], y[keep]
    x, y = x[:n_sources], y[:n_sources]
    if x.size < n_sources:
        import warnings

        warnings.warn(
            f"min_separation={min_separation} leaves room for only {x.size} of the "
            f"n_sources={n_sources} sources asked for; returning {x.size}",
            StarpixWarning,
            stacklevel=3,
        )
    return x, y


def make_model_image(shape, psf, n_sources=None, *, flux=(100, 1000), min_separation=1,
                     border_size=None, seed=0, sources=None, footprint=None, progress_bar=False):
    """An image of point sources from a PSF model, and its truth table.

    Either draws ``n_sources`` sources at random, exactly as photutils'
    ``make_psf_model_image`` does (the same seed gives the same truth
    table), or renders the rows of a given ``sources`` table.  Each source
    is evaluated over its own footprint only (see
    :func:`starpix.psf.render`); with a footprint as large as photutils'
    model shape the image equals photutils' to rounding.

    Parameters
    ----------
    shape : tuple of int
        Image shape ``(ny, nx)``.
    psf : starpix.psf.PSFModel
        The PSF model.
    n_sources : int, optional
        Number of sources to draw (not with ``sources``).  Fewer are
        returned, with a :class:`~starpix.errors.StarpixWarning`, when
        ``min_separation`` leaves no room for them all.
    flux : tuple of float
        ``(min, max)``: fluxes are uniform in this range.
    min_separation : float
        Sources are more than this many pixels apart (centre to centre).
    border_size : int or tuple of int, optional
        ``(ny, nx)`` width of the edge band where no source centre is
        placed; default half the footprint, ``(footprint - 1) // 2``, as
        photutils (half its PSF model shape).
    seed : int, optional
        Seed of numpy's ``default_rng``; draws are made in photutils' order
        (x, then y, then flux).
    sources : astropy.table.Table, optional
        Render these sources instead of drawing them: columns ``x_0``,
        ``y_0``, ``flux`` (and ``id``, kept when present).  ``flux``,
        ``min_separation``, ``border_size`` and ``seed`` then play no part.
    footprint : int or tuple of int, optional
        Size of the box each source is evaluated on; default
        ``2 * psf.footprint_radius + 1``.
    progress_bar : bool
        Show a progress bar while rendering.

    Returns
    -------
    image : numpy.ndarray
        float64 image of the sources (no noise, no background).
    truth : astropy.table.QTable
        ``id`` (from 1), ``x_0``, ``y_0``, ``flux``.
    """
    from astropy.table import QTable

    from .psf._render import _as_int_pair, _as_shape, _check_psf, footprint_shape, render, source_columns

    shape = _as_shape(shape)
    _check_psf(psf)
    fp_shape = footprint_shape(psf, footprint)

    if sources is not None:
        if n_sources is not None:
            raise InvalidParameterError("give either n_sources or sources, not both")
        x, y, fluxes = source_columns(sources)
        ids = np.asarray(sources["id"]) if "id" in sources.colnames else np.arange(1, len(x) + 1)
    else:
        if n_sources is None:
            raise InvalidParameterError("give n_sources (the number of sources to draw) or sources")
        if (not isinstance(n_sources, (int, np.integer)) or isinstance(n_sources, bool)
                or n_sources < 0):
            raise InvalidParameterError(f"n_sources must be an integer >= 0, got {n_sources!r}")
        n_sources = int(n_sources)
        try:
            flux_lo, flux_hi = (float(v) for v in flux)
        except (TypeError, ValueError):
            raise InvalidParameterError(f"flux must be a (min, max) pair, got {flux!r}") from None
        if not (np.isfinite(flux_lo) and np.isfinite(flux_hi)) or flux_lo > flux_hi:
            raise InvalidParameterError(f"flux must be a finite (min, max) pair with min <= max, got {flux!r}")
        try:
            min_separation = float(min_separation)
        except (TypeError, ValueError):
            raise InvalidParameterError(f"min_separation must be a number >= 0, got {min_separation!r}") from None
        if not np.isfinite(min_separation) or min_separation < 0:
            raise InvalidParameterError(f"min_separation must be a finite number >= 0, got {min_separation!r}")
        if border_size is None:
            border = ((fp_shape[0] - 1) // 2, (fp_shape[1] - 1) // 2)
        else:
            border = _as_int_pair(border_size, "border_size", minimum=0)
        x_range = (border[1], shape[1] - border[1])
        y_range = (border[0], shape[0] - border[0])
        if x_range[0] >= x_range[1] or y_range[0] >= y_range[1]:
            raise InvalidParameterError(
                f"border_size {border} (ny, nx) leaves no room for sources in an image of shape {shape}"
            )
        rng = np.random.default_rng(seed)
        x, y = _random_positions(n_sources, x_range, y_range, min_separation, rng)
        fluxes = rng.uniform(flux_lo, flux_hi, x.size)
        ids = np.arange(1, x.size + 1)

    truth = QTable()
    truth["id"] = ids
    truth["x_0"] = np.asarray(x, dtype=float)
    truth["y_0"] = np.asarray(y, dtype=float)
    truth["flux"] = np.asarray(fluxes, dtype=float)
    image = render(shape, psf, truth["x_0"].value, truth["y_0"].value, truth["flux"].value,
                   footprint=fp_shape, progress_bar=progress_bar)
    return image, truth


def make_noise_image(shape, distribution="gaussian", mean=None, stddev=None, seed=None):
    """An image of Gaussian or Poisson noise.

    Same semantics and the same draws as photutils' ``make_noise_image``:
    for one seed the arrays are identical (``rng.normal(mean, stddev,
    shape)`` or ``rng.poisson(mean, shape)`` from ``default_rng(seed)``).
    Poisson images are returned as float64 (photutils returns integers of
    the same values).

    Parameters
    ----------
    shape : tuple of int
        Image shape ``(ny, nx)``.
    distribution : {'gaussian', 'poisson'}
        The noise distribution.
    mean : float
        Mean of the distribution (required; for Poisson, >= 0).
    stddev : float
        Standard deviation, required for Gaussian noise (>= 0); Poisson noise
        takes its variance from ``mean``, so ``stddev`` must then be None.
    seed : int, optional
        Seed of numpy's ``default_rng``; None draws fresh entropy.

    Returns
    -------
    numpy.ndarray
        float64 image.
    """
    from .psf._render import _as_shape

    shape = _as_shape(shape)
    if distribution not in ("gaussian", "poisson"):
        raise InvalidParameterError(f"distribution must be 'gaussian' or 'poisson', got {distribution!r}")
    if mean is None:
        raise InvalidParameterError(f"mean must be given for {distribution} noise")
    mean = _finite_float(mean, "mean")
    rng = np.random.default_rng(seed)
    if distribution == "gaussian":
        if stddev is None:
            raise InvalidParameterError("stddev must be given for gaussian noise")
        stddev = _finite_float(stddev, "stddev")
        if stddev < 0:
            raise InvalidParameterError(f"stddev must be >= 0, got {stddev!r}")
        return rng.normal(loc=mean, scale=stddev, size=shape)
    if stddev is not None:
        raise InvalidParameterError(
            "stddev must not be given for poisson noise (its variance is the mean)"
        )
    if mean < 0:
        raise InvalidParameterError(f"mean must be >= 0 for poisson noise, got {mean!r}")
    return rng.poisson(lam=mean, size=shape).astype(np.float64)


def _finite_float(value, name):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(value):
        raise InvalidParameterError(f"{name} must be finite, got {value!r}")
    return value


def _elliptical_gaussian_image(shape, x, y, flux, sigma_major, sigma_minor, theta, oversample=5):
    """Elliptical Gaussians (position angle ``theta`` from +x, radians) sampled on ``oversample``^2 sub-pixels."""
    image = np.zeros(shape, dtype=np.float64)
    ny, nx = shape
    sub = (np.arange(oversample) + 0.5) / oversample - 0.5
    for x0, y0, f, sa, sb, th in zip(x, y, flux, sigma_major, sigma_minor, theta):
        r = int(np.ceil(5.0 * sa))
        ix, iy = int(round(x0)), int(round(y0))
        x1, x2, y1, y2 = max(ix - r, 0), min(ix + r + 1, nx), max(iy - r, 0), min(iy + r + 1, ny)
        if x1 >= x2 or y1 >= y2:
            continue
        yy = (np.arange(y1, y2)[:, None] + sub[None, :]).ravel()
        xx = (np.arange(x1, x2)[:, None] + sub[None, :]).ravel()
        dx = xx[None, :] - x0
        dy = yy[:, None] - y0
        u = dx * np.cos(th) + dy * np.sin(th)
        v = -dx * np.sin(th) + dy * np.cos(th)
        values = np.exp(-0.5 * ((u / sa) ** 2 + (v / sb) ** 2)) / (2.0 * np.pi * sa * sb)
        values = values.reshape(y2 - y1, oversample, x2 - x1, oversample).mean(axis=(1, 3))
        image[y1:y2, x1:x2] += f * values
    return image


def _cosmic_rays(shape, n_single, n_tracks, energy, rng):
    """Cosmic-ray electrons: single pixels and short tracks (2-8 pixels, any direction)."""
    ny, nx = shape
    image = np.zeros(shape, dtype=np.float64)
    ys = rng.integers(0, ny, n_single)
    xs = rng.integers(0, nx, n_single)
    image[ys, xs] += np.exp(rng.uniform(np.log(energy[0]), np.log(energy[1]), n_single))
    for _ in range(n_tracks):
        length = rng.uniform(2.0, 8.0)
        angle = rng.uniform(0.0, np.pi)
        x0, y0 = rng.uniform(0, nx - 1), rng.uniform(0, ny - 1)
        t = np.linspace(0.0, length, int(np.ceil(length * 3)) + 1)
        px = np.clip(np.rint(x0 + t * np.cos(angle)).astype(int), 0, nx - 1)
        py = np.clip(np.rint(y0 + t * np.sin(angle)).astype(int), 0, ny - 1)
        cells = np.unique(np.stack([py, px], axis=1), axis=0)
        deposit = np.exp(rng.uniform(np.log(energy[0]), np.log(energy[1])))
        image[cells[:, 0], cells[:, 1]] += deposit * rng.uniform(0.5, 1.0, len(cells))
    return image


def make_dithered_exposures(directory, n_exposures=4, *, shape=(256, 256), n_chips=1, n_stars=25,
                            n_galaxies=6, star_flux=(1000.0, 5000.0), fwhm=2.5, pixel_scale_arcsec=0.1,
                            center=(150.0, 2.0), dithers=None, exptime=(400.0, 450.0, 500.0, 420.0),
                            sky_rate=(0.6, 0.9, 1.2, 0.75), gain=2.0, rdnoise=5.0, n_cosmics=(150, 25),
                            cr_energy=(300.0, 20000.0), bad_column=True, seed=0, prefix="exp"):
    """Dithered exposures of one sky field with cosmic rays, written as HST-FLT-like FITS files.

    Each file has a primary header (EXPTIME, GAIN, RDNOISE, BUNIT='COUNTS') and,
    per chip, ``SCI`` (ADU), ``ERR`` (ADU, 1 sigma) and ``DQ`` extensions with
    ``EXTVER`` 1, 2, ... and a TAN celestial WCS. The scene (stars and elongated
    Gaussian galaxies) is fixed on the sky; each exposure has its own pointing
    (sub-pixel and integer shifts, small rotations), sky level and exposure
    time, Poisson and read noise, and injected cosmic rays (single pixels and
    tracks).

    Parameters
    ----------
    directory : str or os.PathLike
        Where the files ``{prefix}{k}_flt.fits`` are written (k = 1, 2, ...).
    n_exposures : int
        Number of exposures (>= 1); the per-exposure tuples (``exptime``,
        ``sky_rate``, ``dithers``) are cycled when shorter.
    shape : tuple of int
        Detector shape ``(ny, nx)``; with ``n_chips`` > 1 it is split along y
        into chips (chip 1 at the bottom).
    n_chips : int
        SCI/ERR/DQ sets per file.
    n_stars, n_galaxies : int
        Sources, placed at least 12 pixels inside the common footprint.
    star_flux : tuple of float
        Star count rates (e-/s), drawn log-uniformly.
    fwhm : float
        Gaussian stellar FWHM, pixels.
    pixel_scale_arcsec : float
        Pixel size.
    center : tuple of float
        (RA, Dec) of the first pointing, degrees.
    dithers : sequence of (dx, dy, rotation_deg), optional
        Pointing offsets in pixels and rotations; default four offsets mixing
        integer and sub-pixel shifts with rotations up to 0.1 degree.
    exptime, sky_rate : tuple of float
        Exposure times (s) and sky count rates (e-/s/pixel).
    gain, rdnoise : float
        e-/ADU and read noise (e-).
    n_cosmics : tuple of int
        (single-pixel hits, tracks) per exposure and detector.
    cr_energy : tuple of float
        Range of the deposited electrons per hit (log-uniform).
    bad_column : bool
        Flag one column (DQ=4) per chip and fill it with garbage.
    seed : int
        Random seed.
    prefix : str
        File name prefix.

    Returns
    -------
    files : list of str
    truth : dict
        ``stars`` and ``galaxies`` (QTables: ``ra``, ``dec``, ``flux`` in e-/s;
        galaxies also ``sigma_major``, ``sigma_minor`` (pixels) and ``theta``);
        ``sky`` (ADU per pixel, per exposure), ``sky_rate``, ``exptime``,
        ``gain``, ``rdnoise``; ``cr_masks`` and ``cr_electrons`` (per exposure, a
        list of per-chip arrays: the injected hits); ``noise_sigma`` (per exposure
        and chip, the expected noise in electrons of every pixel without the
        cosmic rays); ``bad`` (per exposure and chip, the DQ-flagged pixels);
        ``wcs`` (per exposure and chip).
    """
    from astropy.io import fits
    from astropy.table import QTable

    if n_exposures < 1:
        raise InvalidParameterError(f"n_exposures must be >= 1, got {n_exposures}")
    if n_chips < 1 or shape[0] % n_chips:
        raise InvalidParameterError(f"n_chips must divide the detector height {shape[0]}, got {n_chips}")
    rng = np.random.default_rng(seed)
    if dithers is None:
        dithers = [(0.0, 0.0, 0.0), (3.5, 2.25, 0.05), (-2.3, 5.6, -0.08), (6.0, -3.0, 0.1)]
    ny, nx = shape
    base = make_wcs(shape, center=center, pixel_scale_arcsec=pixel_scale_arcsec)
    margin = 12.0 + max(max(abs(d[0]), abs(d[1])) for d in dithers)
    sx = rng.uniform(margin, nx - 1 - margin, n_stars + n_galaxies)
    sy = rng.uniform(margin, ny - 1 - margin, n_stars + n_galaxies)
    sky_pos = base.pixel_to_world_values(sx, sy)
    star_rates = np.exp(rng.uniform(np.log(star_flux[0]), np.log(star_flux[1]), n_stars))
    gal_rates = rng.uniform(2000.0, 8000.0, n_galaxies)
    gal_a = rng.uniform(2.0, 4.0, n_galaxies)
    gal_b = gal_a * rng.uniform(0.35, 0.8, n_galaxies)
    gal_theta = rng.uniform(0.0, np.pi, n_galaxies)
    stars = QTable({"ra": sky_pos[0][:n_stars], "dec": sky_pos[1][:n_stars], "flux": star_rates})
    galaxies = QTable({"ra": sky_pos[0][n_stars:], "dec": sky_pos[1][n_stars:], "flux": gal_rates,
                       "sigma_major": gal_a, "sigma_minor": gal_b, "theta": gal_theta})
    chip_ny = ny // n_chips
    files = []
    truth = {"stars": stars, "galaxies": galaxies, "sky": [], "sky_rate": [], "exptime": [], "gain": float(gain),
             "rdnoise": float(rdnoise), "cr_masks": [], "cr_electrons": [], "noise_sigma": [], "bad": [],
             "wcs": []}
    for k in range(n_exposures):
        dx, dy, rot = dithers[k % len(dithers)]
        texp = float(exptime[k % len(exptime)])
        rate = float(sky_rate[k % len(sky_rate)])
        det = make_wcs(shape, center=center, pixel_scale_arcsec=pixel_scale_arcsec, rotation_deg=rot)
        det.wcs.crpix = [base.wcs.crpix[0] + dx, base.wcs.crpix[1] + dy]
        det.wcs.set()
        px, py = det.world_to_pixel_values(sky_pos[0], sky_pos[1])
        scene = gaussian_star_image(shape, px[:n_stars], py[:n_stars], star_rates * texp, fwhm=fwhm,
                                    dtype=np.float64)
        scene += _elliptical_gaussian_image(shape, px[n_stars:], py[n_stars:], gal_rates * texp, gal_a, gal_b,
                                            gal_theta + np.deg2rad(rot))
        expected = scene + rate * texp
        electrons = rng.poisson(expected).astype(np.float64) + rng.normal(0.0, rdnoise, shape)
        crs = _cosmic_rays(shape, n_cosmics[0], n_cosmics[1], cr_energy, rng)
        electrons += crs
        hdus = [fits.PrimaryHDU()]
        primary = hdus[0].header
        primary["EXPTIME"] = (texp, "exposure time (s)")
        primary["GAIN"] = (float(gain), "e-/ADU")
        primary["RDNOISE"] = (float(rdnoise), "read noise (e-)")
        primary["BUNIT"] = "COUNTS"
        primary["NEXTEND"] = 3 * n_chips
        primary["FILENAME"] = f"{prefix}{k + 1}_flt.fits"
        masks, deposits, sigmas, bads, wcss = [], [], [], [], []
        for c in range(n_chips):
            rows = slice(c * chip_ny, (c + 1) * chip_ny)
            chip_wcs = det.deepcopy()
            chip_wcs.wcs.crpix = [det.wcs.crpix[0], det.wcs.crpix[1] - c * chip_ny]
            chip_wcs.wcs.set()
            chip_wcs.pixel_shape = (nx, chip_ny)
            sci = electrons[rows] / gain
            err = np.sqrt(expected[rows] + rdnoise**2) / gain
            dq = np.zeros((chip_ny, nx), np.int16)
            bad = np.zeros((chip_ny, nx), bool)
            if bad_column:
                col = int(rng.integers(nx // 4, 3 * nx // 4))
                dq[:, col] = 4
                bad[:, col] = True
                sci[:, col] = rng.uniform(-500.0, 5000.0, chip_ny)
            header = chip_wcs.to_header()
            header["BUNIT"] = "COUNTS"
            hdus.append(fits.ImageHDU(sci.astype(np.float32), header=header, name="SCI", ver=c + 1))
            hdus.append(fits.ImageHDU(err.astype(np.float32), header=header, name="ERR", ver=c + 1))
            hdus.append(fits.ImageHDU(dq, header=header, name="DQ", ver=c + 1))
            masks.append(crs[rows] > 0)
            deposits.append(crs[rows])
            sigmas.append(np.sqrt(expected[rows] + rdnoise**2))
            bads.append(bad)
            wcss.append(chip_wcs)
        path = os.path.join(os.fspath(directory), f"{prefix}{k + 1}_flt.fits")
        fits.HDUList(hdus).writeto(path, overwrite=True)
        files.append(path)
        truth["sky"].append(rate * texp / gain)
        truth["sky_rate"].append(rate)
        truth["exptime"].append(texp)
        truth["cr_masks"].append(masks)
        truth["cr_electrons"].append(deposits)
        truth["noise_sigma"].append(sigmas)
        truth["bad"].append(bads)
        truth["wcs"].append(wcss)
    return files, truth
