"""starpix.io: HDU specs, opening and checking files, WCS, atomic writes, tables."""

import gzip
import os
import shutil
import stat
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import QTable, Table
from astropy.wcs import DistortionLookupTable
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import assert_no_stray_files
from starpix import __version__
from starpix.errors import HDUError, InputFileError, NoWCSError, OutputExistsError, StarpixError
from starpix.io import (
    add_provenance,
    atomic_output,
    celestial_wcs,
    check_output,
    is_image_hdu,
    open_fits,
    parse_hdu_spec,
    read_image,
    read_table,
    select_image_hdu,
    write_fits,
    write_table,
)
from starpix.simulate import make_wcs

SETTINGS = settings(max_examples=60, deadline=None)


@pytest.fixture
def multi(tmp_path):
    """PRIMARY (empty), SCI (EXTVER 1), SCI (EXTVER 2), a table, and a 1-D HDU."""
    wcs = make_wcs((20, 30), pixel_scale_arcsec=0.5)
    sci1 = np.arange(600, dtype=np.float32).reshape(20, 30)
    sci2 = -sci1
    hdus = [fits.PrimaryHDU(),
            fits.ImageHDU(sci1, header=wcs.to_header(), name="SCI", ver=1),
            fits.ImageHDU(sci2, name="SCI", ver=2),
            fits.BinTableHDU.from_columns([fits.Column("a", "E", array=np.arange(3))], name="CAT"),
            fits.ImageHDU(np.arange(5.0), name="SPEC")]
    path = tmp_path / "multi.fits"
    fits.HDUList(hdus).writeto(path)
    return str(path), sci1, sci2, wcs


# ---------------------------------------------------------------- parse_hdu_spec

_NAMES = st.from_regex(r"[A-Za-z][A-Za-z0-9_\-]{0,11}", fullmatch=True)
_PATHS = st.from_regex(r"[A-Za-z0-9_./\-]{1,20}\.fits(\.gz)?", fullmatch=True)


@SETTINGS
@given(_PATHS, st.integers(0, 10_000))
def test_parse_hdu_spec_numbers(path, number):
    assert parse_hdu_spec(f"{path}[{number}]") == (path, number)


@SETTINGS
@given(_PATHS, _NAMES)
def test_parse_hdu_spec_names(path, name):
    try:
        int(name)
    except ValueError:
        pass
    else:  # pragma: no cover - the regex never makes one
        return
    assert parse_hdu_spec(f"{path}[{name}]") == (path, name)
    assert parse_hdu_spec(f"{path}[ {name} ]") == (path, name)


@SETTINGS
@given(_PATHS, _NAMES, st.integers(0, 999))
def test_parse_hdu_spec_extname_extver(path, name, ver):
    assert parse_hdu_spec(f"{path}[{name},{ver}]") == (path, (name, ver))
    assert parse_hdu_spec(f"{path}[{name}, {ver}]") == (path, (name, ver))


@SETTINGS
@given(_PATHS)
def test_parse_hdu_spec_plain_paths(path):
    assert parse_hdu_spec(path) == (path, None)


def test_parse_hdu_spec_details(tmp_path):
    assert parse_hdu_spec(Path("a/b.fits")) == ("a/b.fits", None)
    assert parse_hdu_spec("b.fits[]") == ("b.fits[]", None)
    assert parse_hdu_spec("b.fits[-1]") == ("b.fits", -1)
    assert parse_hdu_spec("dir[x]/b.fits") == ("dir[x]/b.fits", None)
    # a file whose whole name has brackets is taken as it is
    odd = tmp_path / "odd[1]"
    odd.write_bytes(b"")
    assert parse_hdu_spec(str(odd)) == (str(odd), None)
    with pytest.raises(HDUError, match="EXTVER"):
        parse_hdu_spec("b.fits[SCI,two]")


# ---------------------------------------------------------------- open_fits


