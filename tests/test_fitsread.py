"""starpix._fitsread (FITS images without astropy) against astropy, and the astropy-free psf-stamp path."""

import gzip
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from starpix import _fitsread
from starpix.cli.psf_stamp import _stamp_file_bytes
from starpix.errors import StarpixError
from starpix.io import read_image as io_read_image

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _astropy_card(image):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        card = fits.Card.fromstring(image)
        return card.keyword, card.value, card.comment


# ------------------------------------------------------------------------------------------ cards
_KEYWORDS = st.sampled_from(["CRPIX1", "CRVAL2", "CTYPE1", "NAXIS", "EXTNAME", "A_2_0", "X", "KEY-1_2",
                             "crpix1", "CR PIX", "HISTORY", "COMMENT", "CONTINUE", "        "])
_NUMBER_TEXT = st.one_of(
    st.integers(-10**20, 10**20).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda v: f"{v:.6E}".replace("E", "D")),
    st.sampled_from(["+5", "-0", ".5", "5.", "1.E5", "007", "1e5", "1.0d2", "- 5", "1,5", "0x10", "1.5.2",
                     "(1, 2)", "NaN", "T", "F", "TRUE", "", "''", "'abc'", "'  lead'", "'trail   '",
                     "'it''s'", "'a'b'", "'unclosed", "'x: 1'", "'AXIS.1: 2'", "'&'"]),
)
_STRING_TEXT = st.text(alphabet="abcXYZ 0-9'&:./", max_size=20).map(lambda s: "'" + s.replace("'", "''") + "'")
_COMMENT = st.one_of(st.just(""), st.text(alphabet="abc /=' xyz.", max_size=30))


@st.composite
def card_images(draw):
    keyword = draw(_KEYWORDS)
    indicator = draw(st.sampled_from(["= ", "= ", "= ", "=", "  "]))
    value = draw(st.one_of(_NUMBER_TEXT, _STRING_TEXT))
    pad = " " * draw(st.integers(0, 25))
    comment = draw(_COMMENT)
    separator = draw(st.sampled_from([" / ", "/", " /", "  ", " "]))
    image = f"{keyword[:8]:<8}{indicator}{pad}{value}" + (separator + comment if comment else "")
    return image[:80].ljust(80)


@SETTINGS
@given(card_images())
def test_a_card_read_is_read_as_astropy_reads_it(image):
    """Whatever value and comment the parser gives (without refusing), astropy gives the same."""
    try:
        card = _fitsread.parse_card(image)
        value = card.value
    except _fitsread.Unsupported:
        return
    keyword, expected, comment = _astropy_card(image)
    assert card.keyword == keyword
    if keyword in ("", "COMMENT", "HISTORY"):
        return
    assert type(value) is type(expected) and value == expected, (image, value, expected)
    assert card.comment == comment, (image, card.comment, comment)


@SETTINGS
@given(st.sampled_from(["CRPIX1", "CDELT2", "CTYPE1", "NORMVAL", "A_2_0", "RADESYS"]),
       st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-10**18, 10**18), st.booleans(),
                 st.text(alphabet="abcRA-TN' ", max_size=60), st.none()),
       st.text(alphabet="abc /=' xyz.()", max_size=75))
def test_written_cards_are_astropys_cards(keyword, value, comment):
    """The stamp writer's cards are the images astropy makes of the same values."""
    comment = comment.strip()
    text = value.replace("'", "''") if isinstance(value, str) else ""
    if len(text) > 68:
        return  # the fast writer refuses long strings (CONTINUE cards): the astropy path writes them
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = fits.Card(keyword, fits.card.UNDEFINED if value is None else value, comment).image
    content = _stamp_file_bytes(np.zeros((1, 1), np.float32), [(keyword, value, comment)])
    assert content[2880 + 7 * 80:2880 + 8 * 80].decode() == expected


# ------------------------------------------------------------------------------------------ files
_DTYPES = ["u1", "i2", "i4", "i8", "f4", "f8", "u2", "u4", "u8", "i1"]


