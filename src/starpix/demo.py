"""End-to-end demo on simulated data: ``python -m starpix.demo --outdir DIR``.

The demo simulates its data (a JWST-like star field from a gridded PSF, TESS-like
full-frame images, dithered exposures with cosmic rays), writes two pipeline
configurations and runs them with :func:`starpix.pipeline.run_pipeline` -- the
same as ``starpix pipeline CONFIG.toml``.  Each stage prints what it made, how
long it took, and how well the result matches the truth the data were
simulated from.
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


def _link(source, target):
    """Put a product at the top of the demo's directory (a hard link, else a copy)."""
    if os.path.exists(target):
        os.remove(target)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


FIELD_CONFIG = """\
# The JWST-like field: find stars, PSF photometry, stamps and an extended PSF, cutouts;
# and a cube of TESS-like full-frame images with a target pixel file.
[pipeline]
output_dir = "field-pipeline"

[inputs]
image = "field.fits[SCI]"
psf = "psf-grid.fits"
truth = "field-truth.ecsv"
targets = "targets.ecsv"
ffis = "ffis/*.fits"

[find]
box_size = 64
nsigma = 10
fwhm = 3.0

[photometry]
fit_shape = [5, 5]
aperture_radius = 5

[stamps]
n_stars = 25
width = 51
normradii = [3, 8]
isolation = 20
operator = "sigclip-mean"
sigmaclip = [3, 0.2]

[cutouts]
size = 25
png_size = 64

[cube]
sector = 14
output = "s0014-1-1-cube.fits"
size = 9
targets = "variable.ecsv"
"""

DITHERED_CONFIG = """\
# Dithered exposures with cosmic rays: calibrate and mask (L.A.Cosmic), drizzle with
# cosmic-ray rejection, find stars and measure them on the combined image.
[pipeline]
output_dir = "dithered-pipeline"

[inputs]
exposures = "dithered/*_flt.fits"
truth = "dithered-truth.ecsv"

[calibrate]
mask_cosmics = true
sigclip = 5.0
objlim = 5.0

[drizzle]
final_pixfrac = 1.0
combine_type = "minmed"
driz_cr_snr = "3.5 3.0"

[find]
fwhm = 2.5
nsigma = 8
box_size = 64

[photometry]
fwhm = 2.7
fit_shape = [7, 7]

[stamps]
n_stars = 15
width = 21
normradii = [3, 6]
isolation = 12
"""


def _check_extended_psf(outdir, grid, truth):
    """The stacked PSF of the pipeline's stamps against the simulated PSF at the chosen stars' true positions."""
    from astropy.io import fits
    from astropy.table import QTable
    from scipy.spatial import cKDTree

    from .interp import shift_image
    from .stamp import radial_profile

    stamps_dir = os.path.join(outdir, "stamps")
    chosen_fit = QTable.read(os.path.join(stamps_dir, "stamp-stars.ecsv"))
    stacked = fits.getdata(os.path.join(stamps_dir, "extended-psf.fits"), "PSF").astype(float)
    half = stacked.shape[0] // 2
    tx_all, ty_all = np.asarray(truth["x_0"], float), np.asarray(truth["y_0"], float)
    _, index = cKDTree(np.column_stack([tx_all, ty_all])).query(
        np.column_stack([np.asarray(chosen_fit["x"], float), np.asarray(chosen_fit["y"], float)]))
    x, y = tx_all[index], ty_all[index]

    # the truth: the simulated PSF of each chosen star on its stamp's grid, normalized within r < 10 px and
    # averaged; once exactly centred, and once at the star's true sub-pixel offset moved by the stamps' own
    # flux-conserving shift (which widens an undersampled PSF a little)
    offsets = np.arange(2 * half + 1) - half
    tx, ty = np.floor(x + 0.5), np.floor(y + 0.5)
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
    core = np.hypot(xx, yy) < 10
    exact = grid.evaluate(x[:, None, None] + offsets[None, None, :], y[:, None, None] + offsets[None, :, None],
                          x[:, None, None], y[:, None, None], 1.0)
    at_pixels = grid.evaluate(tx[:, None, None] + offsets[None, None, :], ty[:, None, None] + offsets[None, :, None],
                              x[:, None, None], y[:, None, None], 1.0)
    shifted = np.stack([shift_image(m, cx - sx, cy - sy) for m, cx, cy, sx, sy in zip(at_pixels, tx, ty, x, y)])

    def mean_normalized(stack):
        return np.nanmean(stack / np.nansum(stack[:, core], axis=1)[:, None, None], axis=0)

    measured = stacked / np.nansum(stacked[core])
    lines = [f"{len(x)} stamps stacked; their stars are true stars (nearest within "
             f"{np.max(np.hypot(x - chosen_fit['x'], y - chosen_fit['y'])):.3f} px)"]
    for label, truth_psf in (("exactly centred", mean_normalized(exact)),
                             ("through the same sub-pixel shift", mean_normalized(shifted))):
        difference = np.nanmax(np.abs(measured - truth_psf)[core]) / np.nanmax(truth_psf)
        profile = radial_profile(measured, (half, half), 6, measures=("mean",))["MEAN"]
        truth_profile = radial_profile(truth_psf, (half, half), 6, measures=("mean",))["MEAN"]
        ratio = np.asarray(profile) / np.asarray(truth_profile)
        lines.append(f"vs the simulated PSF {label}: largest difference within r < 10 px {difference:.1e} of the "
                     f"peak; radial profile ratio at r = 0..5: " + ", ".join(f"{v:.3f}" for v in ratio))
    return lines


