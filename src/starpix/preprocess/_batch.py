"""Cosmic-ray masks (and cleaned images) of many files, one job per file, on any executor.

Each job reads its own file (by name), runs :func:`detect_cosmics` on it and
writes its outputs itself, so no pixels travel between the workers and the
caller: only file names and counts do.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np

from ..errors import InvalidParameterError
from ..parallel import imap_jobs

__all__ = ["mask_cosmics_files", "CosmicsFileResult"]

_DROP = ("XTENSION", "SIMPLE", "PCOUNT", "GCOUNT", "EXTEND", "BSCALE", "BZERO", "BLANK", "CHECKSUM", "DATASUM",
         "BUNIT")


class CosmicsFileResult(NamedTuple):
    """What one file gave: the output names (None when not written) and the number of cosmic-ray pixels."""

    input: str
    mask: Optional[str]
    cleaned: Optional[str]
    n_pixels: int


def _stem(path):
    name = Path(os.fspath(path).rsplit("[", 1)[0] if os.fspath(path).endswith("]") else path).name
    for suffix in (".fits.gz", ".fit.gz", ".fts.gz", ".fits", ".fit", ".fts"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def _header(header, inputs, n_pixels):
    from ..io import add_provenance

    header = header.copy()
    for key in _DROP:
        header.remove(key, ignore_missing=True, remove_all=True)
    add_provenance(header, inputs)
    header["CRNPIX"] = (int(n_pixels), "cosmic-ray pixels")
    return header


def _one_file(job, *, hdu, options, overwrite, cleantype):
    """Worker: read one image (and its bad-pixel mask), find its cosmic rays, write the outputs."""
    from astropy.io import fits

    from ..io import read_image, write_fits
    from ._cosmics import detect_cosmics

    spec, bad_spec, mask_path, clean_path = job
    with read_image(spec, hdu) as source:
        data = np.array(source.data, dtype=float)
        header = source.header.copy()
        label = source.label
    if data.ndim != 2:
        raise InvalidParameterError(f"{label}: expected a 2-D image, got shape {data.shape}")
    bad = None
    if bad_spec is not None:
        with read_image(bad_spec) as source:
            bad = np.asarray(source.data) != 0
            if bad.shape != data.shape:
                raise InvalidParameterError(f"masks: {source.label} has shape {bad.shape}, the image {label} "
                                            f"{data.shape}")
    try:
        crmask, cleaned = detect_cosmics(data, bad, cleantype=cleantype, **options)
    except InvalidParameterError as exc:
        raise InvalidParameterError(f"{label}: {exc}") from None
    n_pixels = int(crmask.sum())
    inputs = [os.fspath(spec)] + ([os.fspath(bad_spec)] if bad_spec is not None else [])
    written = []
    try:
        if mask_path is not None:
            write_fits([fits.PrimaryHDU(crmask.astype(np.uint8), header=_header(header, inputs, n_pixels))],
                       mask_path, overwrite=overwrite)
            written.append(mask_path)
        if clean_path is not None:
            head = _header(header, inputs, n_pixels)
            head["CRCLEAN"] = (cleantype, "cosmic-ray cleaning method")
            write_fits([fits.PrimaryHDU(cleaned, header=head)], clean_path, overwrite=overwrite)
    except BaseException:
        for path in written:
            os.remove(path)
        raise
    return CosmicsFileResult(os.fspath(spec), mask_path, clean_path, n_pixels)


def mask_cosmics_files(files, *, output_dir=".", masks=None, write_mask=True, write_cleaned=True,
                       mask_suffix="_crmask", clean_suffix="_clean", hdu=None, overwrite=False, executor=None,
                       max_workers=None, progress_bar=False, cleantype="meanmask", **options):
    """Cosmic-ray masks and cleaned images of many FITS files, serially or on many workers.

    Every file gets exactly what :func:`~starpix.preprocess.detect_cosmics`
    gives its pixels (read as float64, like ``starpix cosmics``), written as
    ``{output_dir}/{stem}{mask_suffix}.fits`` (uint8, 1 = cosmic ray) and
    ``{output_dir}/{stem}{clean_suffix}.fits``.  Each worker reads its file
    and writes its outputs itself.

    Parameters
    ----------
    files : sequence of str or os.PathLike
        FITS images (``file.fits[HDU]`` or ``hdu=``), in ADU with the sky.
    output_dir : str or os.PathLike
        Directory of the outputs (created if missing).
    masks : sequence, optional
        One bad-pixel mask file (non-zero = bad) or None per file.
    write_mask, write_cleaned : bool
        Which outputs to write (at least one).
    mask_suffix, clean_suffix : str
        Appended to each input's stem.
    hdu : int or str, optional
        HDU of the inputs.
    overwrite : bool
        Replace existing outputs; otherwise any existing output is an error
        raised before any work starts.
    executor : None, 'processes', dask.distributed.Client or Executor
        Where the files are processed (:func:`starpix.parallel.map_jobs`).
    max_workers : int, optional
        Processes for ``'processes'``.
    progress_bar : bool
        Show a progress bar over the files.
    cleantype, **options
        Options of :func:`~starpix.preprocess.detect_cosmics` (``gain``,
        ``readnoise``, ``sigclip``, ...).

    Returns
    -------
    list of CosmicsFileResult
        ``(input, mask, cleaned, n_pixels)`` per file, in the order of
        ``files``.

    Raises
    ------
    InvalidParameterError
        No files, two inputs with the same output names, bad options.
    OutputExistsError
        An output exists and ``overwrite`` is false.

    Notes
    -----
    If a file fails, the outputs already written by the files finished
    before it are removed and the error is raised; jobs still running on a
    cluster when that happens may finish writing theirs.
    """
    from ..io import check_output
    from ._cosmics import detect_cosmics

    files = [files] if isinstance(files, (str, os.PathLike)) else list(files)
    if not files:
        raise InvalidParameterError("files: no input files given")
    if not (write_mask or write_cleaned):
        raise InvalidParameterError("write_mask, write_cleaned: nothing to write (both false)")
    masks = [None] * len(files) if masks is None else list(masks)
    if len(masks) != len(files):
        raise InvalidParameterError(f"masks: expected {len(files)} entries (one per file), got {len(masks)}")
    known = set(_option_names())
    unknown = sorted(set(options) - known)
    if unknown:
        raise InvalidParameterError(f"unknown detect_cosmics option(s): {', '.join(unknown)}")
    # check the options once, on a tiny flat image, before sending any job
    detect_cosmics(np.full((16, 16), 100.0), cleantype=cleantype, **options)
    output_dir = os.fspath(output_dir)
    jobs, seen = [], {}
    for spec, bad in zip(files, masks):
        stem = _stem(spec)
        outputs = [os.path.join(output_dir, f"{stem}{mask_suffix}.fits") if write_mask else None,
                   os.path.join(output_dir, f"{stem}{clean_suffix}.fits") if write_cleaned else None]
        for path in outputs:
            if path is None:
                continue
            if path in seen:
                raise InvalidParameterError(f"files: {seen[path]} and {spec} would both be written to {path}")
            seen[path] = spec
            check_output(path, overwrite)
        jobs.append((spec, bad, *outputs))
    os.makedirs(output_dir, exist_ok=True)
    func = functools.partial(_one_file, hdu=hdu, options=options, overwrite=overwrite, cleantype=cleantype)
    results = []
    try:
        for result in imap_jobs(func, jobs, executor=executor, max_workers=max_workers, chunksize=1,
                                progress_bar=progress_bar, desc="cosmics"):
            results.append(result)
    except BaseException:
        for result in results:
            for path in (result.mask, result.cleaned):
                if path is not None and os.path.exists(path):
                    os.remove(path)
        raise
    return results


def _option_names():
    import inspect

    from ._cosmics import detect_cosmics

    return [name for name, p in inspect.signature(detect_cosmics).parameters.items()
            if p.kind is p.KEYWORD_ONLY and name != "cleantype"]
