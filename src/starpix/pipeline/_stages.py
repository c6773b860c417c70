"""The pipeline's stages: each reads its inputs, writes its products into one directory, and says what it made.

A stage function takes a :class:`StageContext` and the (temporary) directory it
writes into, and returns a list of summary lines (what it made, how well it
recovered the truth where there is one).  The runner renames the directory
into place only when the stage succeeds.
"""

from __future__ import annotations

import os
import shutil
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import FormatError, InputFileError, InvalidParameterError, StarpixWarning

__all__ = ["StageContext", "STAGE_FUNCTIONS", "DRIZZLE_OUTPUT", "match_truth"]

#: Root of the drizzle stage's products: ``drizzle/final_drz.fits``.
DRIZZLE_OUTPUT = "final"


@dataclass
class StageContext:
    """What every stage may read: the configuration, the outputs directory, the executor."""

    config: object
    output_dir: str
    executor: object = None
    max_workers: int | None = None
    progress_bar: bool = False
    notes: dict = field(default_factory=dict)

    def stage_dir(self, name):
        return os.path.join(self.output_dir, name)

    def science_image(self):
        """(file, hdu) of the image the measuring stages work on."""
        if self.config.inputs["exposures"] is not None:
            path = os.path.join(self.stage_dir("drizzle"), f"{DRIZZLE_OUTPUT}_drz.fits")
            return path, "SCI"
        from ..io import parse_hdu_spec

        path, hdu = parse_hdu_spec(self.config.inputs["image"])
        return path, hdu

    def read_science(self):
        """(data float64, header, wcs, weight or None) of the science image."""
        from ..io import read_image

        path, hdu = self.science_image()
        if not os.path.exists(path):
            raise InputFileError(f"{path}: the science image is missing (run the drizzle stage)")
        with read_image(path, hdu) as source:
            data = np.array(source.data, dtype=np.float64)
            header = source.header.copy()
            wcs = source.wcs
        weight = None
        if self.config.inputs["exposures"] is not None:
            from astropy.io import fits

            with fits.open(path) as hdul:
                if "WHT" in hdul:
                    weight = np.array(hdul["WHT"].data, dtype=np.float64)
        return data, header, wcs, weight


# ----------------------------------------------------------------------------- calibrate

def _frame(spec):
    from ..io import read_image

    if spec is None:
        return None, None
    with read_image(spec) as source:
        return np.array(source.data, dtype=np.float64), source.header.get("EXPTIME")


def _chips(hdul):
    """HDU indices of the SCI images of a file (or its first image HDU)."""
    from ..io import is_image_hdu

    sci = [i for i, h in enumerate(hdul) if h.header.get("EXTNAME", "").upper() == "SCI" and is_image_hdu(h)
           and h.data is not None]
    if sci:
        return sci
    for i, h in enumerate(hdul):
        if is_image_hdu(h) and h.data is not None and h.data.ndim == 2:
            return [i]
    return []


