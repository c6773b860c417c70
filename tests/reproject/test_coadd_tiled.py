"""coadd by output tiles (tile_size, executor): bit-identical to the serial run, bounded reads, bad input."""

import numpy as np
import pytest
from astropy.io import fits

from starpix.errors import InvalidParameterError, NoOverlapError
from starpix.reproject import _coadd, coadd, optimal_wcs
from starpix.simulate import make_star_field, make_wcs

NY, NX = 56, 48


def _write_exposures(directory, count=3, rotate=True):
    """Dithered star fields on disk (one with SIP, one with a NaN hole), with their common grid."""
    rng = np.random.default_rng(11)
    paths = []
    for k in range(count):
        wcs = make_wcs((NY, NX), center=(150.0 + 0.003 * (k % 2), 2.0 + 0.002 * (k // 2)), pixel_scale_arcsec=1.0,
                       rotation_deg=8.0 * k if rotate else 0.0, sip=rotate and k == 1)
        image, _ = make_star_field((NY, NX), 12, fwhm=3.0, wcs=wcs, seed=k)
        image = image + rng.normal(0, 1, image.shape) + 3.0 * k
        if k == 2:
            image[10:14, 20:30] = np.nan
        path = directory / f"exp{k}.fits"
        fits.PrimaryHDU(image.astype(np.float32), header=wcs.to_header(relax=True)).writeto(path)
        paths.append(str(path))
    wcs_out, shape = optimal_wcs(paths)
    return paths, wcs_out, shape


@pytest.fixture(scope="module")
def exposures(tmp_path_factory):
    return _write_exposures(tmp_path_factory.mktemp("tiled"))


def assert_identical(a, b):
    for x, y in zip(a, b):
        assert x.shape == y.shape
        assert np.array_equal(x, y, equal_nan=True), f"max difference {np.nanmax(np.abs(x - y))}"


CASES = [
    dict(method="mean", reproject_method="interp", order="bilinear"),
    dict(method="sum", reproject_method="drizzle", weights=[1.0, 2.0, 0.5]),
    dict(method="median", reproject_method="interp", order="bicubic", background_match=True),
    dict(method="sigclip-mean", reproject_method="exact", background_match=True, weights=[1.0, 0.0, 2.0]),
    dict(method="mean", reproject_method="exact", background_match=True, memory_limit=3_000),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(v) for v in c.values())[:40])
def test_tiled_equals_serial_bit_for_bit(exposures, case):
    paths, wcs_out, shape = exposures
    serial = coadd(paths, wcs_out, shape, **case)
    assert np.isfinite(serial[0]).sum() > 0.5 * serial[0].size
    assert_identical(serial, coadd(paths, wcs_out, shape, tile_size=9, **case))


def test_processes_equal_serial(exposures):
    paths, wcs_out, shape = exposures
    case = dict(method="median", reproject_method="interp", order="bicubic", background_match=True)
    serial = coadd(paths, wcs_out, shape, **case)
    assert_identical(serial, coadd(paths, wcs_out, shape, executor="processes", max_workers=2, tile_size=20, **case))


def test_in_memory_inputs_with_masks_by_tiles_and_processes(exposures):
    paths, wcs_out, shape = exposures
    items = []
    for path in paths:
        with fits.open(path) as hdul:
            mask = np.zeros((NY, NX), bool)
            mask[5:9, 30:36] = True
            from astropy.wcs import WCS

            items.append((hdul[0].data.astype(float), WCS(hdul[0].header), mask))
    serial = coadd(items, wcs_out, shape, method="mean", reproject_method="exact")
    assert_identical(serial, coadd(items, wcs_out, shape, method="mean", reproject_method="exact", tile_size=13))
    assert_identical(serial, coadd(items, wcs_out, shape, method="mean", reproject_method="exact",
                                   executor="processes", max_workers=2))


@pytest.mark.parametrize("reproject_method", ["interp", "exact"])
def test_tile_jobs_read_only_what_reaches_their_tile(tmp_path, monkeypatch, reproject_method):
    """Memory bound: with tiles of 8 rows, every read of an input covers a band of about 8 rows (plus the
    interpolation margin and the rows of a 64-row input block), never the whole image."""
    paths, wcs_out, shape = _write_exposures(tmp_path, rotate=False)
    reads = []
    original = _coadd._FileReader.read

    def counting(self, j0, j1, i0, i1):
        reads.append((j1 - j0, i1 - i0))
        return original(self, j0, j1, i0, i1)

    monkeypatch.setattr(_coadd._FileReader, "read", counting)
    serial = coadd(paths, wcs_out, shape, method="median", reproject_method=reproject_method)
    reads.clear()
    tiled = coadd(paths, wcs_out, shape, method="median", reproject_method=reproject_method, tile_size=8)
    assert_identical(serial, tiled)
    rows = np.array([r for r, _ in reads])
    assert len(rows) >= 3 * (shape[0] // 8)
    assert rows.max() <= 8 + 8 and rows.max() < NY // 2
    assert rows.sum() < 2.5 * 3 * NY  # each input read about once over all the tiles, not once per tile


def test_tiled_matches_reference_values(exposures):
    """Not only self-consistent: the tiled mean equals a plain numpy mean of the separately reprojected images."""
    from starpix.reproject import reproject

    paths, wcs_out, shape = exposures
    stack = []
    for path in paths:
        with fits.open(path) as hdul:
            from astropy.wcs import WCS

            stack.append(reproject(hdul[0].data.astype(float), WCS(hdul[0].header), wcs_out, shape)[0])
    stack = np.array(stack)
    count = np.sum(np.isfinite(stack), axis=0)
    expected = np.full(shape, np.nan)
    expected[count > 0] = np.nanmean(stack[:, count > 0], axis=0)
    tiled, weight = coadd(paths, wcs_out, shape, method="mean", tile_size=10)
    # the serial run maps each input over its own bounding box: node steps may differ from a whole-grid map
    np.testing.assert_allclose(tiled, expected, rtol=1e-6, atol=1e-6 * np.nanmax(expected))
    assert np.array_equal(weight, count)


def test_tiled_bad_input(exposures):
    paths, wcs_out, shape = exposures
    with pytest.raises(InvalidParameterError, match="tile_size"):
        coadd(paths, wcs_out, shape, tile_size=0)
    with pytest.raises(InvalidParameterError, match="executor"):
        coadd(paths, wcs_out, shape, executor="threads")
    with pytest.raises(InvalidParameterError, match="max_workers"):
        coadd(paths, wcs_out, shape, executor="processes", max_workers=0)
    far = make_wcs((20, 20), center=(10.0, -50.0), pixel_scale_arcsec=1.0)
    with pytest.raises(NoOverlapError):
        coadd(paths, far, (20, 20), tile_size=5)
    with pytest.raises(NoOverlapError):
        coadd(paths, far, (20, 20), tile_size=5, background_match=True, method="median")