@st.composite
def fits_files(draw):
    """A list of HDU descriptions: (kind, name, ver, array or None, extra cards)."""
    count = draw(st.integers(1, 4))
    hdus = []
    for index in range(count):
        kind = "primary" if index == 0 else draw(st.sampled_from(["image", "image", "table"]))
        name = draw(st.sampled_from([None, "SCI", "sci", "ERR", " lead", "PRIMARY", "X" * 20]))
        ver = draw(st.sampled_from([None, 1, 2]))
        array = None
        if kind != "table" and draw(st.booleans()):
            dims = draw(st.integers(1, 3))
            shape = tuple(draw(st.lists(st.integers(1, 5), min_size=dims, max_size=dims)))
            dtype = np.dtype(draw(st.sampled_from(_DTYPES)))
            seed = draw(st.integers(0, 2**31))
            rng = np.random.default_rng(seed)
            if dtype.kind == "f":
                array = rng.normal(0, 1e3, shape).astype(dtype)
            else:
                info = np.iinfo(dtype)
                array = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
        extra = draw(st.lists(st.tuples(st.sampled_from(["OBSERVER", "EXPTIME", "FLAG", "NOTE"]),
                                        st.one_of(st.floats(-1e6, 1e6), st.integers(-1000, 1000), st.booleans(),
                                                  st.text(alphabet="abc xyz", max_size=10))),
                              max_size=3))
        hdus.append((kind, name, ver, array, extra))
    return hdus


def _write(hdus, path):
    out = []
    for kind, name, ver, array, extra in hdus:
        if kind == "primary":
            hdu = fits.PrimaryHDU(array)
        elif kind == "image":
            hdu = fits.ImageHDU(array)
        else:
            hdu = fits.BinTableHDU.from_columns([fits.Column("a", "E", array=np.arange(3.0))])
        if name is not None:
            hdu.header["EXTNAME"] = name
        if ver is not None:
            hdu.header["EXTVER"] = ver
        for key, value in extra:
            hdu.header[key] = (value, "a comment")
        out.append(hdu)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits.HDUList(out).writeto(path, overwrite=True)


def _queries(hdus):
    return [None, 0, 1, 2, 3, 7, -1, "SCI", "sci", "ERR", " LEAD", "PRIMARY", "NONE", ("SCI", 2), ("SCI", 1),
            ("ERR", 1)]


def _astropy_choice(path, query):
    """(index, data, header) of the HDU starpix.io picks, the pixels as astropy gives them; None where
    starpix.io refuses."""
    try:
        source = io_read_image(path, query)
    except StarpixError:
        return None
    index, header = source.index, source.header.copy()
    source.close()
    # memmap=False: starpix.io's memory map (mode='denywrite') refuses scaled data, astropy's values are meant
    with fits.open(path, memmap=False) as hdul:
        return index, hdul[index].data.copy(), header


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fits_files())
def test_read_image_picks_and_reads_as_starpix_io(tmp_path, hdus):
    path = str(tmp_path / "f.fits")
    _write(hdus, path)
    for query in _queries(hdus):
        expected = _astropy_choice(path, query)
        try:
            image = _fitsread.read_image(path, query)
        except _fitsread.Unsupported:
            if expected is not None:
                # refusing is allowed only for scaled pixels (no such thing here but the integer conventions)
                raise
            continue
        assert expected is not None, f"read {query!r} where starpix.io refuses"
        index, data, header = expected
        assert image.index == index and image.shape == data.shape
        got = np.asarray(image.data[...]) if image.data.ndim else image.data
        assert got.dtype.newbyteorder("=") == data.dtype.newbyteorder("="), (got.dtype, data.dtype)
        assert np.array_equal(got, data, equal_nan=True)
        for key in ("EXTNAME", "EXTVER", "OBSERVER", "EXPTIME", "FLAG", "NOTE", "NAXIS1"):
            value = image.header.get(key)
            assert value == header.get(key) and type(value) is type(header.get(key))
        assert [card.image for card in image.header.cards] == [card.image for card in header.cards]
        # a slice of a slice, and single pixels, as astropy gives them
        corner = tuple(slice(0, 2) for _ in data.shape)
        assert np.array_equal(image.data[corner], data[corner], equal_nan=True)
        first = (0,) * data.ndim
        assert image.data[first] == data[first] and type(image.data[first]) is type(data[first])


