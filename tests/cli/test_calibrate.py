"""``starpix calibrate``: the calibrated frame against the known sky, and bad input."""

import numpy as np
from astropy.io import fits

from conftest import assert_cli_errors


def _frames(tmp_path):
    rng = np.random.default_rng(0)
    shape = (20, 30)
    sky = rng.uniform(100, 200, shape)
    bias = 300 + rng.normal(0, 2, shape)
    current = rng.uniform(0.5, 1.5, shape)
    flat = 1000 * rng.uniform(0.8, 1.2, shape)
    raw = sky * flat / np.median(flat) + current * 20.0 + bias
    fits.PrimaryHDU(raw, header=fits.Header({"EXPTIME": 20.0})).writeto(tmp_path / "raw.fits")
    fits.PrimaryHDU(bias).writeto(tmp_path / "bias.fits")
    fits.PrimaryHDU(current * 100.0, header=fits.Header({"EXPTIME": 100.0})).writeto(tmp_path / "dark.fits")
    fits.PrimaryHDU(flat).writeto(tmp_path / "flat.fits")
    return sky


def test_calibrate(cli, tmp_path):
    sky = _frames(tmp_path)
    status, out, err = cli("calibrate", tmp_path / "raw.fits", "--bias", tmp_path / "bias.fits", "--dark",
                           tmp_path / "dark.fits", "--flat", tmp_path / "flat.fits", "--scale-dark",
                           "-o", tmp_path / "cal.fits", "--mask-out", tmp_path / "m.fits")
    assert status == 0, err
    np.testing.assert_allclose(fits.getdata(tmp_path / "cal.fits"), sky, rtol=1e-10)
    header = fits.getheader(tmp_path / "cal.fits")
    assert header["DARKSCAL"] == 0.2 and header["FLATCORR"]
    assert not fits.getdata(tmp_path / "m.fits").any()


def test_bad_input(cli, tmp_path):
    _frames(tmp_path)
    fits.PrimaryHDU(np.ones((20, 31))).writeto(tmp_path / "wrong.fits")
    fits.PrimaryHDU(np.ones((20, 30))).writeto(tmp_path / "noexp.fits")
    base = ("calibrate", tmp_path / "raw.fits", "-o", tmp_path / "c.fits")
    cases = [
        ((*base, "--flat", tmp_path / "wrong.fits"), "--flat"),
        ((*base, "--dark", tmp_path / "noexp.fits", "--scale-dark"), "EXPTIME"),
        ((*base, "--scale-dark"), "--dark"),
        ((*base, "--bias", tmp_path / "none.fits"), "no such file"),
        ((*base, "--dark-has-bias"), "--dark-has-bias needs --dark"),
        ((*base, "--dark", tmp_path / "noexp.fits", "--exptime-key", "EXPOSURE"), "--exptime-key"),
    ]
    assert_cli_errors(cli, cases, tmp_path)