def test_open_missing_directory_text(tmp_path):
    with pytest.raises(InputFileError, match="nothere.fits: no such file"):
        open_fits(tmp_path / "nothere.fits")
    with pytest.raises(InputFileError, match="is a directory"):
        open_fits(tmp_path)
    text = tmp_path / "notes.fits"
    text.write_text("hello, this is not FITS\n" * 200)
    with pytest.raises(InputFileError, match="notes.fits: not a FITS file"):
        open_fits(text)
    empty = tmp_path / "empty.fits"
    empty.write_bytes(b"")
    with pytest.raises(InputFileError, match="empty.fits"):
        open_fits(empty)
    junk = tmp_path / "junk.fits.gz"
    junk.write_bytes(b"\x1f\x8b" + b"not really gzip" * 10)
    with pytest.raises(InputFileError, match="junk.fits.gz"):
        open_fits(junk)
    gz_text = tmp_path / "text.fits.gz"
    with gzip.open(gz_text, "wb") as handle:
        handle.write(b"plain text" * 100)
    with pytest.raises(InputFileError, match="not a FITS file"):
        open_fits(gz_text)


def test_open_fits_bad_header_is_input_error(tmp_path):
    bad = tmp_path / "bad.fits"
    bad.write_bytes(b"SIMPLE  =                    T" + b"\x00" * 3000)
    with pytest.raises(InputFileError, match="bad.fits"):
        open_fits(bad)


@pytest.mark.parametrize("cut", [2880, 5000, 2880 * 3 + 100, 2880 * 5])
def test_truncated_file(multi, tmp_path, cut):
    path, *_ = multi
    raw = Path(path).read_bytes()
    short = tmp_path / "short.fits"
    short.write_bytes(raw[:len(raw) - cut])
    with pytest.raises(InputFileError, match="short.fits: truncated"):
        open_fits(short)
    with pytest.raises(InputFileError, match="truncated"):
        read_image(f"{short}[SCI]")


def test_truncated_gz(multi, tmp_path):
    path, *_ = multi
    gz = tmp_path / "multi.fits.gz"
    with open(path, "rb") as src, gzip.open(gz, "wb") as dst:
        dst.write(src.read())
    raw = gz.read_bytes()
    for fraction in (0.5, 0.9):
        short = tmp_path / "short.fits.gz"
        short.write_bytes(raw[:int(len(raw) * fraction)])
        with pytest.raises(InputFileError, match="short.fits.gz: truncated"):
            open_fits(short)


def test_only_padding_missing_is_readable(tmp_path):
    data = np.arange(100, dtype=np.int16).reshape(10, 10)
    path = tmp_path / "p.fits"
    fits.PrimaryHDU(data).writeto(path)
    raw = path.read_bytes()
    path.write_bytes(raw[:2880 + data.nbytes])  # header and data whole, padding cut
    with open_fits(path) as hdul:
        np.testing.assert_array_equal(hdul[0].data, data)


