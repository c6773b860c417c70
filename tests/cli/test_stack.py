"""``starpix stack``: outputs, options and bad input."""

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from conftest import assert_cli_errors, assert_no_stray_files
from starpix.simulate import make_wcs

N = 40


@pytest.fixture
def exposures(tmp_path):
    rng = np.random.default_rng(5)
    paths = []
    for k in range(3):
        wcs = make_wcs((N, N), center=(150.0 + 0.002 * k, 2.0), pixel_scale_arcsec=1.0)
        path = tmp_path / f"exp{k}.fits"
        fits.PrimaryHDU((rng.normal(size=(N, N)) + 10).astype(np.float32), header=wcs.to_header()).writeto(path)
        paths.append(str(path))
    return paths


def test_stack_writes_image_wcs_and_weight(cli, exposures, tmp_path):
    out = tmp_path / "stack.fits"
    status, stdout, err = cli("stack", *exposures, "--method", "median", "-o", out)
    assert status == 0, err
    assert "3 images" in stdout
    with fits.open(out) as hdul:
        image, header = hdul[0].data, hdul[0].header
        weight = hdul["WEIGHT"].data
        assert header["COMBINET"] == "median" and header["NCOMBINE"] == 3
        wcs = WCS(header)
        assert wcs.has_celestial
        assert image.shape == weight.shape
        assert weight.max() == 3 and weight.min() >= 0
        assert abs(np.nanmedian(image) - 10) < 0.2
    status, _, err = cli("stack", *exposures, "-o", out)
    assert status == 1 and "already exists" in err
    assert cli("stack", *exposures, "-o", out, "--overwrite", "-q")[0] == 0
    assert_no_stray_files(tmp_path, [p.split("/")[-1] for p in exposures] + ["stack.fits"])


def test_stack_reference_grid(cli, exposures, tmp_path):
    out = tmp_path / "ref-stack.fits"
    status, _, err = cli("stack", *exposures, "--reference", exposures[1], "--reproject", "exact",
                         "--background-match", "-o", out, "-q")
    assert status == 0, err
    with fits.open(out) as hdul:
        assert hdul[0].data.shape == (N, N)
        assert hdul[0].header["CRVAL1"] == pytest.approx(150.002)
        assert hdul[0].header["RPMETHOD"] == "exact"


def test_stack_bad_input(cli, exposures, tmp_path):
    plain = tmp_path / "plain.fits"
    fits.PrimaryHDU(np.zeros((N, N), np.float32)).writeto(plain)
    out = str(tmp_path / "bad.fits")
    assert_cli_errors(cli, [
        (["stack", "-o", out], "no input images"),
        (["stack", *exposures, str(plain), "-o", out], "plain.fits"),
        (["stack", *exposures, "--method", "max", "-o", out], "--method"),
        (["stack", *exposures, "--reproject", "lanczos", "-o", out], "--reproject"),
        (["stack", *exposures, "--order", "quintic", "-o", out], "--order"),
        (["stack", *exposures, "--reference", str(plain), "-o", out], "plain.fits"),
        (["stack", *exposures, "--weights", "1,2", "-o", out], "--weights"),
        (["stack", *exposures, "--weights", "1,,2", "-o", out], "--weights"),
        (["stack", *exposures, "--reproject", "exact", "--order", "bicubic", "-o", out], "--order"),
        (["stack", str(tmp_path / "missing.fits"), "-o", out], "missing.fits"),
        (["stack", *exposures, "--tile-size", "0", "-o", out], "--tile-size"),
        (["stack", *exposures, "--jobs", "-2", "-o", out], "--jobs"),
        (["stack", *exposures, "--jobs", "2", "--scheduler", "tcp://127.0.0.1:1", "-o", out], "--jobs"),
    ], tmp_path)


def test_stack_by_tiles_on_processes_equals_serial(cli, exposures, tmp_path):
    serial, tiled = tmp_path / "serial.fits", tmp_path / "tiled.fits"
    options = ["--method", "sigclip-mean", "--reproject", "exact", "--background-match", "-q"]
    assert cli("stack", *exposures, *options, "-o", serial)[0] == 0
    status, _, err = cli("stack", *exposures, *options, "--jobs", "2", "--tile-size", "7", "-o", tiled)
    assert status == 0, err
    with fits.open(serial) as one, fits.open(tiled) as two:
        for a, b in zip(one, two):
            assert np.array_equal(a.data, b.data, equal_nan=True)
        assert np.isfinite(one[0].data).sum() > N * N
    status, _, err = cli("stack", *exposures, *options, "--tile-size", "16", "-o", tiled, "--overwrite")
    assert status == 0, err
    assert np.array_equal(fits.getdata(serial), fits.getdata(tiled), equal_nan=True)