def _calibrate_file(job):
    """Calibrate and mask every chip of one exposure; write the copy. Runs on any executor."""
    from astropy.io import fits

    from ..preprocess import calibrate, detect_cosmics, make_mask

    src, dst, p = job
    bias, _ = _frame(p.get("bias"))
    dark, dark_exptime = _frame(p.get("dark"))
    flat, _ = _frame(p.get("flat"))
    stats = []
    with fits.open(src, memmap=False) as hdul:
        chips = _chips(hdul)
        if not chips:
            raise FormatError(f"{src}: no 2-D image HDU to calibrate")
        primary = hdul[0].header
        out = fits.HDUList([h.copy() for h in hdul])
        for index in chips:
            hdu = out[index]
            header = hdu.header
            extver = header.get("EXTVER", 1)
            if not hdu.header.get("EXTNAME"):
                hdu.header["EXTNAME"] = "SCI"
                if not isinstance(hdu, fits.ImageHDU):
                    out[index] = hdu = fits.ImageHDU(hdu.data, header=hdu.header, name="SCI")
                    if index == 0:
                        out.insert(0, fits.PrimaryHDU(header=primary))
                        index = 1
            data = np.asarray(hdu.data, dtype=np.float64)
            exptime = header.get("EXPTIME", primary.get("EXPTIME"))
            for name, frame in (("bias", bias), ("dark", dark), ("flat", flat)):
                if frame is not None and frame.shape != data.shape:
                    raise InvalidParameterError(f"[calibrate] {name}: shape {frame.shape} differs from "
                                                f"{src}[SCI,{extver}] {data.shape}")
            result = calibrate(data, bias, dark, flat, exptime=exptime if dark is not None else None,
                               dark_exptime=dark_exptime if dark is not None else None,
                               dark_includes_bias=p["dark_includes_bias"], flat_low=p["flat_low"],
                               dark_sigma=p["dark_sigma"])
            image = result.image
            bad = result.mask | make_mask(image, header, saturation=p.get("saturation"))
            gain = p.get("gain") or header.get("GAIN", primary.get("GAIN"))
            n_cr = 0
            if p["mask_cosmics"]:
                readnoise = p.get("readnoise") or header.get("RDNOISE", primary.get("RDNOISE", 6.5))
                dq_old = _find_ext(out, "DQ", extver)
                guard = bad if dq_old is None else bad | (np.asarray(out[dq_old].data) != 0)
                crmask, _ = detect_cosmics(image, guard, gain=float(gain or 1.0), readnoise=float(readnoise),
                                           sigclip=p["sigclip"], sigfrac=p["sigfrac"], objlim=p["objlim"],
                                           niter=p["niter"])
                crmask &= ~guard
                n_cr = int(crmask.sum())
                bad = bad | crmask
            hdu.data = image.astype(np.float32)
            hdu.header["SPXCALIB"] = (True, "starpix pipeline calibrate stage")
            dq_index = _find_ext(out, "DQ", extver)
            flag = np.where(bad, p["dq_flag"], 0).astype(np.int16 if p["dq_flag"] < 2**15 else np.int32)
            if dq_index is None:
                dq = fits.ImageHDU(flag, name="DQ")
                dq.header["EXTVER"] = extver
                out.append(dq)
                n_bad = int(bad.sum())
            else:
                old = np.asarray(out[dq_index].data)
                out[dq_index].data = (old | flag).astype(np.result_type(old.dtype, flag.dtype))
                n_bad = int(((old | flag) != 0).sum())
            err_index = _find_ext(out, "ERR", extver)
            if err_index is not None and flat is not None and result.flat_median:
                out[err_index].data = (np.asarray(out[err_index].data, float)
                                       / (flat / result.flat_median)).astype(np.float32)
            stats.append((int(data.size), n_bad, n_cr))
        out.writeto(dst)
    return stats


def _find_ext(hdul, name, extver):
    for i, h in enumerate(hdul):
        if h.header.get("EXTNAME", "").upper() == name and h.header.get("EXTVER", 1) == extver:
            return i
    return None


def stage_calibrate(ctx, outdir):
    from ..parallel import map_jobs

    p = ctx.config.params["calibrate"]
    files = ctx.config.inputs["exposures"]
    names = [os.path.basename(f) for f in files]
    if len(set(names)) != len(names):
        raise InvalidParameterError("[inputs] exposures: two exposures have the same file name")
    jobs = [(f, os.path.join(outdir, name), dict(p)) for f, name in zip(files, names)]
    stats = map_jobs(_calibrate_file, jobs, executor=ctx.executor, max_workers=ctx.max_workers,
                     progress_bar=ctx.progress_bar, desc="calibrate")
    pixels = sum(s[0] for f in stats for s in f)
    bad = sum(s[1] for f in stats for s in f)
    crs = sum(s[2] for f in stats for s in f)
    frames = [k for k in ("bias", "dark", "flat") if k in p]
    lines = [f"{len(files)} exposures ({sum(len(f) for f in stats)} chips) calibrated "
             f"({', '.join(frames) if frames else 'no calibration frames'}) into {outdir}",
             f"{bad} pixels flagged in DQ ({100.0 * bad / max(pixels, 1):.2f}%)"
             + (f", of which {crs} cosmic-ray pixels found by L.A.Cosmic" if p["mask_cosmics"] else "")]
    ctx.notes["calibrate"] = {"cosmic_pixels": crs, "bad_pixels": bad}
    return lines


