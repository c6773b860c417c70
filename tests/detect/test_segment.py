"""Segmentation into objects and clumps (Gnuastro Segment's layout), against simulated truth and Gnuastro."""

import os
import shutil
import subprocess

import numpy as np
import pytest
from astropy.io import fits

from conftest import assert_no_stray_files
from starpix.detect import SEGMENT_DEFAULTS, Segmentation, read_segmentation, segment
from starpix.errors import FormatError, InputFileError, InvalidParameterError, OutputExistsError
from starpix.simulate import gaussian_star_image, make_star_field, make_wcs

FWHM = 3.0
SKY, NOISE = 100.0, 5.0


def _predicted_sn(flux, fwhm=FWHM, kernel_fwhm=SEGMENT_DEFAULTS["kernel_fwhm"], noise=NOISE):
    """Peak S/N of a Gaussian star in the image smoothed by a Gaussian kernel (analytic)."""
    to_sigma = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    s_star, s_kern = fwhm * to_sigma, kernel_fwhm * to_sigma
    peak = flux / (2.0 * np.pi * (s_star**2 + s_kern**2))
    smoothed_noise = noise / (2.0 * np.sqrt(np.pi) * s_kern)  # sqrt(sum k^2) of a normalized 2-D Gaussian
    return peak / smoothed_noise


@pytest.fixture(scope="module")
def field():
    image, truth = make_star_field((256, 256), 40, fwhm=FWHM, flux=(100.0, 30000.0), background=SKY,
                                   noise=NOISE, seed=7)
    return image, truth, segment(image)


def _isolated(truth, distance):
    x, y = np.asarray(truth["x_0"]), np.asarray(truth["y_0"])
    d = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    np.fill_diagonal(d, np.inf)
    return d.min(axis=1) > distance


def _pixels(truth):
    return np.rint(np.asarray(truth["y_0"])).astype(int), np.rint(np.asarray(truth["x_0"])).astype(int)


def test_every_star_above_threshold_is_in_an_object(field):
    image, truth, seg = field
    yi, xi = _pixels(truth)
    sn = _predicted_sn(np.asarray(truth["flux"]))
    bright = sn > 2 * SEGMENT_DEFAULTS["snr"]
    assert bright.sum() >= 25
    assert np.all(seg.objects[yi[bright], xi[bright]] > 0)
    # every object holds at least one simulated star (no false detections on this field)
    labelled = set(seg.objects[yi, xi].tolist()) - {0}
    assert labelled == set(range(1, seg.n_objects + 1))


def test_isolated_stars_get_one_clump(field):
    image, truth, seg = field
    yi, xi = _pixels(truth)
    sn = _predicted_sn(np.asarray(truth["flux"]))
    chosen = _isolated(truth, 15.0) & (sn > 3 * SEGMENT_DEFAULTS["snr"] + SEGMENT_DEFAULTS["clump_snr"])
    assert chosen.sum() >= 10
    labels = seg.objects[yi[chosen], xi[chosen]]
    assert np.all(seg.clumps[yi[chosen], xi[chosen]] == 1)
    assert np.all(seg.clumps_per_object()[labels - 1] == 1)


def test_label_semantics(field):
    _, _, seg = field
    assert seg.clumps.dtype == np.int32 and seg.objects.dtype == np.int32
    assert seg.sky_std.dtype == np.float32
    assert np.array_equal(seg.clumps == 0, seg.objects == 0)
    assert seg.clumps.min() >= -1
    labels = np.unique(seg.objects)
    assert np.array_equal(labels, np.arange(seg.n_objects + 1))
    # the clumps of each object are numbered 1..n without gaps
    pairs = np.unique(np.stack([seg.objects[seg.clumps > 0], seg.clumps[seg.clumps > 0]]), axis=1)
    for label in np.unique(pairs[0]):
        numbers = pairs[1][pairs[0] == label]
        assert np.array_equal(numbers, np.arange(1, numbers.size + 1))
    assert seg.n_clumps == pairs.shape[1]