def test_gz_readable(multi, tmp_path):
    path, sci1, sci2, wcs = multi
    gz = tmp_path / "multi.fits.gz"
    with open(path, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    with read_image(f"{gz}[SCI,2]") as source:
        assert source.index == 2
        np.testing.assert_array_equal(source.section[3:7, 4:9], sci2[3:7, 4:9])
    with read_image(gz) as source:
        np.testing.assert_array_equal(source.data, sci1)
        assert source.wcs is not None


def test_compressed_image_hdu(tmp_path):
    """A tile-compressed image is far smaller on disk than its header's NAXISn say."""
    data = np.tile(np.arange(200, dtype=np.float32), (150, 1))
    path = tmp_path / "comp.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, name="SCI")]).writeto(path)
    assert os.path.getsize(path) < data.nbytes
    with read_image(path) as source:
        assert source.index == 1 and source.shape == (150, 200)
        np.testing.assert_array_equal(source.section[10:20, 30:35], data[10:20, 30:35])
    raw = path.read_bytes()
    short = tmp_path / "comp_short.fits"
    short.write_bytes(raw[:len(raw) - 4000])
    with pytest.raises(InputFileError, match="truncated"):
        open_fits(short)


def test_open_fits_denywrite(multi):
    path, sci1, *_ = multi
    before = Path(path).read_bytes()
    with open_fits(path) as hdul:
        assert hdul._file.mode == "denywrite"
        with pytest.raises(ValueError):
            hdul[1].data[0, 0] = 1e6
        hdul[1].header["NEWKEY"] = 1
    assert Path(path).read_bytes() == before
    with open_fits(path, memmap=False) as hdul:
        hdul[1].data[0, 0] = 1e6  # an in-memory copy: allowed, and never written back
    assert Path(path).read_bytes() == before
    with read_image(path) as source:
        with pytest.raises(ValueError):
            source.data[1, 1] = -5
    assert Path(path).read_bytes() == before


# ---------------------------------------------------------------- HDU selection


def test_select_image_hdu(multi):
    path, sci1, sci2, wcs = multi
    with open_fits(path) as hdul:
        assert select_image_hdu(hdul)[0] == 1  # the empty primary is skipped
        assert select_image_hdu(hdul, 2)[0] == 2
        assert select_image_hdu(hdul, np.int64(1))[0] == 1
        assert select_image_hdu(hdul, "sci")[0] == 1  # case-insensitive, first match
        assert select_image_hdu(hdul, ("SCI", 2))[0] == 2
        assert select_image_hdu(hdul, ("SCI", 1))[0] == 1
        np.testing.assert_array_equal(select_image_hdu(hdul, ("sci", 2))[1].data, sci2)
        assert is_image_hdu(hdul[1]) and not is_image_hdu(hdul[0]) and not is_image_hdu(hdul[3])
        with pytest.raises(HDUError, match=r"x.fits: HDU 7 does not exist \(the file has HDUs 0 to 4\)"):
            select_image_hdu(hdul, 7, path="x.fits")
        with pytest.raises(HDUError, match="HDU -1 does not exist"):
            select_image_hdu(hdul, -1, path="x.fits")
        with pytest.raises(HDUError, match="x.fits: no HDU named 'DQ' .*CAT, PRIMARY, SCI, SPEC"):
            select_image_hdu(hdul, "DQ", path="x.fits")
        with pytest.raises(HDUError, match="no HDU named 'SCI,3'"):
            select_image_hdu(hdul, ("SCI", 3), path="x.fits")
        with pytest.raises(HDUError, match=r"x.fits: HDU 3 \(CAT, BinTableHDU\) holds no image"):
            select_image_hdu(hdul, "CAT", path="x.fits")
        with pytest.raises(HDUError, match="HDU 0 .* holds no image"):
            select_image_hdu(hdul, 0, path="x.fits")


def test_read_image_errors_name_the_file(multi, tmp_path):
    path, *_ = multi
    for spec, pattern in [(f"{path}[9]", "HDU 9 does not exist"), (f"{path}[NOPE]", "no HDU named 'NOPE'"),
                          (f"{path}[CAT]", "holds no image"), (f"{path}[4]", "1-dimensional")]:
        with pytest.raises(HDUError, match=pattern) as info:
            read_image(spec)
        assert "multi.fits" in str(info.value)
    empty = tmp_path / "empty.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(
        [fits.Column("a", "E", array=np.arange(3))])]).writeto(empty)
    with pytest.raises(HDUError, match="empty.fits: no HDU holds an image"):
        read_image(empty)


def test_read_image_source(multi):
    path, sci1, sci2, wcs = multi
    with read_image(path) as source:
        assert (source.index, source.extname, source.shape) == (1, "SCI", (20, 30))
        assert source.label == f"{path}[1]"
        np.testing.assert_array_equal(source.section[2:5, 6:8], sci1[2:5, 6:8])
        np.testing.assert_array_equal(source.data, sci1)
        got = source.wcs.pixel_to_world(np.arange(30), np.arange(30) % 20)
        want = wcs.pixel_to_world(np.arange(30), np.arange(30) % 20)
        assert got.separation(want).max().deg < 1e-12
        assert source.require_wcs() is source.wcs
    assert source._hdul is None  # closed
    with read_image(path, hdu=("SCI", 2)) as source:
        assert source.index == 2 and source.wcs is None
        with pytest.raises(NoWCSError, match=r"multi.fits\[2\]"):
            source.require_wcs()
    with read_image(f"{path}[2]", hdu=1) as source:  # the spec wins over hdu=
        assert source.index == 2


