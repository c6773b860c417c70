"""``starpix combine``: the master frame against numpy, and bad input."""

import numpy as np
from astropy.io import fits

from conftest import assert_cli_errors


def test_combine(cli, tmp_path):
    rng = np.random.default_rng(0)
    stack = 100 + rng.normal(0, 3, (5, 20, 30))
    paths = []
    for index, frame in enumerate(stack):
        paths.append(tmp_path / f"bias{index}.fits")
        fits.PrimaryHDU(frame).writeto(paths[-1])
    status, out, err = cli("combine", *paths, "--method", "median", "-o", tmp_path / "master.fits",
                           "--max-memory", "0.001")
    assert status == 0, err
    np.testing.assert_allclose(fits.getdata(tmp_path / "master.fits"), np.median(stack, 0), rtol=1e-12)
    assert fits.getheader(tmp_path / "master.fits")["NCOMBINE"] == 5


def test_bad_input(cli, tmp_path):
    fits.PrimaryHDU(np.ones((20, 30))).writeto(tmp_path / "a.fits")
    fits.PrimaryHDU(np.ones((20, 31))).writeto(tmp_path / "b.fits")
    cases = [
        (("combine", "-o", tmp_path / "m.fits"), "no input files"),
        (("combine", tmp_path / "a.fits", tmp_path / "b.fits", "-o", tmp_path / "m.fits"), "shape"),
        (("combine", tmp_path / "a.fits", tmp_path / "none.fits", "-o", tmp_path / "m.fits"), "no such file"),
        (("combine", tmp_path / "a.fits", "-o", tmp_path / "b.fits"), "already exists"),
        (("combine", tmp_path / "a.fits", "--max-memory", "0", "-o", tmp_path / "m.fits"), "--max-memory"),
    ]
    assert_cli_errors(cli, cases, tmp_path)