def test_blended_pair_is_one_object_with_two_clumps():
    rng = np.random.default_rng(3)
    shape = (64, 80)
    stars = gaussian_star_image(shape, [34.0, 42.0], [32.0, 32.4], [6000.0, 4000.0], fwhm=FWHM, dtype=np.float64)
    far = gaussian_star_image(shape, [10.0], [10.0], [3000.0], fwhm=FWHM, dtype=np.float64)
    image = stars + far + SKY + rng.normal(0.0, NOISE, shape)
    seg = segment(image, box_size=32)
    a, b, c = seg.objects[32, 34], seg.objects[32, 42], seg.objects[10, 10]
    assert a > 0 and a == b and c > 0 and c != a
    assert seg.n_objects == 2
    assert seg.clumps[32, 34] == 1 and seg.clumps[32, 42] == 2  # brightest peak first
    assert seg.clumps[10, 10] == 1
    assert seg.clumps_per_object()[a - 1] == 2
    # the input is not modified
    assert np.array_equal(image, stars + far + SKY + np.random.default_rng(3).normal(0.0, NOISE, shape))


def test_separate_stars_are_separate_objects():
    rng = np.random.default_rng(4)
    shape = (64, 96)
    image = gaussian_star_image(shape, [30.0, 60.0], [32.0, 32.0], [5000.0, 5000.0], fwhm=FWHM,
                                dtype=np.float64) + SKY + rng.normal(0.0, NOISE, shape)
    seg = segment(image, box_size=32)
    assert seg.n_objects == 2 and seg.objects[32, 30] != seg.objects[32, 60]
    assert seg.clumps[32, 30] == 1 and seg.clumps[32, 60] == 1


@pytest.mark.parametrize(("gradient", "median_tol", "max_tol"), [((0.0, 0.0), 0.03, 0.1), ((0.01, -0.005), 0.05, 0.2)])
def test_sky_and_noise_recovered(gradient, median_tol, max_tol):
    rng = np.random.default_rng(5)
    shape = (256, 256)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    sky = SKY + gradient[0] * xx + gradient[1] * yy
    _, truth = make_star_field(shape, 40, fwhm=FWHM, noise=0.0, background=0.0, seed=8)
    stars = gaussian_star_image(shape, truth["x_0"], truth["y_0"], truth["flux"], fwhm=FWHM, dtype=np.float64)
    image = stars + sky + rng.normal(0.0, NOISE, shape)
    seg = segment(image)
    assert seg.sky.shape == shape and seg.sky_std.shape == shape
    # sky within a few hundredths of the noise (median) and a fifth of it at worst (the corners of a gradient)
    assert np.median(np.abs(seg.sky - sky)) < median_tol * NOISE
    assert np.max(np.abs(seg.sky - sky)) < max_tol * NOISE
    assert abs(np.median(seg.sky_std) / NOISE - 1) < 0.01
    assert np.all(np.abs(seg.sky_std / NOISE - 1) < 0.03)
    np.testing.assert_allclose(seg.input_no_sky, (image - seg.sky).astype(np.float32), atol=1e-3)


def test_pure_noise_has_no_objects():
    rng = np.random.default_rng(6)
    seg = segment(SKY + rng.normal(0.0, NOISE, (300, 300)))
    assert seg.n_objects == 0 and seg.n_clumps == 0
    assert not seg.clumps.any()


def test_mask_and_nan_are_never_detected():
    image, truth = make_star_field((128, 128), 10, fwhm=FWHM, flux=(5000.0, 20000.0), seed=9)
    image = image.astype(np.float64)
    yi, xi = _pixels(truth)
    mask = np.zeros(image.shape, bool)
    mask[yi[0] - 3: yi[0] + 4, xi[0] - 3: xi[0] + 4] = True
    image[yi[1], xi[1]] = np.nan
    seg = segment(image, mask=mask)
    assert not seg.objects[mask].any() and not seg.clumps[mask].any()
    assert seg.objects[yi[1], xi[1]] == 0 and np.isnan(seg.input_no_sky[yi[1], xi[1]])
    assert np.isfinite(seg.sky).all() and np.isfinite(seg.sky_std).all()


@pytest.mark.parametrize(("options", "message"), [
    ({"snr": 0}, "snr must be > 0"),
    ({"snr": "x"}, "snr must be a number"),
    ({"grow_snr": 4.0}, "grow_snr (4) must not exceed snr (3)"),
    ({"min_area": 0}, "min_area must be a positive integer"),
    ({"min_area": 2.5}, "min_area must be a positive integer"),
    ({"clump_snr": -1}, "clump_snr must be >= 0"),
    ({"kernel_fwhm": float("nan")}, "kernel_fwhm must be > 0"),
    ({"box_size": (0, 5)}, "box_size must be one or two positive integers"),
    ({"mask": np.zeros((3, 3), bool)}, "mask has shape (3, 3)"),
])
def test_bad_options(options, message):
    with pytest.raises(InvalidParameterError) as info:
        segment(np.zeros((32, 32)), **options)
    assert message in str(info.value)