def test_read_image_primary(tmp_path):
    data = np.ones((4, 5), dtype=np.uint8)
    fits.PrimaryHDU(data).writeto(tmp_path / "p.fits")
    with read_image(tmp_path / "p.fits") as source:
        assert source.index == 0 and source.extname == ""
        np.testing.assert_array_equal(source.section[:, :], data)


# ---------------------------------------------------------------- celestial_wcs


def test_celestial_wcs():
    wcs = make_wcs((30, 40), sip=True)
    header = wcs.to_header(relax=True)
    got = celestial_wcs(header)
    assert got.sip is not None
    xs, ys = np.meshgrid(np.arange(0, 40, 7), np.arange(0, 30, 7))
    assert got.pixel_to_world(xs, ys).separation(wcs.pixel_to_world(xs, ys)).max().deg < 1e-12
    assert celestial_wcs(fits.Header()) is None
    with pytest.raises(NoWCSError, match=r"f.fits\[3\]: sky coordinates need a celestial WCS"):
        celestial_wcs(fits.Header(), path="f.fits", hdu=3, required=True)
    linear = fits.Header({"NAXIS": 2, "CTYPE1": "LINEAR", "CTYPE2": "LINEAR", "CRVAL1": 0.0, "CRVAL2": 0.0})
    assert celestial_wcs(linear) is None
    broken = fits.Header({"CTYPE1": "RA---XYZ", "CTYPE2": "DEC--XYZ"})
    assert celestial_wcs(broken) is None
    with pytest.raises(NoWCSError, match="g.fits"):
        celestial_wcs(broken, path="g.fits", required=True)


def test_celestial_wcs_archaic_keywords():
    header = fits.Header()
    header["CTYPE1"], header["CTYPE2"] = "RA---TAN", "DEC--TAN"
    header["CRVAL1"], header["CRVAL2"] = 10.0, 20.0
    header["CRPIX1"], header["CRPIX2"] = 5.0, 5.0
    header["CD001001"], header["CD001002"] = -1e-4, 0.0
    header["CD002001"], header["CD002002"] = 0.0, 1e-4
    wcs = celestial_wcs(header)
    np.testing.assert_allclose(wcs.wcs.cd, [[-1e-4, 0], [0, 1e-4]])
    assert "CD001001" in header  # the input header is not changed


