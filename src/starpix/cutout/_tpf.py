"""Target pixel files cut from a cube of full-frame images (astrocut's ``cube_cut``).

A cube (astrocut's ``CubeFactory`` layout, see ``build_cube``) holds every
FFI pixel's time series contiguously: HDU 1 has numpy shape
``(ny, nx, n_ffi, 2)`` (flux, uncertainty), HDU 2 is a table with one row of
FFI header values per cadence.  A target pixel file (TPF) is the stack of
one small box of that cube in TESS's layout: PRIMARY, a PIXELS table (one
row per cadence) and an APERTURE image, with a linear WCS fitted to the
FFI's distorted one.

Speed: the cube is opened and memory-mapped once for any number of
targets, and only each target's box is read.  The three headers are
rendered once per cube (and per cutout shape) as FITS card images; per
target only the cards that change (target position, fitted WCS, fit
quality) are formatted, the table rows are filled into a reused buffer,
and the file is written directly with its CHECKSUM/DATASUM computed here.

Opening and reading the cube (and the cache of open cubes) is in
``_cubefile``; the header templates and keyword tables are in ``_tpf_header``.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._fitsbytes import checksum_stamp
from .._fitsbytes import hdu_bytes as _hdu_bytes
from .._fitsbytes import pad as _pad
from .._progress import progress
from ..errors import InvalidParameterError, NoOverlapError, OutputExistsError
from ..geometry import cutout_limits, overlap_slices, parse_size
from ._cubefile import CubeFile, clear_cube_cache, open_cube
from ._targets import as_targets, astrocut_name
from ._tpf_header import aperture_template, build_primary_cards, pixels_extra_cards, pixels_template, primary_template
from ._wcsfit import angular_separation, fit_linear_tan, sample_positions

__all__ = ["cube_cut", "clear_cube_cache"]

logger = logging.getLogger("starpix")


@dataclass
class _Target:
    """One requested cutout, located on the cube."""

    index: int
    xy: tuple
    ra: float
    dec: float
    limits: np.ndarray  # [[ymin, ymax], [xmin, xmax]]
    original: tuple  # slices in the image
    inner: tuple  # slices in the cutout


class _Shape:
    """Everything that depends only on the cutout shape: table layout, headers, buffers."""

    def __init__(self, cube, ny, nx):
        self.ny, self.nx = ny, nx
        npix = ny * nx
        n = cube.n_frames
        width = cube.ffi_names.dtype.itemsize
        self.dtype = np.dtype([
            ("TIME", ">f8"), ("TIMECORR", ">f4"), ("CADENCENO", ">i4"),
            ("RAW_CNTS", ">i4", (ny, nx)), ("FLUX", ">f4", (ny, nx)), ("FLUX_ERR", ">f4", (ny, nx)),
            ("FLUX_BKG", ">f4", (ny, nx)), ("FLUX_BKG_ERR", ">f4", (ny, nx)),
            ("QUALITY", ">i4"), ("POS_CORR1", ">f4"), ("POS_CORR2", ">f4"), ("FFI_FILE", f"S{width}"),
        ])
        size = self.dtype.itemsize * n
        self.table_bytes = size + _pad(size)
        self.buffer = np.zeros(self.table_bytes, dtype=np.uint8)
        self.rows = np.ndarray((n,), dtype=self.dtype, buffer=self.buffer)
        self.rows["TIME"] = cube.time
        self.rows["TIMECORR"] = cube.timecorr
        self.rows["RAW_CNTS"] = -1
        self.rows["QUALITY"] = cube.quality
        self.rows["FFI_FILE"] = cube.ffi_names

        aperture_size = 4 * npix
        self.aperture_full = np.ones((ny, nx), dtype=">i4").tobytes() + b"\0" * _pad(aperture_size)
        self.aperture_buffer = np.zeros(aperture_size + _pad(aperture_size), dtype=np.uint8)

        self.pixels_header = pixels_template(ny, nx, n, self.dtype.itemsize, width, cube.pixels_extra,
                                             cube.primary_cards)
        self.aperture_header = aperture_template(ny, nx, cube.primary_cards)

        # pixel grid and the WCS fit samples
        gy, gx = np.mgrid[0:ny, 0:nx]
        self.grid_x, self.grid_y = gx.ravel().astype(float), gy.ravel().astype(float)
        sx, sy = sample_positions(ny, nx)
        self.sample_index = (sy.astype(int) * nx + sx.astype(int))
        self.sample_x, self.sample_y = sx, sy


class _Cube(CubeFile):
    """An opened cube with its TPF header templates and per-shape plans: what ``cube_cut`` cuts from."""

    def _prepare(self):
        self.primary_cards = build_primary_cards(self.hdul[0].header, self.path)
        self.primary_header = primary_template(self.primary_cards)
        self.pixels_extra = pixels_extra_cards(self.wcs_row_values, self.wcs_ffi)
        self._shapes = {}

    def shape_plan(self, ny, nx):
        plan = self._shapes.get((ny, nx))
        if plan is None:
            plan = self._shapes[(ny, nx)] = _Shape(self, ny, nx)
        return plan

    # -- targets -------------------------------------------------------------

    def locate(self, targets, size_yx, rounding, skip_missing):
        """Place every target on the image; NoOverlapError (or a skip) for those off it."""
        from astropy.coordinates import SkyCoord

        sky = [t for t in targets if isinstance(t, SkyCoord)]
        xs = np.full(len(targets), np.nan)
        ys = np.full(len(targets), np.nan)
        ras = np.full(len(targets), np.nan)
        decs = np.full(len(targets), np.nan)
        sky_index = [i for i, t in enumerate(targets) if isinstance(t, SkyCoord)]
        pixel_index = [i for i, t in enumerate(targets) if not isinstance(t, SkyCoord)]
        if sky:
            coords = sky[0] if len(sky) == 1 else _stack_sky(sky)
            icrs = coords.icrs
            ras[sky_index] = np.atleast_1d(icrs.ra.deg)
            decs[sky_index] = np.atleast_1d(icrs.dec.deg)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    px, py = self.wcs.world_to_pixel(coords)
                xs[sky_index], ys[sky_index] = np.atleast_1d(px), np.atleast_1d(py)
            except Exception:  # noqa: BLE001 - one bad position spoils astropy's batch: do them one by one
                for i in sky_index:
                    try:
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            px, py = self.wcs.world_to_pixel(targets[i])
                        xs[i], ys[i] = float(px), float(py)
                    except Exception:  # noqa: BLE001 - NoConvergence and friends: off the image
                        pass
        if pixel_index:
            pxy = np.array([targets[i] for i in pixel_index], dtype=float)
            xs[pixel_index], ys[pixel_index] = pxy[:, 0], pxy[:, 1]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                world = self.wcs.pixel_to_world(pxy[:, 0], pxy[:, 1]).icrs
            ras[pixel_index], decs[pixel_index] = world.ra.deg, world.dec.deg
        located = []
        for i in range(len(targets)):
            where = _target_text(ras[i], decs[i], xs[i], ys[i], isinstance(targets[i], SkyCoord))
            if not (np.isfinite(xs[i]) and np.isfinite(ys[i])):
                self._missing(f"{self.path}: {where} cannot be placed on the image", skip_missing)
                located.append(None)
                continue
            limits = cutout_limits((xs[i], ys[i]), size_yx, rounding)
            original, inner = overlap_slices(self.shape, limits)
            if original is None:
                ny, nx = (int(high - low) for low, high in limits)
                self._missing(
                    f"{self.path}: the {ny}x{nx} cutout at {where} lies entirely off the "
                    f"{self.shape[0]}x{self.shape[1]} image", skip_missing)
                located.append(None)
                continue
            located.append(_Target(i, (float(xs[i]), float(ys[i])), float(ras[i]), float(decs[i]),
                                   limits, original, inner))
        return located

    @staticmethod
    def _missing(message, skip):
        if not skip:
            raise NoOverlapError(message)
        logger.warning("%s; skipped", message)

    # -- one TPF -------------------------------------------------------------

    def tpf_bytes(self, target, fill_value, stamp):
        """The complete TPF file content of one target."""
        (ymin, ymax), (xmin, xmax) = target.limits
        ny, nx = int(ymax - ymin), int(xmax - xmin)
        plan = self.shape_plan(ny, nx)
        rows = plan.rows
        original, inner = target.original, target.inner
        block = self.data[original[0], original[1]]  # (h, w, n, 2), only this box is read
        partial = (inner[0].stop - inner[0].start, inner[1].stop - inner[1].start) != (ny, nx)
        flux = rows["FLUX"]
        error = rows["FLUX_ERR"]
        if partial:
            flux[...] = fill_value
            error[...] = fill_value
        flux[:, inner[0], inner[1]] = np.moveaxis(block[..., 0], 2, 0)
        error[:, inner[0], inner[1]] = np.moveaxis(block[..., 1], 2, 0)
        if partial:
            aperture = np.ndarray((ny, nx), dtype=">i4", buffer=plan.aperture_buffer)
            aperture[...] = 0
            aperture[inner] = 1
            aperture_bytes = plan.aperture_buffer.tobytes()
        else:
            aperture_bytes = plan.aperture_full

        values = self._wcs_values(plan, xmin, ymin)
        values["RA_OBJ"] = target.ra
        values["DEC_OBJ"] = target.dec
        values["NPIXMISS"] = None
        values["NPIXSAP"] = None
        primary, _ = _hdu_bytes(self.primary_header.render(values), None, stamp)
        pixels_header, pixels_data = _hdu_bytes(plan.pixels_header.render(values), plan.buffer, stamp)
        aperture_header, aperture_data = _hdu_bytes(plan.aperture_header.render(values), aperture_bytes, stamp)
        return [primary, pixels_header, pixels_data, aperture_header, aperture_data]

    def _wcs_values(self, plan, xmin, ymin):
        """Fit the linear WCS of a cutout and measure it against the full FFI WCS."""
        lon, lat = self.wcs.all_pix2world(plan.grid_x + xmin, plan.grid_y + ymin, 0)
        samples = plan.sample_index
        fit = fit_linear_tan(plan.sample_x, plan.sample_y, lon[samples], lat[samples])
        fit_lon, fit_lat = fit.pixel_to_world_values(plan.grid_x, plan.grid_y)
        separation = angular_separation(lon, lat, fit_lon, fit_lat)
        cd = fit.cd
        return {
            "CRPIX1": float(fit.crpix[0]), "CRPIX2": float(fit.crpix[1]),
            "CRVAL1": float(fit.crval[0]), "CRVAL2": float(fit.crval[1]), "LATPOLE": float(fit.crval[1]),
            "PC1_1": float(cd[0, 0]), "PC1_2": float(cd[0, 1]), "PC2_1": float(cd[1, 0]), "PC2_2": float(cd[1, 1]),
            "PHYS1": int(xmin) + 1, "PHYS2": int(ymin) + 1,
            "WCS_MSEP": float(separation.max()), "WCS_SIG": float(np.sqrt(np.sum(separation ** 2))),
        }


def _stack_sky(coords):
    from astropy.coordinates import SkyCoord

    icrs = [c.icrs for c in coords]
    return SkyCoord([c.ra.deg for c in icrs], [c.dec.deg for c in icrs], unit="deg", frame="icrs")


def _target_text(ra, dec, x, y, is_sky):
    position = f"RA={ra:.7f} Dec={dec:.7f}" if np.isfinite(ra) and np.isfinite(dec) else ""
    pixel = f"pixel x={x:.2f} y={y:.2f}" if np.isfinite(x) and np.isfinite(y) else ""
    if is_sky:
        return f"{position} ({pixel})" if pixel else position
    return f"{pixel} ({position})" if position else pixel


# ---------------------------------------------------------------------------
# The public function
# ---------------------------------------------------------------------------


def _default_name(cube_path, ra, dec, size):
    # astrocut strips the *characters* '-cube' from the stem's end (rstrip), so do we
    return astrocut_name(Path(cube_path).stem.rstrip("-cube"), ra, dec, size)


def cube_cut(cube_file, coordinates, size, *, output=None, output_dir=".", fill_value=np.nan, rounding="round",
             overwrite=False, memory_only=False, skip_missing=False, progress_bar=False, executor=None,
             max_workers=None):
    """Cut target pixel files (TPFs) out of a cube of full-frame images.

    The fast equivalent of astrocut's ``cube_cut`` / ``TessCubeCutout``: the
    files have astrocut's layout (PRIMARY, a PIXELS table and an APERTURE
    image with a fitted linear WCS) and are read by lightkurve.  Many
    targets in one call share one opening of the cube, and only each
    target's pixels are read.

    Parameters
    ----------
    cube_file : str or os.PathLike
        A cube in astrocut's ``CubeFactory`` layout (also what
        :func:`starpix.cutout.build_cube` writes).
    coordinates : SkyCoord, (x, y), or a sequence of them
        Cutout centres: one sky position (scalar SkyCoord) or one 0-based
        pixel position ``(x, y)`` gives one TPF; a SkyCoord array, an
        ``(N, 2)`` array of pixel positions or a list gives one TPF each.
    size : int, float, (ny, nx) or Quantity
        Cutout size in pixels, or an angle converted with the FFI's pixel
        scale.  NB astrocut applies the first of two numbers to x; starpix
        reads them as (ny, nx), as astropy does.
    output : str, optional
        File name of the TPF (one target only), in ``output_dir``.  Default:
        astrocut's ``{cube stem}_{ra:.7f}_{dec:.7f}_{NX-x-NY}_astrocut.fits``
        (the stem with the characters '-cube' stripped from its end, as
        astrocut does).
    output_dir : str or os.PathLike
        Where to write; created if missing.
    fill_value : float
        FLUX and FLUX_ERR of cutout pixels off the image (their aperture is 0).
    rounding : {'round', 'ceil', 'floor'}
        How the box limits ``centre +- size/2`` become whole pixels.
    overwrite : bool
        Replace existing files; otherwise an existing file is an error,
        raised before anything is written.
    memory_only : bool
        Return ``astropy.io.fits.HDUList`` objects and write nothing.
    skip_missing : bool
        Log a warning and skip targets whose cutout lies entirely off the
        image (their entry in the result is None), instead of raising
        :class:`~starpix.errors.NoOverlapError`.
    progress_bar : bool
        Show a tqdm progress bar over the targets.
    executor : None, 'processes', dask.distributed.Client or Executor
        Where the TPFs are made (:func:`starpix.parallel.map_jobs`): the
        targets are located here, then each worker opens the cube by name
        (memory-mapped), reads its targets' boxes and writes their files
        itself; only names (or, with ``memory_only``, the TPFs' bytes) come
        back.  The files are identical to a serial run's.
    max_workers : int, optional
        Processes for ``'processes'``.

    Returns
    -------
    str, HDUList, or list of them
        One path (or HDUList) for one target, else a list in the order of
        the targets.

    Raises
    ------
    InputFileError
        The cube is missing or not FITS.
    FormatError
        The file is not a cube in astrocut's layout, or none of its FFI
        rows has a celestial WCS.
    NoOverlapError
        A cutout lies entirely off the image (and ``skip_missing`` is false).
    OutputExistsError
        An output file exists and ``overwrite`` is false.

    Notes
    -----
    The last two cubes used stay open (memory-mapped) between calls, so
    that repeated calls on one cube skip reading its headers and FFI table
    again; a cube whose file changed is opened afresh
    (:func:`clear_cube_cache` closes them).

    Differences from astrocut 1.4 (fixes): WCS_MSEP and WCS_SIG hold the
    real maximum and root-sum-square separation (deg) between the FFI's
    SIP WCS and the fitted linear WCS over all cutout pixels (astrocut 1.x
    writes 0); the image columns of the PIXELS table carry the per-column
    WCS keywords (``1CTYP5``, ``1CRPX5``, ``11PC5``, ``1CRV5P``, ...);
    FFI_FILE holds the whole FFI names; a box entirely off the image is a
    clear error; CREATOR/PROCVER name starpix, and STARPIX/SPXIN1 record
    the version and the cube.  Box limits round halves up (astrocut rounds
    them to even).
    """
    targets, single = as_targets(coordinates)
    if output is not None and not single:
        raise InvalidParameterError("output: names one file, but several targets were given (use output_dir)")
    cube = open_cube(cube_file, _Cube)
    with cube.lock:
        size_yx = parse_size(size, cube.wcs)
        located = cube.locate(targets, size_yx, rounding, skip_missing)
        paths = [None] * len(targets)
        if not memory_only:
            seen = {}
            for target in located:
                if target is None:
                    continue
                name = output if output is not None else _default_name(cube.path, target.ra, target.dec, size)
                path = os.path.join(os.fspath(output_dir), name)
                if path in seen:
                    raise InvalidParameterError(
                        f"coordinates: targets {seen[path]} and {target.index} would both be written to {path}")
                seen[path] = target.index
                if os.path.exists(path) and not overwrite:
                    raise OutputExistsError(f"{path}: already exists (use --overwrite / overwrite=True to replace it)")
                paths[target.index] = path
            if any(paths):
                os.makedirs(os.fspath(output_dir), exist_ok=True)
        stamp = checksum_stamp()
        results = [None] * len(targets)
        work = [target for target in located if target is not None]
        if executor is None:
            _cut_serial(cube, work, paths, results, fill_value, stamp, overwrite, memory_only, progress_bar)
    if executor is not None:  # outside the lock: a worker thread of this process takes it for its TPF
        _cut_parallel(cube.path, work, paths, results, fill_value, stamp, overwrite, memory_only, executor,
                      max_workers, progress_bar)
    return results[0] if single else results


def _cut_serial(cube, work, paths, results, fill_value, stamp, overwrite, memory_only, progress_bar):
    """cube_cut's loop over targets in this process (the cube's lock held); fills ``results`` in place."""
    from ..io import atomic_output

    for target in progress(work, enabled=progress_bar, desc="TPFs", unit="tpf"):
        pieces = cube.tpf_bytes(target, fill_value, stamp)
        if memory_only:
            from astropy.io import fits

            results[target.index] = fits.HDUList.fromstring(b"".join(pieces))
            continue
        path = paths[target.index]
        with atomic_output(path, overwrite) as tmp:
            with open(tmp, "wb") as handle:
                for piece in pieces:
                    handle.write(piece)
        results[target.index] = path


def _tpf_job(job, *, cube_path, fill_value, stamp, overwrite, memory_only):
    """Worker: open the cube by name (cached, memory-mapped) and make one TPF: its path, or its bytes."""
    from ..io import atomic_output

    target, path = job
    cube = open_cube(cube_path, _Cube)
    with cube.lock:
        pieces = cube.tpf_bytes(target, fill_value, stamp)
    if memory_only:
        return b"".join(pieces)
    with atomic_output(path, overwrite) as tmp:
        with open(tmp, "wb") as handle:
            for piece in pieces:
                handle.write(piece)
    return path


def _cut_parallel(cube_path, work, paths, results, fill_value, stamp, overwrite, memory_only, executor,
                  max_workers, progress_bar):
    """cube_cut's loop over targets, on an executor; fills ``results`` in place."""
    import functools

    from ..parallel import imap_jobs

    func = functools.partial(_tpf_job, cube_path=os.path.abspath(cube_path), fill_value=fill_value, stamp=stamp,
                             overwrite=overwrite, memory_only=memory_only)
    jobs = [(target, paths[target.index]) for target in work]
    try:
        for target, result in zip(work, imap_jobs(func, jobs, executor=executor, max_workers=max_workers,
                                                    progress_bar=progress_bar, desc="TPFs")):
            if memory_only:
                from astropy.io import fits

                result = fits.HDUList.fromstring(result)
            results[target.index] = result
    except BaseException:
        if not overwrite and not memory_only:
            # every planned file is new (existing ones were refused before any work), including those that
            # workers finished but whose results never came back here
            for _, path in jobs:
                if os.path.exists(path):
                    os.remove(path)
        raise
