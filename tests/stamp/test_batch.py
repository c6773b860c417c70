"""psf_stamps: a batch equals psf_stamp in a loop, serially and on processes; StampSet.write layouts."""

import os

import numpy as np
import pytest
from astropy.io import fits

from starpix.errors import FormatError, InvalidParameterError, OutputExistsError
from starpix.stamp import StampSet, psf_stamp, psf_stamps
from starpix.stamp._batch import read_segment_file

STARS = [(20.3, 30.6), (60.0, 25.25), (45.7, 70.1), (90.2, 95.8), (5.4, 110.6)]


def make_field(directory, shape=(121, 101), seed=4):
    """An image of Gaussian stars, a hand-made segmentation (objects: discs around the stars, clumps: their
    cores) and a constant SKY_STD, written as Gnuastro-style files; returns (image path, seg path, arrays)."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    y, x = np.mgrid[0:ny, 0:nx]
    image = rng.normal(0.0, 1.0, shape)
    objects = np.zeros(shape, np.int32)
    clumps = np.zeros(shape, np.int32)
    for label, (sx, sy) in enumerate(STARS, start=1):
        r2 = (x - sx) ** 2 + (y - sy) ** 2
        image += 400.0 * label * np.exp(-r2 / (2 * 2.0**2))
        objects[(r2 < 9.0**2) & (objects == 0)] = label
        clumps[(r2 < 3.0**2) & (objects == label)] = 1
    clumps[(objects > 0) & (clumps == 0)] = -1
    image = image.astype(np.float32)
    header = fits.Header({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRPIX1": 50.0, "CRPIX2": 60.0,
                          "CRVAL1": 150.0, "CRVAL2": 2.0, "CDELT1": -1e-4, "CDELT2": 1e-4})
    image_path = os.path.join(directory, "field.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(image, header=header)]).writeto(image_path)
    seg_path = os.path.join(directory, "field_seg.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(image, name="INPUT"), fits.ImageHDU(clumps, name="CLUMPS"),
                  fits.ImageHDU(objects, name="OBJECTS"),
                  fits.ImageHDU(np.ones(shape, np.float32), name="SKY_STD")]).writeto(seg_path)
    return image_path, seg_path, dict(image=image, clumps=clumps, objects=objects, header=header)


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    return make_field(tmp_path_factory.mktemp("stampfield"))


OPTIONS = dict(width=(31, 41), normradii=(2, 6), normop="sigclip-mean", axis_ratio=0.8, position_angle=20.0,
               snthresh=2.0)


def _loop(image, segment, centers, **options):
    return [psf_stamp(image, c, segment=segment, **options) for c in centers]


def test_batch_equals_loop_serial_and_processes(field):
    image_path, seg_path, arrays = field
    segment = {"clumps": arrays["clumps"], "objects": arrays["objects"],
               "sky_std": np.ones(arrays["image"].shape, np.float32)}
    expected = _loop(arrays["image"], segment, STARS, **OPTIONS)
    serial = psf_stamps(image_path, STARS, segment=seg_path, **OPTIONS)
    in_memory = psf_stamps(arrays["image"], np.array(STARS), segment=segment, **OPTIONS)
    processes = psf_stamps(image_path, STARS, segment=seg_path, executor="processes", max_workers=2,
                           chunksize=2, **OPTIONS)
    assert serial.stamps.shape == (5, 41, 31) and serial.stamps.dtype == np.float32
    for result in (serial, in_memory, processes):
        for (stamp, header), k in zip(expected, range(len(STARS))):
            np.testing.assert_array_equal(result.stamps[k], stamp)  # bit for bit, NaN included
            assert result.headers[k]["NORMVAL"] == header["NORMVAL"]
            assert result.headers[k]["OLABEL"] == header["OLABEL"] == k + 1
    table = serial.table
    assert list(table.colnames) == ["id", "x", "y", "normval", "clabel", "olabel"]
    assert list(table["id"]) == [1, 2, 3, 4, 5]
    np.testing.assert_array_equal(table["x"], [s[0] for s in STARS])
    np.testing.assert_array_equal(table["olabel"], [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(table["clabel"], [1, 1, 1, 1, 1])
    np.testing.assert_allclose(table["normval"], [h["NORMVAL"] for _, h in expected], rtol=0)
    # the WCS of the file reaches every stamp
    assert serial.headers[0]["CTYPE1"] == "RA---TAN"


def test_wcs_mode_equals_img_mode(field):
    image_path, _, arrays = field
    from astropy.wcs import WCS

    wcs = WCS(arrays["header"])
    sky = wcs.pixel_to_world(np.array([s[0] for s in STARS]), np.array([s[1] for s in STARS]))
    by_sky = psf_stamps(image_path, sky, mode="wcs", width=21, normradii=(2, 5))
    px, py = wcs.world_to_pixel(sky)  # img mode at the centre astropy computes
    by_pixel = psf_stamps(image_path, np.column_stack([px, py]), width=21, normradii=(2, 5))
    np.testing.assert_array_equal(by_sky.stamps, by_pixel.stamps)
    np.testing.assert_allclose(by_sky.table["ra"].value, sky.ra.deg)
    assert by_sky.table["clabel"].mask.all()  # no segmentation: no labels


def test_write_cube_and_files(field, tmp_path):
    image_path, seg_path, _ = field
    stamps = psf_stamps(image_path, STARS[:3], segment=seg_path, width=15, normradii=(2, 5))
    cube = tmp_path / "stamps.fits"
    assert stamps.write(cube) == [str(cube)]
    with fits.open(cube) as hdul:
        np.testing.assert_array_equal(hdul[0].data, stamps.stamps)
        assert hdul[0].header["EXTNAME"] == "STAMPS" and hdul[0].header["NSTAMPS"] == 3
        assert hdul[0].header["NORMRMAX"] == 5.0
        catalog = hdul["CATALOG"].data
        np.testing.assert_array_equal(catalog["x"], [s[0] for s in STARS[:3]])
        np.testing.assert_array_equal(catalog["olabel"], [1, 2, 3])
    with pytest.raises(OutputExistsError):
        stamps.write(cube)
    directory = tmp_path / "out"
    written = stamps.write(directory)
    assert [os.path.basename(p) for p in written] == [
        "field_stamp_21.3_31.6.fits",
        "field_stamp_61_26.25.fits", "field_stamp_46.7_71.1.fits"]
    with fits.open(written[1]) as hdul:
        assert hdul[0].data is None
        np.testing.assert_array_equal(hdul[1].data, stamps.stamps[1])
        assert hdul[1].header["NORMVAL"] == stamps.headers[1]["NORMVAL"]
    before = sorted(os.listdir(directory))
    with pytest.raises(OutputExistsError, match="already exists"):
        stamps.write(directory)
    assert sorted(os.listdir(directory)) == before
    stamps.write(directory, overwrite=True)
    assert stamps.file_names(base="b", texts=[("1", "2"), ("3", "4"), ("5", "6")])[2] == "b_stamp_5_6.fits"


def test_bad_input(field, tmp_path):
    image_path, seg_path, arrays = field
    with pytest.raises(InvalidParameterError, match="row 1"):
        psf_stamps(image_path, [(1, 2), (np.nan, 3)])
    with pytest.raises(InvalidParameterError, match="centers"):
        psf_stamps(image_path, np.zeros((3, 3)))
    with pytest.raises(InvalidParameterError, match="normradii"):
        psf_stamps(image_path, STARS, normradii=(5, 5))
    with pytest.raises(InvalidParameterError, match="normop"):
        psf_stamps(image_path, STARS, normop="mode")
    with pytest.raises(InvalidParameterError, match="executor"):
        psf_stamps(image_path, STARS, executor="cluster")
    bad_seg = tmp_path / "bad_seg.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(arrays["clumps"], name="CLUMPS")]).writeto(bad_seg)
    with pytest.raises(FormatError, match="OBJECTS missing"):
        psf_stamps(image_path, STARS, segment=bad_seg)
    small = tmp_path / "small_seg.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(arrays["clumps"][:50], name="CLUMPS"),
                  fits.ImageHDU(arrays["objects"][:50], name="OBJECTS")]).writeto(small)
    with pytest.raises(FormatError, match="pixel-aligned"):
        psf_stamps(image_path, STARS, segment=small)
    twice = psf_stamps(image_path, [STARS[0], STARS[0]], width=9)
    with pytest.raises(InvalidParameterError, match="same position twice"):
        twice.write(tmp_path / "dup")
    assert not (tmp_path / "dup").exists()


def test_segment_layers_are_memory_mapped(field):
    _, seg_path, arrays = field
    layers = read_segment_file(seg_path)
    try:
        assert not layers["objects"].flags.owndata  # a view of the mapped file, not a copy
        np.testing.assert_array_equal(layers["objects"], arrays["objects"])
    finally:
        layers.close()
    assert isinstance(psf_stamps(np.zeros((9, 9)), [(4, 4)]), StampSet)
