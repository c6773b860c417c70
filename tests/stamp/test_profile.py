"""starpix.stamp.radial_profile against astscript-radial-profile and analytic truth."""

import math
import shutil
import subprocess

import numpy as np
import pytest

from starpix.errors import InvalidParameterError
from starpix.stamp import RADIAL_MEASURES, radial_profile


def _lattice_count(rmax, q, pa_deg, xc, yc, size):
    """Pixel centres with elliptical radius < rmax, counted column by column from the ellipse's chord."""
    t = math.radians(pa_deg)
    c, s = math.cos(t), math.sin(t)
    # r^2 = (dx c + dy s)^2 + (-dx s + dy c)^2 / q^2 = A dy^2 + B dy + C, a quadratic in dy per column
    count = 0
    for x in range(size):
        dx = x - xc
        a = s * s + c * c / q ** 2
        b = 2 * dx * c * s - 2 * dx * s * c / q ** 2
        cc = dx * dx * c * c + dx * dx * s * s / q ** 2 - rmax * rmax
        disc = b * b - 4 * a * cc
        if disc <= 0:
            continue
        lo, hi = (-b - math.sqrt(disc)) / (2 * a) + yc, (-b + math.sqrt(disc)) / (2 * a) + yc
        # integer y with lo < y < hi (strict: r < rmax)
        count += max(0, math.ceil(hi) - 1 - math.floor(lo))
    return count


@pytest.mark.parametrize("q, pa", [(1.0, 0.0), (0.55, 35.0)])
def test_constant_image_analytic(q, pa):
    size = 61
    image = np.full((size, size), 7.25)
    xc, yc = 30.3, 29.8
    table = radial_profile(image, (xc, yc), 12, axis_ratio=q, position_angle=pa,
                           measures=("mean", "median", "sigclip-mean", "std", "sum", "area", "minimum",
                                     "maximum", "sigclip-number"))
    assert list(table.colnames) == ["RADIUS", "MEAN", "MEDIAN", "SIGCLIP-MEAN", "STD", "SUM", "AREA",
                                    "MINIMUM", "MAXIMUM", "SIGCLIP-NUMBER"]
    np.testing.assert_array_equal(table["RADIUS"].value, np.arange(12))
    for name in ("MEAN", "MEDIAN", "SIGCLIP-MEAN", "MINIMUM", "MAXIMUM"):
        np.testing.assert_allclose(table[name], 7.25, rtol=1e-12)
    np.testing.assert_allclose(table["STD"], 0.0, atol=1e-12)
    areas = [_lattice_count(k + 1, q, pa, xc, yc, size) - _lattice_count(k, q, pa, xc, yc, size)
             for k in range(12)]
    np.testing.assert_array_equal(table["AREA"], areas)
    np.testing.assert_array_equal(table["SIGCLIP-NUMBER"], areas)
    np.testing.assert_allclose(table["SUM"], 7.25 * np.array(areas), rtol=1e-12)


def test_nan_pixels_left_out_and_empty_ring():
    image = np.arange(25.0).reshape(5, 5)
    image[2, 2] = np.nan
    table = radial_profile(image, (2, 2), 2, measures=("mean", "area", "median"))
    assert math.isnan(table["MEAN"][0]) and table["AREA"][0] == 0
    assert table["MEAN"][1] == pytest.approx(np.mean([7, 11, 13, 17, 6, 8, 16, 18]))
    assert table["MEDIAN"][1] == pytest.approx(12.0)


@pytest.mark.skipif(shutil.which("astscript-radial-profile") is None,
                    reason="Gnuastro's astscript-radial-profile is not installed")
def test_agrees_with_astscript_radial_profile(tmp_path):
    from astropy.io import fits

    rng = np.random.default_rng(4)
    ny, nx = 61, 61
    y, x = np.mgrid[:ny, :nx]
    xc, yc = 30.3, 29.6
    image = (200 * np.exp(-((x - xc) ** 2 + (y - yc) ** 2) / 20) + 10 + rng.normal(0, 1, (ny, nx)))
    image = image.astype(np.float32)
    image[26, 33] = np.nan
    path = tmp_path / "img.fits"
    fits.writeto(path, image)
    out = tmp_path / "prof.fits"
    argv = ["astscript-radial-profile", str(path), "-h0", f"--center={xc + 1},{yc + 1}", "--rmax=14",
            "--axisratio=0.7", "--positionangle=20", "--measure=mean,median,sigclip-mean,area,std",
            f"--tmpdir={tmp_path / 'tmp'}", f"--output={out}", "--quiet"]
    run = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    with fits.open(out) as hdul:
        expected = hdul[1].data
        names = [c.name for c in hdul[1].columns]
    table = radial_profile(image, (xc, yc), 14, axis_ratio=0.7, position_angle=20,
                           measures=("mean", "median", "sigclip-mean", "area", "std"))
    assert list(table.colnames) == names
    np.testing.assert_array_equal(table["RADIUS"].value, expected["RADIUS"])
    np.testing.assert_array_equal(table["AREA"], expected["AREA"])
    for name in ("MEAN", "MEDIAN", "SIGCLIP-MEAN"):
        np.testing.assert_allclose(table[name], expected[name], rtol=2e-6, atol=1e-5, err_msg=name)
    # Gnuastro's one-pass std of float32 values loses digits where the mean is large (~6e-5 here)
    np.testing.assert_allclose(table["STD"], expected["STD"], rtol=2e-4)


def test_measures_listed():
    assert set(RADIAL_MEASURES) == {"mean", "median", "sigclip-mean", "sigclip-median", "sigclip-std",
                                    "sigclip-number", "std", "sum", "maximum", "minimum", "area"}


def test_bad_input():
    image = np.ones((10, 10))
    with pytest.raises(InvalidParameterError, match="center"):
        radial_profile(image, (1, 2, 3), 3)
    with pytest.raises(InvalidParameterError, match="rmax"):
        radial_profile(image, (5, 5), 0)
    with pytest.raises(InvalidParameterError, match="measures"):
        radial_profile(image, (5, 5), 3, measures=("mode",))
    with pytest.raises(InvalidParameterError, match="axis_ratio"):
        radial_profile(image, (5, 5), 3, axis_ratio=-1)
