"""starpix.stamp.psf_stamp: wcs mode, the Gnuastro bugs starpix fixes, S/N connectivity, bad input."""

import math

import numpy as np
import pytest
from astropy.io import fits

from starpix.errors import FormatError, InvalidParameterError, NoWCSError
from starpix.stamp import NORMOPS, psf_stamp


def _star_image(shape=(121, 121), stars=((60.3, 55.6, 2e4),), noise=0.0, seed=1, sky=0.0):
    """Gaussian stars (sigma 1.3 px) sampled at pixel centres, plus optional noise."""
    ny, nx = shape
    y, x = np.mgrid[:ny, :nx]
    image = np.full(shape, sky, dtype=np.float64)
    for sx, sy, flux in stars:
        image += flux / (2 * np.pi * 1.3 ** 2) * np.exp(-((x - sx) ** 2 + (y - sy) ** 2) / (2 * 1.3 ** 2))
    if noise:
        image += np.random.default_rng(seed).normal(0, noise, shape)
    return image


def _centroid(stamp):
    ny, nx = stamp.shape
    y, x = np.mgrid[:ny, :nx]
    good = np.isfinite(stamp)
    weights = np.where(good, stamp, 0.0)
    return (weights * x).sum() / weights.sum(), (weights * y).sum() / weights.sum()


def _wcs(shape):
    from astropy.wcs import WCS

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [30.0, -20.0]
    wcs.wcs.crpix = [shape[1] / 2, shape[0] / 2]
    wcs.wcs.cd = [[-1.2e-4, 3e-5], [3e-5, 1.2e-4]]
    return wcs


# ------------------------------------------------------------------ basic behaviour
def test_centring_puts_star_on_central_pixel():
    image = _star_image()
    stamp, header = psf_stamp(image, (60.3, 55.6), width=31)
    assert stamp.shape == (31, 31) and stamp.dtype == np.float32
    cx, cy = _centroid(stamp)
    assert cx == pytest.approx(15.0, abs=0.02) and cy == pytest.approx(15.0, abs=0.02)
    # one NaN edge per shifted axis: frac 0.3 -> last column, frac 0.6 -> first row
    assert np.isnan(stamp[:, -1]).all() and np.isnan(stamp[0, :]).all()
    assert np.isfinite(stamp[1:, :-1]).all()
    assert header["NORMVAL"] == 1.0
    # flux conserved by the pixel mixing
    assert np.nansum(stamp) == pytest.approx(image.sum(), rel=1e-3)


def test_normalization_by_ring_medians():
    image = _star_image()
    stamp, header = psf_stamp(image, (60.3, 55.6), width=41, normradii=(2, 6), centering=False)
    # independent: rings floor(r) around the central pixel of the (uncentred) stamp
    raw, _ = psf_stamp(image, (60.3, 55.6), width=41, centering=False)
    y, x = np.mgrid[:41, :41]
    ring = np.floor(np.hypot(x - 20, y - 20))
    medians = [np.median(raw[ring == k]) for k in range(2, 6)]
    assert header["NORMVAL"] == pytest.approx(np.median(medians), rel=1e-6)
    np.testing.assert_allclose(stamp, raw / np.median(medians), rtol=1e-6, atol=1e-9 * np.nanmax(stamp))


def test_wcs_mode_equals_img_mode():
    image = _star_image(noise=1.0)
    wcs = _wcs(image.shape)
    ra, dec = 30.001, -19.9993
    x, y = wcs.all_world2pix(ra, dec, 0)
    img_stamp, img_header = psf_stamp(image, (float(x), float(y)), width=31, normradii=(3, 8), wcs=wcs)
    for center in ((ra, dec),):
        wcs_stamp, wcs_header = psf_stamp(image, center, mode="wcs", width=31, normradii=(3, 8),
                                          header=wcs.to_header())
        np.testing.assert_array_equal(wcs_stamp, img_stamp)
        assert wcs_header["NORMVAL"] == img_header["NORMVAL"]
    from astropy.coordinates import SkyCoord
    from astropy.wcs import WCS

    stamp, header = psf_stamp(image, SkyCoord(ra, dec, unit="deg"), mode="wcs", width=31, wcs=wcs)
    # the stamp's central pixel maps to the requested sky position
    sky = WCS(header).all_pix2world([[15.0, 15.0]], 0)[0]
    np.testing.assert_allclose(sky, [ra, dec], atol=1e-9)