# ----------------------------------------------------------------------------- drizzle

def stage_drizzle(ctx, outdir):
    from astropy.io import fits

    from ..drizzle import astrodrizzle

    config = ctx.config
    if "calibrate" in ctx.notes.get("_available", ()):
        inputs = [os.path.join(ctx.stage_dir("calibrate"), os.path.basename(f)) for f in config.inputs["exposures"]]
    else:
        inputs = list(config.inputs["exposures"])
    params = dict(config.params["drizzle"])
    params.setdefault("in_memory", True)
    result = astrodrizzle(inputs, os.path.join(outdir, DRIZZLE_OUTPUT), executor=ctx.executor, build=True,
                          runfile=os.path.join(outdir, f"{DRIZZLE_OUTPUT}_astrodrizzle.log"), plot=False, **params)
    lines = [f"{len(inputs)} exposures drizzled onto {result.sci.shape[1]}x{result.sci.shape[0]} pixels: "
             f"{os.path.join(outdir, DRIZZLE_OUTPUT + '_drz.fits')} (SCI in e-/s, WHT, CTX)"]
    if result.sky:
        lines.append("sky subtracted per exposure: " + ", ".join(f"{s:.2f}" for s in result.sky))
    if result.crmasks is not None and any(m is not None for m in result.crmasks):
        hdus = [fits.PrimaryHDU()]
        counts = []
        for path, masks in zip(inputs, result.crmasks):
            root = os.path.splitext(os.path.basename(path))[0]
            n = 0
            for k, mask in enumerate(masks or [], start=1):
                hdus.append(fits.ImageHDU(np.asarray(mask, np.uint8), name=f"CR_{root}_{k}"[:68]))
                n += int(np.count_nonzero(mask))
            counts.append(n)
        fits.HDUList(hdus).writeto(os.path.join(outdir, "crmasks.fits"))
        lines.append("cosmic-ray pixels rejected per exposure: " + ", ".join(map(str, counts))
                     + f" ({os.path.join(outdir, 'crmasks.fits')})")
    good = result.wht > 0
    lines.append(f"weight: median {np.median(result.wht[good]):.1f}, {100.0 * good.mean():.1f}% of the pixels "
                 "covered")
    return lines


# ----------------------------------------------------------------------------- find

def stage_find(ctx, outdir):
    from astropy.io import fits

    from ..detect import Background, find_stars
    from ._config import finder_options

    p = ctx.config.params["find"]
    data, header, wcs, weight = ctx.read_science()
    mask = ~np.isfinite(data)
    if weight is not None:
        mask |= weight <= 0
    box = tuple(p["box_size"]) if isinstance(p["box_size"], list) else p["box_size"]
    background = Background(np.where(mask, 0.0, data), box, coverage_mask=mask)
    rms = float(background.background_rms_median)
    threshold = p["threshold"] if "threshold" in p else p["nsigma"] * rms
    table = find_stars(np.where(mask, 0.0, data - background.background), threshold, mask=mask,
                       **finder_options(p))
    table.meta["threshold"] = float(threshold)
    table.write(os.path.join(outdir, "stars.ecsv"))
    hdus = fits.HDUList([fits.PrimaryHDU(),
                         fits.ImageHDU(background.background.astype(np.float32), name="BKG"),
                         fits.ImageHDU(background.background_rms.astype(np.float32), name="RMS")])
    hdus[1].header["BKGMED"] = float(background.background_median)
    hdus[1].header["RMSMED"] = rms
    hdus.writeto(os.path.join(outdir, "background.fits"))
    return [f"background median {background.background_median:.4g}, rms {rms:.4g} (box {box})",
            f"{len(table)} stars above {threshold:.4g} in {os.path.join(outdir, 'stars.ecsv')}"]


