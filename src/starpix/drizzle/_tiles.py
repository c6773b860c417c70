"""AstroDrizzle's final drizzle by output row bands, on any executor, bit for bit the serial one.

The output grid is cut into bands of whole rows.  A first round of jobs, one
per chip, maps the chip onto the output grid and returns, for every input
row, the range of output rows its pixel centres reach (and how far a drop
reaches beyond them).  From these the client lists, for every band, the
chips and the input rows that can touch it.  A band's job then drizzles
those rows, chip after chip in the serial order, with the drizzle kernel
limited to the band's output rows (the kernel's own band scan, which the
multi-threaded accumulator uses): every output pixel of the band receives
the same contributions, in the same order and with the same arithmetic, as
in the serial run, so the bands the client pastes together are the serial
image, weight and context exactly.

Jobs get file names, small records and the bits of the static and
cosmic-ray masks for their rows only; each reads its chips itself.  A band's
accumulators are allocated zeroed for the rows up to the band's last one but
only the band's rows are ever written (the pages of the others stay
unallocated on Linux and macOS), and only those rows are returned.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from ..errors import InvalidParameterError

__all__ = ["final_chip_inputs", "final_drizzle_by_bands", "band_rows"]

#: Output pixels per band at most (4 Mpix: 16 MB per float32 accumulator)
BAND_PIXELS = 2**22

_FROM_FILE = "file"


class Bands(NamedTuple):
    """The assembled final drizzle (the names of :class:`~starpix.drizzle.Drizzle`'s outputs)."""

    out_img: np.ndarray
    out_wht: np.ndarray
    out_ctx: np.ndarray


def final_chip_inputs(p, exposure, chip, out_wcs, *, dq=_FROM_FILE, static=None, crmask=None, sky=0.0,
                      in_data=0.0):
    """What the final drizzle adds for one chip: ``(data, weight_map, wht_scale, pixmap, ratio)``.

    ``dq`` is the chip's DQ copy (``crbit`` already set), or ``'file'``: the DQ
    read with the pixels, with ``crbit`` set where ``crmask`` is true.
    ``static`` and ``crmask`` are boolean images (True = bad) or None.
    """
    from . import _inputs
    from ._pipeline import _good, _pixmap

    want_err = p["final_wht_type"] == "ERR"
    want_ivm = p["final_wht_type"] == "IVM"
    sci, dq_file, err, ivm = _inputs.load_chip(exposure, chip, resetbits=p["resetbits"], want_err=want_err,
                                               want_ivm=want_ivm)
    if isinstance(dq, str) and dq == _FROM_FILE:
        dq = dq_file
        if dq is not None and crmask is not None and p["crbit"]:
            dq[crmask] |= p["crbit"]
    good = _good(dq, p["final_bits"], chip.shape) & np.isfinite(sci)
    if static is not None:
        good &= ~static
    if crmask is not None and not (dq is not None and p["crbit"]
                                   and _good(np.full(1, p["crbit"]), p["final_bits"], (1,))[0]):
        good &= ~crmask
    wscale = p["final_wt_scl"]
    if p["final_wht_type"] == "EXP":
        wmap = good.astype(np.float32)
    elif want_err:
        rate_err = err / np.float32(exposure.exptime)
        with np.errstate(divide="ignore", invalid="ignore"):
            wmap = np.where(good & (rate_err > 0) & np.isfinite(rate_err), 1.0 / rate_err**2, 0.0)
        wmap = wmap.astype(np.float32)
        wscale = 1.0
    else:
        if ivm is None:
            var = max(sky, 0.0) + chip.rdnoise**2
            if var <= 0:
                raise InvalidParameterError(
                    f"{exposure.label(chip)}: final_wht_type='IVM' without an IVM file needs a sky or a "
                    "read noise to build one")
            ivm = np.full(chip.shape, exposure.exptime**2 / var, np.float32)
        wmap = np.where(good & np.isfinite(ivm) & (ivm > 0), ivm, 0.0).astype(np.float32)
        wscale = 1.0
    pm, ratio = _pixmap(exposure, chip, out_wcs, p["stepsize"])
    data = np.where(good, sci - np.float32(in_data), 0).astype(np.float32)
    return data, wmap, wscale, pm, ratio


def _reach(kernel, pixfrac, psr, step):
    """How far (output pixels) a drop reaches beyond its centre's row range: the accumulator's own bound."""
    if kernel == "square":
        return 2.0 * pixfrac * step + 2.0
    if kernel == "point":
        return 1.0
    if kernel == "turbo":
        return pixfrac / psr / 2.0 + 1.0
    if kernel == "gaussian":
        return max(2.5 * pixfrac / 2.3548 / psr, 1.2 / psr) + 1.0
    return 3.0 / psr + 1.0


def _kernel_scalars(p, exptime, wscale, ratio):
    """``(wscale, iscale, psr)`` exactly as Drizzle.add_image derives them (in_units='counts')."""
    if isinstance(wscale, str):
        wscale = exptime if wscale == "exptime" else exptime * exptime
    iscale = float(ratio**2) / float(exptime)
    psr = float(np.float32(float(ratio)))
    return float(wscale), iscale, psr


def _row_ranges(pm, ymin, ymax):
    from . import _drizzle_kernels as _k

    n = ymax - ymin + 1
    lo, hi, step = np.empty(n), np.empty(n), np.empty(n)
    _k._row_ranges(pm, 0, pm.shape[1] - 1, ymin, ymax, lo, hi, step)
    return lo, hi, step


def _job_rows(item, *, context):
    """Per chip: output row range of every input row, and the drop reach (first round)."""
    from ._pipeline import _pixmap, _wcs_from

    exposure, chip = context["chips"][item][:2]
    pm, ratio = _pixmap(exposure, chip, _wcs_from(context["grid"]), context["stepsize"])
    lo, hi, step = _row_ranges(np.require(pm, np.float64, ["C"]), 0, chip.shape[0] - 1)
    finite = np.isfinite(step)
    psr = float(np.float32(float(ratio)))
    reach = _reach(context["kernel"], context["pixfrac"], psr, float(step[finite].max()) if finite.any() else 0.0)
    return lo, hi, reach


def _unpack_rows(bits, nrows, ncols):
    return np.unpackbits(bits, count=nrows * ncols).reshape(nrows, ncols).astype(bool)


def _job_band(item, *, context):
    """Drizzle every chip's rows that reach one output band; returns the band's SCI, WHT, CTX rows."""
    import numba

    from . import _drizzle_kernels as _k
    from ._pipeline import _wcs_from

    p = context["params"]
    y0, y1 = item["rows"]
    nx_out, nplanes = context["nx"], context["nplanes"]
    out_wcs = _wcs_from(context["grid"])
    # rows 0..y1 so that the kernel's row indices are the output's; only y0..y1 are written
    img = np.zeros((y1 + 1, nx_out), np.float32)
    wht = np.zeros((y1 + 1, nx_out), np.float32)
    ctx = np.zeros((nplanes, y1 + 1, nx_out), np.int32) if nplanes else None
    kernel = _k.KERNELS[p["final_kernel"]]
    lut = _k.lanczos_lut(3) if kernel == 4 else np.zeros(1)
    threads = numba.get_num_threads()
    for k, ymin, ymax, static_bits, cr_bits in item["chips"]:
        exposure, chip, sky, in_data, reach = context["chips"][k]
        ny_in, nx_in = chip.shape
        nrows = ymax - ymin + 1
        static = crmask = None
        if static_bits is not None:
            static = np.zeros(chip.shape, bool)
            static[ymin:ymax + 1] = _unpack_rows(static_bits, nrows, nx_in)
        if cr_bits is not None:
            crmask = np.zeros(chip.shape, bool)
            crmask[ymin:ymax + 1] = _unpack_rows(cr_bits, nrows, nx_in)
        data, wmap, wscale, pm, ratio = final_chip_inputs(p, exposure, chip, out_wcs, static=static, crmask=crmask,
                                                          sky=sky, in_data=in_data)
        data = np.require(data, np.float32, ["C"])
        wmap = np.require(wmap, np.float32, ["C"])
        pm = np.require(pm, np.float64, ["C"])
        wscale, iscale, psr = _kernel_scalars(p, exposure.exptime, wscale, ratio)
        use_ctx = ctx is not None
        plane = ctx[k // 32] if use_ctx else np.zeros((1, 1), np.int32)
        bit = np.array(1 << (k % 32), dtype=np.int64).astype(np.uint32).view(np.int32)
        args = (kernel, data, wmap, True, wscale, pm, img, wht, plane, use_ctx, np.int32(bit), iscale,
                float(p["final_pixfrac"]), psr, lut, 0, nx_in - 1, ymin, ymax)
        rowlo, rowhi, _ = _row_ranges(pm, ymin, ymax)
        span = y1 - y0 + 1
        if threads <= 1 or span < 16:
            _k._scan_band(*args, y0, y1, True, True, float(reach), rowlo, rowhi, np.zeros((1, 1), np.uint8))
        else:  # the band's rows shared out among this worker's threads (same result)
            nbands = min(8 * threads, max(1, span // 8))
            height = -(-span // nbands)
            nbands = -(-span // height)
            hits = np.zeros((nrows, nx_in), np.uint8)
            counts = np.zeros(nbands, np.int64)
            with numba.parallel_chunksize(1):
                _k._scan_bands(*args, y0, height, nbands, y1, float(reach), rowlo, rowhi, hits, counts)
    return (y0, img[y0:].copy(), wht[y0:].copy(), None if ctx is None else ctx[:, y0:].copy())


def band_rows(shape, workers, band_height=None):
    """Row ranges ``(y0, y1)`` (inclusive) of the output bands.

    Default height: enough bands for two per worker, each at most
    :data:`BAND_PIXELS` output pixels.
    """
    ny, nx = shape
    if band_height is None:
        n = max(2 * workers, math.ceil(ny * nx / BAND_PIXELS))
        band_height = max(1, -(-ny // n))
    elif isinstance(band_height, bool) or not isinstance(band_height, int) or band_height < 1:
        raise InvalidParameterError(f"band_height: expected a positive integer, got {band_height!r}")
    return [(y0, min(ny, y0 + band_height) - 1) for y0 in range(0, ny, band_height)]


def final_drizzle_by_bands(p, exposures, grid, *, static_bits, cr_masks, sky_e, in_data, executor=None,
                           max_workers=None, band_height=None):
    """The final drizzle of :func:`~starpix.drizzle.astrodrizzle`, by output row bands.

    Parameters
    ----------
    p : dict
        The checked parameters.
    exposures : list of Exposure
    grid : (WCS, (ny, nx))
        The final output grid.
    static_bits : list of list
        Per exposure and chip, the packed static mask (``np.packbits``) or None.
    cr_masks : list of list of numpy.ndarray or None
        Per exposure and chip, True on cosmic rays.
    sky_e, in_data : list of list of float
        Per exposure and chip: the sky (e-) and the sky to subtract from the data.
    executor, max_workers
        As :func:`starpix.parallel.map_jobs`.
    band_height : int, optional
        Output rows per band (default from :func:`band_rows`).

    Returns
    -------
    Bands
        ``out_img``, ``out_wht``, ``out_ctx``: equal to the serial
        accumulator's, bit for bit.
    """
    from ..parallel import executor_workers, imap_jobs, map_jobs
    from ._pipeline import _header_of, _unpack

    fwcs, shape = grid
    ny, nx = shape
    chips, masks = [], []
    for i, e in enumerate(exposures):
        for n, c in enumerate(e.chips):
            chips.append([e, c, sky_e[i][n], in_data[i][n]])
            masks.append((static_bits[i][n], None if cr_masks is None else cr_masks[i][n]))
    keys = ("final_kernel", "final_pixfrac", "final_wht_type", "final_wt_scl", "final_bits", "crbit",
            "resetbits", "stepsize")
    params = {key: p[key] for key in keys}
    grid_item = _header_of(fwcs, shape)
    first = {"chips": chips, "grid": grid_item, "stepsize": p["stepsize"], "kernel": p["final_kernel"],
             "pixfrac": float(p["final_pixfrac"])}
    ranges = map_jobs(functools.partial(_job_rows, context=first), range(len(chips)), executor=executor,
                      max_workers=max_workers, desc="final drizzle: pixel maps")
    for record, (_, _, reach) in zip(chips, ranges):
        record.append(reach)
    workers = 1 if executor is None else executor_workers(executor, max_workers)
    bands = band_rows(shape, workers, band_height)
    unpacked = {}

    def rows_of(k, ymin, ymax):
        static, cr = masks[k]
        static_rows = cr_rows = None
        if static is not None:
            key = id(static)
            if key not in unpacked:
                unpacked[key] = _unpack(static, chips[k][1].shape)
            static_rows = np.packbits(unpacked[key][ymin:ymax + 1].ravel())
        if cr is not None:
            cr_rows = np.packbits(np.asarray(cr, bool)[ymin:ymax + 1].ravel())
        return static_rows, cr_rows

    items = []
    for y0, y1 in bands:
        todo = []
        for k, (lo, hi, reach) in enumerate(ranges):
            # the kernel's own test: a row is skipped when its centres stay further than reach from the band
            near = np.nonzero(~((hi < y0 - 0.5 - reach) | (lo > y1 + 0.5 + reach)))[0]
            if near.size:
                ymin, ymax = int(near[0]), int(near[-1])
                todo.append((k, ymin, ymax) + rows_of(k, ymin, ymax))
        items.append({"rows": (y0, y1), "chips": todo})
    nplanes = (len(chips) - 1) // 32 + 1
    context = {"params": params, "grid": grid_item, "nx": nx, "nplanes": nplanes, "chips": chips}
    sci = np.zeros(shape, np.float32)
    wht = np.zeros(shape, np.float32)
    ctx = np.zeros((nplanes, ny, nx), np.int32)
    for y0, img, w, c in imap_jobs(functools.partial(_job_band, context=context), items, executor=executor,
                                   max_workers=max_workers, chunksize=1, desc="final drizzle: bands"):
        rows = slice(y0, y0 + img.shape[0])
        sci[rows], wht[rows], ctx[:, rows] = img, w, c
    fill = np.nan if p["final_fillval"] is None else np.float32(p["final_fillval"])
    sci[wht == 0] = fill
    return Bands(sci, wht, ctx)