def test_memmap_input(tmp_path):
    image = _star_image().astype(np.float32)
    path = tmp_path / "img.fits"
    fits.writeto(path, image)
    with fits.open(path, memmap=True) as hdul:
        stamp, _ = psf_stamp(hdul[0].data, (60.3, 55.6), width=21, normradii=(2, 5))
    expected, _ = psf_stamp(image, (60.3, 55.6), width=21, normradii=(2, 5))
    np.testing.assert_array_equal(stamp, expected)


@pytest.mark.parametrize("normop", NORMOPS)
def test_every_normop_gives_a_finite_value(normop):
    image = _star_image(noise=1.0, sky=50.0)
    stamp, header = psf_stamp(image, (60.3, 55.6), width=41, normradii=(3, 12), normop=normop)
    assert math.isfinite(header["NORMVAL"]) and header["NORMVAL"] > 0
    assert np.nanmax(stamp) > 0


# ------------------------------------------------------------------ Gnuastro bugs fixed
def test_integer_centre_is_not_shifted():
    """Gnuastro shifts a stamp with an exactly integer centre by one pixel; starpix does not."""
    image = _star_image(stars=((60.0, 55.0, 2e4),))
    stamp, _ = psf_stamp(image, (60, 55), width=31)
    assert np.isfinite(stamp).all()  # no NaN edge: nothing was shifted
    assert np.unravel_index(np.argmax(stamp), stamp.shape) == (15, 15)
    cx, cy = _centroid(stamp)
    assert cx == pytest.approx(15.0, abs=1e-5) and cy == pytest.approx(15.0, abs=1e-5)
    uncentred, _ = psf_stamp(image, (60, 55), width=31, centering=False)
    np.testing.assert_array_equal(stamp, uncentred)


def test_even_width_at_left_bottom_edge():
    """Gnuastro puts the star one pixel off with an even width at the left/bottom edge."""
    image = _star_image(stars=((6.3, 7.4, 2e4),))
    even, _ = psf_stamp(image, (6.3, 7.4), width=30)
    odd, _ = psf_stamp(image, (6.3, 7.4), width=31)
    assert even.shape == (31, 31)
    np.testing.assert_array_equal(np.isnan(even), np.isnan(odd))
    np.testing.assert_array_equal(even[np.isfinite(even)], odd[np.isfinite(odd)])
    cx, cy = _centroid(even)
    assert cx == pytest.approx(15.0, abs=0.02) and cy == pytest.approx(15.0, abs=0.02)


def test_stamp_wider_than_image_is_centred():
    """Gnuastro places a stamp wider than the image (width - size) / 2 pixels off-centre."""
    image = _star_image(shape=(51, 51), stars=((25.6, 24.4, 2e4),))
    stamp, _ = psf_stamp(image, (25.6, 24.4), width=101)
    assert stamp.shape == (101, 101)
    cx, cy = _centroid(stamp)
    assert cx == pytest.approx(50.0, abs=0.02) and cy == pytest.approx(50.0, abs=0.02)
    # the finite region is the image, moved by the centring offset
    rows, cols = np.nonzero(np.isfinite(stamp))
    assert cols.min() == 50 - 25 and rows.min() == 50 - 24


def test_normalization_ring_centred_when_rmax_reaches_half_the_stamp():
    """Gnuastro centres the rings one pixel low when rmax >= (width - 1) / 2."""
    image = _star_image(noise=0.5, sky=10.0)
    stamp, header = psf_stamp(image, (60.3, 55.6), width=31, normradii=(10, 16), centering=False)
    raw, _ = psf_stamp(image, (60.3, 55.6), width=31, centering=False)
    y, x = np.mgrid[:31, :31]
    ring = np.floor(np.hypot(x - 15, y - 15))
    medians = [np.median(raw[(ring == k) & np.isfinite(raw)]) for k in range(10, 16)]
    assert header["NORMVAL"] == pytest.approx(np.median(medians), rel=1e-6)


