"""End-to-end demo on simulated data: ``python -m starpix.demo --outdir DIR``.

Each stage prints what it made, how long it took, and how well the result
matches the truth the data were simulated from.  Later stages of the
design's demo (PSF photometry, stamps, drizzle) join as they are built.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

import numpy as np


class _Stage:
    """Times one stage and prints its report."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.start = time.perf_counter()
        print(f"== {self.name}")
        return self

    def report(self, message):
        print(f"   {message}")

    def __exit__(self, *exc):
        if exc[0] is None:
            print(f"   done in {time.perf_counter() - self.start:.2f} s")


def _star_field(outdir):
    """A JWST-like field: a NIRCam-like gridded PSF, 300 stars, noise, a TAN-SIP WCS."""
    from astropy.io import fits

    from .psf import make_gridded_psf
    from .simulate import make_model_image, make_noise_image, make_wcs

    shape = (1024, 1024)
    grid = make_gridded_psf(shape)
    grid_path = os.path.join(outdir, "psf-grid.fits")
    grid.write(grid_path)
    image, truth = make_model_image(shape, grid, 300, flux=(2e3, 2e5), min_separation=15, seed=7)
    image = image + make_noise_image(shape, mean=10.0, stddev=1.0, seed=7)
    wcs = make_wcs(shape, center=(150.1, 2.2), pixel_scale_arcsec=0.031, rotation_deg=15.0, sip=True)
    sky = wcs.pixel_to_world(truth["x_0"], truth["y_0"])
    truth["ra"], truth["dec"] = sky.ra.deg, sky.dec.deg
    header = wcs.to_header(relax=True)
    header["FILENAME"] = "field.fits"
    header["BUNIT"] = "electron"
    path = os.path.join(outdir, "field.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(image.astype(np.float32), header=header, name="SCI")]
                 ).writeto(path)
    truth.write(os.path.join(outdir, "field-truth.ecsv"))
    return path, grid_path, grid, image, wcs, truth


def _photometry(outdir, image, grid, truth):
    """Subtract the background, find the stars, fit them; compare with the truth."""
    from astropy.io import fits
    from scipy.spatial import cKDTree

    from .detect import Background, StarFinder
    from .photometry import PSFPhotometry

    background = Background(image, 64)
    data = image - background.background
    error = np.full(image.shape, background.background_rms_median)
    phot = PSFPhotometry(grid, (5, 5), finder=StarFinder(10 * background.background_rms_median, 3.0),
                         aperture_radius=5)
    result = phot.fit(data, error=error)
    table = result.table
    table.write(os.path.join(outdir, "photometry.ecsv"))
    residual = result.make_residual_image(data)
    fits.PrimaryHDU(residual.astype(np.float32)).writeto(os.path.join(outdir, "residual.fits"))
    fitted = np.stack([np.asarray(table["x_fit"]), np.asarray(table["y_fit"])], axis=1)
    distance, index = cKDTree(fitted).query(np.stack([truth["x_0"], truth["y_0"]], axis=1),
                                            distance_upper_bound=1.0)
    found = np.isfinite(distance)
    ratio = np.asarray(table["flux_fit"])[index[found]] / np.asarray(truth["flux"])[found]
    pulls = (np.asarray(table["flux_fit"])[index[found]] - np.asarray(truth["flux"])[found]) / np.asarray(
        table["flux_err"])[index[found]]
    return [
        f"background {background.background_median:.3f} (truth 10), rms {background.background_rms_median:.3f} "
        "(truth 1)",
        f"{len(table)} stars found and fitted; {found.sum()}/{len(truth)} true stars matched within 1 px",
        f"flux_fit/flux_true: median {np.median(ratio):.5f}, robust scatter "
        f"{1.4826 * np.median(np.abs(ratio - np.median(ratio))):.1e}; position rms "
        f"{np.sqrt(np.mean(distance[found] ** 2)):.4f} px; flux pulls width {np.std(pulls):.2f} (truth: 1)",
        f"{os.path.join(outdir, 'photometry.ecsv')}, residual image {os.path.join(outdir, 'residual.fits')} "
        f"(rms {np.std(residual):.2f})",
    ]


