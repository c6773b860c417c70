"""PSF photometry of one large image in overlapping tiles, and of many images, on any executor.

:func:`tiled_photometry` cuts the image into a grid of *cores* (the tiles
without their margins, which cover the image once) and grows every core by
``overlap`` pixels on each side.  Each tile is read on its own (a worker
memory-maps the file and reads only its tile) and fitted by the given
:class:`~starpix.photometry.PSFPhotometry`.  A source found in the margin of
a tile is found again, and fitted with the same neighbours, by the tile
whose core holds it; each source is kept only by the tile whose core
contains its detected (initial) position, and the rows are then numbered in
a fixed order.  The catalogue is therefore the same whatever the executor,
bit for bit and row for row.

:func:`batch_photometry` fits many images, one job per image.
"""

from __future__ import annotations

import functools
import math
import os

import numpy as np

from ..errors import InvalidParameterError
from ..parallel import imap_jobs

__all__ = ["tiled_photometry", "batch_photometry", "tile_grid"]

_POSITION_COLUMNS = ("x_init", "y_init", "x_fit", "y_fit")


def _is_path(value):
    return isinstance(value, (str, os.PathLike))


def tile_grid(shape, tile_size, overlap):
    """Cores and tiles of a grid over an image.

    Parameters
    ----------
    shape : (int, int)
        Image shape ``(ny, nx)``.
    tile_size : int or (int, int)
        Core size ``(ny, nx)`` (the last row and column of cores are smaller).
    overlap : int
        Margin added on every side of a core, clipped to the image.

    Returns
    -------
    list of (core, tile)
        ``(y0, y1, x0, x1)`` pixel ranges (end excluded) in row-major order.
    """
    ny, nx = (int(v) for v in shape)
    ty, tx = _pair(tile_size, "tile_size")
    if isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer)) or overlap < 0:
        raise InvalidParameterError(f"overlap: expected an integer >= 0 (pixels), got {overlap!r}")
    grid = []
    for y0 in range(0, ny, ty):
        for x0 in range(0, nx, tx):
            y1, x1 = min(ny, y0 + ty), min(nx, x0 + tx)
            tile = (max(0, y0 - overlap), min(ny, y1 + overlap), max(0, x0 - overlap), min(nx, x1 + overlap))
            grid.append(((y0, y1, x0, x1), tile))
    return grid


def _pair(value, name):
    values = value if isinstance(value, (tuple, list)) else (value, value)
    if len(values) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
                                   for v in values):
        raise InvalidParameterError(f"{name}: expected a positive integer or (ny, nx), got {value!r}")
    return int(values[0]), int(values[1])


def _default_overlap(phot):
    """Margin wide enough for a source's fit box, its finder kernel and its group's neighbours."""
    reach = 2 * max(phot.fit_shape)
    separation = getattr(phot.grouper, "min_separation", None)
    if separation is not None and np.isfinite(separation):
        reach += 2 * int(math.ceil(separation))
    fwhm = getattr(phot.finder, "fwhm", None)
    if fwhm is not None and np.isfinite(fwhm):
        reach += int(math.ceil(3 * fwhm))
    return int(reach)


def _image_shape(image, hdu):
    if _is_path(image):
        from ..io import read_image

        with read_image(image, hdu) as source:
            return tuple(source.shape)
    array = np.asarray(getattr(image, "value", image))
    if array.ndim != 2:
        raise InvalidParameterError(f"image: expected a 2-D array or a FITS file name, got shape {array.shape}")
    return array.shape


def _read_region(ref, hdu, region, name, shape):
    """Pixels of ``region`` of a file (only those are read) or of an array; None stays None."""
    if ref is None:
        return None
    y0, y1, x0, x1 = region
    if _is_path(ref):
        from ..io import read_image

        with read_image(ref, hdu) as source:
            if tuple(source.shape) != tuple(shape):
                raise InvalidParameterError(f"{name}: {source.label} has shape {source.shape}, the image "
                                            f"{tuple(shape)}")
            return np.array(source.section[y0:y1, x0:x1])
    return ref  # already the tile's pixels (sliced on the client)


def _slice(ref, region, name, shape):
    if ref is None or _is_path(ref):
        return ref
    array = ref if hasattr(ref, "unit") else np.asarray(ref)
    if array.shape != tuple(shape):
        raise InvalidParameterError(f"{name}: shape {array.shape} differs from the image's {tuple(shape)}")
    y0, y1, x0, x1 = region
    return array[y0:y1, x0:x1]