def test_default_centre_of_odd_image():
    """Gnuastro's default centre of an odd-sized image is one pixel low; starpix takes the middle pixel."""
    image = _star_image(shape=(101, 101), stars=((50.0, 50.0, 2e4),))
    stamp, header = psf_stamp(image, width=21)
    assert (header["STAMPX"], header["STAMPY"]) == (50.0, 50.0)
    assert np.unravel_index(np.argmax(stamp), stamp.shape) == (10, 10)
    full, _ = psf_stamp(image)
    assert full.shape == (101, 101)
    even, header = psf_stamp(np.ones((100, 100)))
    assert even.shape == (101, 101) and (header["STAMPX"], header["STAMPY"]) == (50.0, 50.0)


def test_fully_nan_stamp_has_odd_width_and_nan_normval():
    image = _star_image()
    stamp, header = psf_stamp(image, (500.3, 60.2), width=(150, 100), normradii=(2, 6))
    assert stamp.shape == (101, 151)  # odd widths, (ny, nx)
    assert np.isnan(stamp).all()
    assert header["NORMVAL"] is None  # an undefined card, as Gnuastro writes "nan"
    # NaN normalization value (no finite ring) -> all NaN too
    holed = image.copy()
    holed[40:70, 45:75] = np.nan
    stamp, header = psf_stamp(holed, (60.3, 55.6), width=41, normradii=(2, 6))
    assert np.isnan(stamp).all() and stamp.shape == (41, 41)
    assert header["NORMVAL"] is None
    card = header.cards["NORMVAL"].image
    assert card.split("/")[0].strip() == "NORMVAL ="


def test_labels_none_without_segment_or_label():
    image = _star_image()
    _, header = psf_stamp(image, (60.3, 55.6), width=21)
    assert header["CLABEL"] == "none" and header["OLABEL"] == "none"
    seg = {"objects": np.ones(image.shape, np.int32), "clumps": np.ones(image.shape, np.int32)}
    _, header = psf_stamp(image, (-3.2, 55.6), width=21, segment=seg)  # centre off the image
    assert header["CLABEL"] == "none" and header["OLABEL"] == "none"
    _, header = psf_stamp(image, (60.3, 55.6), width=21, segment=seg)
    assert header["CLABEL"] == 1 and header["OLABEL"] == 1


def test_exact_zeros_are_kept():
    """Gnuastro's Crop turns exact zeros into NaN; starpix keeps them."""
    image = _star_image()
    image[50:53, 50:53] = 0.0
    stamp, _ = psf_stamp(image, (60.0, 55.0), width=31)
    assert np.isfinite(stamp).all()
    assert (stamp[10:13, 5:8] == 0.0).all()


def test_double_precision_for_tiny_values():
    """Gnuastro prints ring values with %.6f (tiny images lose all digits); starpix keeps them."""
    image = _star_image(noise=1.0, sky=5.0)
    _, header = psf_stamp(image, (60.3, 55.6), width=41, normradii=(3, 9))
    tiny, tiny_header = psf_stamp(image * 1e-9, (60.3, 55.6), width=41, normradii=(3, 9))
    assert tiny_header["NORMVAL"] == pytest.approx(header["NORMVAL"] * 1e-9, rel=1e-12)


# ------------------------------------------------------------------ segment and S/N masks
def _segmented():
    image = _star_image(stars=((60.3, 55.6, 2e4), (70.0, 56.0, 5e3)), noise=1.0)
    objects = np.zeros(image.shape, np.int32)
    clumps = np.zeros(image.shape, np.int32)
    objects[45:67, 50:76] = 1           # the central object, with two clumps
    clumps[45:67, 50:76] = -1
    clumps[52:60, 57:64] = 1
    clumps[53:60, 68:73] = 2
    objects[20:30, 20:30] = 2           # another object
    clumps[20:30, 20:30] = 1
    sky_std = np.ones(image.shape)
    return image, {"objects": objects, "clumps": clumps, "sky_std": sky_std}


