"""``starpix mask``: the written mask against make_mask's truths, and bad input."""

import numpy as np
from astropy.io import fits

from conftest import assert_cli_errors, assert_no_stray_files


def _image(tmp_path):
    image = np.full((40, 50), 10.0)
    image[3, 4] = np.nan
    image[30, 30] = 60000.0
    header = fits.Header({"DATASEC": "[2:49,1:40]", "SATURATE": 50000.0})
    fits.PrimaryHDU(image, header=header).writeto(tmp_path / "image.fits")
    external = np.zeros((40, 50), np.int16)
    external[10, 10] = 1
    fits.PrimaryHDU(external).writeto(tmp_path / "bad.fits")
    return image


def test_mask(cli, tmp_path):
    _image(tmp_path)
    status, out, err = cli("mask", tmp_path / "image.fits", "--external", tmp_path / "bad.fits",
                           "-o", tmp_path / "mask.fits")
    assert status == 0, err
    mask = fits.getdata(tmp_path / "mask.fits")
    expected = np.zeros((40, 50), np.uint8)
    expected[:, 0] = expected[:, 49] = 1
    expected[3, 4] = expected[30, 30] = expected[10, 10] = 1
    np.testing.assert_array_equal(mask, expected)
    assert fits.getheader(tmp_path / "mask.fits")["STARPIX"]
    status, out, err = cli("mask", tmp_path / "image.fits", "--saturation", "20", "-o", tmp_path / "m2.fits")
    assert status == 0, err
    assert fits.getdata(tmp_path / "m2.fits")[30, 30] == 1
    assert_no_stray_files(tmp_path, {"image.fits", "bad.fits", "mask.fits", "m2.fits"})


def test_bad_input(cli, tmp_path):
    _image(tmp_path)
    fits.PrimaryHDU(np.zeros((40, 51))).writeto(tmp_path / "wrong.fits")
    fits.PrimaryHDU(np.ones((10, 10)), header=fits.Header({"DATASEC": "[1:5;1:5]"})).writeto(tmp_path / "sec.fits")
    cases = [
        (("mask", tmp_path / "image.fits", "--external", tmp_path / "wrong.fits", "-o", tmp_path / "o.fits"),
         "shape"),
        (("mask", tmp_path / "sec.fits", "-o", tmp_path / "o.fits"), "DATASEC"),
        (("mask", tmp_path / "image.fits", "--saturation", "high", "-o", tmp_path / "o.fits"), "--saturation"),
        (("mask", tmp_path / "none.fits", "-o", tmp_path / "o.fits"), "no such file"),
        (("mask", tmp_path / "image.fits", "-o", tmp_path / "bad.fits"), "already exists"),
        (("mask", tmp_path / "image.fits", "--gain", "1.6", "-o", tmp_path / "o.fits"), "--cosmics"),
    ]
    assert_cli_errors(cli, cases, tmp_path)