def test_bad_images():
    with pytest.raises(InvalidParameterError, match="2-D"):
        segment(np.zeros((4, 4, 4)))
    with pytest.raises(InvalidParameterError, match="no finite"):
        segment(np.full((16, 16), np.nan))


def test_write_read_round_trip(field, tmp_path):
    image, _, seg = field
    wcs = make_wcs(image.shape)
    seg = Segmentation(seg.input_no_sky, seg.sky, seg.sky_std, seg.clumps, seg.objects, wcs=wcs,
                       clump_snr=seg.clump_snr, options=seg.options)
    path = tmp_path / "seg.fits"
    seg.write(path)
    with fits.open(path) as hdul:
        assert [h.name for h in hdul] == ["SEGMENT-CONFIG", "INPUT-NO-SKY", "CLUMPS", "OBJECTS", "SKY_STD", "SKY"]
        assert hdul[0].data is None
        assert hdul["CLUMPS"].header["NUMLABS"] == seg.n_clumps
        assert hdul["CLUMPS"].header["CLUMPSN"] == SEGMENT_DEFAULTS["clump_snr"]
        assert hdul["OBJECTS"].header["NUMLABS"] == seg.n_objects
        assert hdul["OBJECTS"].header["BUNIT"] == "labels"
        assert hdul["OBJECTS"].header["BITPIX"] == 32 and hdul["SKY_STD"].header["BITPIX"] == -32
        assert hdul["SKY_STD"].header["MEDSTD"] == pytest.approx(np.median(seg.sky_std))
        assert hdul[0].header["SNR"] == SEGMENT_DEFAULTS["snr"]
    back = read_segmentation(path)
    for name in ("input_no_sky", "sky", "sky_std", "clumps", "objects"):
        assert np.array_equal(getattr(back, name), getattr(seg, name)), name
    assert back.clumps.dtype == np.int32 and back.sky_std.dtype == np.float32
    assert back.wcs is not None
    np.testing.assert_allclose(back.wcs.pixel_to_world_values(10.0, 20.0), wcs.pixel_to_world_values(10.0, 20.0))
    assert back.n_objects == seg.n_objects and back.clump_snr == seg.clump_snr
    with fits.open(path) as hdul:  # an open HDUList works too, and is left open
        again = read_segmentation(hdul)
        assert np.array_equal(again.objects, seg.objects)
        assert hdul[1].data is not None
    with pytest.raises(OutputExistsError):
        seg.write(path)
    seg.write(path, overwrite=True)
    assert_no_stray_files(tmp_path, allowed=["seg.fits"])


def _write(path, hdus):
    fits.HDUList([fits.PrimaryHDU(), *hdus]).writeto(path)
    return path


def test_read_errors(tmp_path):
    labels = np.ones((8, 8), np.int32)
    only_objects = _write(tmp_path / "a.fits", [fits.ImageHDU(labels, name="OBJECTS")])
    with pytest.raises(FormatError) as info:
        read_segmentation(only_objects)
    assert "a.fits" in str(info.value) and "no CLUMPS HDU" in str(info.value)
    only_clumps = _write(tmp_path / "b.fits", [fits.ImageHDU(labels, name="CLUMPS")])
    with pytest.raises(FormatError, match="no OBJECTS HDU"):
        read_segmentation(only_clumps)
    mismatched = _write(tmp_path / "c.fits", [fits.ImageHDU(labels, name="CLUMPS"),
                                              fits.ImageHDU(labels[:4], name="OBJECTS")])
    with pytest.raises(FormatError, match="shape"):
        read_segmentation(mismatched)
    bad_std = _write(tmp_path / "d.fits", [fits.ImageHDU(labels, name="CLUMPS"), fits.ImageHDU(labels, name="OBJECTS"),
                                           fits.ImageHDU(np.ones((3, 3), np.float32), name="SKY_STD")])
    with pytest.raises(FormatError, match="SKY_STD has shape"):
        read_segmentation(bad_std)
    minimal = _write(tmp_path / "e.fits", [fits.ImageHDU(labels, name="clumps"), fits.ImageHDU(labels, name="objects")])
    seg = read_segmentation(minimal)
    assert seg.sky_std is None and seg.sky is None and seg.input_no_sky is None and seg.n_objects == 1
    (tmp_path / "f.fits").write_text("not fits")
    with pytest.raises(InputFileError):
        read_segmentation(tmp_path / "f.fits")
    with pytest.raises(InputFileError, match="no such file"):
        read_segmentation(tmp_path / "missing.fits")


