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
        ((*base, "--mask-suffix", "_m"), "--mask-suffix"),
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


def test_many_images_to_a_directory(cli, tmp_path):
    images = []
    for seed in (5, 6, 7):
        image, _, _, _ = star_field((64, 64), n_stars=6, n_single=10, n_tracks=2, seed=seed)
        fits.PrimaryHDU(image).writeto(tmp_path / f"f{seed}.fits")
        images.append(image)
    fits.PrimaryHDU((np.arange(64 * 64).reshape(64, 64) % 97 == 0).astype(np.uint8)).writeto(tmp_path / "bad.fits")
    bad = fits.getdata(tmp_path / "bad.fits") != 0
    status, out, err = cli("cosmics", *(tmp_path / f"f{s}.fits" for s in (5, 6, 7)), "--output-dir",
                           tmp_path / "out", "--jobs", "2", "--gain", "1.5", "--mask", tmp_path / "bad.fits")
    assert status == 0, err
    assert "3 images" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        f"f{s}_{kind}.fits" for s in (5, 6, 7) for kind in ("clean", "crmask")]
    for seed, image in zip((5, 6, 7), images):
        crmask, cleaned = detect_cosmics(image, bad, gain=1.5)
        assert crmask.sum() > 0
        np.testing.assert_array_equal(fits.getdata(tmp_path / "out" / f"f{seed}_crmask.fits"), crmask.astype(np.uint8))
        np.testing.assert_array_equal(fits.getdata(tmp_path / "out" / f"f{seed}_clean.fits"), cleaned)
        assert fits.getheader(tmp_path / "out" / f"f{seed}_clean.fits")["CRNPIX"] == crmask.sum()
    # one image works too, serially, with other suffixes
    status, out, err = cli("cosmics", tmp_path / "f5.fits", "--output-dir", tmp_path / "one", "--mask-suffix", "_m",
                           "--clean-suffix", "_c", "-q")
    assert status == 0, err
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == ["f5_c.fits", "f5_m.fits"]


def test_many_images_bad_input(cli, tmp_path):
    fits.PrimaryHDU(np.ones((30, 30))).writeto(tmp_path / "a.fits")
    fits.PrimaryHDU(np.ones((30, 30))).writeto(tmp_path / "b.fits")
    (tmp_path / "out").mkdir()
    fits.PrimaryHDU(np.ones((3, 3))).writeto(tmp_path / "out" / "b_clean.fits")
    two = ("cosmics", tmp_path / "a.fits", tmp_path / "b.fits")
    cases = [
        ((*two, "-o", tmp_path / "c.fits"), "use --output-dir"),
        ((*two,), "give -o"),
        ((*two, "--output-dir", tmp_path / "d", "-o", tmp_path / "c.fits"), "not both"),
        (("cosmics", tmp_path / "a.fits", "-o", tmp_path / "c.fits", "--jobs", "2"), "--output-dir"),
        ((*two, "--output-dir", tmp_path / "out"), "already exists"),
        ((*two, "--output-dir", tmp_path / "d", "--gain", "0"), "gain"),
        ((*two, "--output-dir", tmp_path / "d", "--jobs", "-1"), "--jobs"),
        (("cosmics", tmp_path / "a.fits", tmp_path / "a.fits", "--output-dir", tmp_path / "d"), "both be written"),
    ]
    assert_cli_errors(cli, cases, tmp_path)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["b_clean.fits"]