def _background(ctx):
    from astropy.io import fits

    path = os.path.join(ctx.stage_dir("find"), "background.fits")
    with fits.open(path) as hdul:
        return np.array(hdul["BKG"].data, dtype=np.float64), float(hdul["BKG"].header["RMSMED"])


# ----------------------------------------------------------------------------- photometry

def make_psf(ctx):
    """The PSF model: the configuration's gridded PSF, else a Gaussian of [photometry] fwhm."""
    from ..psf import GaussianPSF, GriddedPSF

    if ctx.config.inputs["psf"] is not None:
        return GriddedPSF.read(ctx.config.inputs["psf"])
    p = ctx.config.params
    return GaussianPSF(p["photometry"].get("fwhm") or p["find"]["fwhm"])


def read_truth(ctx, wcs):
    """The truth table with pixel positions ``x_true``, ``y_true`` and ``flux_true`` on the science image."""
    from ..io import read_table

    path = ctx.config.inputs["truth"]
    table = read_table(path)
    lower = {c.lower(): c for c in table.colnames}
    flux = next((lower[c] for c in ("flux", "flux_0", "flux_true") if c in lower), None)
    x = next((lower[c] for c in ("x_0", "x", "x_true") if c in lower), None)
    y = next((lower[c] for c in ("y_0", "y", "y_true") if c in lower), None)
    ra, dec = lower.get("ra"), lower.get("dec")
    if ra and dec and wcs is not None:
        xs, ys = wcs.world_to_pixel_values(np.asarray(table[ra], float), np.asarray(table[dec], float))
    elif x and y:
        xs, ys = np.asarray(table[x], float), np.asarray(table[y], float)
    else:
        raise FormatError(f"[inputs] truth: {path}: needs columns ra, dec (with an image WCS) or x_0, y_0; it has "
                          f"{', '.join(table.colnames)}")
    if flux is None:
        raise FormatError(f"[inputs] truth: {path}: needs a flux column; it has {', '.join(table.colnames)}")
    return np.asarray(xs, float), np.asarray(ys, float), np.asarray(table[flux], float)


def match_truth(x_fit, y_fit, x_true, y_true, radius):
    """For every true source, the index of the nearest fitted one within ``radius`` (-1: none), and the distance."""
    from scipy.spatial import cKDTree

    fitted = np.column_stack([x_fit, y_fit])
    ok = np.all(np.isfinite(fitted), axis=1)
    index = np.full(len(x_true), -1)
    distance = np.full(len(x_true), np.inf)
    if ok.any() and len(x_true):
        tree = cKDTree(fitted[ok])
        d, i = tree.query(np.column_stack([x_true, y_true]), distance_upper_bound=radius)
        found = np.isfinite(d)
        index[found] = np.flatnonzero(ok)[i[found]]
        distance[found] = d[found]
    return index, distance


