"""starpix.interp.shift_image: Warp's flux-conserving translation."""

import shutil
import subprocess

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import given, settings
from hypothesis import strategies as st

from starpix.errors import InvalidParameterError
from starpix.interp import shift_image


def test_half_pixel_shift_is_the_mean_of_neighbours():
    image = np.arange(20.0).reshape(4, 5)
    out = shift_image(image, 0.5, 0.0)
    np.testing.assert_allclose(out[:, 1:], 0.5 * (image[:, 1:] + image[:, :-1]))
    assert np.isnan(out[:, 0]).all()  # partly outside the input


def test_whole_pixel_shift_moves_without_mixing():
    image = np.arange(30.0).reshape(5, 6)
    out = shift_image(image, -2, 1)
    np.testing.assert_array_equal(out[1:, :-2], image[:-1, 2:])
    assert np.isnan(out[0]).all() and np.isnan(out[:, -2:]).all()


@settings(max_examples=40, deadline=None)
@given(dx=st.floats(-3, 3), dy=st.floats(-3, 3))
def test_flux_of_an_interior_source_is_conserved(dx, dy):
    image = np.zeros((21, 21))
    image[9:12, 9:12] = [[1, 2, 1], [2, 5, 2], [1, 2, 1]]
    out = shift_image(image, dx, dy)
    assert np.nansum(out) == pytest.approx(image.sum(), rel=1e-12)
    # the centroid moves by exactly the shift
    yy, xx = np.mgrid[:21, :21]
    total = np.nansum(out)
    assert np.nansum(out * xx) / total == pytest.approx(10 + dx, abs=1e-9)
    assert np.nansum(out * yy) / total == pytest.approx(10 + dy, abs=1e-9)


def test_nan_grows_one_pixel_in_the_shift_direction():
    image = np.ones((7, 7))
    image[3, 3] = np.nan
    out = shift_image(image, 0.3, -0.2)
    expected = {(3, 3), (3, 4), (2, 3), (2, 4)}
    nan_inside = {(int(y), int(x)) for y, x in zip(*np.nonzero(np.isnan(out))) if 0 < x and y < 6}
    assert nan_inside == expected


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_shift_is_refused(bad):
    with pytest.raises(InvalidParameterError, match="dx"):
        shift_image(np.ones((3, 3)), bad, 0)


def test_non_2d_input_is_refused():
    with pytest.raises(InvalidParameterError, match="2-D"):
        shift_image(np.ones(3), 0.1, 0)


@pytest.mark.skipif(shutil.which("astwarp") is None, reason="Gnuastro's astwarp is not installed")
@pytest.mark.parametrize("shift", [(-0.37, 0.25), (0.5, -0.5), (0.1, 0.0)])
def test_agrees_with_gnuastro_warp(tmp_path, shift):
    rng = np.random.default_rng(2)
    image = rng.normal(10, 1, (9, 11)).astype(np.float32)
    image[4, 5] = np.nan
    fits.PrimaryHDU(image).writeto(tmp_path / "in.fits")
    subprocess.run(["astwarp", str(tmp_path / "in.fits"), "-h0", f"--translate={shift[0]},{shift[1]}",
                    "-o", str(tmp_path / "out.fits"), "-q"], check=True, cwd=tmp_path)
    warped = fits.getdata(tmp_path / "out.fits", 1)
    # Warp's grid (not the identity): output pixel k (0-based) is centred on input coordinate k - 1
    warped = warped[1:10, 1:12]
    ours = shift_image(image, *shift)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(warped))
    np.testing.assert_allclose(ours[np.isfinite(ours)], warped[np.isfinite(warped)], rtol=1e-6)
