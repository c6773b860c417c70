"""Agreement of starpix.stamp.psf_stamp with Gnuastro 0.19's astscript-psf-stamp (img mode).

The cases avoid the Gnuastro bugs that starpix fixes: non-integer centres, odd
widths, rmax well inside the stamp, no exact zeros.  Gnuastro's command line
is 1-based: API centre (x, y) is Gnuastro's (x + 1, y + 1).
"""

import os
import shutil
import subprocess

import numpy as np
import pytest
from scipy import ndimage

from starpix.stamp import psf_stamp

pytestmark = pytest.mark.skipif(shutil.which("astscript-psf-stamp") is None,
                                reason="Gnuastro's astscript-psf-stamp is not installed")

SHAPE = (201, 201)
STARS = [(100.3, 95.6, 6e4), (121.0, 101.0, 8e3), (90.0, 80.0, 1.5e4), (108.6, 97.2, 5e3),
         (8.4, 150.7, 3e4), (150.2, 60.3, 2e4)]


def _simulate():
    rng = np.random.default_rng(5)
    ny, nx = SHAPE
    y, x = np.mgrid[:ny, :nx]
    sigma = 3.0 / 2.3548
    model = np.zeros(SHAPE)
    for sx, sy, flux in STARS:
        r2 = (x - sx) ** 2 + (y - sy) ** 2
        core = np.exp(-r2 / (2 * sigma ** 2))
        halo = 0.003 * (1 + r2 / (4 * sigma ** 2)) ** -1.5
        model += flux / (2 * np.pi * sigma ** 2) * (core + halo)
    image = (model + 5.0 + rng.normal(0, 1.0, SHAPE)).astype(np.float32)
    # objects: connected regions of the model above 2 sigma; clumps numbered per object, -1 diffuse
    objects, nobj = ndimage.label(model > 2.0)
    cores, _ = ndimage.label(model > 60.0)
    clumps = np.where(objects > 0, -1, 0).astype(np.int32)
    for obj in range(1, nobj + 1):
        ids = np.unique(cores[(objects == obj) & (cores > 0)])
        for number, core_id in enumerate(ids, start=1):
            clumps[cores == core_id] = number
    sky_std = np.full(SHAPE, 1.0, dtype=np.float32)
    return image, objects.astype(np.int32), clumps, sky_std


def _wcs_header():
    from astropy.wcs import WCS

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [101.0, 101.0]
    wcs.wcs.cdelt = [-1e-4, 1e-4]
    return wcs


# name -> (API centre (x, y), keyword arguments, Gnuastro options)
CASES = {
    "median": ((100.3, 95.6), dict(width=61, normradii=(5, 15)), ["-W61,61", "-n5,15"]),
    "nocenter": ((100.3, 95.6), dict(width=61, normradii=(5, 15), centering=False),
                 ["-W61,61", "-n5,15", "-d"]),
    "segment_mean": ((100.3, 95.6), dict(width=61, normradii=(4, 12), normop="mean", segment=True),
                     ["-W61,61", "-n4,12", "-Nmean", "-SSEG"]),
    "snthresh_sigclip": ((100.3, 95.6), dict(width=61, normradii=(3, 9), normop="sigclip-mean",
                                             segment=True, snthresh=8.0),
                         ["-W61,61", "-n3,9", "-Nsigclip-mean", "-SSEG", "--snthresh=8"]),
    "ellipse": ((150.2, 60.3), dict(width=51, normradii=(4, 14), axis_ratio=0.6, position_angle=30.0,
                                    sigmaclip=(2.5, 0.1), normop="sigclip-median"),
                ["-W51,51", "-n4,14", "-Q0.6", "-p30", "-s2.5,0.1", "-Nsigclip-median"]),
    "edge": ((8.4, 150.7), dict(width=41, normradii=(3, 10), segment=True), ["-W41,41", "-n3,10", "-SSEG"]),
    "off_image": ((-5.3, 150.7), dict(width=41, normradii=(3, 10)), ["-W41,41", "-n3,10"]),
}