def truth_summary(table, truth, radius):
    x_true, y_true, flux_true = truth
    shape_ok = np.isfinite(x_true) & np.isfinite(y_true)
    index, distance = match_truth(np.asarray(table["x_fit"], float), np.asarray(table["y_fit"], float),
                                  x_true, y_true, radius)
    found = (index >= 0) & shape_ok
    if not found.any():
        return [f"0/{len(x_true)} true stars matched within {radius:g} px"], None
    fit = np.asarray(table["flux_fit"], float)[index[found]]
    err = np.asarray(table["flux_err"], float)[index[found]]
    ratio = fit / flux_true[found]
    pulls = (fit - flux_true[found]) / err
    median = np.median(ratio)
    return [f"{found.sum()}/{len(x_true)} true stars matched within {radius:g} px",
            f"flux_fit/flux_true: median {median:.5f}, robust scatter "
            f"{1.4826 * np.median(np.abs(ratio - median)):.1e}; position rms "
            f"{np.sqrt(np.mean(distance[found] ** 2)):.4f} px; flux pulls width {np.nanstd(pulls):.2f} "
            "(truth: 1)"], (index, distance)


def stage_photometry(ctx, outdir):
    from astropy.io import fits
    from astropy.table import QTable

    from ..photometry import PSFPhotometry, tiled_photometry
    from ..psf import render

    p = ctx.config.params["photometry"]
    data, header, wcs, weight = ctx.read_science()
    background, rms = _background(ctx)
    stars = QTable.read(os.path.join(ctx.stage_dir("find"), "stars.ecsv"))
    mask = ~np.isfinite(data)
    if weight is not None:
        mask |= weight <= 0
    sub = np.where(mask, 0.0, data - background)
    psf = make_psf(ctx)
    fit_shape = tuple(p["fit_shape"]) if isinstance(p["fit_shape"], list) else p["fit_shape"]
    phot = PSFPhotometry(psf, fit_shape, aperture_radius=p["aperture_radius"], fitter_maxiters=p["fitter_maxiters"])
    tile = tuple(p["tile_size"]) if isinstance(p["tile_size"], list) else p["tile_size"]
    # uncertainties: the background rms, plus the sources' Poisson noise where the data's electrons per data
    # unit are known (the drizzle weight map, an exposure time per pixel for e-/s; or [photometry] gain)
    variance = np.full(sub.shape, rms**2)
    per_unit = weight if weight is not None else p.get("gain")
    if per_unit is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            variance += np.where(np.asarray(per_unit) > 0, np.clip(sub, 0, None) / per_unit, 0.0)
    error = np.sqrt(variance)
    if len(stars):
        init = QTable({"x_init": stars["x_centroid"], "y_init": stars["y_centroid"]})
        inputs = (sub, error, mask)
        scratch = None
        if ctx.executor is not None:
            # workers read their tiles from files, so the pixels are not sent with every job
            scratch = os.path.join(outdir, ".tiles")
            os.makedirs(scratch, exist_ok=True)
            inputs = []
            for name, array in (("image", sub), ("error", error), ("mask", mask.astype(np.uint8))):
                path = os.path.join(scratch, f"{name}.fits")
                fits.PrimaryHDU(array).writeto(path)
                inputs.append(path)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", StarpixWarning)
                table = tiled_photometry(inputs[0], phot, tile_size=tile, overlap=p.get("overlap"),
                                         error=inputs[1], mask=inputs[2], init_params=init, executor=ctx.executor,
                                         max_workers=ctx.max_workers, progress_bar=ctx.progress_bar)
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
        notes = sorted({str(w.message) for w in caught if issubclass(w.category, StarpixWarning)})
        for w in caught:
            if not issubclass(w.category, StarpixWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    else:
        raise InvalidParameterError("[find]: no stars were found; nothing to fit (lower [find] nsigma)")
    if wcs is not None:
        ra, dec = wcs.pixel_to_world_values(np.asarray(table["x_fit"], float), np.asarray(table["y_fit"], float))
        table["ra_fit"], table["dec_fit"] = ra, dec
    table.write(os.path.join(outdir, "photometry.ecsv"))
    xf, yf = np.asarray(table["x_fit"], float), np.asarray(table["y_fit"], float)
    good = (np.isfinite(np.asarray(table["flux_fit"], float)) & (np.abs(xf - sub.shape[1] / 2) < sub.shape[1])
            & (np.abs(yf - sub.shape[0] / 2) < sub.shape[0]))
    model = render(sub.shape, psf, np.asarray(table["x_fit"], float)[good], np.asarray(table["y_fit"], float)[good],
                   np.asarray(table["flux_fit"], float)[good])
    residual = np.where(mask, np.nan, sub - model)
    hdr = wcs.to_header(relax=True) if wcs is not None else None
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(sub.astype(np.float32), header=hdr, name="DATA"),
                  fits.ImageHDU(model.astype(np.float32), header=hdr, name="MODEL"),
                  fits.ImageHDU(residual.astype(np.float32), header=hdr, name="RESIDUAL")]
                 ).writeto(os.path.join(outdir, "residual.fits"))
    flagged = int(np.count_nonzero(np.asarray(table["flags"]))) if "flags" in table.colnames else 0
    lines = [f"{len(table)} stars fitted ({flagged} flagged) with a {type(psf).__name__}: "
             f"{os.path.join(outdir, 'photometry.ecsv')}",
             f"data/model/residual in {os.path.join(outdir, 'residual.fits')} (residual rms "
             f"{np.nanstd(residual):.3g}, background rms {rms:.3g})"]
    lines += [f"note: {note}" for note in notes]
    if ctx.config.inputs["truth"] is not None:
        truth = read_truth(ctx, wcs)
        inside = ((truth[0] > -0.5) & (truth[0] < data.shape[1] - 0.5) & (truth[1] > -0.5)
                  & (truth[1] < data.shape[0] - 0.5))
        truth = tuple(t[inside] for t in truth)
        more, _ = truth_summary(table, truth, ctx.config.inputs["match_radius"])
        lines += more
    return lines


