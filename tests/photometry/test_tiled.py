"""tiled_photometry / batch_photometry: tiles agree with the untiled fit; identical on every executor."""

import os

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import QTable

from starpix.detect import StarFinder
from starpix.errors import InvalidParameterError
from starpix.photometry import PSFPhotometry, SourceGrouper, batch_photometry, tile_grid, tiled_photometry
from starpix.psf import GaussianPSF
from starpix.simulate import make_model_image, make_noise_image

PSF = GaussianPSF(2.5)


def make_scene(directory, shape=(260, 200), n=80, seed=0, min_separation=5):
    image, truth = make_model_image(shape, PSF, n, flux=(2000, 20000), min_separation=min_separation, seed=seed)
    data = image + make_noise_image(shape, mean=0, stddev=1.0, seed=seed + 1)
    path = os.path.join(directory, f"scene{seed}.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data.astype(np.float32), name="SCI")]).writeto(path)
    return path, data.astype(np.float32).astype(float), truth


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("tiled"))


def phot_with_finder():
    return PSFPhotometry(PSF, 7, finder=StarFinder(10.0, 2.5), grouper=SourceGrouper(8), aperture_radius=4)


def assert_same_table(a, b):
    assert a.colnames == b.colnames
    assert len(a) == len(b)
    for name in a.colnames:
        assert np.array_equal(np.asarray(a[name]), np.asarray(b[name]), equal_nan=True), name


def test_tile_grid_cores_partition_the_image():
    grid = tile_grid((250, 130), (100, 60), 7)
    cover = np.zeros((250, 130), int)
    for (y0, y1, x0, x1), (ty0, ty1, tx0, tx1) in grid:
        cover[y0:y1, x0:x1] += 1
        assert (ty0, tx0) == (max(0, y0 - 7), max(0, x0 - 7))
        assert (ty1, tx1) == (min(250, y1 + 7), min(130, x1 + 7))
    assert np.all(cover == 1)
    assert len(grid) == 3 * 3


def test_tiles_agree_with_untiled_fit_and_keep_each_star_once(scene):
    path, data, truth = scene
    phot = phot_with_finder()
    full = phot(data)
    tiled = tiled_photometry(path, phot, tile_size=64, hdu="SCI")
    assert len(tiled) == len(full) >= 70
    assert list(tiled["id"]) == list(range(1, len(tiled) + 1))
    # the same stars, matched by position (each once), with the same fits to rounding
    d2 = (np.asarray(tiled["x_init"])[:, None] - np.asarray(full["x_init"])[None]) ** 2 \
        + (np.asarray(tiled["y_init"])[:, None] - np.asarray(full["y_init"])[None]) ** 2
    match = d2.argmin(axis=1)
    assert len(set(match)) == len(full)
    assert np.sqrt(d2.min(axis=1)).max() < 1e-9
    for name in ("x_fit", "y_fit"):
        assert np.allclose(np.asarray(tiled[name]), np.asarray(full[name])[match], rtol=0, atol=1e-6)
    assert np.allclose(np.asarray(tiled["flux_fit"]), np.asarray(full["flux_fit"])[match], rtol=1e-7)
    # and against the simulation's truth
    dt = np.hypot(np.asarray(tiled["x_fit"])[:, None] - truth["x_0"][None],
                  np.asarray(tiled["y_fit"])[:, None] - truth["y_0"][None]).min(axis=1)
    assert np.median(dt) < 0.05
    # group ids are 1..G in row order of first appearance
    groups = np.asarray(tiled["group_id"])
    firsts = [groups[i] for i in range(len(groups)) if groups[i] not in groups[:i]]
    assert firsts == list(range(1, groups.max() + 1))


def test_processes_and_arrays_give_the_same_catalogue(scene):
    path, data, _ = scene
    phot = phot_with_finder()
    serial = tiled_photometry(path, phot, tile_size=(90, 70), hdu="SCI")
    assert_same_table(serial, tiled_photometry(data, phot, tile_size=(90, 70)))
    assert_same_table(serial, tiled_photometry(path, phot, tile_size=(90, 70), hdu="SCI", executor="processes",
                                               max_workers=2))


def test_init_params_keep_ids_and_error_mask_files(scene, tmp_path):
    path, data, truth = scene
    init = QTable({"id": np.arange(100, 100 + len(truth))[::-1], "x": truth["x_0"] + 0.05,
                   "y": truth["y_0"] - 0.05, "flux": truth["flux"]})
    error = np.full(data.shape, 1.0)
    mask = np.zeros(data.shape, np.uint8)
    mask[:, :3] = 1
    err_path, mask_path = tmp_path / "err.fits", tmp_path / "mask.fits"
    fits.writeto(err_path, error)
    fits.writeto(mask_path, mask)
    phot = PSFPhotometry(PSF, 7, grouper=SourceGrouper(8))
    full = phot(data, error=error, mask=mask != 0, init_params=init)
    tiled = tiled_photometry(path, phot, tile_size=50, hdu="SCI", error=str(err_path), mask=str(mask_path),
                             init_params=init)
    assert list(tiled["id"]) == list(full["id"])  # every source once, ordered by id
    assert np.allclose(np.asarray(tiled["flux_fit"]), np.asarray(full["flux_fit"]), rtol=1e-7)
    assert np.allclose(np.asarray(tiled["x_fit"]), np.asarray(full["x_fit"]), atol=1e-6)
    assert np.array_equal(np.asarray(tiled["flags"]), np.asarray(full["flags"]))


def test_batch_photometry_equals_a_loop(tmp_path):
    scenes = [make_scene(tmp_path, shape=(80, 90), n=10, seed=s) for s in (3, 5)]
    phot = phot_with_finder()
    expected = [phot(data) for _, data, _ in scenes]
    for executor in (None, "processes"):
        got = batch_photometry([p for p, _, _ in scenes], phot, hdu="SCI", executor=executor, max_workers=2)
        for a, b in zip(got, expected):
            assert_same_table(a, b)


@pytest.mark.parametrize("kwargs, message", [
    (dict(tile_size=0), "tile_size"),
    (dict(tile_size=(10, 10, 10)), "tile_size"),
    (dict(overlap=-1), "overlap"),
    (dict(error=np.ones((5, 5))), "error"),
    (dict(executor="cluster"), "executor"),
])
def test_bad_arguments(scene, kwargs, message):
    _, data, _ = scene
    with pytest.raises(InvalidParameterError, match=message):
        tiled_photometry(data, phot_with_finder(), **kwargs)


def test_bad_phot_and_missing_finder(scene):
    _, data, _ = scene
    with pytest.raises(InvalidParameterError, match="PSFPhotometry"):
        tiled_photometry(data, object())
    with pytest.raises(InvalidParameterError, match="finder"):
        tiled_photometry(data, PSFPhotometry(PSF, 7))
    with pytest.raises(InvalidParameterError, match="one per image"):
        batch_photometry([data, data], phot_with_finder(), errors=[None])