def _check_cutouts(cut_dir, truth):
    """Star centroids in the pipeline's FITS cutouts against the true positions through each cutout's WCS."""
    from astropy.io import fits
    from astropy.wcs import WCS

    files = sorted(os.path.join(cut_dir, f) for f in os.listdir(cut_dir) if f.endswith(".fits"))
    ra, dec = np.asarray(truth["ra"], float), np.asarray(truth["dec"], float)
    offsets = []
    for path in files:
        with fits.open(path) as hdul:
            data, header = hdul[1].data.astype(float), hdul[1].header
        wcs = WCS(header)
        ny, nx = data.shape
        # the true star nearest the cutout's centre, where the truth says it is in the cutout's own WCS
        x_all, y_all = wcs.world_to_pixel_values(ra, dec)
        k = int(np.argmin(np.hypot(x_all - (nx - 1) / 2, y_all - (ny - 1) / 2)))
        x_true, y_true = x_all[k], y_all[k]
        # centroid in a 9x9 box around the cutout's central pixel
        cy, cx = ny // 2, nx // 2
        box = data[cy - 4:cy + 5, cx - 4:cx + 5] - np.median(data)
        yy, xx = np.mgrid[cy - 4:cy + 5, cx - 4:cx + 5]
        x_c, y_c = (box * xx).sum() / box.sum(), (box * yy).sum() / box.sum()
        offsets.append(np.hypot(x_c - x_true, y_c - y_true))
    pngs = [f for f in os.listdir(cut_dir) if f.endswith(".png")]
    return files, pngs, max(offsets)


def _check_cube(cube_dir, files, amplitude, period):
    from astropy.io import fits

    cube = os.path.join(cube_dir, "s0014-1-1-cube.fits")
    with fits.open(cube) as hdul:
        shape = hdul[1].shape
        first = fits.getdata(files[0], 1)
        same = np.array_equal(hdul[1].section[:, :, 0, 0], first)
    tpf = next(os.path.join(cube_dir, f) for f in sorted(os.listdir(cube_dir))
               if f.endswith(".fits") and f != os.path.basename(cube))
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
    return [f"{cube}: data shape {shape} (ny, nx, frames, flux/err); frame 0 identical to FFI 0: {same}",
            f"{tpf}",
            f"light curve vs injected variation: correlation {corr:.4f}, amplitude ratio {amp:.3f} "
            "(truth: 1, less the flux outside 9x9)",
            f"linear-WCS fit: WCS_MSEP={msep:.2e} deg, WCS_SIG={sig:.2e} deg"]


