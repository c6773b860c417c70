"""starpix psf-stack, psf-unite, psf-subtract, psf-scale-factor, psf-select-stars: runs and bad input."""

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from starpix.stamp import psf_scale_factor, stack_stamps, subtract_psf, unite_psfs

from ..conftest import assert_cli_errors


def _write(path, data, header=None):
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, header=header)]).writeto(path)
    return str(path)


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:21, 0:21] - 10
    psf = np.exp(-(xx**2 + yy**2) / 8.0).astype(np.float32)
    image = rng.normal(0, 0.01, (60, 70)).astype(np.float32)
    image += subtract_psf(np.zeros_like(image), psf, (30.3, 25.6), 5.0, model_only=True)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150, 2]
    wcs.wcs.crpix = [35, 30]
    wcs.wcs.cdelt = [-1 / 3600, 1 / 3600]
    stamps = [_write(tmp_path / f"s{i}.fits", psf * (1 + 0.01 * i)) for i in range(4)]
    catalog = Table(dict(ra=[150.0, 150.001, 150.0012], dec=[2.0, 2.0, 2.001], phot_g_mean_mag=[12.0, 13.0, 19.0]))
    catalog.write(tmp_path / "cat.ecsv")
    return dict(dir=tmp_path, psf=psf, image=image, wcs=wcs, stamps=stamps,
                img=_write(tmp_path / "img.fits", image, wcs.to_header()), psffile=_write(tmp_path / "psf.fits", psf))


def test_commands_write_what_the_api_computes(cli, files):
    status, out, err = cli("psf-stack", *files["stamps"], "--count", "-o", "stack.fits")
    assert status == 0, err
    with fits.open("stack.fits") as hdul:
        np.testing.assert_array_equal(hdul[1].data, stack_stamps(files["stamps"]))
        assert hdul["NUMBER"].data.max() == 4
    status, out, err = cli("psf-unite", files["psffile"], "--inner", files["stamps"][1], "-r", "3", "-s", "0.5")
    assert status == 0, err
    expected = unite_psfs(fits.getdata(files["stamps"][1]), files["psf"], 3, 0.5)
    np.testing.assert_array_equal(fits.getdata("psf_s1_unite.fits"), expected)
    status, out, err = cli("psf-subtract", files["img"], "-c", "31.3,26.6", "-p", files["psffile"], "-s", "5", "-q")
    assert status == 0, err
    residual = fits.getdata("img_subtracted_31.3_26.6.fits")
    assert np.abs(residual).max() < 0.06  # noise only
    status, out, err = cli("psf-scale-factor", files["img"], "-c", "31.3,26.6", "-p", files["psffile"],
                           "-n", "1,5")
    assert status == 0, err
    assert float(out) == pytest.approx(psf_scale_factor(files["image"], files["psf"], (30.3, 25.6),
                                                        normradii=(1, 5)), rel=1e-6)
    assert float(out) == pytest.approx(5.0, rel=0.05)
    status, out, err = cli("psf-scale-factor", files["img"], "-O", "wcs", "-c", "150.0,2.0", "-p",
                           files["psffile"], "-n", "1,5", "-o", "factor.txt")
    assert status == 0, err
    status, out, err = cli("psf-select-stars", files["img"], "-c", "cat.ecsv", "-m", "11,14", "-M", "0.0005",
                           "-o", "sel.ecsv")
    assert status == 0, err
    assert list(Table.read("sel.ecsv")["phot_g_mean_mag"]) == [12.0, 13.0]
    status, out, err = cli("psf-select-stars", files["img"], "-c", "cat.ecsv", "-m", "11,14", "-M", "0.002",
                           "-o", "sel2.ecsv")
    assert status == 0, err
    assert len(Table.read("sel2.ecsv")) == 0


def test_bad_input(cli, files):
    img, psf = files["img"], files["psffile"]
    _write(files["dir"] / "small.fits", np.zeros((5, 6), np.float32))
    _write(files["dir"] / "nowcs.fits", np.zeros((5, 6), np.float32))
    assert_cli_errors(cli, [
        (["psf-stack", *files["stamps"], "small.fits", "-o", "o.fits"], "same size"),
        (["psf-stack", *files["stamps"], "-s", "3", "-o", "o.fits"], "--sigmaclip"),
        (["psf-stack", *files["stamps"], "--operator", "mean", "-s", "3,0.2", "-o", "o.fits"], "only the sigclip"),
        (["psf-stack", "missing.fits", "-o", "o.fits"], "no such file"),
        (["psf-unite", psf, "-i", "small.fits", "-r", "-2", "-s", "1", "-o", "o.fits"], "--radius"),
        (["psf-unite", psf, "-i", "small.fits", "-r", "2", "-s", "1", "-Q", "1.5", "-o", "o.fits"], "--axisratio"),
        (["psf-unite", psf, "-i", "missing.fits", "-r", "2", "-s", "x", "-o", "o.fits"], "--scale"),
        (["psf-subtract", img, "-c", "10", "-p", psf, "-s", "1", "-o", "o.fits"], "--center"),
        (["psf-subtract", "nowcs.fits", "-O", "wcs", "-c", "1,2", "-p", psf, "-s", "1", "-o", "o.fits"], "WCS"),
        (["psf-subtract", img, "-c", "10,10", "-p", "missing.fits", "-s", "1", "-o", "o.fits"], "no such file"),
        (["psf-scale-factor", img, "-c", "10,10", "-p", psf, "-n", "5,3"], "--normradii"),
        (["psf-scale-factor", img, "-c", "10,10", "-p", psf, "-n", "1,3", "-S", img], "CLUMPS"),
        (["psf-scale-factor", img, "-c", "10,10", "-p", psf, "-n", "1,3", "-s", "0,1"], "--sigmaclip"),
        (["psf-select-stars", img, "-c", "cat.ecsv", "-m", "14,11", "-o", "o.ecsv"], "--magnituderange"),
        (["psf-select-stars", img, "-c", "cat.ecsv", "-m", "11,14", "-f", "gmag", "-o", "o.ecsv"], "gmag"),
        (["psf-select-stars", "nowcs.fits", "-c", "cat.ecsv", "-m", "11,14", "-o", "o.ecsv"], "WCS"),
        (["psf-select-stars", img, "-c", "cat.ecsv", "-m", "11,14", "-Q", "0.9", "-o", "o.ecsv"],
         "axis_ratio_column"),
    ], files["dir"])
    status, _, err = cli("psf-unite", psf, "-i", psf, "-r", "2", "-s", "1", "-o", "u.fits")
    assert status == 0
    status, _, err = cli("psf-unite", psf, "-i", psf, "-r", "2", "-s", "1", "-o", "u.fits")
    assert status == 1 and "already exists" in err