def _good_file(path, dtype="f4"):
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.arange(200, dtype=dtype).reshape(10, 20), name="SCI"),
                  fits.ImageHDU(np.ones((3, 3), np.int32), name="MASK")]).writeto(path)
    return path


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 3 * 2880 + 800 + 2880 - 1).filter(lambda keep: keep != 2880))  # 2880: a valid 1-HDU file
def test_a_cut_file_is_refused(tmp_path, keep):
    source = tmp_path / "whole.fits"
    if not source.exists():
        _good_file(str(source))
    content = source.read_bytes()
    assert keep < len(content)
    cut = tmp_path / f"cut{keep}.fits"
    cut.write_bytes(content[:keep])
    with pytest.raises(_fitsread.Unsupported):
        _fitsread.scan_file(str(cut))
    if keep < 4 * 2880 + 36:  # short of the last data (a missing final padding only is no error to astropy)
        with pytest.raises(StarpixError):  # and the astropy path gives the error
            io_read_image(str(cut), "MASK").close()


def test_files_that_need_astropy_are_refused(tmp_path):
    good = _good_file(str(tmp_path / "good.fits"))
    assert _fitsread.read_image(good).index == 1
    cases = {}
    with open(good, "rb") as handle:
        content = handle.read()
    cases["gzip"] = gzip.compress(content)
    cases["trailing"] = content + b"\0" * 2880
    cases["not fits"] = b"hello" * 1000
    for name, data in cases.items():
        (tmp_path / f"{name}.fits").write_bytes(data)
    scaled = tmp_path / "scaled.fits"
    hdu = fits.ImageHDU(np.arange(12, dtype=np.int16).reshape(3, 4))
    hdu.header["BSCALE"], hdu.header["BZERO"] = 2.0, 1.0
    hdu.header["EXTNAME"] = "SCI"
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(scaled)
    blank = tmp_path / "blank.fits"
    hdu = fits.ImageHDU(np.arange(12, dtype=np.int32).reshape(3, 4), name="SCI")
    hdu.header["BLANK"] = 3
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(blank)
    compressed = tmp_path / "compressed.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(np.ones((8, 8), np.float32), name="SCI")]).writeto(compressed)
    duplicated = tmp_path / "dup.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.ones((4, 4), np.float32), name="SCI")]).writeto(duplicated)
    raw = bytearray(duplicated.read_bytes())
    start = 2880 + 80 * 7  # after XTENSION..GCOUNT: EXTNAME becomes a second NAXIS2
    raw[start:start + 80] = fits.Card("NAXIS2", 4).image.encode()
    duplicated.write_bytes(bytes(raw))
    lower = tmp_path / "lower.fits"
    raw = bytearray(content)
    raw[2880 + 80 * 7:2880 + 80 * 8] = "crpix1  =                  5.0".ljust(80).encode()
    lower.write_bytes(bytes(raw))
    for path in [tmp_path / f"{name}.fits" for name in cases] + [scaled, blank, compressed, duplicated, lower]:
        with pytest.raises(_fitsread.Unsupported):
            _fitsread.read_image(str(path), "SCI")
    with pytest.raises(_fitsread.Unsupported):
        _fitsread.read_image(str(tmp_path / "missing.fits"))
    with pytest.raises(_fitsread.Unsupported):
        _fitsread.read_image(str(tmp_path))


def test_unsigned_conventions_are_astropys(tmp_path):
    for dtype in ("u2", "u4", "u8", "i1"):
        info = np.iinfo(dtype)
        array = np.array([[info.min, info.max, 0], [1, info.max - 1, info.min + 1]], dtype=dtype)
        path = str(tmp_path / f"{dtype}.fits")
        fits.HDUList([fits.PrimaryHDU(array)]).writeto(path)
        image = _fitsread.read_image(path)
        with fits.open(path) as hdul:
            expected = hdul[0].data.copy()
        assert image.data.dtype == expected.dtype
        assert np.array_equal(image.data[:, :], expected)
        assert image.data[1, 1] == expected[1, 1] and type(image.data[1, 1]) is type(expected[1, 1])