def _tile_job(job, *, phot, hdu):
    """Worker: fit one tile; keep the rows whose initial position lies in the core; global coordinates."""
    index, core, region, shape, image, error, mask, init = job
    y0, y1, x0, x1 = region
    data = _read_region(image, hdu, region, "image", shape)
    err = _read_region(error, None, region, "error", shape)
    bad = _read_region(mask, None, region, "mask", shape)
    if bad is not None:
        bad = np.asarray(bad) != 0
    if init is not None:
        if len(init) == 0:
            return index, None
        init = init.copy()
        init["x_init"] = np.asarray(init["x_init"], float) - x0
        init["y_init"] = np.asarray(init["y_init"], float) - y0
    table = phot.fit(data, error=err, mask=bad, init_params=init).table
    if len(table) == 0:
        return index, None
    for name in ("x_init", "x_fit"):
        table[name] = np.asarray(table[name], float) + x0
    for name in ("y_init", "y_fit"):
        table[name] = np.asarray(table[name], float) + y0
    keep = _in_core(np.asarray(table["x_init"], float), np.asarray(table["y_init"], float), core, shape)
    return index, table[keep]


def _in_core(x, y, core, shape):
    """Positions inside a core: pixel ranges [start - 0.5, stop - 0.5), edge cores reaching to infinity."""
    cy0, cy1, cx0, cx1 = core
    ny, nx = shape
    low_x = -np.inf if cx0 == 0 else cx0 - 0.5
    high_x = np.inf if cx1 == nx else cx1 - 0.5
    low_y = -np.inf if cy0 == 0 else cy0 - 0.5
    high_y = np.inf if cy1 == ny else cy1 - 0.5
    return (x >= low_x) & (x < high_x) & (y >= low_y) & (y < high_y)


def _init_table(init_params, phot):
    """init_params with x_init/y_init columns and ids, in the same form PSFPhotometry reads."""
    from astropy.table import QTable, Table

    from ._psf_photometry import _find_column

    if not isinstance(init_params, Table):
        raise InvalidParameterError(f"init_params must be an astropy Table, got {type(init_params).__name__}")
    xcol, ycol = _find_column(init_params, "x"), _find_column(init_params, "y")
    if xcol is None or ycol is None:
        raise InvalidParameterError(f"init_params must have x and y position columns; it has "
                                    f"{init_params.colnames}")
    table = QTable(init_params, copy=True)
    x = np.asarray(getattr(table[xcol], "value", table[xcol]), float)
    y = np.asarray(getattr(table[ycol], "value", table[ycol]), float)
    for name in (xcol, ycol):
        del table[name]
    table["x_init"] = x
    table["y_init"] = y
    if "id" not in table.colnames:
        table["id"] = np.arange(1, len(table) + 1)
    return table