def _check_dithered(outdir, truth):
    """Cosmic-ray masks (L.A.Cosmic in calibrate, driz_cr in drizzle) and the sky against what was injected."""
    from astropy.io import fits

    injected = [np.concatenate(chips, axis=0) for chips in truth["cr_masks"]]
    electrons = [np.concatenate(chips, axis=0) for chips in truth["cr_electrons"]]
    bad = [np.concatenate(chips, axis=0) for chips in truth["bad"]]
    lacosmic, drizcr = [], []
    with fits.open(os.path.join(outdir, "drizzle", "crmasks.fits")) as crs:
        planes = [np.asarray(h.data, bool) for h in crs[1:]]
    n_chips = len(truth["cr_masks"][0])
    for k in range(len(injected)):
        path = os.path.join(outdir, "calibrate", f"exp{k + 1}_flt.fits")
        with fits.open(path) as hdul:
            dq = np.concatenate([np.asarray(hdul["DQ", c + 1].data) for c in range(n_chips)], axis=0)
        lacosmic.append((dq & 1024) != 0)
        drizcr.append(np.concatenate(planes[k * n_chips:(k + 1) * n_chips], axis=0))
    strong = [inj & (e > 5 * truth["rdnoise"] * 3) & ~b for inj, e, b in zip(injected, electrons, bad)]
    n_strong = sum(s.sum() for s in strong)

    def recall(masks):
        return sum((m & s).sum() for m, s in zip(masks, strong)) / max(n_strong, 1)

    def false(masks):
        return sum((m & ~inj & ~b).sum() for m, inj, b in zip(masks, injected, bad))

    both = [a | b for a, b in zip(lacosmic, drizcr)]
    pixels = sum(m.size for m in injected)
    return [f"{n_strong} injected cosmic-ray pixels above 15 sigma of the read noise in {len(injected)} exposures",
            f"found by L.A.Cosmic (calibrate): {100 * recall(lacosmic):.1f}%, by driz_cr (drizzle): "
            f"{100 * recall(drizcr):.1f}%, by either: {100 * recall(both):.2f}%",
            f"pixels flagged without an injected hit: L.A.Cosmic {false(lacosmic)}, driz_cr {false(drizcr)} "
            f"(of {pixels}; mostly the wings of stars and galaxies)"]


#: File that marks a directory as the demo's output (the next run may replace it).
_MARKER = ".starpix-demo"


