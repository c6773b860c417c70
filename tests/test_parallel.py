"""starpix.parallel.map_jobs: the same results, in the same order, whatever the executor."""

import math
import operator
import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
import pytest
from astropy.io import fits

from starpix.errors import InvalidParameterError
from starpix.parallel import default_chunksize, map_jobs


def test_serial_is_the_list_comprehension():
    items = list(range(23))
    assert map_jobs(math.sqrt, items) == [math.sqrt(i) for i in items]
    assert map_jobs(math.sqrt, items, executor="serial") == [math.sqrt(i) for i in items]
    assert map_jobs(math.sqrt, []) == []


@pytest.mark.parametrize("chunksize", [None, 1, 4, 100])
def test_processes_equal_serial_in_order(chunksize):
    items = [(i, 2 * i + 1) for i in range(37)]
    func = partial(operator.mul, 3.5)
    serial = map_jobs(func, [i for i, _ in items])
    parallel = map_jobs(func, [i for i, _ in items], executor="processes", max_workers=2, chunksize=chunksize)
    assert parallel == serial


def test_fork_context_and_progress_bar(capsys):
    out = map_jobs(math.factorial, range(12), executor="processes", max_workers=2, mp_context="fork",
                   progress_bar=True, desc="facts")
    assert out == [math.factorial(i) for i in range(12)]


def test_an_executor_you_hold_is_used_and_left_open():
    with ThreadPoolExecutor(max_workers=3) as pool:
        assert map_jobs(abs, range(-10, 10), executor=pool, chunksize=3) == [abs(i) for i in range(-10, 10)]
        assert pool.submit(abs, -1).result() == 1  # not shut down


def test_errors_propagate_first_in_item_order():
    with pytest.raises(ValueError, match="math domain error"):
        map_jobs(math.sqrt, [4, 1, -1, -2], executor="processes", max_workers=2, chunksize=1)
    with pytest.raises(ValueError):
        map_jobs(math.sqrt, [4, -1])