def tiled_photometry(image, phot, *, tile_size=1024, overlap=None, hdu=None, error=None, mask=None,
                     init_params=None, executor=None, max_workers=None, progress_bar=False):
    """PSF photometry of one large image, tile by tile, serially or on many workers.

    Parameters
    ----------
    image : str, os.PathLike or 2-D array
        A FITS file (``file.fits[HDU]`` or ``hdu=``), memory-mapped: each job
        reads only its tile.  An array works too, but with processes or Dask
        each tile's pixels are then pickled and sent; pass file names.
    phot : PSFPhotometry
        The photometry applied to every tile (its finder finds the sources
        when ``init_params`` is None).  Its finder must not depend on the
        statistics of the whole frame (a fixed threshold), so that a source
        is found at the same position by every tile that sees it.
    tile_size : int or (int, int)
        Size of the cores ``(ny, nx)`` that partition the image.
    overlap : int, optional
        Margin of each tile around its core, in pixels.  Default: twice the
        largest ``fit_shape`` side, plus twice the grouper's
        ``min_separation`` and three finder FWHMs when they have them.  It
        must be wider than a source's fit box plus its group, so that the
        tile keeping a source sees everything the untiled fit would.
    hdu : int or str, optional
        HDU of ``image`` when it is a file name.
    error, mask : str, os.PathLike or 2-D array, optional
        Uncertainties and bad-pixel mask (non-zero = bad), of the image's
        shape; file names are read tile by tile like the image.
    init_params : astropy Table, optional
        Initial positions (any of PSFPhotometry's column names) over the
        whole image; each tile fits those inside it.
    executor : None, 'processes', dask.distributed.Client or Executor
        Where the tiles are fitted (:func:`starpix.parallel.map_jobs`).
    max_workers : int, optional
        Processes for ``'processes'``.
    progress_bar : bool
        Show a progress bar over the tiles.

    Returns
    -------
    PSFTable
        PSFPhotometry's columns, positions in the whole image's pixels.
        With ``init_params``, one row per initial source, ordered by its
        ``id`` as PSFPhotometry orders them; otherwise ids 1..N in the order
        tile (row-major), then finder order within the tile.  ``group_id``
        is renumbered 1..G in row order of first appearance
        (tile by tile); ``group_size`` is the size of the group as fitted in
        its tile.

    Notes
    -----
    A source is kept by the tile whose core contains its *detected*
    position (``x_init, y_init``), not its fitted one: both tiles that see
    a source near a seam detect it at the same place, whereas its fit can
    differ by a hair between them and land on either side of the seam,
    which would keep it twice or lose it.  Sources whose fit box (or group)
    reaches beyond ``overlap`` into the next core are fitted without their
    far neighbours, unlike in an untiled run.
    """
    from astropy.table import vstack

    from ._psf_photometry import PSFPhotometry, PSFTable

    if not isinstance(phot, PSFPhotometry):
        raise InvalidParameterError(f"phot: expected a PSFPhotometry, got {type(phot).__name__}")
    if init_params is None and phot.finder is None:
        raise InvalidParameterError("give init_params or a PSFPhotometry with a finder")
    shape = _image_shape(image, hdu)
    overlap = _default_overlap(phot) if overlap is None else overlap
    grid = tile_grid(shape, tile_size, overlap)
    init = None if init_params is None else _init_table(init_params, phot)
    if init is not None:
        ix, iy = np.asarray(init["x_init"], float), np.asarray(init["y_init"], float)
    jobs = []
    for index, (core, region) in enumerate(grid):
        sub = None
        if init is not None:
            # every source a tile could keep, or that it must fit as a neighbour
            y0, y1, x0, x1 = region
            inside = (ix >= x0 - 0.5) & (ix < x1 - 0.5) & (iy >= y0 - 0.5) & (iy < y1 - 0.5)
            inside |= _in_core(ix, iy, core, shape)
            sub = init[inside]
        image_ref = image if _is_path(image) else _slice(image, region, "image", shape)
        jobs.append((index, core, region, shape, image_ref, _slice(error, region, "error", shape),
                     _slice(mask, region, "mask", shape), sub))
    func = functools.partial(_tile_job, phot=phot, hdu=hdu)
    parts = []
    for index, table in imap_jobs(func, jobs, executor=executor, max_workers=max_workers, chunksize=1,
                                  progress_bar=progress_bar, desc="tiles"):
        if table is not None and len(table):
            table["_tile"] = np.full(len(table), index, dtype=np.int64)
            parts.append(table)
    if not parts:
        return phot._empty_result(shape, None, None).table
    meta = dict(parts[0].meta)
    for part in parts:
        part.meta.clear()
    table = PSFTable(vstack(parts, join_type="exact"))
    table.meta.update(meta)
    if init is None:
        table["id"] = np.arange(1, len(table) + 1)
    else:
        order = np.argsort(np.asarray(table["id"]), kind="stable")
        table = table[order]
    pairs = np.column_stack([np.asarray(table["_tile"]), np.asarray(table["group_id"])])
    _, first, inverse = np.unique(pairs, axis=0, return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(1, len(first) + 1)
    table["group_id"] = rank[inverse.ravel()]
    del table["_tile"]
    table.meta["tile_size"] = _pair(tile_size, "tile_size")
    table.meta["overlap"] = int(overlap)
    return table


def _image_job(job, *, phot, hdu):
    image, error, mask, init = job
    data = image
    if _is_path(image):
        from ..io import read_image

        with read_image(image, hdu) as source:
            data = np.array(source.data)
    err = _full(error)
    bad = _full(mask)
    return phot.fit(data, error=err, mask=None if bad is None else bad != 0, init_params=init).table


def _full(ref):
    if ref is None or not _is_path(ref):
        return ref
    from ..io import read_image

    with read_image(ref) as source:
        return np.array(source.data)


def batch_photometry(images, phot, *, hdu=None, errors=None, masks=None, init_params=None, executor=None,
                     max_workers=None, progress_bar=False):
    """PSF photometry of many images, one job per image, serially or on many workers.

    Parameters
    ----------
    images : sequence of str, os.PathLike or 2-D arrays
        FITS files (read by the worker that fits them) or arrays.
    phot : PSFPhotometry
        Applied to every image.
    hdu : int or str, optional
        HDU of the FITS images.
    errors, masks : sequence, optional
        One error / mask (non-zero = bad) per image (file names or arrays,
        or None).
    init_params : astropy Table or sequence of them, optional
        One table for all images, or one per image.
    executor, max_workers, progress_bar
        As :func:`tiled_photometry`.

    Returns
    -------
    list of PSFTable
        One catalogue per image, in the order of ``images``, each equal to
        ``phot(image, ...)``.
    """
    from astropy.table import Table

    from ._psf_photometry import PSFPhotometry

    if not isinstance(phot, PSFPhotometry):
        raise InvalidParameterError(f"phot: expected a PSFPhotometry, got {type(phot).__name__}")
    images = [images] if _is_path(images) else list(images)
    if not images:
        raise InvalidParameterError("images: no images given")
    n = len(images)

    def per_image(values, name):
        if values is None:
            return [None] * n
        values = list(values)
        if len(values) != n:
            raise InvalidParameterError(f"{name}: expected {n} entries (one per image), got {len(values)}")
        return values

    if init_params is None or isinstance(init_params, Table):
        inits = [init_params] * n
    else:
        inits = per_image(init_params, "init_params")
    jobs = list(zip(images, per_image(errors, "errors"), per_image(masks, "masks"), inits))
    func = functools.partial(_image_job, phot=phot, hdu=hdu)
    return list(imap_jobs(func, jobs, executor=executor, max_workers=max_workers, chunksize=1,
                          progress_bar=progress_bar, desc="images"))