def test_named_layers(tmp_path):
    path = str(tmp_path / "seg.fits")
    table = fits.BinTableHDU.from_columns([fits.Column("a", "E", array=np.arange(3.0))], name="TAB")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.ones((4, 5), np.int32), name="clumps "),
                  table, fits.ImageHDU(np.zeros((4, 5), np.int32), name="OBJECTS"),
                  fits.ImageHDU(np.full((4, 5), 2, np.int32), name="CLUMPS")]).writeto(path)
    layers = _fitsread.read_named_images(path, ("CLUMPS", "OBJECTS", "SKY_STD"))
    assert layers["SKY_STD"] is None and layers["CLUMPS"].index == 1 and layers["OBJECTS"].index == 3
    assert np.array_equal(layers["CLUMPS"].data[:], np.ones((4, 5)))
    with pytest.raises(_fitsread.Unsupported):
        _fitsread.read_named_images(path, ("TAB",))


# ------------------------------------------------------------------------------------------ psf-stamp
def _scene(directory, wcs):
    """A small image with two stars, its segmentation, and a WCS: None, 'tan' or 'sip'."""
    rng = np.random.default_rng(5)
    ny, nx = 90, 80
    y, x = np.mgrid[0:ny, 0:nx]
    image = rng.normal(0, 1, (ny, nx))
    objects = np.zeros((ny, nx), np.int32)
    clumps = np.zeros((ny, nx), np.int32)
    for label, (sx, sy) in enumerate([(30.3, 40.6), (50.8, 52.2)], start=1):
        r2 = (x - sx) ** 2 + (y - sy) ** 2
        image += 300.0 * label * np.exp(-r2 / 8.0)
        objects[r2 < 64] = label
        clumps[r2 < 9] = 1
    header = fits.Header()
    if wcs is not None:
        header.update({"WCSAXES": 2, "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRPIX1": 40.5, "CRPIX2": 45.0,
                       "CRVAL1": 150.1, "CRVAL2": 2.2, "CD1_1": -2.5e-4, "CD1_2": 1e-6, "CD2_1": 2e-6,
                       "CD2_2": 2.5e-4, "RADESYS": "ICRS", "EQUINOX": 2000.0})
        header["CRVAL1"] = (150.1, "a comment that astropy keeps")
    if wcs == "sip":
        header["CTYPE1"], header["CTYPE2"] = "RA---TAN-SIP", "DEC--TAN-SIP"
        header.update({"A_ORDER": 2, "B_ORDER": 2, "A_2_0": 1.5e-6, "A_0_2": -2e-7, "A_1_1": 3e-7,
                       "B_2_0": -1e-7, "B_0_2": 4e-6, "B_1_1": 1.25e-7})
    image_path = os.path.join(directory, "img.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(image.astype(np.float32), header=header,
                                                   name="INPUT")]).writeto(image_path)
    seg_path = os.path.join(directory, "seg.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(clumps, name="CLUMPS"), fits.ImageHDU(objects, name="OBJECTS"),
                  fits.ImageHDU(np.ones((ny, nx), np.float32), name="SKY_STD")]).writeto(seg_path)
    return image_path, seg_path


def _cards_and_data(path):
    with fits.open(path, checksum=True) as hdul:
        assert len(hdul) == 2
        cards = [[(c.keyword, c.value, c.comment, c.image) for c in hdu.header.cards
                  if c.keyword not in ("CHECKSUM", "DATASUM")] for hdu in hdul]
        data = hdul[1].data.copy()
    return cards, data


@pytest.mark.parametrize("wcs", [None, "tan", "sip"])
@pytest.mark.parametrize("extra", [["-S", "SEG", "-n", "3,8"], ["-n", "2,6", "-N", "sigclip-mean", "-d"],
                                   ["-c", "900,900"]])
