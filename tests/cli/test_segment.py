"""``starpix segment`` end to end, and bad input."""

import numpy as np
import pytest
from astropy.io import fits

from conftest import assert_cli_errors, assert_no_stray_files
from starpix.detect import read_segmentation, segment


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_help(cli):
    status, out, err = cli("segment", "--help")
    assert status == 0
    assert "starpix segment image.fits -o seg.fits" in out and "count from 0" in out


def test_writes_gnuastro_layout(cli, star_image, workdir):
    path, image, wcs, truth = star_image
    status, out, err = cli("segment", f"{path}[SCI]", "-o", "seg.fits")
    assert status == 0, err
    expected = segment(image)
    assert f"seg.fits: {expected.n_objects} objects, {expected.n_clumps} clumps" in out
    with fits.open("seg.fits") as hdul:
        assert [h.name for h in hdul] == ["SEGMENT-CONFIG", "INPUT-NO-SKY", "CLUMPS", "OBJECTS", "SKY_STD", "SKY"]
        assert hdul[0].header["INPUT"] == "field.fits[1]" and "STARPIX" in hdul[0].header
        assert hdul["OBJECTS"].header["NUMLABS"] == expected.n_objects
        assert "CTYPE1" in hdul["CLUMPS"].header  # the input's WCS in every image HDU
    seg = read_segmentation("seg.fits")
    assert np.array_equal(seg.objects, expected.objects) and np.array_equal(seg.clumps, expected.clumps)
    np.testing.assert_allclose(seg.sky_std, expected.sky_std)
    assert seg.wcs is not None
    np.testing.assert_allclose(seg.wcs.pixel_to_world_values(5.0, 7.0), wcs.pixel_to_world_values(5.0, 7.0))
    assert_no_stray_files(workdir, allowed=("seg.fits",))


def test_options_and_overwrite(cli, star_image, workdir):
    path, image, wcs, truth = star_image
    mask = np.zeros(image.shape, np.uint8)
    mask[:50, :50] = 1
    fits.writeto("mask.fits", mask)
    argv = ["segment", path, "--snr", "5", "--grow-snr", "2", "--min-area", "15", "--clump-snr", "4",
            "--kernel-fwhm", "2.5", "--box-size", "50,60", "--mask", "mask.fits", "-o", "seg.fits", "-q"]
    status, out, err = cli(*argv)
    assert status == 0, err
    assert out == ""
    expected = segment(image, snr=5, grow_snr=2, min_area=15, clump_snr=4, kernel_fwhm=2.5, box_size=(50, 60),
                       mask=mask.astype(bool))
    seg = read_segmentation("seg.fits")
    assert np.array_equal(seg.objects, expected.objects)
    assert not seg.objects[:50, :50].any()
    assert fits.getheader("seg.fits", 0)["SKYBOX"] == "50,60"
    status, out, err = cli(*argv)
    assert status == 1 and "already exists" in err
    status, out, err = cli(*argv, "--overwrite")
    assert status == 0, err


def test_bad_input(cli, star_image, workdir):
    path, image, wcs, truth = star_image
    fits.writeto("small_mask.fits", np.zeros((5, 5), np.uint8))
    fits.writeto("cube.fits", np.zeros((3, 8, 8), np.float32))
    fits.writeto("exists.fits", np.zeros((2, 2)))
    cases = [
        (["segment", "missing.fits", "-o", "seg.fits"], "no such file"),
        (["segment", f"{path}[7]", "-o", "seg.fits"], "HDU 7 does not exist"),
        (["segment", f"{path}[NOPE]", "-o", "seg.fits"], "no HDU named 'NOPE'"),
        (["segment", path, "--snr", "-1", "-o", "seg.fits"], "--snr must be > 0"),
        (["segment", path, "--grow-snr", "4", "-o", "seg.fits"], "--grow-snr (4) must not exceed snr (3)"),
        (["segment", path, "--min-area", "0", "-o", "seg.fits"], "--min-area must be a positive integer"),
        (["segment", path, "--kernel-fwhm", "0", "-o", "seg.fits"], "--kernel-fwhm must be > 0"),
        (["segment", path, "--box-size", "a,b", "-o", "seg.fits"], "--box-size"),
        (["segment", path, "--box-size", "0", "-o", "seg.fits"], "--box-size"),
        (["segment", path, "--mask", "small_mask.fits", "-o", "seg.fits"], "differs from the image's"),
        (["segment", "cube.fits", "-o", "seg.fits"], "expected a 2-D image"),
        (["segment", path, "-o", "exists.fits"], "already exists"),
        (["segment", path, "-o", "nodir/seg.fits"], "does not exist"),
    ]
    assert_cli_errors(cli, cases, workdir)
    assert_no_stray_files(workdir, allowed=("small_mask.fits", "cube.fits", "exists.fits"))