GNUASTRO = shutil.which("astnoisechisel") and shutil.which("astsegment")


@pytest.fixture(scope="module")
def gnuastro_segment(tmp_path_factory):
    if not GNUASTRO:
        pytest.skip("Gnuastro's astnoisechisel/astsegment are not installed")
    directory = tmp_path_factory.mktemp("gnuastro")
    image, truth = make_star_field((200, 240), 25, fwhm=FWHM, flux=(1000.0, 30000.0), seed=11)
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(image)]).writeto(directory / "img.fits")
    for command in (["astnoisechisel", "img.fits", "-h1", "-o", "nc.fits", "-q"],
                    ["astsegment", "nc.fits", "-o", "seg.fits", "-q"]):
        subprocess.run(command, cwd=directory, check=True, capture_output=True)
    return image, truth, directory / "seg.fits"


def test_reads_gnuastro_segment_output(gnuastro_segment):
    image, truth, path = gnuastro_segment
    gnu = read_segmentation(path)
    assert gnu.sky is None and gnu.input_no_sky is not None and gnu.sky_std is not None
    assert gnu.clump_snr is not None and gnu.clumps.dtype == np.int32
    with fits.open(path) as hdul:
        assert gnu.n_objects == hdul["OBJECTS"].header["NUMLABS"]
        assert gnu.n_clumps == hdul["CLUMPS"].header["NUMLABS"]
    ours = segment(image)
    yi, xi = _pixels(truth)
    bright = _predicted_sn(np.asarray(truth["flux"])) > 10
    assert np.all(gnu.objects[yi[bright], xi[bright]] > 0)
    assert np.all(ours.objects[yi[bright], xi[bright]] > 0)
    # same label semantics as Gnuastro's own output
    assert np.array_equal(gnu.clumps == 0, gnu.objects == 0) and gnu.clumps.min() == -1
    assert abs(ours.n_objects - gnu.n_objects) <= 0.2 * gnu.n_objects
    # detected pixels overlap broadly, and the noise maps agree
    both = ((ours.objects > 0) & (gnu.objects > 0)).sum()
    assert both > 0.9 * (ours.objects > 0).sum()
    assert np.median(ours.sky_std) == pytest.approx(np.median(gnu.sky_std), rel=0.03)
    np.testing.assert_allclose(np.median(ours.input_no_sky), np.median(gnu.input_no_sky), atol=0.1 * NOISE)


@pytest.mark.skipif(not shutil.which("astscript-psf-stamp"), reason="Gnuastro's astscript-psf-stamp is not installed")
def test_gnuastro_psf_stamp_reads_our_output(tmp_path):
    image, truth = make_star_field((120, 120), 6, fwhm=FWHM, flux=(5000.0, 20000.0), seed=12)
    seg = segment(image)
    seg.write(tmp_path / "seg.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(seg.input_no_sky)]).writeto(tmp_path / "img.fits")
    star = int(np.argmax(truth["flux"]))
    x, y = float(truth["x_0"][star]), float(truth["y_0"][star])
    subprocess.run(["astscript-psf-stamp", "img.fits", "-h1", "--mode=img", f"--center={x + 1},{y + 1}",
                    "--widthinpix=21,21", "--segment=seg.fits", "--normradii=3,6", "-o", "stamp.fits", "-q"],
                   cwd=tmp_path, check=True, capture_output=True, env={**os.environ, "TMPDIR": str(tmp_path)})
    with fits.open(tmp_path / "stamp.fits") as hdul:
        header = hdul[1].header if len(hdul) > 1 else hdul[0].header
        assert header["OLABEL"] == seg.objects[int(round(y)), int(round(x))]
        assert header["CLABEL"] == seg.clumps[int(round(y)), int(round(x))]
