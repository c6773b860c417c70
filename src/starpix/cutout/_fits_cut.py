"""Many cutouts from many FITS files, written as astrocut writes them."""

from __future__ import annotations

import datetime
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._fitsbytes import BITPIX, card, checksum_stamp, image_hdu_bytes
from .._progress import progress
from .._version import __version__
from ..errors import InvalidParameterError, NoOverlapError, StarpixWarning
from ..io import (
    atomic_output,
    celestial_wcs,
    check_output,
    is_image_hdu,
    lazy_pixels,
    open_fits,
    parse_hdu_spec,
    provenance_cards,
    raw_header_text,
    select_image_hdu,
)
from ._image import cutout, cutout_header_cards
from ._targets import as_targets, cutout_filename, target_text

__all__ = ["fits_cut"]


@dataclass
class _Piece:
    """One cutout HDU, with where it came from."""

    file_index: int
    hdu: object
    sky: object


def _select_hdus(hdul, path, spec_hdu, hdu):
    """Indices of the HDUs to cut: one, a list, or every image ('all')."""
    wanted = spec_hdu if spec_hdu is not None else hdu
    if isinstance(wanted, str) and wanted.lower() == "all":
        indices = [i for i, candidate in enumerate(hdul) if is_image_hdu(candidate)]
        if not indices:
            select_image_hdu(hdul, None, path=path)  # raises "no HDU holds an image"
        return indices
    if isinstance(wanted, (list, tuple)) and not (len(wanted) == 2 and isinstance(wanted[1], int)
                                                 and isinstance(wanted[0], str)):
        return [select_image_hdu(hdul, one, path=path)[0] for one in wanted]
    return [select_image_hdu(hdul, wanted, path=path)[0]]


def _linearize_asinh(data, header):
    """Pan-STARRS stacks store asinh-scaled flux: undo it with BSOFTEN/BOFFSET."""
    x = data * (0.4 * math.log(10.0))
    return header["BOFFSET"] + header["BSOFTEN"] * (np.exp(x) - np.exp(-x))


def _storable(data):
    """Data in a dtype FITS stores without scaling (unsigned and bool widened)."""
    native = data.dtype.newbyteorder("=")
    if native in BITPIX:
        return data
    if native == np.dtype(bool) or native == np.dtype("int8"):
        return data.astype(np.int16)
    if native.kind == "u":
        return data.astype({1: np.uint8, 2: np.int32, 4: np.int64}.get(native.itemsize, np.float64))
    return data.astype(np.float64)


def _cut_hdu(source_hdu, header, wcs, index, primary_filename, center, size, fill_value, rounding,
             where, allow_empty, mode):
    """(card images, data, sky) of one CUTOUT extension."""
    cut = cutout(lazy_pixels(source_hdu), center, size, wcs=wcs, mode=mode, fill_value=fill_value,
                 rounding=rounding, where=where)
    data = cut.data
    empty = bool(np.all(data == 0) or np.all(np.isnan(data)))
    if empty and not allow_empty:
        raise NoOverlapError(f"{where}: the cutout at {target_text(center)} holds no data (all NaN or zero)")
    text = raw_header_text(source_hdu)
    cards = [image for image in cutout_header_cards(header, cut, header_text=text) if image[:8] != "FILENAME"]
    if not empty and "BSOFTEN" in header and "BOFFSET" in header:
        from astropy.io import fits

        data = _linearize_asinh(data, header)
        cards.append(fits.Card("HISTORY", "Pixel values converted from asinh-scaled to linear flux "
                                          "(BSOFTEN, BOFFSET).").image)
    filename = header.get("FILENAME") or primary_filename or os.path.basename(where.rsplit("[", 1)[0])
    cards += [card("O_EXT_NM", header.get("EXTNAME", ""), "Original extension name."),
              card("ORIG_FLE", filename, "Original image filename."),
              card("ORIG_EXT", index, "Extension in original file.")]
    if empty:
        cards.append(card("EMPTY", True, "Indicates no data in cutout image."))
    return (cards, _storable(data)), cut.sky


def _primary_cards(sky, inputs):
    cards = [card("ORIGIN", "STScI/MAST", "institution responsible for creating this file"),
             card("DATE", str(datetime.date.today()), "file creation date"),
             card("PROCVER", __version__, "software version")]
    if sky is not None:
        cards += [card("RA_OBJ", sky.icrs.ra.deg, "[deg] right ascension"),
                  card("DEC_OBJ", sky.icrs.dec.deg, "[deg] declination")]
    return cards + [card(*entry) for entry in provenance_cards(inputs)]


def _file_bytes(primary_cards, pieces):
    """A whole FITS file: the primary HDU and one CUTOUT extension per piece."""
    stamp = checksum_stamp()
    parts = [image_hdu_bytes(primary_cards, None, stamp)]
    parts += [image_hdu_bytes(cards, data, stamp) for cards, data in pieces]
    return b"".join(parts)


