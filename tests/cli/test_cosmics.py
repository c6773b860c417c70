"""``starpix cosmics``: the cleaned image and mask are detect_cosmics' own, and bad input."""

import numpy as np
from astropy.io import fits

from conftest import assert_cli_errors
from preprocess._scenes import star_field
from starpix.preprocess import detect_cosmics


def test_cosmics(cli, tmp_path):
    image, truth, _, _ = star_field((96, 96), n_stars=10, n_single=20, n_tracks=5, seed=2)
    fits.PrimaryHDU(image).writeto(tmp_path / "image.fits")
    status, out, err = cli("cosmics", tmp_path / "image.fits", "-o", tmp_path / "clean.fits", "--mask-out",
                           tmp_path / "cr.fits", "--gain", "1.5", "--cleantype", "idw")
    assert status == 0, err
    crmask, cleaned = detect_cosmics(image, gain=1.5, cleantype="idw")
    np.testing.assert_array_equal(fits.getdata(tmp_path / "cr.fits"), crmask.astype(np.uint8))
    np.testing.assert_array_equal(fits.getdata(tmp_path / "clean.fits"), cleaned)
    assert fits.getheader(tmp_path / "clean.fits")["CRNPIX"] == crmask.sum() > 0
    assert (crmask & truth).sum() / truth.sum() > 0.9


def test_bad_input(cli, tmp_path):
    fits.PrimaryHDU(np.ones((30, 30))).writeto(tmp_path / "image.fits")
    fits.PrimaryHDU(np.ones((30, 31))).writeto(tmp_path / "mask.fits")
    fits.PrimaryHDU(np.ones((4, 30))).writeto(tmp_path / "small.fits")
    base = ("cosmics", tmp_path / "image.fits", "-o", tmp_path / "c.fits")
    cases = [
        ((*base, "--mask", tmp_path / "mask.fits"), "shape"),
        ((*base, "--gain", "0"), "gain"),
        ((*base, "--fsmode", "convolve", "--psfsize", "4"), "psfsize"),
        (("cosmics", tmp_path / "small.fits", "-o", tmp_path / "c.fits"), "at least"),
        ((*base, "--mask-out", tmp_path / "c.fits"), "differ"),
        ((*base[:-1], tmp_path / "mask.fits"), "already exists"),
    ]
    assert_cli_errors(cli, cases, tmp_path)


def test_no_star_guard_gives_the_plain_la_cosmic_mask(cli, tmp_path):
    image, _, _, _ = star_field((96, 96), n_stars=15, n_single=10, n_tracks=3, fwhm=1.6, seed=4)
    fits.PrimaryHDU(image).writeto(tmp_path / "image.fits")
    status, _, err = cli("cosmics", tmp_path / "image.fits", "-o", tmp_path / "clean.fits", "--mask-out",
                         tmp_path / "cr.fits", "--no-star-guard")
    assert status == 0, err
    plain, _ = detect_cosmics(image, star_guard=False)
    guarded, _ = detect_cosmics(image)
    written = fits.getdata(tmp_path / "cr.fits").astype(bool)
    np.testing.assert_array_equal(written, plain)
    assert not (guarded & ~plain).any()  # the guard only releases pixels
