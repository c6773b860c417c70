"""starpix.reproject.coadd and optimal_wcs: against numpy, astropy and reproject on simple cases."""

import warnings

import numpy as np
import pytest
from astropy.io import fits

from starpix.errors import InvalidParameterError, NoOverlapError, NoWCSError
from starpix.reproject import coadd, optimal_wcs
from starpix.simulate import make_wcs

N = 60


@pytest.fixture(scope="module")
def same_grid():
    """Seven noisy images on one grid, with NaN holes; the truth stack for numpy."""
    rng = np.random.default_rng(0)
    wcs = make_wcs((N, N), center=(150.0, 2.0), pixel_scale_arcsec=1.0)
    stack = rng.normal(size=(7, N, N)) + np.arange(7)[:, None, None]
    stack[2, 10:14, 20:30] = np.nan
    stack[5, :, :3] = np.nan
    stack[6, 30, 30] = 1e3  # an outlier for the clipping
    return wcs, stack


@pytest.mark.parametrize("method", ["mean", "median", "sum"])
@pytest.mark.parametrize("memory_limit", [256 * 2**20, 20_000])
def test_coadd_on_one_grid_matches_numpy(same_grid, method, memory_limit):
    wcs, stack = same_grid
    images = [(frame, wcs) for frame in stack]
    out, weight = coadd(images, wcs, (N, N), method=method, memory_limit=memory_limit)
    expected = {"mean": np.nanmean, "median": np.nanmedian, "sum": np.nansum}[method](stack, axis=0)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(weight, np.isfinite(stack).sum(axis=0))


