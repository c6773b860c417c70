"""``starpix drizzle``: the CLI against the API on simulated dithered exposures."""

import os

import numpy as np
from astropy.io import fits

from conftest import assert_cli_errors
from starpix.drizzle import astrodrizzle
from starpix.simulate import make_dithered_exposures


def _files(tmp_path):
    return make_dithered_exposures(tmp_path, 4, shape=(96, 96), n_stars=5, n_galaxies=1, seed=3,
                                   dithers=[(0, 0, 0), (1.5, 0.5, 0), (-1, 2.25, 0.05), (2, -1.5, 0)])


def test_list_file_wildcard_and_api_agree(cli, tmp_path):
    files, _ = _files(tmp_path)
    listing = tmp_path / "inputs.txt"
    listing.write_text("# images\n" + "\n".join(os.path.basename(f) for f in files) + "\n")
    status, out, err = cli("drizzle", f"@{listing}", "-o", tmp_path / "a", "--in-memory", "--final-pixfrac", "0.8",
                           "--no-static", "--driz-cr-snr", "3.5 3.0", "-q")
    assert status == 0, err
    expected = astrodrizzle(files, tmp_path / "b", in_memory=True, final_pixfrac=0.8, static=False, runfile=False)
    with fits.open(tmp_path / "a_drz.fits") as hdul:
        np.testing.assert_array_equal(hdul["SCI"].data, expected.sci)
    status, out, err = cli("drizzle", str(tmp_path / "exp*_flt.fits"), "-o", tmp_path / "c", "--in-memory",
                           "--no-build")
    assert status == 0, err
    assert "c_drz_sci.fits" in out and os.path.exists(tmp_path / "c_drz_ctx.fits")


def test_help_has_examples(cli):
    status, out, err = cli("drizzle", "--help")
    assert status == 0
    assert "starpix drizzle 'exp*_flt.fits' -o final" in out and "--final-wht-type" in out


def test_bad_inputs(cli, tmp_path):
    files, _ = _files(tmp_path)
    fits.PrimaryHDU(np.ones((8, 8)), header=fits.Header([("EXPTIME", 10.0)])).writeto(tmp_path / "nowcs.fits")
    base = ("drizzle", *files, "-o", tmp_path / "x", "--in-memory")
    (tmp_path / "taken_drz.fits").write_text("x")
    cases = [
        ((*base, "--final-bits", "4+(8"), "malformed DQ bit-flag expression"),
        ((*base, "--final-kernel", "boxcar"), "final_kernel: unknown kernel"),
        ((*base, "--final-wht-type", "XYZ"), "final_wht_type"),
        (("drizzle", *files, str(tmp_path / "nowcs.fits"), "-o", tmp_path / "x"), "no celestial WCS"),
        (("drizzle", str(tmp_path / "none*.fits"), "-o", tmp_path / "x"), "matches no file"),
        (("drizzle", *files, "-o", tmp_path / "taken", "--in-memory"), "already exists"),
        ((*base, "--final-wcs", "--final-ra", "20", "--final-dec", "-30", "--final-outnx", "40", "--final-outny",
          "40"), "does not overlap"),
    ]
    assert_cli_errors(cli, cases, tmp_path)


def test_jobs_equal_serial(cli, tmp_path):
    files, _ = _files(tmp_path)
    status, out, err = cli("drizzle", *files, "-o", tmp_path / "j", "--jobs", "2", "--runfile", "none", "-q")
    assert status == 0, err
    expected = astrodrizzle(files, tmp_path / "s", in_memory=True, runfile=False)
    with fits.open(tmp_path / "j_drz.fits") as hdul:
        np.testing.assert_array_equal(hdul["SCI"].data, expected.sci)
        np.testing.assert_array_equal(hdul["WHT"].data, expected.wht)
        np.testing.assert_array_equal(hdul["CTX"].data, expected.ctx[0])


def test_parallel_options_bad(cli, tmp_path):
    files, _ = _files(tmp_path)
    base = ("drizzle", *files, "-o", tmp_path / "x", "--in-memory", "--runfile", "none")
    cases = [
        ((*base, "--jobs", "2", "--num-cores", "2"), "--jobs and --num-cores: the same option"),
        ((*base, "--num-cores", "2", "--scheduler", "tcp://127.0.0.1:1"), "--num-cores and --scheduler"),
        ((*base, "--jobs", "2", "--scheduler", "tcp://127.0.0.1:1"), "--jobs and --scheduler"),
        ((*base, "--jobs", "-2"), "--jobs: expected 0"),
        ((*base, "--num-cores", "0"), "num_cores"),
    ]
    assert_cli_errors(cli, cases, tmp_path)