@pytest.mark.parametrize("kwargs, message", [
    (dict(executor="dask-ish"), "executor"),
    (dict(executor=42), "executor"),
    (dict(executor="processes", max_workers=0), "max_workers"),
    (dict(chunksize=0), "chunksize"),
    (dict(executor="processes", mp_context="teleport"), "mp_context"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(InvalidParameterError, match=message):
        map_jobs(abs, [1, 2], **kwargs)


def test_default_chunksize():
    assert default_chunksize(100, 2) == 13
    assert default_chunksize(3, 8) == 1
    assert default_chunksize(0, 4) == 1


def test_imap_jobs_streams_in_order_and_checks_arguments_at_once():
    from starpix.parallel import imap_jobs

    gen = imap_jobs(abs, range(-6, 6), executor="processes", max_workers=2, chunksize=2, window=1)
    assert next(gen) == 6
    assert list(gen) == [abs(i) for i in range(-5, 6)]
    with pytest.raises(InvalidParameterError, match="window"):
        imap_jobs(abs, [1], window=0)


def test_open_executor_from_jobs_and_scheduler():
    from starpix.parallel import open_executor

    with open_executor() as pair:
        assert pair == (None, None)
    with open_executor(jobs=1) as pair:
        assert pair == (None, None)
    with open_executor(jobs=3) as pair:
        assert pair == ("processes", 3)
    with pytest.raises(InvalidParameterError, match="not both"):
        with open_executor(jobs=2, scheduler="tcp://127.0.0.1:1"):
            pass
    with pytest.raises(InvalidParameterError, match="--jobs"):
        with open_executor(jobs=-2):
            pass


def test_cli_jobs_give_the_same_files(cli, tess_ffis, tmp_path):
    from conftest import assert_cli_errors
    from starpix.cutout import build_cube

    files, _ = tess_ffis
    cube = tmp_path / "cube.fits"
    build_cube(files, str(cube))
    catalog = tmp_path / "targets.csv"
    catalog.write_text("x,y\n30.0,40.0\n100.5,120.2\n150.0,60.0\n")
    for name, extra in (("serial", []), ("jobs", ["--jobs", "2"])):
        status, _, err = cli("cube", "cut", cube, "--catalog", catalog, "--size", "5", "--output-dir",
                             tmp_path / name, "-q", *extra)
        assert status == 0, err
    assert sorted(os.listdir(tmp_path / "serial")) == sorted(os.listdir(tmp_path / "jobs"))
    assert len(os.listdir(tmp_path / "jobs")) == 3
    for name in os.listdir(tmp_path / "jobs"):
        with fits.open(tmp_path / "serial" / name) as a, fits.open(tmp_path / "jobs" / name) as b:
            assert len(a[1].data) == len(b[1].data) == len(files)
            for column in ("FLUX", "FLUX_ERR", "TIME"):
                assert np.array_equal(a[1].data[column], b[1].data[column], equal_nan=True), (name, column)
            assert np.isfinite(a[1].data["FLUX"]).any()
    assert_cli_errors(cli, [
        (["cube", "cut", cube, "--catalog", catalog, "--size", "5", "--jobs", "-1", "--output-dir", tmp_path / "x"],
         "--jobs"),
        (["cube", "cut", cube, "--catalog", catalog, "--size", "5", "--jobs", "2", "--scheduler", "tcp://a:1",
          "--output-dir", tmp_path / "x"], "not both"),
        (["photometry", files[0], "--psf-fwhm", "2", "--fit-shape", "5", "--threshold", "5", "--fwhm", "2",
          "--aperture-radius", "3", "--jobs", "2", "-o", tmp_path / "p.ecsv"], "--tile-size"),
        (["photometry", files[0], "--psf-fwhm", "2", "--fit-shape", "5", "--threshold", "5", "--fwhm", "2",
          "--aperture-radius", "3", "--tile-size", "64", "--plot", tmp_path / "p.png", "-o", tmp_path / "p.ecsv"],
         "--plot"),
    ], tmp_path)


def test_cube_cut_on_threads_of_this_process(tess_ffis, tmp_path):
    """A thread executor shares the cube (and its lock) with the caller: it must not deadlock."""
    from starpix.cutout import build_cube, cube_cut

    files, _ = tess_ffis
    cube = str(tmp_path / "cube.fits")
    build_cube(files, cube)
    targets = [(30.0, 40.0), (100.5, 120.2)]
    serial = cube_cut(cube, targets, 5, memory_only=True)
    with ThreadPoolExecutor(max_workers=2) as pool:
        threaded = cube_cut(cube, targets, 5, memory_only=True, executor=pool)
    for a, b in zip(serial, threaded):
        assert np.array_equal(a[1].data["FLUX"], b[1].data["FLUX"], equal_nan=True)


def test_cli_photometry_in_tiles(cli, tmp_path):
    from starpix.io import read_table
    from starpix.psf import GaussianPSF
    from starpix.simulate import make_model_image, make_noise_image

    image, truth = make_model_image((150, 140), GaussianPSF(2.5), 25, flux=(3000, 9000), min_separation=8, seed=4)
    image += make_noise_image(image.shape, mean=0, stddev=1.0, seed=5)
    path = tmp_path / "img.fits"
    fits.writeto(path, image)
    common = ["photometry", path, "--psf-fwhm", "2.5", "--fit-shape", "7", "--threshold", "10", "--fwhm", "2.5",
              "--aperture-radius", "4", "-q"]
    assert cli(*common, "-o", tmp_path / "whole.ecsv")[0] == 0
    status, _, err = cli(*common, "--tile-size", "50", "--jobs", "2", "-o", tmp_path / "tiles.ecsv")
    assert status == 0, err
    whole, tiles = read_table(tmp_path / "whole.ecsv"), read_table(tmp_path / "tiles.ecsv")
    assert len(whole) == len(tiles) == len(truth)
    order = np.lexsort((np.asarray(whole["y_init"]), np.asarray(whole["x_init"])))
    torder = np.lexsort((np.asarray(tiles["y_init"]), np.asarray(tiles["x_init"])))
    assert np.allclose(np.asarray(whole["flux_fit"])[order], np.asarray(tiles["flux_fit"])[torder], rtol=1e-7)