def test_fast_stamp_file_is_the_astropy_paths(cli, tmp_path, monkeypatch, wcs, extra):
    import starpix.cli.psf_stamp as command

    image_path, seg_path = _scene(str(tmp_path), wcs)
    extra = [seg_path if word == "SEG" else word for word in extra]
    argv = ["psf-stamp", image_path, "-h1", "-c", "31.3,41.6", "-W", "21,25", *extra, "-q"]
    calls = []
    real = command._run_single_fast

    def spy(args, options):
        calls.append(args.image)
        return real(args, options)

    monkeypatch.setattr(command, "_run_single_fast", spy)
    assert cli(*argv, "-o", str(tmp_path / "fast.fits"))[0] == 0
    assert calls  # the fast path ran (and did not fall back: it returned 0 itself)

    def refuse(args, options):
        raise _fitsread.Unsupported("test: take the astropy path")

    monkeypatch.setattr(command, "_run_single_fast", refuse)
    assert cli(*argv, "-o", str(tmp_path / "slow.fits"))[0] == 0
    fast_cards, fast_data = _cards_and_data(tmp_path / "fast.fits")
    slow_cards, slow_data = _cards_and_data(tmp_path / "slow.fits")
    assert fast_cards == slow_cards
    assert fast_data.dtype == slow_data.dtype and fast_data.tobytes() == slow_data.tobytes()
    keys = [card[0] for card in fast_cards[1]]
    assert ("CRPIX1" in keys) == (wcs is not None) and ("A_2_0" in keys) == (wcs == "sip")


def test_fast_path_reads_unsigned_and_returns_to_astropy_where_needed(cli, tmp_path, monkeypatch):
    """An unsigned 16-bit image is read fast (as astropy gives its values); a scaled one, and a WCS that moving
    CRPIX cannot shift (3 axes), go the astropy way."""
    import starpix.cli.psf_stamp as command
    from starpix.stamp import psf_stamp

    rng = np.random.default_rng(1)
    data = rng.integers(0, 60000, (40, 30)).astype(np.uint16)
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data)]).writeto(tmp_path / "u16.fits")
    assert cli("psf-stamp", tmp_path / "u16.fits", "-c", "12.4,20.7", "-W", "9", "-n", "1,3",
               "-o", tmp_path / "o.fits", "-q")[0] == 0
    expected, _ = psf_stamp(data, (11.4, 19.7), width=9, normradii=(1, 3))
    with fits.open(tmp_path / "o.fits") as hdul:
        assert np.array_equal(hdul[1].data, expected, equal_nan=True)

    scaled = fits.ImageHDU(data.astype(np.int16))
    scaled.header["BSCALE"], scaled.header["BZERO"] = 0.5, 10.0
    fits.HDUList([fits.PrimaryHDU(), scaled]).writeto(tmp_path / "scaled.fits")
    cube_header = fits.Header({"WCSAXES": 3, "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CTYPE3": "FREQ"})
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data.astype(np.float32), header=cube_header)]).writeto(
        tmp_path / "wcs3.fits")
    taken = []
    monkeypatch.setattr(command, "_run_single_astropy", lambda args, options: taken.append(args.image) or 0)
    for name in ("scaled.fits", "wcs3.fits"):
        assert cli("psf-stamp", tmp_path / name, "-c", "12.4,20.7", "-W", "9", "-o", tmp_path / f"o_{name}")[0] == 0
    assert taken == [str(tmp_path / "scaled.fits"), str(tmp_path / "wcs3.fits")]
    assert not (tmp_path / "o_scaled.fits").exists() and not (tmp_path / "o_wcs3.fits").exists()


def test_single_stamp_imports_no_astropy(tmp_path):
    """The benchmark's command (centring, --segment, --normradii, a SIP WCS) runs without astropy (or
    scipy/numba), in a fresh process."""
    image_path, seg_path = _scene(str(tmp_path), "sip")
    out = str(tmp_path / "o.fits")
    code = ("import sys\nfrom starpix.cli.main import main\n"
            f"status = main(['psf-stamp', {image_path!r}, '-h1', '--mode=img', '--widthinpix=21,21', "
            f"'--normradii=3,8', '--center=31.3,41.6', '--segment={seg_path}', '-o', {out!r}, '-q'])\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('astropy', 'scipy', 'numba'))\n"
            "print(status, heavy)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "0 []", result.stdout + result.stderr
    with fits.open(out, checksum=True) as hdul:
        assert hdul[1].data.shape == (21, 21) and hdul[1].header["OLABEL"] == 1
