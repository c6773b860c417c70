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
"""

from __future__ import annotations

import logging
import os
import tempfile

import numpy as np

from ..errors import InvalidParameterError, NoOverlapError
from ._optimal_wcs import _edge_points, optimal_wcs
from ._reproject import _METHODS, _ORDERS, _as_wcs, _check_shape, _transform, reproject

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
    wcs = _as_wcs(item[1], f"images[{index}]")
    mask = None
    if len(item) == 3 and item[2] is not None:
        mask = np.asarray(item[2], dtype=bool)
        if mask.shape != data.shape:
            raise InvalidParameterError(f"images[{index}]: mask shape {mask.shape} differs from the image's "
                                        f"{data.shape}")
    return data, wcs, mask, f"images[{index}]"


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
          hdu=None, tmpdir=None, progress_bar=False):
    """Reproject many images onto one celestial grid and combine them.

    Parameters
    ----------
    images : sequence
        FITS file names (each image HDU needs a celestial WCS), or
        ``(array, wcs)`` / ``(array, wcs, mask)`` tuples (mask True = bad).
        Only one input is held in memory at a time.
    wcs_out : astropy.wcs.WCS or astropy.io.fits.Header, optional
        Output grid; default :func:`optimal_wcs` of the inputs.
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
        to zero), as reproject's ``match_background``.
    reproject_method : {'interp', 'exact', 'drizzle'}
        Passed to :func:`reproject` (``order`` too).
    sigma, maxiters : float, int
        Clipping of 'sigclip-mean'.
    memory_limit : int
        Bytes of reprojected data held at once for the median, the clipped
        mean and background matching; beyond it the data go to a temporary
        file in ``tmpdir`` and the output is combined in row blocks.
    hdu : int or str, optional
        HDU of the FITS inputs (default: the first image HDU).
    progress_bar : bool
        Show a progress bar over the inputs.

    Returns
    -------
    image : numpy.ndarray
        The coadd; NaN where no input lands.
    weight : numpy.ndarray
        'mean' and 'sum': ``sum(w * f)``; 'median': the number of images
        covering each pixel; 'sigclip-mean': the summed ``w * f`` of the
        values kept.
    """
    from .._progress import progress

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
    if wcs_out is None:
        wcs_out, auto_shape = optimal_wcs(items, hdu=hdu)
        shape_out = auto_shape if shape_out is None else shape_out
    wcs_out = _as_wcs(wcs_out, "wcs_out")
    if shape_out is None:
        if wcs_out.pixel_shape is None:
            raise InvalidParameterError("shape_out: needed when wcs_out has no pixel shape")
        shape_out = wcs_out.pixel_shape[::-1]
    shape_out = _check_shape(shape_out)
    ny, nx = shape_out

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
                weight = np.where(good, footprint * weights[index], 0.0)
                acc[y0:y1, x0:x1] += np.where(good, values, 0.0) * weight
                wacc[y0:y1, x0:x1] += weight
            else:
                store.add(box, np.where(good, values, np.nan), footprint)
        if not used:
            raise NoOverlapError("images: none of the images overlaps the output grid")
        if streaming:
            with np.errstate(invalid="ignore", divide="ignore"):
                image = acc / wacc if method == "mean" else acc.copy()
            image[wacc == 0] = np.nan
            return image, wacc
        offsets = np.zeros(len(used))
        if background_match:
            offsets = _match_offsets(store, shape_out, memory_limit)
        return _combine(store, shape_out, method, weights[used], offsets, sigma, maxiters, memory_limit)
    finally:
        if store is not None:
            store.close()


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


def _match_offsets(store, shape_out, memory_limit):
    """Least-squares additive offsets from the mean differences of overlapping pairs."""
    ny, nx = shape_out
    n = len(store.boxes)
    sums = np.zeros((n, n))
    counts = np.zeros((n, n))
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
                    sums[i, j] += diff[good].sum()
                    counts[i, j] += count
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