# ----------------------------------------------------------------------------- stamps

def stage_stamps(ctx, outdir):
    from astropy.io import fits
    from astropy.table import QTable

    from ..detect import segment
    from ..stamp import psf_stamps, stack_stamps

    p = ctx.config.params["stamps"]
    data, header, wcs, weight = ctx.read_science()
    table = QTable.read(os.path.join(ctx.stage_dir("photometry"), "photometry.ecsv"))
    x, y, flux = (np.asarray(table[c], float) for c in ("x_fit", "y_fit", "flux_fit"))
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(flux) & (flux > 0)
    if "flags" in table.colnames:
        ok &= np.asarray(table["flags"]) == 0
    half = p["width"] // 2
    ny, nx = data.shape
    inside = (x > half + 5) & (x < nx - half - 6) & (y > half + 5) & (y < ny - half - 6)
    isolated = np.ones(len(x), bool)
    if p["isolation"] > 0 and len(x) > 1:
        from scipy.spatial import cKDTree

        xy = np.column_stack([np.where(np.isfinite(x), x, -1e9), np.where(np.isfinite(y), y, -1e9)])
        d, _ = cKDTree(xy).query(xy, k=2)
        isolated = d[:, 1] > p["isolation"]
    chosen = np.flatnonzero(ok & inside & isolated)
    chosen = chosen[np.argsort(flux[chosen])[::-1][: p["n_stars"]]]
    if len(chosen) == 0:
        raise InvalidParameterError("[stamps]: no isolated, unflagged star far enough from the edges for stamps of "
                                    f"width {p['width']} (lower [stamps] isolation or width)")
    mask = ~np.isfinite(data)
    if weight is not None:
        mask |= weight <= 0
    seg = None
    if p["segment"]:
        seg = segment(np.where(mask, np.nan, data), mask=mask,
                      header=wcs.to_header(relax=True) if wcs is not None else None)
        seg.write(os.path.join(outdir, "segmentation.fits"))
        base = seg.input_no_sky
    else:
        background, _ = _background(ctx)
        base = np.where(mask, np.nan, data - background)
    stamps = psf_stamps(base, np.column_stack([x[chosen], y[chosen]]), width=p["width"],
                        normradii=tuple(p["normradii"]), segment=seg, normop=p["normop"],
                        executor=ctx.executor, max_workers=ctx.max_workers, progress_bar=ctx.progress_bar)
    stamps.write(os.path.join(outdir, "stamps.fits"))
    QTable({"id": np.asarray(table["id"])[chosen], "x": x[chosen], "y": y[chosen], "flux": flux[chosen]}).write(
        os.path.join(outdir, "stamp-stars.ecsv"))
    stacked = stack_stamps(stamps.stamps, p["operator"], sigmaclip=tuple(p["sigmaclip"]))
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.asarray(stacked, np.float32), name="PSF")]).writeto(
        os.path.join(outdir, "extended-psf.fits"))
    lines = []
    if seg is not None:
        lines.append(f"{os.path.join(outdir, 'segmentation.fits')}: {seg.n_objects} objects, {seg.n_clumps} clumps")
    lines += [f"{len(chosen)} stamps of {p['width']}x{p['width']} (isolated bright stars, normalized over rings "
              f"{p['normradii'][0]}-{p['normradii'][1]}) in {os.path.join(outdir, 'stamps.fits')}",
              f"stacked PSF ({p['operator']}) in {os.path.join(outdir, 'extended-psf.fits')}"]
    return lines


