"""calibrate against a raw frame built from known bias, dark, flat and sky."""

import numpy as np
import pytest

from starpix.errors import InvalidParameterError
from starpix.preprocess import calibrate


def _frames(seed=0):
    rng = np.random.default_rng(seed)
    shape = (40, 50)
    sky = rng.uniform(100, 200, shape)
    bias = 300 + rng.normal(0, 2, shape)
    current = rng.uniform(0.5, 1.5, shape)  # dark current per second
    flat = 2000 * rng.uniform(0.8, 1.2, shape)
    return shape, sky, bias, current, flat


def test_recovers_sky_exactly():
    shape, sky, bias, current, flat = _frames()
    norm = flat / np.median(flat)
    raw = sky * norm + current * 30.0 + bias
    result = calibrate(raw, bias, current * 60.0, flat, exptime=30.0, dark_exptime=60.0)
    np.testing.assert_allclose(result.image, sky, rtol=1e-12)
    assert result.dark_scale == 0.5
    assert result.flat_median == pytest.approx(np.median(flat))
    assert not result.mask.any()
    # the inputs are left as they were
    assert raw[0, 0] == sky[0, 0] * norm[0, 0] + current[0, 0] * 30.0 + bias[0, 0]


def test_dark_with_bias_and_constants():
    shape, sky, bias, current, flat = _frames(1)
    raw = sky + current * 10.0 + bias
    result = calibrate(raw, bias, current * 10.0 + bias, dark_includes_bias=True)
    np.testing.assert_allclose(result.image, sky, rtol=1e-12)
    result = calibrate(np.full(shape, 110.0), bias=100.0, flat=2.0)
    np.testing.assert_allclose(result.image, 10.0)


def test_masks():
    shape, sky, bias, current, flat = _frames(2)
    flat = flat.copy()
    flat[5, 6] = 0.4 * np.median(flat)  # under-illuminated
    flat[7, 7] = 0.0
    dark = current.copy()
    dark[10, 11] = 50.0  # hot: far above median + 10 MAD-sigma
    raw = sky.copy()
    raw[20, 20] = np.nan
    result = calibrate(raw, dark=dark, flat=flat)
    expected = np.zeros(shape, bool)
    expected[5, 6] = expected[7, 7] = expected[10, 11] = expected[20, 20] = True
    np.testing.assert_array_equal(result.mask, expected)
    assert np.isfinite(result.image[7, 7])


def test_bad_input():
    with pytest.raises(InvalidParameterError, match="flat has shape"):
        calibrate(np.ones((10, 10)), flat=np.ones((10, 9)))
    with pytest.raises(InvalidParameterError, match="exptime"):
        calibrate(np.ones((10, 10)), dark=np.ones((10, 10)), exptime=10.0)
    with pytest.raises(InvalidParameterError, match="positive median"):
        calibrate(np.ones((10, 10)), flat=np.zeros((10, 10)))
    with pytest.raises(InvalidParameterError, match="2-D"):
        calibrate(np.ones(10))
