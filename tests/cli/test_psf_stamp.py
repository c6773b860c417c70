"""starpix psf-stamp: Gnuastro's options one for one, 1-based centres, default names, bad input, batch."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import given
from hypothesis import strategies as st

from starpix.cli.psf_stamp import parse_center, parse_normradii, parse_width
from starpix.errors import InvalidParameterError
from starpix.stamp import psf_stamp, psf_stamps

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "stamp"))
from test_batch import STARS, make_field  # noqa: E402

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@given(finite, finite)
def test_parse_center_round_trips(x, y):
    values, texts = parse_center(f"{x!r},{y!r}")
    assert values == (x, y) and texts == (repr(x), repr(y))


@given(st.text(alphabet="0123456789.,-e x", max_size=12))
def test_parse_center_takes_two_numbers_or_says_why(text):
    try:
        values, _ = parse_center(text)
    except InvalidParameterError as exc:
        assert "--center" in str(exc)
    else:
        assert len(values) == 2 and all(np.isfinite(values))


@given(st.integers(1, 5000), st.integers(1, 5000))
def test_parse_width(nx, ny):
    assert parse_width(f"{nx},{ny}") == (nx, ny)
    assert parse_width(str(nx)) == (nx, nx)


@given(finite.filter(lambda v: v >= 0), finite)
def test_parse_normradii(rmin, rmax):
    try:
        assert parse_normradii(f"{rmin!r},{rmax!r}") == (rmin, rmax)
        assert rmin < rmax
    except InvalidParameterError as exc:
        assert rmin >= rmax and "--normradii" in str(exc)


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    return make_field(tmp_path_factory.mktemp("clifield"))


def _read(path):
    with fits.open(path) as hdul:
        return hdul[1].data.copy(), hdul[1].header.copy()


def _segment(arrays):
    return {"clumps": arrays["clumps"], "objects": arrays["objects"],
            "sky_std": np.ones(arrays["image"].shape, np.float32)}


@pytest.mark.parametrize("argv, api", [
    (["-c", "21.3,31.6", "-W", "31,41"], dict(width=(31, 41))),
    (["--center=21.3,31.6", "--widthinpix=31,41", "--normradii=2,6"], dict(width=(31, 41), normradii=(2, 6))),
    (["-c=21.3,31.6", "-W31,41", "-n", "2,6", "-Nsigclip-mean", "-s", "2.5,0.1", "-Q0.7", "-p", "-30"],
     dict(width=(31, 41), normradii=(2, 6), normop="sigclip-mean", sigmaclip=(2.5, 0.1), axis_ratio=0.7,
          position_angle=-30.0)),
    (["-O", "img", "-c", "21.3,31.6", "-W", "31,41", "-n", "2,6", "-S", "SEG", "-T3"],
     dict(width=(31, 41), normradii=(2, 6), segment=True, snthresh=3.0)),
    (["-c", "21.3,31.6", "-W", "31,41", "-n", "2,6", "--segment", "SEG", "-d", "-N", "mean"],
     dict(width=(31, 41), normradii=(2, 6), segment=True, centering=False, normop="mean")),
])
def test_each_option_reaches_the_api(cli, field, tmp_path, argv, api):
    image_path, seg_path, arrays = field
    out = tmp_path / "out.fits"
    argv = [seg_path if a == "SEG" else a for a in argv]
    status, _, err = cli("psf-stamp", image_path, "-h1", *argv, "-o", out, "-q")
    assert status == 0, err
    if api.pop("segment", False):
        api["segment"] = _segment(arrays)
    stamp, header = psf_stamp(arrays["image"], (20.3, 30.6), **api)  # 1-based 21.3,31.6 -> 0-based
    data, written = _read(out)
    np.testing.assert_array_equal(data, stamp)
    for key in ("NORMVAL", "CLABEL", "OLABEL"):
        assert written[key] == header[key]
    assert written["CTYPE1"] == "RA---TAN"


def test_default_names_and_negative_centre(cli, field, tmp_path, monkeypatch):
    image_path, _, arrays = field
    monkeypatch.chdir(tmp_path)
    assert cli("psf-stamp", image_path, "-c", "21.30,31.6", "-W", "11,11", "-q")[0] == 0
    assert cli("psf-stamp", image_path, "-c", "-3.5,40", "-W", "11,11", "-q")[0] == 0  # -c takes a negative value
    assert cli("psf-stamp", image_path, "-W", "11,11", "-q")[0] == 0  # the central pixel, 1-based (51, 61)
    assert sorted(os.listdir(tmp_path)) == ["field_stamp_-3.5_40.fits", "field_stamp_21.30_31.6.fits",
                                            "field_stamp_51_61.fits"]
    np.testing.assert_array_equal(_read("field_stamp_51_61.fits")[0], psf_stamp(arrays["image"], width=11)[0])
    status, _, err = cli("psf-stamp", image_path, "-c", "21.30,31.6", "-W", "11,11", "-q")
    assert status == 1 and "already exists" in err
    assert cli("psf-stamp", image_path, "-c", "21.30,31.6", "-W", "11,11", "-q", "--overwrite")[0] == 0


def test_tmpdir_writes_the_steps_into_a_new_directory(cli, field, tmp_path, monkeypatch):
    image_path, seg_path, arrays = field
    monkeypatch.chdir(tmp_path)
    status, _, err = cli("psf-stamp", image_path, "-c", "46.7,71.1", "-W", "21,21", "-S", seg_path, "-n", "2,5",
                         "-t", "steps", "-o", "s.fits", "-q")
    assert status == 0, err
    assert sorted(os.listdir("steps")) == sorted(f"{name}-46.7_71.1.fits" for name in (
        "cropped", "cropped-masked", "cropped-masked-centered", "rprofile"))
    centred = _read("steps/cropped-masked-centered-46.7_71.1.fits")[0]
    data, header = _read("s.fits")
    np.testing.assert_allclose(data, (centred / np.float32(header["NORMVAL"])).astype(np.float32), rtol=1e-6)
    status, _, err = cli("psf-stamp", image_path, "-c", "46.7,71.1", "-k", "-o", "s2.fits")
    assert status == 0 and os.path.isdir("field_stamp")  # -k alone: Gnuastro's default ./<base>_stamp


def test_bad_input(cli, field, tmp_path):
    from conftest import assert_cli_errors

    image_path, seg_path, arrays = field
    small = tmp_path / "small_seg.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(arrays["clumps"][:50], name="CLUMPS"),
                  fits.ImageHDU(arrays["objects"][:50], name="OBJECTS")]).writeto(small)
    noseg = tmp_path / "noseg.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(arrays["clumps"], name="CLUMPS")]).writeto(noseg)
    existing = tmp_path / "exists.fits"
    existing.write_bytes(b"keep")
    (tmp_path / "tmpexists").mkdir()
    out = str(tmp_path / "o.fits")
    base = ["psf-stamp", image_path, "-W", "11,11", "-o", out]
    cases = [
        (base + ["-c", "21.3"], "--center"),
        (base + ["-c", "21.3,a"], "--center"),
        (base + ["-c", "1,2,3"], "--center"),
        (base + ["-n", "6,2"], "--normradii"),
        (base + ["-n", "5,5"], "--normradii"),
        (base + ["-N", "mode"], "--normop"),
        (base + ["-T", "3"], "--snthresh needs --segment"),
        (base + ["-S", str(small)], "pixel-aligned"),
        (base + ["-S", str(noseg)], "OBJECTS missing"),
        (base + ["-O", "sky", "-c", "1,2"], "--mode"),
        (base + ["-Q", "0"], "--axisratio"),
        (base + ["-W", "0,5"], "--widthinpix"),
        (base + ["-s", "3"], "--sigmaclip"),
        (base + ["-c", "5,5", "--jobs", "2"], "--jobs/--scheduler"),
        (["psf-stamp", image_path, "-c", "5,5", "-o", str(existing)], "already exists"),
        (base + ["-c", "5,5", "-t", str(tmp_path / "tmpexists")], "already exists"),
        (["psf-stamp", str(tmp_path / "missing.fits"), "-o", out], "no such file"),
        (base + ["--catalog", str(tmp_path / "missing.ecsv")], "no such file"),
    ]
    assert_cli_errors(cli, cases, tmp_path)
    assert existing.read_bytes() == b"keep"


def test_help_is_double_dash_only(cli):
    status, out, _ = cli("psf-stamp", "--help")
    assert status == 0 and "-h STR, --hdu STR" in out and "1-based" in out


def test_batch_equals_api_and_single_runs(cli, field, tmp_path):
    from astropy.table import QTable

    image_path, seg_path, arrays = field
    catalog = tmp_path / "stars.ecsv"
    QTable({"X": [s[0] + 1 for s in STARS], "Y": [s[1] + 1 for s in STARS]}).write(catalog)
    options = ["-W", "21,21", "-S", seg_path, "-n", "2,5", "-q"]
    cube, outdir = tmp_path / "cube.fits", tmp_path / "stamps"
    assert cli("psf-stamp", image_path, "--catalog", catalog, *options, "-o", cube)[0] == 0
    status, _, err = cli("psf-stamp", image_path, "--catalog", catalog, "--catalog-columns", "X,Y", "--jobs", "2",
                         *options, "-o", outdir)
    assert status == 0, err
    api = psf_stamps(image_path, STARS, width=21, segment=seg_path, normradii=(2, 5))
    with fits.open(cube) as hdul:
        np.testing.assert_array_equal(hdul[0].data, api.stamps)
    single = tmp_path / "single.fits"
    assert cli("psf-stamp", image_path, "-c", "46.7,71.1", *options, "-o", single)[0] == 0
    np.testing.assert_array_equal(_read(outdir / "field_stamp_46.7_71.1.fits")[0], _read(single)[0])
    assert len(os.listdir(outdir)) == len(STARS)


@pytest.mark.skipif(shutil.which("astscript-psf-stamp") is None, reason="Gnuastro (astscript-psf-stamp) missing")
def test_against_gnuastro(cli, field, tmp_path):
    image_path, seg_path, _ = field
    options = ["--mode=img", "--center=46.7,71.1", "--widthinpix=31,31", f"--segment={seg_path}",
               "--normradii=2,6", "--snthresh=2"]
    theirs, ours = tmp_path / "gnu.fits", tmp_path / "ours.fits"
    subprocess.run(["astscript-psf-stamp", image_path, "-h1", *options, f"--output={theirs}", "--quiet",
                    f"--tmpdir={tmp_path / 'gnutmp'}"], check=True, capture_output=True)
    assert cli("psf-stamp", image_path, "-h1", *options, "-o", ours, "-q")[0] == 0
    (a, ha), (b, hb) = _read(ours), _read(theirs)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-3 * np.nanmax(np.abs(b)), equal_nan=True)
    assert ha["NORMVAL"] == pytest.approx(hb["NORMVAL"], rel=1e-4)
    assert (ha["CLABEL"], ha["OLABEL"]) == (hb["CLABEL"], hb["OLABEL"])