def _extended_psf(outdir, image, grid, truth, wcs):
    """Segment the field, cut stamps of the brightest isolated stars, stack them, compare with the PSF."""
    from astropy.io import fits

    from .detect import segment
    from .stamp import psf_stamps, radial_profile, stack_stamps

    seg = segment(image, header=wcs.to_header(relax=True))
    seg_path = os.path.join(outdir, "field-seg.fits")
    seg.write(seg_path)
    half = 25
    x, y, flux = (np.asarray(truth[c], dtype=float) for c in ("x_0", "y_0", "flux"))
    inside = (x > half + 5) & (x < image.shape[1] - half - 6) & (y > half + 5) & (y < image.shape[0] - half - 6)
    distance = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    np.fill_diagonal(distance, np.inf)
    isolated = distance.min(axis=1) > 20
    chosen = np.flatnonzero(inside & isolated)
    chosen = chosen[np.argsort(flux[chosen])[::-1][:25]]
    stamps = psf_stamps(seg.input_no_sky, np.stack([x[chosen], y[chosen]], axis=1), width=2 * half + 1,
                        normradii=(3, 8), segment=seg)
    stamps.write(os.path.join(outdir, "stamps.fits"))
    stacked = stack_stamps(stamps.stamps, "sigclip-mean", sigmaclip=(3, 0.2))
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(stacked, name="PSF")]).writeto(
        os.path.join(outdir, "extended-psf.fits"))

    # the truth: the simulated PSF of each chosen star on its stamp's grid, normalized within r < 10 px and
    # averaged; once exactly centred, and once at the star's true sub-pixel offset moved by the stamps' own
    # flux-conserving shift (which widens an undersampled PSF a little)
    from .interp import shift_image

    offsets = np.arange(2 * half + 1) - half
    tx, ty = np.floor(x[chosen] + 0.5), np.floor(y[chosen] + 0.5)
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
    core = np.hypot(xx, yy) < 10
    exact = grid.evaluate(x[chosen][:, None, None] + offsets[None, None, :],
                          y[chosen][:, None, None] + offsets[None, :, None],
                          x[chosen][:, None, None], y[chosen][:, None, None], 1.0)
    at_pixels = grid.evaluate(tx[:, None, None] + offsets[None, None, :], ty[:, None, None] + offsets[None, :, None],
                              x[chosen][:, None, None], y[chosen][:, None, None], 1.0)
    shifted = np.stack([shift_image(m, cx - sx, cy - sy) for m, cx, cy, sx, sy
                        in zip(at_pixels, tx, ty, x[chosen], y[chosen])])

    def mean_normalized(stack):
        return np.nanmean(stack / np.nansum(stack[:, core], axis=1)[:, None, None], axis=0)

    measured = stacked / np.nansum(stacked[core])
    lines = []
    for label, truth_psf in (("exactly centred", mean_normalized(exact)),
                             ("through the same sub-pixel shift", mean_normalized(shifted))):
        difference = np.nanmax(np.abs(measured - truth_psf)[core]) / np.nanmax(truth_psf)
        profile = radial_profile(measured, (half, half), 6, measures=("mean",))["MEAN"]
        truth_profile = radial_profile(truth_psf, (half, half), 6, measures=("mean",))["MEAN"]
        ratio = np.asarray(profile) / np.asarray(truth_profile)
        lines.append(f"vs the simulated PSF {label}: largest difference within r < 10 px {difference:.1e} of the "
                     f"peak; radial profile ratio at r = 0..5: " + ", ".join(f"{v:.3f}" for v in ratio))
    return [
        f"{seg_path}: {seg.n_objects} objects, {seg.n_clumps} clumps (Gnuastro Segment's layout); "
        f"{len(truth)} stars simulated",
        f"{len(chosen)} stamps of {2 * half + 1}x{2 * half + 1} (isolated bright stars, centred, normalized over "
        f"rings 3-8) in {os.path.join(outdir, 'stamps.fits')}",
        f"stacked PSF (sigma-clipped mean) in {os.path.join(outdir, 'extended-psf.fits')}, normalized within "
        "r < 10 px",
        *lines,
    ]


def _image_cutouts(outdir, field, truth):
    from astropy.coordinates import SkyCoord

    from .cutout import fits_cut, img_cut

    bright = truth[np.argsort(truth["flux"])[::-1][:5]]
    targets = SkyCoord(bright["ra"], bright["dec"], unit="deg")
    cut_dir = os.path.join(outdir, "cutouts")
    os.makedirs(cut_dir, exist_ok=True)
    written = fits_cut(field, targets, 25, output_dir=cut_dir)
    from astropy.io import fits
    from astropy.wcs import WCS

    offsets = []
    for path, row in zip(written, bright):
        with fits.open(path) as hdul:
            data, header = hdul[1].data.astype(float), hdul[1].header
        # where the truth says the star is, in the cutout's own WCS
        x_true, y_true = WCS(header).world_to_pixel_values(row["ra"], row["dec"])
        # centroid in a 9x9 box around the cutout's central pixel
        box = data[8:17, 8:17] - np.median(data)
        yy, xx = np.mgrid[8:17, 8:17]
        x_c, y_c = (box * xx).sum() / box.sum(), (box * yy).sum() / box.sum()
        offsets.append(np.hypot(x_c - x_true, y_c - y_true))
    pngs = img_cut(field, targets, 64, img_format="png", output_dir=cut_dir, stretch="asinh")
    return written, pngs, max(offsets)