def test_celestial_wcs_lookup_table_from_file(tmp_path):
    wcs = make_wcs((60, 80), sip=True)
    rng = np.random.default_rng(3)
    for name in ("cpdis1", "cpdis2"):
        setattr(wcs, name, DistortionLookupTable(rng.normal(0, 0.5, (5, 6)).astype(np.float32),
                                                 (1.0, 1.0), (1.0, 1.0), (16.0, 16.0)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hdul = wcs.to_fits(relax=True)
    hdul[0].data = np.zeros((60, 80), np.float32)
    path = tmp_path / "lut.fits"
    hdul.writeto(path)
    with read_image(path) as source:
        got = source.wcs
        assert got is not None and got.cpdis1 is not None
        xs, ys = rng.uniform(0, 80, 50), rng.uniform(0, 60, 50)
        np.testing.assert_allclose(got.all_pix2world(xs, ys, 0), wcs.all_pix2world(xs, ys, 0), atol=1e-12)


# ---------------------------------------------------------------- writing


def test_check_output(tmp_path):
    target = tmp_path / "out.fits"
    check_output(target, False)
    target.write_bytes(b"x")
    with pytest.raises(OutputExistsError, match="out.fits: already exists"):
        check_output(target, False)
    check_output(target, True)


def test_atomic_output_success_and_refusal(tmp_path):
    target = tmp_path / "out.txt"
    with atomic_output(target) as tmp:
        assert os.path.dirname(tmp) == str(tmp_path) and tmp != str(target)
        with open(tmp, "w") as handle:
            handle.write("new")
        assert not target.exists()
    assert target.read_text() == "new"
    assert stat.S_IMODE(os.stat(target).st_mode) & 0o044 == 0o044 & ~_umask()  # not private
    with pytest.raises(OutputExistsError):
        with atomic_output(target):
            raise AssertionError("the body must not run")  # pragma: no cover
    with atomic_output(target, overwrite=True) as tmp:
        with open(tmp, "w") as handle:
            handle.write("newer")
    assert target.read_text() == "newer"
    assert_no_stray_files(tmp_path, allowed=["out.txt"])


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_output_exception_keeps_target(tmp_path):
    target = tmp_path / "out.fits"
    target.write_bytes(b"precious")
    with pytest.raises(RuntimeError):
        with atomic_output(target, overwrite=True) as tmp:
            with open(tmp, "wb") as handle:
                handle.write(b"partial")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"precious"
    assert_no_stray_files(tmp_path, allowed=["out.fits"])
    with pytest.raises(RuntimeError):
        with atomic_output(tmp_path / "new.fits"):
            raise RuntimeError("boom")
    assert_no_stray_files(tmp_path, allowed=["out.fits"])


def test_atomic_output_target_appears_meanwhile(tmp_path):
    target = tmp_path / "race.fits"
    with pytest.raises(OutputExistsError):
        with atomic_output(target) as tmp:
            Path(tmp).write_bytes(b"mine")
            target.write_bytes(b"theirs")
    assert target.read_bytes() == b"theirs"
    assert_no_stray_files(tmp_path, allowed=["race.fits"])


def test_atomic_output_missing_directory(tmp_path):
    with pytest.raises(StarpixError, match="does not exist"):
        with atomic_output(tmp_path / "nodir" / "out.fits"):
            pass  # pragma: no cover


def test_write_fits(tmp_path):
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    hdul = fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, name="SCI")])
    target = tmp_path / "out.fits"
    assert write_fits(hdul, target) == str(target)
    with fits.open(target, checksum=True) as back:
        assert "CHECKSUM" in back[1].header and "DATASUM" in back[1].header
        np.testing.assert_array_equal(back["SCI"].data, data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a bad checksum warns
        fits.open(target, checksum=True).close()
    with pytest.raises(OutputExistsError):
        write_fits(hdul, target)
    write_fits([fits.PrimaryHDU(data * 2)], target, overwrite=True, checksum=False)
    with fits.open(target) as back:
        np.testing.assert_array_equal(back[0].data, data * 2)
        assert "CHECKSUM" not in back[0].header
    gz = tmp_path / "out.fits.gz"
    write_fits(hdul, gz)
    assert gz.read_bytes()[:2] == b"\x1f\x8b"
    with read_image(f"{gz}[SCI]") as source:
        np.testing.assert_array_equal(source.data, data)
    assert_no_stray_files(tmp_path, allowed=["out.fits", "out.fits.gz"])


def test_write_fits_failure_leaves_nothing(tmp_path):
    target = tmp_path / "bad.fits"
    with pytest.raises(Exception):
        write_fits(fits.HDUList([fits.PrimaryHDU(np.array([object()]))]), target)
    assert_no_stray_files(tmp_path)


# ---------------------------------------------------------------- tables


@pytest.mark.parametrize("suffix", [".ecsv", ".csv", ".fits"])
def test_table_round_trip(tmp_path, suffix):
    table = QTable({"id": np.arange(4), "x": np.array([1.5, 2.25, -3.0, 4.125]),
                    "name": ["a", "bb", "ccc", "d"]})
    if suffix != ".csv":
        table["flux"] = [1.0, 2.0, 3.0, 4.0] * u.Jy
    path = tmp_path / f"t{suffix}"
    write_table(table, path)
    back = read_table(path)
    assert back.colnames == table.colnames
    np.testing.assert_array_equal(back["x"], table["x"])
    np.testing.assert_array_equal(back["id"], table["id"])
    assert list(back["name"]) == list(table["name"])
    if suffix != ".csv":
        assert back["flux"].unit == u.Jy
        np.testing.assert_array_equal(back["flux"].value, [1, 2, 3, 4])
    with pytest.raises(OutputExistsError):
        write_table(table, path)
    write_table(table[:2], path, overwrite=True)
    assert len(read_table(path)) == 2
    assert_no_stray_files(tmp_path, allowed=[f"t{suffix}"])


def test_table_skycoord_ecsv_and_default_format(tmp_path):
    table = QTable({"sky": SkyCoord([10, 20], [-5, 5], unit="deg")})
    write_table(table, tmp_path / "sky.ecsv")
    back = read_table(tmp_path / "sky.ecsv")
    assert back["sky"].separation(table["sky"]).max().deg < 1e-12
    write_table(Table({"a": [1, 2]}), tmp_path / "plain.out")  # unknown extension: ECSV
    assert (tmp_path / "plain.out").read_text().startswith("# %ECSV")


def test_read_table_errors(tmp_path):
    with pytest.raises(InputFileError, match="nope.ecsv: no such file"):
        read_table(tmp_path / "nope.ecsv")
    bad = tmp_path / "bad.fits"
    bad.write_text("not a table")
    with pytest.raises(InputFileError, match="bad.fits: cannot be read as a table"):
        read_table(bad)


def test_read_table_whitespace(tmp_path):
    path = tmp_path / "cat.txt"
    path.write_text("ra dec\n10.5 -3.25\n11.0 4.0\n")
    table = read_table(path)
    np.testing.assert_array_equal(table["dec"], [-3.25, 4.0])


# ---------------------------------------------------------------- provenance


def test_add_provenance():
    header = fits.Header()
    out = add_provenance(header, ["/data/a.fits", "rel/b.fits.gz"])
    assert out is header
    assert header["STARPIX"] == __version__
    assert header["SPXIN1"] == "a.fits" and header["SPXIN2"] == "b.fits.gz"
    assert "SPXIN3" not in header
    add_provenance(header, ["x" * 100 + ".fits"], keyword_prefix="CUTIN")
    assert header["CUTIN1"] == ("x" * 100)[:68]
    add_provenance(header, ["it's" + "y" * 60])
    assert header["SPXIN1"] == ("it's" + "y" * 60)[:68]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every card fits: no truncation warning
        text = header.tostring()
    assert fits.Header.fromstring(text)["CUTIN1"] == ("x" * 100)[:68]
    assert fits.Header.fromstring(text)["SPXIN2"] == "b.fits.gz"


@pytest.mark.parametrize("dtype, scale", [("u2", None), ("i1", None), ("u4", None), ("u8", None),
                                          ("i2", (0.5, 3.0, 4)), ("i4", (2.0, -7.0, None)), ("f4", (2.0, 1.0, None))])
def test_scaled_images_read_as_astropy_reads_them(tmp_path, dtype, scale):
    from starpix.io import read_image

    rng = np.random.default_rng(5)
    info = np.iinfo(dtype) if dtype[0] in "iu" else None
    if info is not None:
        data = rng.integers(max(info.min, -1000), min(info.max, 100000), (6, 7)).astype(dtype)
        if dtype == "u2":
            data[0, 0] = 65535
    else:
        data = rng.normal(0, 1, (6, 7)).astype(dtype)
    hdu = fits.PrimaryHDU(data)
    if scale is not None:
        hdu.header["BSCALE"], hdu.header["BZERO"] = scale[0], scale[1]
        if scale[2] is not None:
            hdu.header["BLANK"] = scale[2]
            hdu.data.flat[3] = scale[2]
    path = tmp_path / "scaled.fits"
    hdu.writeto(path)
    with fits.open(path, memmap=False) as hdul:
        expected = hdul[0].data.copy()
    with read_image(str(path)) as source:
        everything = source.data
        part = source.section[2:5, 1:4]
    assert everything.dtype.newbyteorder("=") == expected.dtype.newbyteorder("=")
    np.testing.assert_array_equal(everything, expected)
    np.testing.assert_array_equal(part, expected[2:5, 1:4])