def test_sigclip_mean_matches_astropy(same_grid):
    from astropy.stats import sigma_clip

    wcs, stack = same_grid
    images = [(frame, wcs) for frame in stack]
    out, weight = coadd(images, wcs, (N, N), method="sigclip-mean", sigma=2.5, memory_limit=30_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clipped = sigma_clip(np.ma.masked_invalid(stack), sigma=2.5, maxiters=5, axis=0)
    np.testing.assert_allclose(out, clipped.mean(axis=0).filled(np.nan), rtol=1e-6, atol=1e-6)
    assert abs(out[30, 30] - np.mean(stack[:6, 30, 30])) < 1e-5
    np.testing.assert_array_equal(weight, (~clipped.mask).sum(axis=0))


def test_weights(same_grid):
    wcs, stack = same_grid
    w = np.array([1.0, 2.0, 0.5, 3.0, 1.0, 0.0, 2.0])
    out, weight = coadd([(frame, wcs) for frame in stack], wcs, (N, N), weights=w)
    finite = np.isfinite(stack)
    expected = np.nansum(stack * w[:, None, None], axis=0) / np.sum(finite * w[:, None, None], axis=0)
    np.testing.assert_allclose(out, expected, rtol=1e-9)
    with pytest.raises(InvalidParameterError, match="weights"):
        coadd([(frame, wcs) for frame in stack], wcs, (N, N), weights=[1.0, 2.0])


def test_background_match_recovers_offsets():
    """Shifted, overlapping exposures of one flat sky with different additive offsets."""
    rng = np.random.default_rng(1)
    images, offsets = [], [3.0, -1.0, 0.5, 7.0, -2.5]
    for k, offset in enumerate(offsets):
        wcs = make_wcs((N, N), center=(150.0 + 0.002 * k, 2.0 + 0.001 * k), pixel_scale_arcsec=1.0)
        images.append((10.0 + offset + 0.01 * rng.normal(size=(N, N)), wcs))
    out, _ = coadd(images, method="median", background_match=True, memory_limit=40_000)
    finite = out[np.isfinite(out)]
    assert abs(np.median(finite) - (10.0 + np.mean(offsets))) < 0.02
    assert np.std(finite) < 0.03  # without matching the seams jump by several units
    plain, _ = coadd(images, method="median")
    assert np.nanstd(plain) > 1.0


@pytest.mark.parametrize("reproject_method", ["interp", "exact", "drizzle"])
def test_block_size_does_not_change_the_result(reproject_method):
    rng = np.random.default_rng(2)
    images = []
    for k in range(4):
        wcs = make_wcs((N, N), center=(150.0 + 0.003 * k, 2.0 - 0.002 * k), pixel_scale_arcsec=1.0,
                       rotation_deg=7.0 * k, sip=k % 2 == 1)
        images.append((rng.normal(size=(N, N)) + 5, wcs))
    for method in ("median", "sigclip-mean", "mean"):
        big, wbig = coadd(images, method=method, reproject_method=reproject_method, background_match=True)
        small, wsmall = coadd(images, method=method, reproject_method=reproject_method, background_match=True,
                              memory_limit=5_000)
        np.testing.assert_array_equal(np.isfinite(big), np.isfinite(small))
        np.testing.assert_allclose(small, big, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(wsmall, wbig, rtol=1e-6)


def test_mean_coadd_agrees_with_reproject_and_coadd():
    peer = pytest.importorskip("reproject.mosaicking", reason="reproject (peer tool) is not installed")
    rng = np.random.default_rng(3)
    images = []
    for k in range(3):
        wcs = make_wcs((N, N), center=(150.0 + 0.004 * k, 2.0 + 0.002 * k), pixel_scale_arcsec=1.0,
                       rotation_deg=10.0 * k)
        yy, xx = np.mgrid[:N, :N]
        images.append((100 + xx + 0.5 * yy + rng.normal(size=(N, N)), wcs))
    wcs_out, shape = optimal_wcs(images)
    ours, weight = coadd(images, wcs_out, shape, method="mean")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from reproject import reproject_interp

        theirs, footprint = peer.reproject_and_coadd(images, wcs_out, shape_out=shape,
                                                     reproject_function=reproject_interp, combine_function="mean")
    good = (weight > 0) & (footprint > 0)
    np.testing.assert_allclose(ours[good], theirs[good], rtol=1e-5)
    np.testing.assert_array_equal(weight, footprint)


def test_optimal_wcs_covers_all_inputs_and_matches_reproject():
    images = []
    for k in range(4):
        wcs = make_wcs((50 + 10 * k, 70), center=(200.0 + 0.01 * k, -40.0 + 0.005 * k),
                       pixel_scale_arcsec=1.0 + 0.2 * k, rotation_deg=15.0 * k)
        images.append((np.zeros((50 + 10 * k, 70)), wcs))
    wcs_out, shape = optimal_wcs(images)
    assert wcs_out.wcs.cdelt[1] * 3600 == pytest.approx(1.0)
    for data, wcs in images:
        ny, nx = data.shape
        xs, ys = np.array([-0.5, nx - 0.5, nx - 0.5, -0.5]), np.array([-0.5, -0.5, ny - 0.5, ny - 0.5])
        xo, yo = wcs_out.world_to_pixel(wcs.pixel_to_world(xs, ys))
        assert xo.min() >= -0.5 - 1e-6 and xo.max() <= shape[1] - 0.5 + 1e-6
        assert yo.min() >= -0.5 - 1e-6 and yo.max() <= shape[0] - 0.5 + 1e-6
    peer = pytest.importorskip("reproject.mosaicking", reason="reproject (peer tool) is not installed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs, their_shape = peer.find_optimal_celestial_wcs(images)
    assert shape == their_shape
    np.testing.assert_allclose(wcs_out.wcs.crval, theirs.wcs.crval, atol=1e-10)
    np.testing.assert_allclose(wcs_out.wcs.crpix, theirs.wcs.crpix, atol=1e-6)
    np.testing.assert_allclose(wcs_out.wcs.cdelt, theirs.wcs.cdelt, rtol=1e-12)


def test_files_and_bad_input(tmp_path, same_grid):
    wcs, stack = same_grid
    paths = []
    for k in range(3):
        path = tmp_path / f"im{k}.fits"
        fits.PrimaryHDU(stack[k], header=wcs.to_header()).writeto(path)
        paths.append(str(path))
    out, _ = coadd(paths, method="median")
    np.testing.assert_allclose(out, np.nanmedian(stack[:3], axis=0), rtol=1e-6, atol=1e-6)
    plain = tmp_path / "plain.fits"
    fits.PrimaryHDU(stack[0]).writeto(plain)
    with pytest.raises(NoWCSError, match="plain.fits"):
        coadd(paths + [str(plain)])
    with pytest.raises(NoWCSError, match="plain.fits"):
        coadd(paths + [str(plain)], wcs, (N, N))
    with pytest.raises(InvalidParameterError, match="empty"):
        coadd([])
    with pytest.raises(InvalidParameterError, match="method"):
        coadd(paths, method="max")
    with pytest.raises(InvalidParameterError, match="reproject_method"):
        coadd(paths, reproject_method="lanczos")
    far = make_wcs((N, N), center=(10.0, -50.0), pixel_scale_arcsec=1.0)
    with pytest.raises(NoOverlapError):
        coadd(paths, far, (N, N))