def test_segment_masks_other_objects_and_clumps():
    image, seg = _segmented()
    stamp, header = psf_stamp(image, (60.3, 55.6), width=81, segment=seg, centering=False)
    assert (header["CLABEL"], header["OLABEL"]) == (1, 1)
    # stamp origin is image (20, 16)
    ox, oy = 60 - 40, 56 - 40
    other = np.zeros(image.shape, bool)
    other[20:30, 20:30] = True
    clump2 = np.zeros(image.shape, bool)
    clump2[53:60, 68:73] = True
    from scipy import ndimage

    grown = ndimage.binary_dilation(clump2)  # one 4-connected dilation
    expected = other | grown
    window = (slice(oy, oy + 81), slice(ox, ox + 81))
    np.testing.assert_array_equal(np.isnan(stamp), expected[window])


def test_snthresh_removes_pixels_not_connected_to_centre():
    image, seg = _segmented()
    image[14:18, 80:84] = 100.0  # a bright patch of the sky, not part of the central star
    stamp, _ = psf_stamp(image, (60.3, 55.6), width=91, segment=seg, snthresh=5.0, centering=False)
    finite = np.isfinite(stamp)
    from scipy import ndimage

    labels, count = ndimage.label(finite, structure=np.ones((3, 3)))
    assert count == 1 and labels[45, 45] == 1  # one region, holding the centre
    assert finite[45, 45]
    # the patch (4x4, above threshold, survives the dilation as 2x2) was removed for not touching the star
    assert not finite[14 - 11:18 - 11, 80 - 15:84 - 15].any()
    # the star's core survives
    assert finite[40:50, 40:50].sum() >= 20


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("center", [(1.0,), (1, 2, 3), ("a", 2), (np.nan, 3.0), 5.0])
def test_bad_center(center):
    with pytest.raises(InvalidParameterError, match="center"):
        psf_stamp(np.ones((20, 20)), center, width=5)


@pytest.mark.parametrize("normradii", [(10, 5), (5, 5), (1,), (np.inf, 3)])
def test_bad_normradii(normradii):
    with pytest.raises(InvalidParameterError, match="normradii"):
        psf_stamp(np.ones((20, 20)), (10, 10), width=5, normradii=normradii)


def test_bad_normop_width_mode():
    image = np.ones((20, 20))
    with pytest.raises(InvalidParameterError, match="normop.*'sum'"):
        psf_stamp(image, (10, 10), normop="sum")
    with pytest.raises(InvalidParameterError, match="width"):
        psf_stamp(image, (10, 10), width=0)
    with pytest.raises(InvalidParameterError, match="width"):
        psf_stamp(image, (10, 10), width=(5, 5, 5))
    with pytest.raises(InvalidParameterError, match="mode"):
        psf_stamp(image, (10, 10), mode="sky")
    with pytest.raises(NoWCSError, match="wcs"):
        psf_stamp(image, (10, 10), mode="wcs")
    with pytest.raises(InvalidParameterError, match="axis_ratio"):
        psf_stamp(image, (10, 10), axis_ratio=0)
    with pytest.raises(InvalidParameterError, match="sigmaclip"):
        psf_stamp(image, (10, 10), sigmaclip=(3,))


def test_bad_segment():
    image = np.ones((20, 20))
    with pytest.raises(InvalidParameterError, match="snthresh.*segment"):
        psf_stamp(image, (10, 10), snthresh=3)
    with pytest.raises(FormatError, match="CLUMPS"):
        psf_stamp(image, (10, 10), segment={"objects": np.ones((20, 20), int)})
    with pytest.raises(FormatError, match="OBJECTS"):
        psf_stamp(image, (10, 10), segment={"clumps": np.ones((20, 20), int)})
    with pytest.raises(FormatError, match="shape"):
        psf_stamp(image, (10, 10), segment={"objects": np.ones((20, 21), int), "clumps": np.ones((20, 21), int)})
    with pytest.raises(FormatError, match="SKY_STD"):
        psf_stamp(image, (10, 10), snthresh=3,
                  segment={"objects": np.ones((20, 20), int), "clumps": np.ones((20, 20), int)})