def fits_cut(files, coordinates, size, *, hdu=None, single_outfile=True, cutout_prefix="cutout",
             output_dir=".", output=None, memory_only=False, mode="partial", fill_value=np.nan,
             rounding="round", allow_empty=False, skip_missing=False, overwrite=False, progress_bar=False,
             executor=None, max_workers=None):
    """Cut regions around one or many positions out of one or many FITS images.

    Each file is opened once (memory-mapped) and only the rows each cutout
    needs are read.  Nothing is written until every cutout has been made,
    so a bad input leaves no output behind.

    Parameters
    ----------
    files : str or list of str
        FITS files; ``file.fits[SCI]`` picks an HDU per file.
    coordinates : SkyCoord, (x, y), or a list of them
        Cutout centres: sky positions, or 0-based pixel positions.
    size : int, float, (ny, nx), or Quantity
        Cutout size (pixels, or an angle converted with each image's pixel
        scale).  Note the order: (ny, nx) as in astropy; astrocut takes
        (nx, ny).
    hdu : int, str, list or 'all', optional
        HDUs to cut in every file (default: the first image HDU).
    single_outfile : bool
        One file per position holding one CUTOUT HDU per input file and
        HDU (astrocut's layout), or one file per input and position.
    cutout_prefix : str
        File-name prefix for ``single_outfile`` output.
    output_dir : str
        Directory of the outputs.
    output : str, optional
        File name to use instead of the default, when the call writes
        exactly one file.
    memory_only : bool
        Return HDULists instead of writing files.
    mode : {'partial', 'trim', 'strict'}
        Cutouts reaching outside an image: keep the requested shape and
        fill (astrocut's behaviour), trim to the overlap, or fail.
    fill_value : float
        Value of pixels outside the image; such cutouts have PARTIAL=T and
        NPIXMISS in their header.
    rounding : {'round', 'ceil', 'floor'}
        Rounding of the cutout limits.
    allow_empty : bool
        Keep cutouts that hold only NaN or zero (EMPTY=T) instead of
        treating them as missing.
    skip_missing : bool
        Warn and skip a (file, position) whose cutout misses the image,
        instead of raising :class:`~starpix.errors.NoOverlapError`.  A
        position that misses every image is still an error.
    overwrite : bool
        Replace existing files.
    progress_bar : bool
        Show a progress bar over files.
    executor : None, 'processes', dask.distributed.Client or Executor
        Where the files are cut (:func:`starpix.parallel.map_jobs`), one
        job per file: each worker opens its file by name (memory-mapped) and
        sends back only the cutouts, which are assembled and written here
        exactly as in a serial run.
    max_workers : int, optional
        Processes for ``'processes'``.

    Returns
    -------
    str, list of str, or list of HDUList
        One path when exactly one file is written, else the list of paths
        (in position order, then file order); HDULists with ``memory_only``.
    """

    files = [files] if isinstance(files, (str, os.PathLike)) else list(files)
    if not files:
        raise InvalidParameterError("files: no input files given")
    targets, _ = as_targets(coordinates)
    specs = [parse_hdu_spec(name) for name in files]
    if executor is not None:
        pieces, skies = _cut_parallel(specs, targets, hdu, size, fill_value, rounding, allow_empty, skip_missing,
                                      mode, executor, max_workers, progress_bar)
        outputs = _assemble(pieces, skies, targets, specs, size, single_outfile, cutout_prefix, output_dir)
        return _finish(outputs, targets, memory_only, output, overwrite)
    opened = []
    try:
        for path, _ in specs:
            opened.append(open_fits(path))
        pieces = {t: [] for t in range(len(targets))}
        skies = {}
        for file_index, ((path, spec_hdu), hdul) in enumerate(
                progress(list(zip(specs, opened)), enabled=progress_bar, desc="files")):
            for t, piece, sky in _cut_pieces(hdul, path, spec_hdu, targets, hdu, size, fill_value, rounding,
                                             allow_empty, skip_missing, mode, _warn_skipped):
                pieces[t].append(_Piece(file_index, piece, sky))
                skies.setdefault(t, sky)
        outputs = _assemble(pieces, skies, targets, specs, size, single_outfile, cutout_prefix, output_dir)
    finally:
        for hdul in opened:
            hdul.close()
    return _finish(outputs, targets, memory_only, output, overwrite)