def main(argv=None):
    """Run the demo; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m starpix.demo", description=__doc__)
    parser.add_argument("--outdir", default="demo-output", help="directory for everything the demo makes")
    args = parser.parse_args(argv)
    outdir = args.outdir
    if os.path.exists(outdir):
        shutil.rmtree(outdir)
    os.makedirs(outdir)
    total = time.perf_counter()

    with _Stage("simulate a JWST-like 1024x1024 star field from a gridded PSF (4x4 nodes, oversampling 4)") as stage:
        field, grid_path, grid, image, wcs, truth = _star_field(outdir)
        stage.report(f"{grid_path}: {len(grid.positions)} PSFs of 101 pixels (STPSF format; photutils reads it)")
        stage.report(f"{field}: {len(truth)} stars, fluxes {truth['flux'].min():.0f}-{truth['flux'].max():.0f}")
        flux_ratio = (image.sum() - 10.0 * image.size) / truth["flux"].sum()
        stage.report(f"flux in the image / flux simulated = {flux_ratio:.5f} (truth: 1, less the stars' wings "
                     "beyond the image edges)")
        import matplotlib

        matplotlib.use("Agg")
        grid.plot_grid(deltas=True).savefig(os.path.join(outdir, "psf-grid-deltas.png"), dpi=100)
        stage.report(f"{os.path.join(outdir, 'psf-grid-deltas.png')}: each PSF minus the mean PSF")

    with _Stage("background, star finding and PSF photometry of the field (photutils' notebook recipe)") as stage:
        report = _photometry(outdir, image, grid, truth)
        for line in report:
            stage.report(line)

    with _Stage("segmentation, PSF stamps of the brightest isolated stars, stacked into an extended PSF "
                "(Gnuastro's recipe)") as stage:
        for line in _extended_psf(outdir, image, grid, truth, wcs):
            stage.report(line)

    with _Stage("FITS and PNG cutouts of the 5 brightest stars (sky positions)") as stage:
        written, pngs, worst = _image_cutouts(outdir, field, truth)
        stage.report(f"{len(written)} FITS cutouts and {len(pngs)} PNGs in {os.path.dirname(written[0])}")
        stage.report(f"star centroids in the cutouts vs the true positions through the cutout WCS: "
                     f"worst offset {worst:.3f} px")

    from astropy.coordinates import SkyCoord

    from .cutout import build_cube, cube_cut
    from .simulate import make_tess_ffis

    with _Stage("simulate 24 TESS-like full-frame images (300x320, TAN-SIP) with a variable star") as stage:
        period = 8.0
        amplitude = 4e4
        vx, vy = 150.4, 140.6
        ffi_dir = os.path.join(outdir, "ffis")
        files, ffi_truth = make_tess_ffis(ffi_dir, 24, shape=(300, 320), n_stars=80, seed=11,
                                          variable_star=(vx, vy, amplitude, period))
        stage.report(f"{len(files)} FFIs in {ffi_dir}, e.g. {os.path.basename(files[0])}")

    with _Stage("build a cube (astrocut's layout)") as stage:
        cube = os.path.join(outdir, "s0014-1-1-cube.fits")
        build_cube(files, cube, sector=14)
        from astropy.io import fits

        with fits.open(cube) as hdul:
            shape = hdul[1].shape
            first = fits.getdata(files[0], 1)
            same = np.array_equal(hdul[1].section[:, :, 0, 0], first)
        stage.report(f"{cube}: data shape {shape} (ny, nx, frames, flux/err); frame 0 identical to FFI 0: {same}")

    with _Stage("cut a 9x9 target pixel file around the variable star and read its light curve") as stage:
        from .io import celestial_wcs

        ffi_wcs = celestial_wcs(fits.getheader(files[0], 1))
        target = ffi_wcs.pixel_to_world(vx, vy)
        tpf = cube_cut(cube, SkyCoord(target.ra, target.dec), 9, output_dir=outdir)
        with fits.open(tpf) as hdul:
            flux = hdul["PIXELS"].data["FLUX"]
            msep, sig = hdul["APERTURE"].header["WCS_MSEP"], hdul["APERTURE"].header["WCS_SIG"]
        light = np.nansum(flux, axis=(1, 2))
        light = light - np.median(light)
        phase = np.arange(len(files))
        expected = amplitude * 0.5 * np.sin(2 * np.pi * phase / period)
        expected = expected - np.median(expected)
        corr = np.corrcoef(light, expected)[0, 1]
        amp = (light.max() - light.min()) / (expected.max() - expected.min())
        stage.report(f"{tpf}")
        stage.report(f"light curve vs injected variation: correlation {corr:.4f}, amplitude ratio {amp:.3f} "
                     "(truth: 1, less the flux outside 9x9)")
        stage.report(f"linear-WCS fit: WCS_MSEP={msep:.2e} deg, WCS_SIG={sig:.2e} deg")

    print(f"demo finished in {time.perf_counter() - total:.1f} s; outputs in {outdir}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
