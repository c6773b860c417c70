"""Many PSF stamps of one image in one call: :func:`psf_stamps` and :class:`StampSet`.

The image (and the segmentation) are read once.  Given as file names they are
memory-mapped, and only each star's box is read; parallel workers re-open
them by name (memory-mapped again) instead of receiving the pixels pickled.
Each star is cut by :func:`~starpix.stamp.psf_stamp` with the same options,
so a batch is identical, stamp for stamp and bit for bit, to calling
``psf_stamp`` in a loop, whatever the executor.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import FormatError, InvalidParameterError, OutputExistsError
from ..parallel import default_chunksize, map_jobs

__all__ = ["psf_stamps", "StampSet", "stamp_file_name", "coordinate_text", "read_segment_file", "SegmentLayers"]

_FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")

# psf_stamp's keywords that every star of a batch shares
_OPTION_NAMES = ("width", "normradii", "snthresh", "normop", "axis_ratio", "position_angle", "sigmaclip",
                 "centering")


# --------------------------------------------------------------------------------------------------
# inputs


def _is_path(value):
    return isinstance(value, (str, os.PathLike))


class SegmentLayers(dict):
    """CLUMPS, OBJECTS and SKY_STD of a segmentation file, memory-mapped (keys 'clumps', 'objects',
    'sky_std'); only the parts that are sliced are read.  ``close()`` releases the file."""

    def __init__(self, layers, hdul):
        super().__init__(layers)
        self._hdul = hdul

    def close(self):
        """Close the file (the arrays must not be used afterwards)."""
        if self._hdul is not None:
            self._hdul.close()
            self._hdul = None


def read_segment_file(path):
    """The layers :func:`~starpix.stamp.psf_stamp` needs from a segmentation file, memory-mapped.

    A file in Gnuastro Segment's layout (``starpix segment`` writes the same):
    HDUs named CLUMPS and OBJECTS (required) and SKY_STD (optional, for
    ``snthresh``), as :func:`starpix.detect.read_segmentation` finds them; but
    nothing is read beyond the stamps' boxes, and no WCS is built.

    Returns
    -------
    SegmentLayers
        A mapping accepted as ``segment=`` by ``psf_stamp``; close it when done.
    """
    from ..io import open_fits

    path = os.fspath(path)
    hdul = open_fits(path)
    try:
        found = {}
        for hdu in hdul:
            name = str(hdu.header.get("EXTNAME", "")).strip().upper()
            if name in ("CLUMPS", "OBJECTS", "SKY_STD") and name not in found:
                found[name] = hdu
        missing = [name for name in ("CLUMPS", "OBJECTS") if name not in found]
        if missing:
            raise FormatError(f"{path}: a segmentation file needs HDUs CLUMPS and OBJECTS (Gnuastro Segment's "
                              f"layout); {' and '.join(missing)} missing")
        layers = {}
        for key in ("CLUMPS", "OBJECTS", "SKY_STD"):
            hdu = found.get(key)
            data = None if hdu is None else hdu.data
            if hdu is not None and (data is None or data.ndim != 2):
                raise FormatError(f"{path}: HDU {key} holds no 2-D image")
            layers[key.lower()] = data
        shapes = {tuple(v.shape) for v in layers.values() if v is not None}
        if len(shapes) != 1:
            raise FormatError(f"{path}: the CLUMPS, OBJECTS and SKY_STD maps differ in shape ({sorted(shapes)})")
    except BaseException:
        hdul.close()
        raise
    return SegmentLayers(layers, hdul)


@dataclass
class _Inputs:
    """The image, its header/WCS and the segmentation of a batch, opened once."""

    data: object
    header: object = None
    wcs: object = None
    segment: object = None
    source: object = None
    closers: list = field(default_factory=list)

    def close(self):
        for closer in self.closers:
            closer()
        self.closers.clear()


def _open_inputs(image_ref, segment_ref, wcs, header):
    """Open what the references name: a path (memory-mapped) or the object itself."""
    opened = _Inputs(data=None, wcs=wcs, header=header)
    try:
        if isinstance(image_ref, tuple) and image_ref and image_ref[0] == "file":
            from ..io import read_image

            _, spec, hdu = image_ref
            source = read_image(spec, hdu)
            opened.closers.append(source.close)
            opened.data = source.data
            opened.source = source.label
            if opened.header is None:
                opened.header = source.header
            if opened.wcs is None:
                opened.wcs = source.wcs
        else:
            opened.data = image_ref
        if _is_path(segment_ref):
            opened.segment = read_segment_file(segment_ref)
            closer = getattr(opened.segment, "close", None)
            if callable(closer):
                opened.closers.append(closer)
        else:
            opened.segment = segment_ref
    except BaseException:
        opened.close()
        raise
    return opened


def _one_stamp(center, *, inputs, mode, options):
    from ._stamp import psf_stamp

    return psf_stamp(inputs.data, center, mode=mode, segment=inputs.segment, wcs=inputs.wcs,
                     header=inputs.header, **options)


def _stamp_chunk(job):
    """Worker job: open the inputs (by name where they are files) and cut a chunk of stars."""
    image_ref, segment_ref, wcs, header, mode, options, centers = job
    inputs = _open_inputs(image_ref, segment_ref, wcs, header)
    try:
        return [_one_stamp(center, inputs=inputs, mode=mode, options=options) for center in centers]
    finally:
        inputs.close()


def _centers(centers, mode):
    """A list of per-star centres (x, y) floats, (ra, dec) floats or SkyCoord scalars."""
    if mode == "wcs":
        try:
            from astropy.coordinates import SkyCoord
        except ImportError:  # pragma: no cover - astropy is a dependency
            SkyCoord = ()
        if isinstance(centers, SkyCoord):
            coords = centers.reshape(-1) if not centers.isscalar else centers.reshape(1)
            return [coords[i] for i in range(len(coords))]
        if isinstance(centers, (list, tuple)) and centers and isinstance(centers[0], SkyCoord):
            return list(centers)
    try:
        array = np.asarray(centers, dtype=float)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"centers: expected N pairs of numbers, got {type(centers).__name__}") from None
    if array.ndim == 1 and array.size == 2:
        array = array.reshape(1, 2)
    if array.ndim != 2 or array.shape[1] != 2:
        raise InvalidParameterError(f"centers: expected an (N, 2) array of {'ra, dec' if mode == 'wcs' else 'x, y'}"
                                    f" pairs, got shape {array.shape}")
    bad = ~np.all(np.isfinite(array), axis=1)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise InvalidParameterError(f"centers: row {index} is not two finite numbers ({array[index].tolist()})")
    return [tuple(row) for row in array.tolist()]


def _sky_pair(center):
    if hasattr(center, "ra"):
        icrs = center.icrs
        return float(icrs.ra.deg), float(icrs.dec.deg)
    return float(center[0]), float(center[1])


# --------------------------------------------------------------------------------------------------
# the batch


def psf_stamps(image, centers, *, mode="img", width=None, normradii=None, segment=None, snthresh=None,
               normop="median", axis_ratio=1.0, position_angle=0.0, sigmaclip=None, centering=True, wcs=None,
               header=None, hdu=None, executor=None, max_workers=None, chunksize=None, progress_bar=False):
    """PSF stamps of many stars of one image, read once, serially or in parallel.

    Every star gets exactly what :func:`~starpix.stamp.psf_stamp` gives it
    with the same options; the batch only shares the reading of the inputs
    and spreads the stars over workers.

    Parameters
    ----------
    image : 2-D array, str or os.PathLike
        The image, or a FITS file name (``file.fits[HDU]`` or ``hdu=``) that
        is memory-mapped: only the stars' boxes are read, and parallel
        workers re-open it by name.  A file's header supplies the WCS.
    centers : (N, 2) array-like, or SkyCoord
        0-based pixel positions ``(x, y)`` in img mode; ``(ra, dec)`` in
        degrees or a SkyCoord array in wcs mode.
    mode : {'img', 'wcs'}
        How to read ``centers``.
    width, normradii, segment, snthresh, normop, axis_ratio, position_angle, sigmaclip, centering, wcs, header
        As :func:`~starpix.stamp.psf_stamp`, shared by all stars.  ``width``
        must be one size for all (the stamps are stacked into one array).
        ``segment`` may also be the file name of a segmentation (Gnuastro's
        Segment output or ``starpix segment``'s), memory-mapped and re-opened
        by name in workers.
    hdu : int or str, optional
        HDU of ``image`` when it is a file name (default: the first image HDU).
    executor : None, 'serial', 'processes' or concurrent.futures.Executor
        Where to run (:func:`starpix.parallel.map_jobs`).  In-memory arrays
        given to 'processes' are pickled once per chunk; pass file names to
        avoid that.
    max_workers, chunksize : int, optional
        Worker processes and stars per job (:func:`starpix.parallel.map_jobs`).
    progress_bar : bool
        Show a progress bar.

    Returns
    -------
    StampSet
        ``stamps`` (N, ny, nx) float32, ``headers`` and the catalogue
        ``table`` (id, x, y or ra, dec, normval, clabel, olabel), in the
        order of ``centers``.

    Raises
    ------
    InvalidParameterError
        Bad centres or options (as ``psf_stamp``), an unknown executor.
    InputFileError, HDUError, FormatError
        Unreadable image or segmentation files.
    """
    if mode not in ("img", "wcs"):
        raise InvalidParameterError(f"mode: expected 'img' or 'wcs', got {mode!r}")
    stars = _centers(centers, mode)
    options = dict(width=width, normradii=normradii, snthresh=snthresh, normop=normop, axis_ratio=axis_ratio,
                   position_angle=position_angle, sigmaclip=sigmaclip, centering=centering)
    image_ref = ("file", os.fspath(image), hdu) if _is_path(image) else image
    segment_ref = os.fspath(segment) if _is_path(segment) else segment
    # open once here: checks the files before any work, and serves the serial run
    inputs = _open_inputs(image_ref, segment_ref, wcs, header)
    try:
        if inputs.data is None or np.ndim(inputs.data) != 2:
            raise InvalidParameterError(f"image: expected a 2-D image, got {np.ndim(inputs.data)} dimensions")
        serial = executor is None or executor == "serial"
        if serial or not stars:
            job = functools.partial(_one_stamp, inputs=inputs, mode=mode, options=options)
            results = map_jobs(job, stars, executor=None, progress_bar=progress_bar, desc="stamps")
        else:
            from ..parallel import _workers

            workers = _workers(max_workers)
            size = chunksize or default_chunksize(len(stars), workers)
            # files travel as names (workers re-open them memory-mapped and re-read their header and WCS)
            jobs = [(image_ref, segment_ref, wcs, header, mode, options, stars[i:i + size])
                    for i in range(0, len(stars), size)]
            parts = map_jobs(_stamp_chunk, jobs, executor=executor, max_workers=max_workers, chunksize=1,
                             progress_bar=progress_bar, desc="stamp chunks")
            results = [result for part in parts for result in part]
        source = inputs.source
    finally:
        inputs.close()
    return StampSet._from_results(results, stars, mode, options, source=source)


# --------------------------------------------------------------------------------------------------
# results


def coordinate_text(value):
    """A coordinate as Gnuastro's file names show a typed one: shortest exact decimal ('300', '300.37')."""
    value = float(value)
    if value == 0:
        return "0"
    return np.format_float_positional(value, trim="-")


def stamp_file_name(base, x_text, y_text):
    """Gnuastro's default stamp name, ``<base>_stamp_<x>_<y>.fits``."""
    return f"{base}_stamp_{x_text}_{y_text}.fits"


def _base_name(path):
    """Gnuastro's ``<base>``: the file's basename cut at its first '.fits'."""
    name = os.path.basename(os.fspath(path))
    cut = name.find(".fits")
    return name[:cut] if cut > 0 else (name.rsplit(".", 1)[0] if "." in name[1:] else name)


def _label(value):
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return int(value)


def _header_float(header, key):
    value = header.get(key)
    if value is None or isinstance(value, str):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


@dataclass
class StampSet:
    """The PSF stamps of a batch, in the order of the input positions.

    Attributes
    ----------
    stamps : numpy.ndarray
        (N, ny, nx) float32.
    headers : list of astropy.io.fits.Header
        Each stamp's header (WCS, NORMVAL, CLABEL, OLABEL, provenance).
    table : astropy.table.QTable
        One row per star: ``id`` (1-based), ``x``, ``y`` (0-based pixels, img
        mode) or ``ra``, ``dec`` (degrees, wcs mode), ``normval``, and
        ``clabel``/``olabel`` (masked where there is no label: no
        segmentation, or the centre off the segmentation).
    options : dict
        The ``psf_stamp`` options shared by the stamps.
    source : str or None
        ``file[HDU]`` of the image when it was given as a file.
    """

    stamps: np.ndarray
    headers: list
    table: object
    options: dict = field(default_factory=dict)
    source: str = None

    @classmethod
    def _from_results(cls, results, stars, mode, options, source=None):
        from astropy.table import MaskedColumn, QTable

        headers = [header for _, header in results]
        if results:
            shapes = {stamp.shape for stamp, _ in results}
            if len(shapes) != 1:  # pragma: no cover - one width gives one shape
                raise InvalidParameterError(f"stamps of different shapes {sorted(shapes)}: give one width")
            stamps = np.stack([np.asarray(stamp, dtype=np.float32) for stamp, _ in results])
        else:
            stamps = np.empty((0, 0, 0), dtype=np.float32)
        table = QTable()
        table["id"] = np.arange(1, len(stars) + 1)
        if mode == "img":
            table["x"] = np.array([float(c[0]) for c in stars])
            table["y"] = np.array([float(c[1]) for c in stars])
        else:
            from astropy import units as u

            pairs = [_sky_pair(c) for c in stars]
            table["ra"] = np.array([p[0] for p in pairs]) * u.deg
            table["dec"] = np.array([p[1] for p in pairs]) * u.deg
        table["normval"] = np.array([_header_float(h, "NORMVAL") for h in headers])
        for key in ("clabel", "olabel"):
            labels = [_label(h.get(key.upper())) for h in headers]
            table[key] = MaskedColumn([0 if v is None else v for v in labels], dtype=np.int64,
                                      mask=[v is None for v in labels])
        table.meta["mode"] = mode
        return cls(stamps=stamps, headers=headers, table=table, options=dict(options), source=source)

    def __len__(self):
        return len(self.headers)

    def __getitem__(self, index):
        """``(stamp, header)`` of star ``index`` (0-based)."""
        return self.stamps[index], self.headers[index]

    def file_names(self, base=None, texts=None):
        """Gnuastro's per-star file names, ``<base>_stamp_<x>_<y>.fits``.

        Parameters
        ----------
        base : str, optional
            Default: the image file's ``<base>`` (its name cut at '.fits'), or
            'image' for an in-memory image.
        texts : list of (str, str), optional
            The coordinates as typed; default: 1-based pixel positions in img
            mode (Gnuastro's convention), RA and Dec in degrees in wcs mode.
        """
        if base is None:
            base = _base_name(self.source.rsplit("[", 1)[0]) if self.source else "image"
        if texts is None:
            if self.table.meta.get("mode", "img") == "img":
                texts = [(coordinate_text(x + 1), coordinate_text(y + 1))
                         for x, y in zip(self.table["x"], self.table["y"])]
            else:
                texts = [(coordinate_text(ra), coordinate_text(dec))
                         for ra, dec in zip(self.table["ra"].value, self.table["dec"].value)]
        if len(texts) != len(self):
            raise InvalidParameterError(f"texts: {len(texts)} coordinate pairs for {len(self)} stamps")
        names = [stamp_file_name(base, x, y) for x, y in texts]
        seen = {}
        for index, name in enumerate(names):
            if name in seen:
                raise InvalidParameterError(f"stars {seen[name] + 1} and {index + 1} would both be written to "
                                            f"{name}: the same position twice")
            seen[name] = index
        return names

    def write(self, path, *, overwrite=False, base=None, texts=None):
        """Write the stamps: one FITS cube, or one file per star in a directory.

        Parameters
        ----------
        path : str or os.PathLike
            A name ending in .fits (.fit, .fts, optionally .gz): one file with
            the stamps stacked along NAXIS3 in the primary HDU (EXTNAME
            STAMPS; plane k is star k+1 of the table) and the catalogue as a
            binary table in HDU 1 (EXTNAME CATALOG; x, y there are 0-based as
            in :attr:`table`).  Any other name: a directory (created if
            missing) holding one Gnuastro-style stamp file per star, named
            ``<base>_stamp_<x>_<y>.fits`` (see :meth:`file_names`), each with an
            empty primary HDU and the stamp with its header in HDU 1.
        overwrite : bool
            Replace existing files.  Without it nothing is written when any
            target exists.
        base, texts
            File naming of the per-star layout (:meth:`file_names`).

        Returns
        -------
        list of str
            The files written.
        """
        path = os.fspath(path)
        if path.lower().endswith(_FITS_SUFFIXES):
            return [self._write_cube(path, overwrite)]
        return self._write_files(path, overwrite, base, texts)

    def _cube_header(self):
        from astropy.io import fits

        from ..io import add_provenance

        header = fits.Header()
        header["EXTNAME"] = ("STAMPS", "PSF stamps stacked along NAXIS3")
        header["NSTAMPS"] = (len(self), "number of stamps (planes)")
        header["MODE"] = (self.table.meta.get("mode", "img"), "coordinate mode of the positions")
        opts = self.options
        if opts.get("normradii") is not None:
            header["NORMRMIN"] = (float(opts["normradii"][0]), "inner normalization radius (pixels)")
            header["NORMRMAX"] = (float(opts["normradii"][1]), "outer normalization radius (pixels)")
        header["NORMOP"] = (str(opts.get("normop", "median")), "normalization operator")
        header["AXISRAT"] = (float(opts.get("axis_ratio", 1.0)), "axis ratio of the normalization rings")
        header["POSANG"] = (float(opts.get("position_angle", 0.0)), "position angle of the rings (deg)")
        if opts.get("snthresh") is not None:
            header["SNTHRESH"] = (float(opts["snthresh"]), "S/N threshold of the masking")
        header["CENTERED"] = (bool(opts.get("centering", True)), "sub-pixel centring applied")
        inputs = [self.source.rsplit("[", 1)[0]] if self.source else []
        return add_provenance(header, inputs)

    def _write_cube(self, path, overwrite):
        from astropy.io import fits
        from astropy.table import Table

        from ..io import write_fits

        primary = fits.PrimaryHDU(self.stamps, header=self._cube_header())
        catalog = fits.table_to_hdu(Table(self.table))
        catalog.name = "CATALOG"
        return write_fits(fits.HDUList([primary, catalog]), path, overwrite=overwrite)

    def _write_files(self, directory, overwrite, base, texts):
        names = self.file_names(base, texts)
        targets = [os.path.join(directory, name) for name in names]
        if os.path.exists(directory) and not os.path.isdir(directory):
            raise OutputExistsError(f"{directory}: exists and is not a directory")
        if not overwrite:
            existing = [target for target in targets if os.path.exists(target)]
            if existing:
                raise OutputExistsError(f"{existing[0]}: already exists (use --overwrite / overwrite=True to "
                                        f"replace it){f'; and {len(existing) - 1} more' if len(existing) > 1 else ''}")
        created = not os.path.exists(directory)
        if created:
            os.makedirs(directory)
        written = []
        try:
            for target, (stamp, header) in zip(targets, zip(self.stamps, self.headers)):
                write_stamp(target, stamp, header, overwrite=overwrite)
                written.append(target)
        except BaseException:
            for target in written:
                if os.path.exists(target):
                    os.remove(target)
            if created and not os.listdir(directory):
                os.rmdir(directory)
            raise
        return written


def stamp_hdulist(stamp, header):
    """Gnuastro's stamp file layout: an empty primary HDU, the float32 stamp and its header in HDU 1."""
    from astropy.io import fits

    return fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.asarray(stamp, dtype=np.float32), header=header)])


def write_stamp(path, stamp, header, *, overwrite=False):
    """Write one stamp as Gnuastro does (see :func:`stamp_hdulist`), atomically."""
    from ..io import write_fits

    return write_fits(stamp_hdulist(stamp, header), path, overwrite=overwrite)