def main(argv=None):
    """Run the demo; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m starpix.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outdir", default="demo-output", help="directory for everything the demo makes")
    args = parser.parse_args(argv)
    outdir = args.outdir
    if os.path.exists(outdir):
        # replace only what an earlier demo made, never a directory of someone's own files
        if not os.path.isdir(outdir) or (os.listdir(outdir) and not os.path.exists(os.path.join(outdir, _MARKER))
                                         and not os.path.exists(os.path.join(outdir, "field.toml"))):
            print(f"python -m starpix.demo: error: --outdir {outdir}: exists and is not an earlier demo's output; "
                  "give a new directory", file=sys.stderr)
            return 1
        shutil.rmtree(outdir)
    os.makedirs(outdir)
    with open(os.path.join(outdir, _MARKER), "w") as handle:
        handle.write("made by python -m starpix.demo; the next demo run replaces this directory\n")
    total = time.perf_counter()

    import matplotlib

    matplotlib.use("Agg")
    from astropy.table import QTable

    from .pipeline import run_pipeline

    with _Stage("simulate a JWST-like 1024x1024 star field from a gridded PSF (4x4 nodes, oversampling 4)") as stage:
        field, grid_path, grid, image, wcs, truth = _star_field(outdir)
        stage.report(f"{grid_path}: {len(grid.positions)} PSFs of 101 pixels (STPSF format; photutils reads it)")
        stage.report(f"{field}: {len(truth)} stars, fluxes {truth['flux'].min():.0f}-{truth['flux'].max():.0f}")
        flux_ratio = (image.sum() - 10.0 * image.size) / truth["flux"].sum()
        stage.report(f"flux in the image / flux simulated = {flux_ratio:.5f} (truth: 1, less the stars' wings "
                     "beyond the image edges)")
        grid.plot_grid(deltas=True).savefig(os.path.join(outdir, "psf-grid-deltas.png"), dpi=100)
        stage.report(f"{os.path.join(outdir, 'psf-grid-deltas.png')}: each PSF minus the mean PSF")
        bright = truth[np.argsort(truth["flux"])[::-1][:5]]
        QTable({"ra": bright["ra"], "dec": bright["dec"]}).write(os.path.join(outdir, "targets.ecsv"))
        stage.report(f"{os.path.join(outdir, 'targets.ecsv')}: the 5 brightest stars, targets of the cutouts")

    from .simulate import make_dithered_exposures, make_tess_ffis

    with _Stage("simulate 24 TESS-like full-frame images (300x320, TAN-SIP) with a variable star") as stage:
        period = 8.0
        amplitude = 4e4
        vx, vy = 150.4, 140.6
        ffi_dir = os.path.join(outdir, "ffis")
        files, ffi_truth = make_tess_ffis(ffi_dir, 24, shape=(300, 320), n_stars=80, seed=11,
                                          variable_star=(vx, vy, amplitude, period))
        from astropy.io import fits

        from .io import celestial_wcs

        target = celestial_wcs(fits.getheader(files[0], 1)).pixel_to_world(vx, vy)
        QTable({"ra": [target.ra.deg], "dec": [target.dec.deg]}).write(os.path.join(outdir, "variable.ecsv"))
        stage.report(f"{len(files)} FFIs in {ffi_dir}, e.g. {os.path.basename(files[0])}; the variable star in "
                     f"{os.path.join(outdir, 'variable.ecsv')}")

    with _Stage("simulate 4 dithered HST-like exposures (2 chips of 256x512) with cosmic rays, a bad column per "
                "chip, different skies and exposure times") as stage:
        os.makedirs(os.path.join(outdir, "dithered"))
        dithered, dtruth = make_dithered_exposures(os.path.join(outdir, "dithered"), 4, shape=(512, 512),
                                                   n_chips=2, n_stars=60, n_galaxies=10, n_cosmics=(600, 100),
                                                   seed=5)
        stars = dtruth["stars"]
        stars.write(os.path.join(outdir, "dithered-truth.ecsv"))
        n_cr = sum(int(m.sum()) for chips in dtruth["cr_masks"] for m in chips)
        stage.report(f"{len(dithered)} exposures in {os.path.dirname(dithered[0])}: {len(stars)} stars, "
                     f"{len(dtruth['galaxies'])} galaxies, {n_cr} cosmic-ray pixels")

    with _Stage("write the pipeline configurations") as stage:
        configs = []
        for name, text in (("field.toml", FIELD_CONFIG), ("dithered.toml", DITHERED_CONFIG)):
            path = os.path.join(outdir, name)
            with open(path, "w") as handle:
                handle.write(text)
            configs.append(path)
            stage.report(f"{path} (run it again with: starpix pipeline {path})")

    print(f"== starpix pipeline {configs[0]}")
    field_run = run_pipeline(configs[0], echo=lambda line: print(f"   {line}"))
    field_out = field_run.output_dir

    with _Stage("the field's results against the truth") as stage:
        for line in _check_extended_psf(field_out, grid, truth):
            stage.report(line)
        written, pngs, worst = _check_cutouts(os.path.join(field_out, "cutouts"), truth)
        stage.report(f"{len(written)} FITS cutouts and {len(pngs)} PNGs in {os.path.dirname(written[0])}")
        stage.report(f"star centroids in the cutouts vs the true positions through the cutout WCS: "
                     f"worst offset {worst:.3f} px")
        for line in _check_cube(os.path.join(field_out, "cube"), files, amplitude, period):
            stage.report(line)

    print(f"== starpix pipeline {configs[1]}")
    dithered_run = run_pipeline(configs[1], echo=lambda line: print(f"   {line}"))

    with _Stage("the dithered exposures' masks against the injected cosmic rays") as stage:
        for line in _check_dithered(dithered_run.output_dir, dtruth):
            stage.report(line)

    with _Stage("the main products, linked at the top of the demo directory") as stage:
        for source, name in ((os.path.join(field_out, "stamps", "extended-psf.fits"), "extended-psf.fits"),
                             (os.path.join(field_out, "cube", "s0014-1-1-cube.fits"), "s0014-1-1-cube.fits"),
                             (os.path.join(field_out, "photometry", "photometry.ecsv"), "photometry.ecsv"),
                             (os.path.join(dithered_run.output_dir, "drizzle", "final_drz.fits"),
                              "dithered_drz.fits")):
            _link(source, os.path.join(outdir, name))
            stage.report(f"{os.path.join(outdir, name)} <- {source}")
        stage.report(f"reports: {field_run.report}, {dithered_run.report}")

    print(f"demo finished in {time.perf_counter() - total:.1f} s; outputs in {outdir}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