# ----------------------------------------------------------------------------- cutouts

def _targets(path):
    from ..cli._common import read_targets

    return read_targets(path)


def stage_cutouts(ctx, outdir):
    from ..cutout import fits_cut, img_cut

    p = ctx.config.params["cutouts"]
    path, hdu = ctx.science_image()
    targets = _targets(ctx.config.inputs["targets"])
    size = tuple(p["size"]) if isinstance(p["size"], list) else p["size"]
    written = fits_cut([path], targets, size, hdu=hdu, output_dir=outdir, mode=p["mode"],
                       executor=ctx.executor, max_workers=ctx.max_workers, progress_bar=ctx.progress_bar)
    written = [written] if isinstance(written, str) else written  # one path alone when one file is written
    lines = [f"{len(written)} FITS cutouts of {size} pixels in {outdir}"]
    if p["png"]:
        png_size = tuple(p["png_size"]) if isinstance(p["png_size"], list) else p["png_size"]
        pngs = img_cut([path], targets, png_size, hdu=hdu, img_format="png", output_dir=outdir,
                       stretch=p["stretch"])
        pngs = [pngs] if isinstance(pngs, str) else pngs
        lines.append(f"{len(pngs)} PNGs of {png_size} pixels ({p['stretch']} stretch)")
    return lines


# ----------------------------------------------------------------------------- cube

def stage_cube(ctx, outdir):
    from ..cutout import build_cube, cube_cut

    p = ctx.config.params["cube"]
    files = ctx.config.inputs["ffis"]
    cube = os.path.join(outdir, p["output"])
    build_cube(files, cube, sector=p.get("sector"), progress_bar=ctx.progress_bar)
    lines = [f"{cube}: {len(files)} full-frame images"]
    target_file = p.get("targets") or ctx.config.inputs["targets"]
    if target_file is not None:
        targets = _targets(target_file)
        size = tuple(p["size"]) if isinstance(p["size"], list) else p["size"]
        tpfs = cube_cut(cube, targets, size, output_dir=outdir, executor=ctx.executor,
                        max_workers=ctx.max_workers)
        tpfs = tpfs if isinstance(tpfs, list) else [tpfs]
        lines.append(f"{len(tpfs)} target pixel file(s) of {size} pixels: "
                     + ", ".join(os.path.basename(str(t)) for t in tpfs))
    return lines


STAGE_FUNCTIONS = {
    "calibrate": stage_calibrate,
    "drizzle": stage_drizzle,
    "find": stage_find,
    "photometry": stage_photometry,
    "stamps": stage_stamps,
    "cutouts": stage_cutouts,
    "cube": stage_cube,
}