def _finish(outputs, targets, memory_only, output, overwrite):
    """Return the HDULists, or write the files (all checked before the first is written)."""
    if not outputs:
        raise NoOverlapError("no cutout overlaps any input image: "
                             + "; ".join(target_text(c) for c in targets[:5]))
    if memory_only:
        from astropy.io import fits

        return [fits.HDUList.fromstring(content) for _, content in outputs]
    if output is not None:
        if len(outputs) != 1:
            raise InvalidParameterError(
                f"output: names one file, but this call makes {len(outputs)}; use output_dir instead"
            )
        outputs = [(os.fspath(output), outputs[0][1])]
    for name, _ in outputs:
        check_output(name, overwrite)
    written = []
    for name, content in outputs:
        with atomic_output(name, overwrite) as tmp, open(tmp, "wb") as handle:
            handle.write(content)
        written.append(name)
    return written[0] if len(written) == 1 else written


def _assemble(pieces, skies, targets, specs, size, single_outfile, prefix, output_dir):
    """(file name, file content) pairs in output order."""
    outputs = []
    for t, center in enumerate(targets):
        found = pieces[t]
        if not found:
            warnings.warn(f"no cutout at {target_text(center)} overlaps any input; no file written",
                          StarpixWarning, stacklevel=3)
            continue
        sky = center if not isinstance(center, tuple) else skies.get(t)
        label_center = center
        if single_outfile:
            inputs = [specs[p.file_index][0] for p in found]
            name = os.path.join(output_dir, cutout_filename(prefix, label_center, size))
            outputs.append((name, _file_bytes(_primary_cards(sky, dict.fromkeys(inputs)), [p.hdu for p in found])))
            continue
        by_file = {}
        for piece in found:
            by_file.setdefault(piece.file_index, []).append(piece.hdu)
        for file_index, hdus in by_file.items():
            path = specs[file_index][0]
            stem = Path(path).name.split(".")[0] if path.endswith(".gz") else Path(path).stem
            name = os.path.join(output_dir, cutout_filename(stem, label_center, size))
            outputs.append((name, _file_bytes(_primary_cards(sky, [path]), hdus)))
    names = [name for name, _ in outputs]
    if len(set(names)) != len(names):
        raise InvalidParameterError(
            "two outputs would get the same file name (same input stem or same position twice); "
            "use distinct inputs or positions"
        )
    return outputs


def _cut_file(job, *, targets, hdu, size, fill_value, rounding, allow_empty, skip_missing, mode):
    """Worker: cut every target out of one file; ([(target, piece, sky)], [skip messages])."""
    path, spec_hdu = job
    missed = []
    with open_fits(path) as hdul:
        found = _cut_pieces(hdul, path, spec_hdu, targets, hdu, size, fill_value, rounding, allow_empty,
                            skip_missing, mode, missed.append)
    return found, missed


def _warn_skipped(message):
    """fits_cut's report of a skipped target (the warning points at fits_cut's caller)."""
    warnings.warn(message, StarpixWarning, stacklevel=4)


def _cut_pieces(hdul, path, spec_hdu, targets, hdu, size, fill_value, rounding, allow_empty, skip_missing, mode,
                skipped):
    """[(target, piece, sky)] of every target in the chosen HDUs of an open file, in order.

    A target that misses an HDU raises NoOverlapError, or with ``skip_missing``
    is left out and ``skipped(message)`` is called at once.
    """
    found = []
    indices = _select_hdus(hdul, path, spec_hdu, hdu)
    primary_filename = hdul[0].header.get("FILENAME")
    for index in indices:
        source = hdul[index]
        wcs = celestial_wcs(source.header, path=path, hdu=index, fobj=hdul)
        where = f"{path}[{index}]"
        for t, center in enumerate(targets):
            try:
                piece, sky = _cut_hdu(source, source.header, wcs, index, primary_filename, center, size,
                                      fill_value, rounding, where, allow_empty, mode)
            except NoOverlapError as exc:
                if not skip_missing:
                    raise
                skipped(f"{exc}; skipped")
                continue
            found.append((t, piece, sky))
    return found


def _cut_parallel(specs, targets, hdu, size, fill_value, rounding, allow_empty, skip_missing, mode, executor,
                  max_workers, progress_bar):
    """fits_cut's loop over files on an executor: the same pieces, in the same order; (pieces, skies)."""
    import functools

    from ..parallel import imap_jobs

    for path, _ in specs:  # fail on a missing or unreadable file before sending any job
        open_fits(path).close()
    func = functools.partial(_cut_file, targets=targets, hdu=hdu, size=size, fill_value=fill_value,
                             rounding=rounding, allow_empty=allow_empty, skip_missing=skip_missing, mode=mode)
    pieces = {t: [] for t in range(len(targets))}
    skies = {}
    results = imap_jobs(func, specs, executor=executor, max_workers=max_workers, chunksize=1,
                        progress_bar=progress_bar, desc="files")
    for file_index, (found, missed) in enumerate(results):
        for message in missed:
            warnings.warn(message, StarpixWarning, stacklevel=3)  # at fits_cut's caller
        for t, piece, sky in found:
            pieces[t].append(_Piece(file_index, piece, sky))
            skies.setdefault(t, sky)
    return pieces, skies