@pytest.fixture(scope="module")
def gnuastro_runs(tmp_path_factory):
    """Run astscript-psf-stamp once per case; returns (inputs, {name: (data, header)})."""
    from astropy.io import fits

    directory = tmp_path_factory.mktemp("gnuastro_stamp")
    image, objects, clumps, sky_std = _simulate()
    wcs = _wcs_header()
    image_path = os.path.join(directory, "image.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(image, header=wcs.to_header())]).writeto(image_path)
    seg_path = os.path.join(directory, "seg.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(image - 5.0, name="INPUT-NO-SKY"),
                  fits.ImageHDU(clumps, name="CLUMPS"), fits.ImageHDU(objects, name="OBJECTS"),
                  fits.ImageHDU(sky_std, name="SKY_STD")]).writeto(seg_path)
    results = {}
    for name, (center, _, options) in CASES.items():
        out = os.path.join(directory, f"{name}.fits")
        argv = ["astscript-psf-stamp", image_path, "-h1", "--mode=img",
                f"--center={center[0] + 1:.4f},{center[1] + 1:.4f}",
                f"--tmpdir={os.path.join(directory, 'tmp_' + name)}", f"--output={out}", "--quiet"]
        argv += [opt.replace("SEG", seg_path) for opt in options]
        run = subprocess.run(argv, cwd=directory, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stdout + run.stderr
        with fits.open(out) as hdul:
            results[name] = (np.array(hdul[1].data, dtype=np.float64), hdul[1].header.copy())
    segment = {"objects": objects, "clumps": clumps, "sky_std": sky_std}
    return (image - 5.0, image, segment, wcs), results


@pytest.mark.parametrize("name", list(CASES))
def test_agrees_with_gnuastro(gnuastro_runs, name):
    (image_nosky, image, segment, wcs), results = gnuastro_runs
    center, kwargs, _ = CASES[name]
    kwargs = dict(kwargs)
    if kwargs.pop("segment", False):
        kwargs["segment"] = segment
    stamp, header = psf_stamp(image, center, wcs=wcs, **kwargs)
    expected, gheader = results[name]
    assert stamp.shape == expected.shape
    assert stamp.dtype == np.float32
    # normalization value within 1e-4 relative
    assert header["NORMVAL"] == pytest.approx(float(gheader["NORMVAL"]), rel=1e-4)
    # the same NaN pattern, pixels within 1e-3 of the peak
    np.testing.assert_array_equal(np.isnan(stamp), np.isnan(expected))
    peak = np.nanmax(np.abs(expected))
    finite = np.isfinite(expected)
    assert np.max(np.abs(stamp[finite] - expected[finite])) < 1e-3 * peak
    # labels
    if "segment" in kwargs:
        assert header["CLABEL"] == gheader["CLABEL"]
        assert header["OLABEL"] == gheader["OLABEL"]
    else:
        assert "CLABEL" not in gheader
        assert header["CLABEL"] == "none" and header["OLABEL"] == "none"
    # both stamps' WCS put the same sky position on the central pixel
    from astropy.wcs import WCS

    ny, nx = stamp.shape
    mine = WCS(header).all_pix2world([[(nx - 1) / 2, (ny - 1) / 2]], 0)[0]
    theirs = WCS(gheader).all_pix2world([[(nx - 1) / 2, (ny - 1) / 2]], 0)[0]
    np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-4 * 1e-3)  # 1e-3 pixel


def test_cases_exercise_masks(gnuastro_runs):
    """The segment and S/N cases do mask pixels (so the agreement above means something)."""
    _, results = gnuastro_runs
    base = np.isnan(results["median"][0]).sum()
    assert np.isnan(results["segment_mean"][0]).sum() > base + 50
    assert np.isnan(results["snthresh_sigclip"][0]).sum() > np.isnan(results["segment_mean"][0]).sum() + 100
    assert int(results["segment_mean"][1]["CLABEL"]) == 1
