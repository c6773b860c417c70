"""make_mask against analytic truths (STDPipe's semantics) and parse_section's properties."""

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import given
from hypothesis import strategies as st

from preprocess._scenes import star_field
from starpix.errors import InvalidParameterError
from starpix.preprocess import detect_cosmics, estimate_saturation, make_mask, parse_section


def test_non_finite_and_external():
    image = np.full((20, 30), 5.0)
    image[3, 4] = np.nan
    image[7, 8] = np.inf
    image[9, 1] = -np.inf
    external = np.zeros((20, 30), dtype=np.uint8)
    external[10:12, 20:25] = 3
    mask = make_mask(image, external_mask=external)
    expected = np.zeros((20, 30), bool)
    expected[3, 4] = expected[7, 8] = expected[9, 1] = True
    expected[10:12, 20:25] = True
    np.testing.assert_array_equal(mask, expected)
    assert mask.dtype == bool


def test_datasec_and_trimsec():
    image = np.ones((80, 100))
    header = fits.Header({"DATASEC": "[11:90,21:70]"})
    mask = make_mask(image, header)
    assert (~mask).sum() == 80 * 50
    assert not mask[20:70, 10:90].any() and mask[19, 50] and mask[70, 50] and mask[40, 9] and mask[40, 90]
    header["TRIMSEC"] = "[1:50, 1:80]"  # both apply
    mask = make_mask(image, header)
    assert (~mask).sum() == 40 * 50
    # reversed ranges and sections larger than the image are accepted
    mask = make_mask(image, fits.Header({"DATASEC": "[200:51,1:500]"}))
    assert (~mask).sum() == 50 * 80


@pytest.mark.parametrize("text", ["[1:10]", "1:10,1:10", "[a:10,1:5]", "[0:10,1:5]", "[1:10;1:5]", ""])
def test_malformed_section(text):
    with pytest.raises(InvalidParameterError, match="DATASEC"):
        make_mask(np.ones((20, 20)), fits.Header({"DATASEC": text}))


def test_section_outside_image():
    with pytest.raises(InvalidParameterError, match="outside the image"):
        make_mask(np.ones((20, 20)), fits.Header({"DATASEC": "[30:40,1:5]"}))


@given(st.integers(1, 500), st.integers(1, 500), st.integers(1, 500), st.integers(1, 500))
def test_parse_section_property(x1, x2, y1, y2):
    rows, cols = parse_section(f"[{x1}:{x2},{y1}:{y2}]")
    assert cols.start == min(x1, x2) - 1 and cols.stop == max(x1, x2)
    assert rows.start == min(y1, y2) - 1 and rows.stop == max(y1, y2)
    # the FITS section covers |x2 - x1| + 1 columns
    assert len(range(10_000)[cols]) == abs(x2 - x1) + 1


def test_saturation_levels():
    image = np.arange(100.0).reshape(10, 10)
    # a given level: pixels at or above it
    np.testing.assert_array_equal(make_mask(image, saturation=90.0), image >= 90)
    # estimated: median + 0.95 (max - median) = 49.5 + 0.95 * 49.5 = 96.525
    assert estimate_saturation(image) == pytest.approx(96.525)
    np.testing.assert_array_equal(make_mask(image, saturation=True), image >= 96.525)
    # the header's SATURATE when no level is given
    np.testing.assert_array_equal(make_mask(image, fits.Header({"SATURATE": 80})), image >= 80)
    assert not make_mask(image).any()
    with pytest.raises(InvalidParameterError, match="SATURATE"):
        make_mask(image, fits.Header({"SATURATE": "high"}))
    with pytest.raises(InvalidParameterError, match="saturation"):
        make_mask(image, saturation="auto")


def test_external_mask_wrong_shape():
    with pytest.raises(InvalidParameterError, match="external_mask has shape"):
        make_mask(np.ones((10, 10)), external_mask=np.zeros((10, 11)))


def test_mask_cosmics():
    image, truth, xy, _ = star_field((128, 128), n_stars=20, n_single=30, n_tracks=10, seed=5)
    mask = make_mask(image, saturation=50000.0, mask_cosmics=True, gain=1.0)
    assert (mask & truth).sum() / truth.sum() > 0.9
    # the background-rms noise model flags little besides the cosmic rays and the saturated pixels
    plain, _ = detect_cosmics(image, satlevel=50000.0)
    extra = mask & ~truth & ~(image >= 50000.0)
    assert extra.sum() < 3 * truth.sum()
    assert plain.any()
