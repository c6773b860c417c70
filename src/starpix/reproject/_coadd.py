"""Coadding many images on one celestial grid in bounded memory.

Every input is read, reprojected onto the part of the output grid it covers
(its bounding box) and dropped before the next is read.

- ``'mean'`` and ``'sum'`` (without background matching) accumulate two
  output-sized arrays as the inputs stream by.
- ``'median'``, ``'sigclip-mean'`` and background matching need every
  input's values at a pixel together: the reprojected bounding boxes are
  kept as float32, in memory while they fit in ``memory_limit`` bytes and
  otherwise in a temporary file (plain reads and writes, no memory map), and
  the output is then combined in blocks of rows whose stack fits in
  ``memory_limit``.

Peak memory is therefore about: one input image as float64 and its
reprojection with pixel maps (~6 input-sized float64 arrays), plus
``memory_limit``, plus the output image and weight map.

By output tiles (``tile_size`` or an ``executor``): the output grid is cut
into bands of ``tile_size`` full-width rows, and one job per band (run here,
on local processes or on a Dask cluster through
:func:`starpix.parallel.imap_jobs`) reads from every input only the pixels
that reach its band (memory-mapped FITS sections), reprojects them and
combines them; the client plans (headers only), then writes the bands into
the output as they come back.  The result is bit-identical to the serial
run: the pixel maps' coarse nodes are anchored on the whole grid (see
:func:`starpix.reproject._reproject.pixel_map`), the overlap methods add
fixed input-row blocks in order in output-grid coordinates, and every
per-pixel combination sees the same values in the same order.  Background
matching takes one more pass of band jobs, which return per-row sums of the
pairwise differences; the client adds them row by row (as the serial run
does) and solves the offsets once before the combining pass.
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import tempfile

import numpy as np

from ..errors import InvalidParameterError, NoOverlapError
from ._optimal_wcs import _edge_points, optimal_wcs
from ._reproject import (
    _METHODS,
    _ORDERS,
    _as_wcs,
    _check_image,
    _check_shape,
    _reproject_interp,
    _reproject_overlap,
    _transform,
    choose_step,
    corner_step,
    prefilter,
    reproject,
)

__all__ = ["coadd", "COADD_METHODS"]

COADD_METHODS = ("mean", "median", "sigclip-mean", "sum")
_log = logging.getLogger("starpix")


def _load(item, index, hdu):
    """(float64 array, wcs, mask or None, label) of one input."""
    if isinstance(item, (str, os.PathLike)):
        from ..io import read_image

        with read_image(item, hdu=hdu) as source:
            wcs = source.require_wcs()
            data = np.array(source.data, dtype=np.float64)
            return data, wcs, None, source.label
    if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
        raise InvalidParameterError(
            f"images[{index}]: expected a FITS file name, (array, wcs) or (array, wcs, mask), "
            f"got {type(item).__name__}")
    data = np.asarray(item[0])
    if data.ndim != 2:
        raise InvalidParameterError(f"images[{index}]: expected a 2-d image, got shape {data.shape}")
    wcs = _canonical(_as_wcs(item[1], f"images[{index}]"))
    mask = None
    if len(item) == 3 and item[2] is not None:
        mask = np.asarray(item[2], dtype=bool)
        if mask.shape != data.shape:
            raise InvalidParameterError(f"images[{index}]: mask shape {mask.shape} differs from the image's "
                                        f"{data.shape}")
    return data, wcs, mask, f"images[{index}]"


def _canonical(wcs):
    """The WCS as a worker receives it: pickling goes through a FITS header, which rounds some values;
    one round trip is a fixed point, so serial and parallel runs use bit-identical WCSs."""
    return pickle.loads(pickle.dumps(wcs))


def _bbox(shape, wcs_in, wcs_out, shape_out, margin=2):
    """(x0, x1, y0, y1) of the output pixels an input can reach, or None."""
    xs, ys = _edge_points(shape, 33)
    xo, yo = _transform(wcs_in, wcs_out, xs, ys)
    good = np.isfinite(xo) & np.isfinite(yo)
    if not good.any():
        return None
    ny, nx = shape_out
    if not good.all():  # part of the edge is off the projection: take the whole grid
        return 0, nx, 0, ny
    x0 = max(0, int(np.floor(xo.min())) - margin)
    x1 = min(nx, int(np.ceil(xo.max())) + margin + 1)
    y0 = max(0, int(np.floor(yo.min())) - margin)
    y1 = min(ny, int(np.ceil(yo.max())) + margin + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    return x0, x1, y0, y1


class _Store:
    """Reprojected bounding boxes (float32 values, optional footprints), in memory or spilled to a file."""

    def __init__(self, limit, tmpdir, with_footprint):
        self.limit, self.tmpdir, self.with_footprint = limit, tmpdir, with_footprint
        self.boxes, self.parts = [], []
        self.held = 0
        self.handle = None

    def add(self, box, values, footprint):
        arrays = [np.ascontiguousarray(values, dtype=np.float32)]
        if self.with_footprint:
            arrays.append(np.ascontiguousarray(footprint, dtype=np.float32))
        size = sum(a.nbytes for a in arrays)
        if self.handle is None and self.held + size > self.limit:
            self.handle = tempfile.TemporaryFile(dir=self.tmpdir, prefix="starpix-coadd-")
            for index, held in enumerate(self.parts):
                self.parts[index] = self._write(held)
            self.held = 0
        self.boxes.append(box)
        if self.handle is None:
            self.parts.append(arrays)
            self.held += size
        else:
            self.parts.append(self._write(arrays))

    def _write(self, arrays):
        self.handle.seek(0, os.SEEK_END)
        offsets = []
        for array in arrays:
            offsets.append(self.handle.tell())
            array.tofile(self.handle)
        return offsets

    def rows(self, k, r0, r1):
        """Values (and footprints) of stored box k for output rows r0..r1-1 (clipped to the box)."""
        x0, x1, y0, y1 = self.boxes[k]
        a, b = max(r0, y0), min(r1, y1)
        width = x1 - x0
        part = self.parts[k]
        if self.handle is None or not isinstance(part[0], int):
            return [array[a - y0:b - y0] for array in part], (a, b)
        out = []
        for offset in part:
            self.handle.seek(offset + (a - y0) * width * 4)
            out.append(np.fromfile(self.handle, dtype=np.float32, count=(b - a) * width).reshape(b - a, width))
        return out, (a, b)

    def close(self):
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def coadd(images, wcs_out=None, shape_out=None, *, method="mean", weights=None, background_match=False,
          reproject_method="interp", order="bilinear", sigma=3.0, maxiters=5, memory_limit=256 * 2**20,
          hdu=None, tmpdir=None, progress_bar=False, executor=None, max_workers=None, tile_size=None):
    """Reproject many images onto one celestial grid and combine them.

    Parameters
    ----------
    images : sequence
        FITS file names (each image HDU needs a celestial WCS), or
        ``(array, wcs)`` / ``(array, wcs, mask)`` tuples (mask True = bad).
        Only one input is held in memory at a time (by tiles: only the
        pixels of each input that reach the tile).
    wcs_out : astropy.wcs.WCS or astropy.io.fits.Header, optional
        Output grid; default :func:`optimal_wcs` of the inputs.  It is used
        as a worker receives it (after one pickle round trip, which rounds
        some values in the last digit), whatever the executor.
    shape_out : tuple of int, optional
        Output shape ``(ny, nx)``; default ``wcs_out.array_shape``.
    method : {'mean', 'median', 'sigclip-mean', 'sum'}
        'mean': ``sum(w * f * v) / sum(w * f)``; 'sum': ``sum(w * f * v)``
        (f: the reprojection footprint, w: the image weight, v: the
        reprojected value); 'median': the median of the values that cover a
        pixel (weights only exclude images with weight 0); 'sigclip-mean':
        the ``w * f``-weighted mean of the values left after sigma clipping
        about the median (:func:`starpix.stats.sigma_clip`).
    weights : sequence of float, optional
        One non-negative weight per image (default 1).
    background_match : bool
        Subtract from every image an additive offset found by least squares
        from the mean differences of all overlapping pairs (the offsets sum
        to zero), as reproject's ``match_background``.  By tiles this costs
        one more reprojection pass.
    reproject_method : {'interp', 'exact', 'drizzle'}
        Passed to :func:`reproject` (``order`` too).
    sigma, maxiters : float, int
        Clipping of 'sigclip-mean'.
    memory_limit : int
        Bytes of reprojected data held at once for the median, the clipped
        mean and background matching (by tiles: per tile job); beyond it the
        data go to a temporary file in ``tmpdir`` and the output is combined
        in row blocks.
    hdu : int or str, optional
        HDU of the FITS inputs (default: the first image HDU).
    tmpdir : str, optional
        Directory of temporary files (spilled data; by tiles, the bicubic
        spline coefficients and, with an executor, the pixels of in-memory
        inputs).  With a Dask cluster on several machines it must be on a
        file system every worker sees, as must the input files.
    progress_bar : bool
        Show a progress bar over the inputs (by tiles: over the tiles).
    executor : None, 'serial', 'processes', dask.distributed.Client or Executor
        Where the tile jobs run (see :func:`starpix.parallel.map_jobs`);
        anything but None / 'serial' combines by tiles.
    max_workers : int, optional
        Processes of ``executor='processes'``.
    tile_size : int, optional
        Output rows per tile (tiles are bands of full-width rows).  Given
        without an executor, the tiles run one after the other in this
        process.  Default with an executor: about four tiles per worker, at
        least 64 rows.

    Returns
    -------
    image : numpy.ndarray
        The coadd; NaN where no input lands.  Bit-identical whatever the
        executor and tile size.
    weight : numpy.ndarray
        'mean' and 'sum': ``sum(w * f)``; 'median': the number of images
        covering each pixel; 'sigclip-mean': the summed ``w * f`` of the
        values kept.
    """
    from .._progress import progress
    from ..parallel import _check_executor, _check_positive, _workers

    if isinstance(images, (str, os.PathLike)):
        images = [images]
    items = list(images)
    if not items:
        raise InvalidParameterError("images: the list of images is empty")
    if method not in COADD_METHODS:
        raise InvalidParameterError(f"method: expected one of {', '.join(COADD_METHODS)}, got {method!r}")
    if reproject_method not in _METHODS:
        raise InvalidParameterError(f"reproject_method: expected one of {', '.join(_METHODS)}, "
                                    f"got {reproject_method!r}")
    if order not in _ORDERS:
        raise InvalidParameterError(f"order: expected 'nearest', 'bilinear' or 'bicubic', got {order!r}")
    if weights is None:
        weights = np.ones(len(items))
    else:
        weights = np.asarray(weights, dtype=float).ravel()
        if weights.size != len(items):
            raise InvalidParameterError(f"weights: expected {len(items)} values (one per image), got {weights.size}")
        if not np.all(np.isfinite(weights) & (weights >= 0)):
            raise InvalidParameterError(f"weights: must be finite and non-negative, got {weights.tolist()}")
    if not (memory_limit > 0):
        raise InvalidParameterError(f"memory_limit: must be positive, got {memory_limit}")
    executor = _check_executor(executor)
    _check_positive(tile_size, "tile_size")
    if executor == "processes":
        _workers(max_workers)
    if wcs_out is None:
        wcs_out, auto_shape = optimal_wcs(items, hdu=hdu)
        shape_out = auto_shape if shape_out is None else shape_out
    wcs_out = _as_wcs(wcs_out, "wcs_out")
    if shape_out is None:
        if wcs_out.pixel_shape is None:
            raise InvalidParameterError("shape_out: needed when wcs_out has no pixel shape")
        shape_out = wcs_out.pixel_shape[::-1]
    shape_out = _check_shape(shape_out)
    wcs_out = _canonical(wcs_out)
    options = dict(method=method, reproject_method=reproject_method, order=order, sigma=sigma, maxiters=maxiters,
                   memory_limit=memory_limit, tmpdir=tmpdir, background_match=background_match)
    if executor is not None or tile_size is not None:
        return _coadd_tiled(items, wcs_out, shape_out, weights, hdu, executor, max_workers, tile_size,
                            progress_bar, options)

    streaming = method in ("mean", "sum") and not background_match
    store = None if streaming else _Store(memory_limit, tmpdir, reproject_method != "interp")
    if streaming:
        acc = np.zeros(shape_out)
        wacc = np.zeros(shape_out)
    used = []
    try:
        for index in progress(range(len(items)), enabled=progress_bar, desc="reproject", unit="image"):
            if weights[index] == 0:
                continue
            data, wcs, mask, label = _load(items[index], index, hdu)
            box = _bbox(data.shape, wcs, wcs_out, shape_out)
            if box is None:
                _log.info("%s: does not overlap the output grid; left out", label)
                continue
            x0, x1, y0, y1 = box
            values, footprint = reproject(data, wcs, wcs_out, (y1 - y0, x1 - x0), method=reproject_method,
                                          order=order, mask=mask, offset=(x0, y0))
            del data
            good = np.isfinite(values) & (footprint > 0)
            if not good.any():
                _log.info("%s: no valid pixel lands on the output grid; left out", label)
                continue
            used.append(index)
            if streaming:
                _accumulate(acc, wacc, (x0, x1, y0, y1), values, footprint, good, weights[index])
            else:
                store.add(box, np.where(good, values, np.nan), footprint)
        if not used:
            raise NoOverlapError("images: none of the images overlaps the output grid")
        if streaming:
            return _finish_streaming(acc, wacc, method)
        offsets = np.zeros(len(used))
        if background_match:
            offsets = _match_offsets(store, shape_out, memory_limit)
        return _combine(store, shape_out, method, weights[used], offsets, sigma, maxiters, memory_limit)
    finally:
        if store is not None:
            store.close()


def _accumulate(acc, wacc, box, values, footprint, good, weight):
    x0, x1, y0, y1 = box
    weight = np.where(good, footprint * weight, 0.0)
    acc[y0:y1, x0:x1] += np.where(good, values, 0.0) * weight
    wacc[y0:y1, x0:x1] += weight


def _finish_streaming(acc, wacc, method):
    with np.errstate(invalid="ignore", divide="ignore"):
        image = acc / wacc if method == "mean" else acc.copy()
    image[wacc == 0] = np.nan
    return image, wacc


# --------------------------------------------------------------------------------------------
# by output tiles


_WCS_CACHE = {}


class _FileReader:
    """Windows of a FITS image read through its lazy section (memory-mapped where the file allows)."""

    def __init__(self, spec, hdu, spline_paths=None):
        from ..io import read_image

        self.source = read_image(spec, hdu=hdu)
        self.shape = tuple(self.source.shape)
        self.spline_paths = spline_paths

    def wcs(self):
        """The WCS, parsed once per process and file version (tiles of one job list share it)."""
        info = os.stat(self.source.path)
        key = (os.path.realpath(self.source.path), self.source.index, info.st_mtime_ns, info.st_size)
        wcs = _WCS_CACHE.get(key)
        if wcs is None:
            wcs = self.source.require_wcs()
            if len(_WCS_CACHE) >= 256:
                _WCS_CACHE.clear()
            _WCS_CACHE[key] = wcs
        return wcs

    def read(self, j0, j1, i0, i1):
        return np.array(self.source.section[j0:j1, i0:i1], dtype=np.float64)

    def spline(self, j0, j1, i0, i1):
        return _read_spline(self.spline_paths, j0, j1, i0, i1)

    def close(self):
        self.source.close()


class _NpyReader:
    """Windows of an image spilled to a .npy file (memory-mapped)."""

    def __init__(self, path, spline_paths=None):
        self.array = np.load(path, mmap_mode="r")
        self.shape = self.array.shape
        self.spline_paths = spline_paths

    def read(self, j0, j1, i0, i1):
        return np.array(self.array[j0:j1, i0:i1], dtype=np.float64)

    def spline(self, j0, j1, i0, i1):
        return _read_spline(self.spline_paths, j0, j1, i0, i1)

    def close(self):
        self.array = None


class _MemoryReader(_NpyReader):
    """Windows of an in-memory image (tiles run in this process)."""

    def __init__(self, array, spline_paths=None):
        self.array = array
        self.shape = array.shape
        self.spline_paths = spline_paths


def _read_spline(paths, j0, j1, i0, i1):
    coef = np.load(paths[0], mmap_mode="r")
    bad = np.load(paths[1], mmap_mode="r")
    return np.array(coef[j0:j1, i0:i1]), np.array(bad[j0:j1, i0:i1])


def _open_reader(source, spline_paths=None):
    """(reader, wcs) of an input described by ``source``."""
    kind = source[0]
    if kind == "file":
        reader = _FileReader(source[1], source[2], spline_paths)
        try:
            return reader, reader.wcs()
        except BaseException:
            reader.close()
            raise
    if kind == "npy":
        return _NpyReader(source[1], spline_paths), source[2]
    return _MemoryReader(source[1], spline_paths), source[2]


def _prefilter_job(job):
    """Spline coefficients of one whole input, written to two .npy files (bicubic by tiles)."""
    source, paths = job
    reader, _ = _open_reader(source)
    try:
        array = reader.read(0, reader.shape[0], 0, reader.shape[1])
    finally:
        reader.close()
    coef, bad = prefilter(array)
    np.save(paths[0], coef)
    np.save(paths[1], bad)
    return paths


def _input_rect(wcs_in, wcs_out, shape_in, x0, y0, nx, ny, margin=3):
    """Input rows and columns (j0, j1, i0, i1) whose pixels can reach output pixels x0.., y0.. (conservative)."""
    ny_in, nx_in = shape_in
    xs = np.concatenate([np.arange(x0 - 0.5, x0 + nx - 0.5, 4.0), [x0 + nx - 0.5]])
    ys = np.concatenate([np.arange(y0 - 0.5, y0 + ny - 0.5, 4.0), [y0 + ny - 0.5]])
    px = np.concatenate([xs, xs, np.full(ys.size, xs[0]), np.full(ys.size, xs[-1])])
    py = np.concatenate([np.full(xs.size, ys[0]), np.full(xs.size, ys[-1]), ys, ys])
    ix, iy = _transform(wcs_out, wcs_in, px, py)
    if not (np.all(np.isfinite(ix)) and np.all(np.isfinite(iy))):
        return 0, ny_in, 0, nx_in
    i0 = max(0, int(np.floor(ix.min() + 0.5)) - margin)
    i1 = min(nx_in, int(np.floor(ix.max() + 0.5)) + margin + 1)
    j0 = max(0, int(np.floor(iy.min() + 0.5)) - margin)
    j1 = min(ny_in, int(np.floor(iy.max() + 0.5)) + margin + 1)
    return j0, max(j0, j1), i0, max(i0, i1)


def _band_job(job):
    """Reproject every input's overlap with output rows r0..r1-1 and combine them (or, in the 'pairs'
    pass, sum the pairwise differences row by row).  Returns (indices of inputs with valid pixels, result)."""
    r0, r1 = job["rows"]
    nx = job["nx"]
    wcs_out = job["wcs_out"]
    opts = job["options"]
    method, rmethod = opts["method"], opts["reproject_method"]
    streaming = method in ("mean", "sum") and not opts["background_match"]
    nrows = r1 - r0
    if streaming:
        acc = np.zeros((nrows, nx))
        wacc = np.zeros((nrows, nx))
        store = None
    else:
        store = _Store(opts["memory_limit"], opts["tmpdir"], rmethod != "interp")
    good_inputs, weights, offsets = [], [], []
    try:
        for index, source, spline_paths, (x0, x1, y0, y1), step, weight, offset in job["entries"]:
            ya, yb = max(r0, y0), min(r1, y1)
            reader, wcs = _open_reader(source, spline_paths)
            try:
                if rmethod == "interp":
                    values, footprint = _reproject_interp(reader, wcs, wcs_out, yb - ya, x1 - x0, x0, ya,
                                                          _ORDERS[opts["order"]], True, step=step)
                else:
                    rect = _input_rect(wcs, wcs_out, reader.shape, x0, ya, x1 - x0, yb - ya)
                    values, footprint = _reproject_overlap(reader, wcs, wcs_out, yb - ya, x1 - x0, x0, ya,
                                                           rmethod == "drizzle", None, step=step, rect=rect)
            finally:
                reader.close()
            good = np.isfinite(values) & (footprint > 0)
            if not good.any():
                continue
            good_inputs.append(index)
            box = (x0, x1, ya - r0, yb - r0)
            if streaming:
                _accumulate(acc, wacc, box, values, footprint, good, weight)
            else:
                store.add(box, np.where(good, values, np.nan), footprint)
                weights.append(weight)
                offsets.append(offset)
        if streaming:
            return good_inputs, _finish_streaming(acc, wacc, method)
        if job["pass"] == "pairs":
            pairs = {(good_inputs[i], good_inputs[j]): value
                     for (i, j), value in _pair_row_sums(store, (nrows, nx), opts["memory_limit"]).items()}
            return good_inputs, pairs
        return good_inputs, _combine(store, (nrows, nx), method, np.array(weights), np.array(offsets),
                                     opts["sigma"], opts["maxiters"], opts["memory_limit"])
    finally:
        if store is not None:
            store.close()


def _plan(items, wcs_out, shape_out, weights, hdu, reproject_method):
    """Per input with a weight: (index, shape, wcs, bbox, step, label) from its header; in-memory
    inputs also give their pixels (float64, masked pixels NaN)."""
    from ..io import read_image

    plan = []
    for index, item in enumerate(items):
        if weights[index] == 0:
            continue
        pixels = None
        if isinstance(item, (str, os.PathLike)):
            with read_image(item, hdu=hdu) as source:
                wcs, shape, label = source.require_wcs(), tuple(source.shape), source.label
            if len(shape) != 2:
                raise InvalidParameterError(f"{label}: expected a 2-d image, got shape {shape}")
        else:
            data, wcs, mask, label = _load(item, index, hdu)
            pixels = _check_image(data, mask)
            shape = pixels.shape
        box = _bbox(shape, wcs, wcs_out, shape_out)
        if box is None:
            _log.info("%s: does not overlap the output grid; left out", label)
            continue
        x0, x1, y0, y1 = box
        if reproject_method == "interp":
            step = choose_step(wcs_out, wcs, x0, y0, y1 - y0, x1 - x0, roundtrip=True)[0]
        else:
            step = corner_step(wcs, wcs_out, shape)
        plan.append((index, item, pixels, wcs, box, step))
    return plan


def _coadd_tiled(items, wcs_out, shape_out, weights, hdu, executor, max_workers, tile_size, progress_bar,
                 options):
    from ..parallel import executor_workers, imap_jobs

    ny, nx = shape_out
    if tile_size is None:
        tile_size = max(64, -(-ny // (4 * executor_workers(executor, max_workers))))
    plan = _plan(items, wcs_out, shape_out, weights, hdu, options["reproject_method"])
    workdir = None
    try:
        if any(pixels is not None for _, _, pixels, _, _, _ in plan) and executor is not None \
                or options["reproject_method"] == "interp" and options["order"] in ("bicubic", 3):
            workdir = tempfile.mkdtemp(prefix="starpix-coadd-", dir=options["tmpdir"])
        sources = {}
        for index, item, pixels, wcs, _, _ in plan:
            if pixels is None:
                sources[index] = ("file", item, hdu)
            elif executor is None:
                sources[index] = ("memory", pixels, wcs)
            else:  # workers read the pixels from a file, not from the pickled job
                path = os.path.join(workdir, f"input{index}.npy")
                np.save(path, pixels)
                sources[index] = ("npy", path, wcs)
        splines = {}
        if options["reproject_method"] == "interp" and options["order"] in ("bicubic", 3):
            jobs = [(sources[index], (os.path.join(workdir, f"coef{index}.npy"),
                                      os.path.join(workdir, f"bad{index}.npy"))) for index, *_ in plan]
            for (index, *_), paths in zip(plan, imap_jobs(_prefilter_job, jobs, executor=executor,
                                                          max_workers=max_workers, chunksize=1)):
                splines[index] = paths
        bands = [(r0, min(ny, r0 + tile_size)) for r0 in range(0, ny, tile_size)]

        def jobs_for(pass_name, offsets):
            for r0, r1 in bands:
                entries = [(index, sources[index], splines.get(index), box, step, float(weights[index]),
                            offsets.get(index, 0.0))
                           for index, _, _, _, box, step in plan if box[2] < r1 and box[3] > r0]
                yield {"rows": (r0, r1), "nx": nx, "wcs_out": wcs_out, "options": options, "entries": entries,
                       "pass": pass_name}

        run = dict(executor=executor, max_workers=max_workers, chunksize=1, progress_bar=progress_bar)
        offsets = {}
        used = set()
        if options["background_match"]:
            sums, counts = {}, {}
            for good, pairs in imap_jobs(_band_job, jobs_for("pairs", {}), desc="background", **run):
                used.update(good)
                for key, (row_sums, count) in pairs.items():
                    sums[key] = _fold(sums.get(key, 0.0), row_sums)
                    counts[key] = counts.get(key, 0) + count
            if not used:
                raise NoOverlapError("images: none of the images overlaps the output grid")
            order = sorted(used)
            position = {index: k for k, index in enumerate(order)}
            n = len(order)
            sum_matrix, count_matrix = np.zeros((n, n)), np.zeros((n, n))
            for (i, j), value in sums.items():
                sum_matrix[position[i], position[j]] = value
                count_matrix[position[i], position[j]] = counts[(i, j)]
            solved = _solve_offsets(sum_matrix, count_matrix)
            offsets = {index: float(solved[k]) for k, index in enumerate(order)}
        image = np.full(shape_out, np.nan)
        weight = np.zeros(shape_out)
        for (r0, r1), (good, (band, band_weight)) in zip(bands, imap_jobs(_band_job, jobs_for("combine", offsets),
                                                                         desc="coadd", **run)):
            used.update(good)
            image[r0:r1] = band
            weight[r0:r1] = band_weight
        if not used:
            raise NoOverlapError("images: none of the images overlaps the output grid")
        return image, weight
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


def _block_rows(store, nx, memory_limit, planes):
    n = max(1, len(store.boxes))
    return max(1, int(memory_limit // (n * nx * 4 * planes)))


def _block(store, k, r0, r1, nx, offset=0.0):
    """Rows r0..r1-1 of stored image k on the full output width (NaN outside its box), and weights."""
    x0, x1 = store.boxes[k][:2]
    arrays, (a, b) = store.rows(k, r0, r1)
    values = np.full((r1 - r0, nx), np.nan, dtype=np.float32)
    values[a - r0:b - r0, x0:x1] = arrays[0] - np.float32(offset)
    footprint = None
    if store.with_footprint:
        footprint = np.zeros((r1 - r0, nx), dtype=np.float32)
        footprint[a - r0:b - r0, x0:x1] = arrays[1]
    return values, footprint


def _pair_row_sums(store, shape_out, memory_limit):
    """For every pair (i, j), i < j, of stored images that overlap: the sums of their differences over
    each full-width output row (an array over the rows) and the number of pixels."""
    ny, nx = shape_out
    n = len(store.boxes)
    out = {}
    rows = _block_rows(store, nx, memory_limit, 1)
    for r0 in range(0, ny, rows):
        r1 = min(ny, r0 + rows)
        present = [k for k in range(n) if store.boxes[k][2] < r1 and store.boxes[k][3] > r0]
        blocks = {k: _block(store, k, r0, r1, nx)[0] for k in present}
        for a_index, i in enumerate(present):
            for j in present[a_index + 1:]:
                bi, bj = store.boxes[i], store.boxes[j]
                if bi[0] >= bj[1] or bj[0] >= bi[1]:
                    continue
                diff = blocks[i].astype(np.float64) - blocks[j]
                good = np.isfinite(diff)
                count = int(good.sum())
                if count:
                    entry = out.setdefault((i, j), [np.zeros(ny), 0])
                    entry[0][r0:r1] = np.where(good, diff, 0.0).sum(axis=1)
                    entry[1] += count
    return {key: (value[0], value[1]) for key, value in out.items()}


def _fold(total, row_sums):
    """total + row_sums[0] + row_sums[1] + ... in this order (the same sum whatever the tiling)."""
    total = float(total)
    for value in row_sums.tolist():
        total += value
    return total


def _match_offsets(store, shape_out, memory_limit):
    """Least-squares additive offsets from the mean differences of overlapping pairs."""
    n = len(store.boxes)
    sums = np.zeros((n, n))
    counts = np.zeros((n, n))
    for (i, j), (row_sums, count) in _pair_row_sums(store, shape_out, memory_limit).items():
        sums[i, j] = _fold(0.0, row_sums)
        counts[i, j] = count
    return _solve_offsets(sums, counts)


def _solve_offsets(sums, counts):
    n = sums.shape[0]
    pairs = np.argwhere(counts > 0)
    if len(pairs) == 0:
        return np.zeros(n)
    matrix = np.zeros((len(pairs) + 1, n))
    rhs = np.zeros(len(pairs) + 1)
    for row, (i, j) in enumerate(pairs):
        matrix[row, i], matrix[row, j] = 1.0, -1.0
        rhs[row] = sums[i, j] / counts[i, j]
    matrix[-1, :] = 1.0
    return np.linalg.lstsq(matrix, rhs, rcond=None)[0]


def _combine(store, shape_out, method, weights, offsets, sigma, maxiters, memory_limit):
    from ..stats import sigma_clip
    from ._reproject_kernels import stack_median

    ny, nx = shape_out
    image = np.full(shape_out, np.nan)
    weight = np.zeros(shape_out)
    planes = 1 if method == "median" else 6
    rows = _block_rows(store, nx, memory_limit, planes)
    n = len(store.boxes)
    for r0 in range(0, ny, rows):
        r1 = min(ny, r0 + rows)
        present = [k for k in range(n) if store.boxes[k][2] < r1 and store.boxes[k][3] > r0]
        if not present:
            continue
        stack = np.empty((len(present), r1 - r0, nx), dtype=np.float32)
        wstack = None if method == "median" else np.empty(stack.shape, dtype=np.float32)
        for slot, k in enumerate(present):
            values, footprint = _block(store, k, r0, r1, nx, offsets[k])
            stack[slot] = values
            if wstack is not None:
                w = np.isfinite(values) * np.float32(weights[k])
                wstack[slot] = w if footprint is None else w * footprint
        if method == "median":
            count = np.zeros((r1 - r0, nx), dtype=np.int64)
            stack_median(stack, image[r0:r1], count)
            weight[r0:r1] = count
            continue
        if method == "sigclip-mean":
            rejected = sigma_clip(stack, sigma=sigma, maxiters=maxiters, axis=0)
            wstack[rejected] = 0.0
        finite = np.isfinite(stack)
        total = np.where(finite, stack, 0.0).astype(np.float64) * wstack
        wsum = wstack.sum(axis=0, dtype=np.float64)
        numerator = total.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            block = numerator / wsum if method != "sum" else numerator
        block[wsum == 0] = np.nan
        image[r0:r1] = block
        weight[r0:r1] = wsum
    return image, weight
