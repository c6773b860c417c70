"""The drizzle accumulator: input images onto one output grid through pixel maps.

The kernel never sees a WCS: each input comes with a pixel map (see
:mod:`starpix.drizzle._pixmap`) giving the output coordinates of its pixel
centres; the outputs (SCI, WHT, CTX) can be preallocated and accumulate over
any number of inputs and calls.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InvalidParameterError
from . import _drizzle_kernels as _k

__all__ = ["Drizzle", "KERNELS", "FLUX_CONSERVING_KERNELS"]

KERNELS = tuple(_k.KERNELS)
FLUX_CONSERVING_KERNELS = ("square", "point", "turbo")


def _check_kernel(kernel):
    name = str(kernel).lower() if isinstance(kernel, str) else kernel
    if name not in _k.KERNELS:
        raise InvalidParameterError(f"kernel must be one of {', '.join(KERNELS)}, got {kernel!r}")
    return name


def _check_fillval(fillval):
    if fillval is None:
        return None
    if isinstance(fillval, str):
        if fillval.strip().upper() in ("INDEF", "NONE", ""):
            return None
        try:
            return float(fillval)
        except ValueError:
            raise InvalidParameterError(f"fillval must be a number, 'INDEF' or None, got {fillval!r}") from None
    try:
        return float(fillval)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"fillval must be a number, 'INDEF' or None, got {fillval!r}") from None


def pixmap_scale_ratio(pixmap):
    """Linear pixel-scale ratio (output pixels per input pixel) of a pixel map at its centre.

    ``sqrt(|det J|)`` of the map's Jacobian from finite differences at the centre
    pixel (the nearest pixel with finite neighbours), i.e. the inverse of the
    drizzle package's ``pixel_scale_ratio`` (output pixel size / input pixel size).
    """
    ny, nx = pixmap.shape[:2]
    if ny < 2 or nx < 2:
        raise InvalidParameterError(f"pixmap must be at least 2 x 2 pixels, got shape {pixmap.shape}")
    dx = pixmap[:-1, 1:, :] - pixmap[:-1, :-1, :]
    dy = pixmap[1:, :-1, :] - pixmap[:-1, :-1, :]
    det = np.abs(dx[..., 0] * dy[..., 1] - dx[..., 1] * dy[..., 0])
    good = np.isfinite(det) & (det > 0)
    if not good.any():
        raise InvalidParameterError("pixmap has no pixel with finite neighbours: cannot estimate the pixel scale")
    jj, ii = np.nonzero(good)
    cy, cx = (ny - 2) / 2.0, (nx - 2) / 2.0
    k = np.argmin((jj - cy) ** 2 + (ii - cx) ** 2)
    return float(np.sqrt(det[jj[k], ii[k]]))


class Drizzle:
    """Accumulate input images onto one output grid (drizzle.resample.Drizzle's model).

    Parameters
    ----------
    kernel : {'square', 'point', 'turbo', 'gaussian', 'lanczos3'}
        How an input pixel's flux is spread on the output. ``square`` (the
        default): the pixel, shrunk by ``pixfrac``, mapped as a quadrilateral
        (corners by bilinear interpolation of the pixel map) and shared by exact
        overlap area. ``turbo``: an output-aligned square of side
        ``pixfrac / pixel_scale_ratio`` output pixels, by overlap area (fast;
        ignores rotation). ``point``: all in the output pixel under the mapped
        centre. These three conserve flux. ``gaussian`` (FWHM ``pixfrac`` input
        pixels, sampled at output-pixel centres) and ``lanczos3`` (separable,
        with negative lobes) do **not** conserve flux, as in drizzle.
    fillval : float, str or None
        Value of output pixels that no input reached (zero weight), set after
        every :meth:`add_image`. ``None``/``'INDEF'``: NaN, but only when the
        class allocated ``out_img``; a supplied ``out_img`` keeps its values there.
    out_shape : tuple of int, optional
        Output shape ``(ny, nx)``; needed unless one of the output arrays is given.
    out_img, out_wht : numpy.ndarray of float32, optional
        Preallocated SCI (weighted mean) and WHT (accumulated weight) arrays, used
        in place when they are C-contiguous float32 (else copied).
    out_ctx : numpy.ndarray of int32, optional
        Preallocated context, 2-D ``(ny, nx)`` or 3-D ``(nplanes, ny, nx)``.
    exptime : float
        Total exposure time of the data already in supplied outputs.
    begin_ctx_id : int
        0-based context id of the next input (input k sets bit ``k % 32`` of
        plane ``k // 32``).
    max_ctx_id : int, optional
        Largest context id expected: allocates ``max_ctx_id // 32 + 1`` planes at
        once (planes are otherwise added as inputs arrive).
    disable_ctx : bool
        Keep no context image.

    Attributes
    ----------
    out_img, out_wht : numpy.ndarray (float32)
    out_ctx : numpy.ndarray (int32, ``(nplanes, ny, nx)``) or None
    total_exptime : float
    ctx_id : int
        Context id the next input will get.
    """

    def __init__(self, kernel="square", fillval=None, out_shape=None, out_img=None, out_wht=None, out_ctx=None,
                 exptime=0.0, begin_ctx_id=0, max_ctx_id=None, disable_ctx=False):
        self._kernel = _check_kernel(kernel)
        self._fillval = _check_fillval(fillval)
        shapes = {}
        for name, arr in (("out_img", out_img), ("out_wht", out_wht)):
            if arr is not None:
                shapes[name] = np.shape(arr)
        if out_ctx is not None:
            shape = np.shape(out_ctx)
            if len(shape) not in (2, 3):
                raise InvalidParameterError(f"out_ctx must be 2-D or 3-D, got shape {shape}")
            shapes["out_ctx"] = tuple(shape[-2:])
        if out_shape is not None:
            try:
                out_shape = tuple(int(n) for n in out_shape)
            except (TypeError, ValueError):
                raise InvalidParameterError(f"out_shape must be (ny, nx), got {out_shape!r}") from None
            shapes["out_shape"] = out_shape
        if not shapes:
            raise InvalidParameterError("give out_shape (ny, nx) or one of out_img, out_wht, out_ctx")
        distinct = set(shapes.values())
        if len(distinct) > 1:
            detail = ", ".join(f"{k} {v}" for k, v in shapes.items())
            raise InvalidParameterError(f"output shapes disagree: {detail}")
        shape = distinct.pop()
        if len(shape) != 2 or min(shape) < 1:
            raise InvalidParameterError(f"output shape must be two positive sizes (ny, nx), got {shape}")
        self._shape = shape
        begin_ctx_id = int(begin_ctx_id)
        if begin_ctx_id < 0:
            raise InvalidParameterError(f"begin_ctx_id must be >= 0, got {begin_ctx_id}")
        self._ctx_id = begin_ctx_id
        exptime = float(exptime)
        if not exptime >= 0.0:
            raise InvalidParameterError(f"exptime must be >= 0, got {exptime}")
        self._total_exptime = exptime

        if out_img is None:
            self._out_img = np.full(shape, np.nan if self._fillval is None else 0.0, np.float32)
            self._fill_nan = self._fillval is None
        else:
            self._out_img = np.require(out_img, np.float32, ["C", "W"])
            self._fill_nan = False
        self._out_wht = (np.zeros(shape, np.float32) if out_wht is None
                         else np.require(out_wht, np.float32, ["C", "W"]))
        if disable_ctx:
            self._out_ctx = None
        else:
            nplanes = 1
            if max_ctx_id is not None:
                if int(max_ctx_id) < begin_ctx_id:
                    raise InvalidParameterError(f"max_ctx_id ({max_ctx_id}) must be >= begin_ctx_id ({begin_ctx_id})")
                nplanes = int(max_ctx_id) // 32 + 1
            nplanes = max(nplanes, begin_ctx_id // 32 + 1)
            if out_ctx is None:
                self._out_ctx = np.zeros((nplanes,) + shape, np.int32)
            else:
                ctx = np.asarray(out_ctx)
                if ctx.dtype.kind not in "iu" or ctx.dtype.itemsize > 4:
                    raise InvalidParameterError(f"out_ctx must hold 32-bit integers, got dtype {ctx.dtype}")
                if ctx.ndim == 2:
                    ctx = ctx[np.newaxis]
                ctx = np.require(ctx.view(np.int32) if ctx.dtype.itemsize == 4 else ctx.astype(np.int32),
                                 np.int32, ["C", "W"])
                if ctx.shape[0] < nplanes:
                    ctx = np.concatenate([ctx, np.zeros((nplanes - ctx.shape[0],) + shape, np.int32)])
                self._out_ctx = ctx
        if self._total_exptime == 0.0 and (np.any(self._out_wht) if out_wht is not None else False):
            raise InvalidParameterError("out_wht has non-zero weights: give the exptime of the data it holds")

    # ------------------------------------------------------------------ properties
    @property
    def kernel(self):
        """Name of the drizzle kernel."""
        return self._kernel

    @property
    def fillval(self):
        """Fill value of unweighted output pixels (None: NaN where the class owns out_img)."""
        return self._fillval

    @property
    def out_img(self):
        """Output SCI: the weighted mean of the contributions (float32)."""
        return self._out_img

    @property
    def out_wht(self):
        """Output WHT: the accumulated weight (float32)."""
        return self._out_wht

    @property
    def out_ctx(self):
        """Output CTX, ``(nplanes, ny, nx)`` int32 (one bit per input), or None."""
        return self._out_ctx

    @property
    def total_exptime(self):
        """Sum of the exposure times of all inputs added so far (and of ``exptime``)."""
        return self._total_exptime

    @property
    def ctx_id(self):
        """0-based context id the next input will get."""
        return self._ctx_id

    @property
    def shape(self):
        """Output shape ``(ny, nx)``."""
        return self._shape

    # ------------------------------------------------------------------ work
    def add_image(self, data, exptime, pixmap, *, weight_map=None, wht_scale=1.0, iscale=1.0,
                  pixel_scale_ratio=None, pixfrac=1.0, in_units="cps", xmin=None, xmax=None, ymin=None,
                  ymax=None, nthreads=None):
        """Drizzle one input image onto the output.

        Parameters
        ----------
        data : 2-D array
            Input image ``(ny_in, nx_in)``.
        exptime : float
            Its exposure time (> 0): added to ``total_exptime``, divides the data
            when ``in_units='counts'``, and is the weight with ``wht_scale='exptime'``.
        pixmap : array ``(ny_in, nx_in, 2)``
            Output ``(x, y)`` of each input pixel centre (0-based); NaN marks pixels
            with no mapping (skipped).
        weight_map : 2-D array, optional
            Per-input-pixel weight (0 = ignore the pixel); default ones.
        wht_scale : float or {'exptime', 'expsq'}
            Multiplies the weights: a positive number, the exposure time
            (AstroDrizzle's ``wt_scl='exptime'``) or its square (``'expsq'``).
        iscale : float
            Multiplies the data (use ``pixel_scale_ratio**2`` for flux per pixel
            that should keep its total).
        pixel_scale_ratio : float, optional
            Output pixel size / input pixel size (linear); sizes the ``turbo``,
            ``gaussian`` and ``lanczos3`` footprints. Default: from the pixel map's
            Jacobian at the image centre. ``square`` and ``point`` use only the map.
        pixfrac : float
            Linear shrink factor of the drop, in ``(0, 1]`` (``lanczos3`` needs 1).
        in_units : {'cps', 'counts'}
            ``'counts'`` divides the data by ``exptime``: the output is a rate either way.
        xmin, xmax, ymin, ymax : int, optional
            Inclusive 0-based sub-box of the input to drizzle (default: all of it).
        nthreads : int, optional
            Threads to use (default: numba's current setting).

        Returns
        -------
        int
            Number of input pixels that added weight to the output.
        """
        data = np.asarray(data)
        if data.ndim != 2:
            raise InvalidParameterError(f"data must be a 2-D image, got {data.ndim} dimensions")
        data = np.require(data, np.float32, ["C"])
        ny_in, nx_in = data.shape
        pixmap = np.asarray(pixmap)
        if pixmap.shape != (ny_in, nx_in, 2):
            raise InvalidParameterError(
                f"pixmap shape {pixmap.shape} does not match the data: expected {(ny_in, nx_in, 2)}")
        if ny_in < 2 or nx_in < 2:
            raise InvalidParameterError(f"data must be at least 2 x 2 pixels, got shape {data.shape}")
        pixmap = np.require(pixmap, np.float64, ["C"])
        try:
            exptime = float(exptime)
        except (TypeError, ValueError):
            raise InvalidParameterError(f"exptime must be a positive number, got {exptime!r}") from None
        if not (exptime > 0.0 and math.isfinite(exptime)):
            raise InvalidParameterError(f"exptime must be a positive number, got {exptime!r}")
        try:
            pixfrac = float(pixfrac)
        except (TypeError, ValueError):
            raise InvalidParameterError(f"pixfrac must be a number in (0, 1], got {pixfrac!r}") from None
        if not (0.0 < pixfrac <= 1.0):
            raise InvalidParameterError(f"pixfrac must be in (0, 1], got {pixfrac!r}")
        if self._kernel == "lanczos3" and pixfrac != 1.0:
            raise InvalidParameterError(f"the lanczos3 kernel has a fixed size: pixfrac must be 1, got {pixfrac}")
        units = str(in_units).lower()
        if units not in ("cps", "counts"):
            raise InvalidParameterError(f"in_units must be 'cps' or 'counts', got {in_units!r}")
        if isinstance(wht_scale, str):
            key = wht_scale.lower()
            if key == "exptime":
                wscale = exptime
            elif key == "expsq":
                wscale = exptime * exptime
            else:
                raise InvalidParameterError(
                    f"wht_scale must be a positive number, 'exptime' or 'expsq', got {wht_scale!r}")
        else:
            try:
                wscale = float(wht_scale)
            except (TypeError, ValueError):
                raise InvalidParameterError(
                    f"wht_scale must be a positive number, 'exptime' or 'expsq', got {wht_scale!r}") from None
            if not (wscale > 0.0 and math.isfinite(wscale)):
                raise InvalidParameterError(f"wht_scale must be a positive number, got {wht_scale!r}")
        weights = None
        if weight_map is not None:
            weights = np.asarray(weight_map)
            if weights.shape != data.shape:
                raise InvalidParameterError(
                    f"weight_map shape {weights.shape} does not match the data shape {data.shape}")
            weights = np.require(weights, np.float32, ["C"])
        try:
            iscale = float(iscale)
        except (TypeError, ValueError):
            raise InvalidParameterError(f"iscale must be a number, got {iscale!r}") from None
        if units == "counts":
            iscale /= exptime
        if pixel_scale_ratio is None:
            psr = 1.0 / pixmap_scale_ratio(pixmap) if self._kernel in ("turbo", "gaussian", "lanczos3") else 1.0
        else:
            try:
                psr = float(pixel_scale_ratio)
            except (TypeError, ValueError):
                psr = float("nan")
            if not (psr > 0.0 and math.isfinite(psr)):
                raise InvalidParameterError(f"pixel_scale_ratio must be a positive number, got {pixel_scale_ratio!r}")
        psr = float(np.float32(psr))  # drizzle's C keeps the ratio in single precision
        box = []
        for name, value, default, size in (("xmin", xmin, 0, nx_in), ("xmax", xmax, nx_in - 1, nx_in),
                                           ("ymin", ymin, 0, ny_in), ("ymax", ymax, ny_in - 1, ny_in)):
            value = default if value is None else int(value)
            if not 0 <= value < size:
                raise InvalidParameterError(f"{name} must be in [0, {size - 1}], got {value}")
            box.append(value)
        xmin, xmax, ymin, ymax = box
        if xmin > xmax or ymin > ymax:
            raise InvalidParameterError(f"empty input box: x {xmin}..{xmax}, y {ymin}..{ymax}")

        ctx_plane = None
        bit = 0
        if self._out_ctx is not None:
            plane = self._ctx_id // 32
            if plane >= self._out_ctx.shape[0]:
                extra = np.zeros((plane + 1 - self._out_ctx.shape[0],) + self._shape, np.int32)
                self._out_ctx = np.concatenate([self._out_ctx, extra])
            ctx_plane = self._out_ctx[plane]
            bit = np.array(1 << (self._ctx_id % 32), dtype=np.int64).astype(np.uint32).view(np.int32)

        if nthreads is None:
            from numba import get_num_threads

            nthreads = get_num_threads()
        ncontrib = _k.drizzle_add(_k.KERNELS[self._kernel], data, weights, wscale, pixmap, self._out_img,
                                  self._out_wht, ctx_plane, bit, iscale, pixfrac, psr, xmin, xmax, ymin, ymax,
                                  int(nthreads))
        self._total_exptime += exptime
        self._ctx_id += 1
        fill = np.nan if self._fill_nan else self._fillval
        if fill is not None:
            _k.fill_where_unweighted(self._out_img, self._out_wht, np.float32(fill))
        return ncontrib
