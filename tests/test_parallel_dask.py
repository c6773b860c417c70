"""Every batch API on a dask.distributed LocalCluster (2 workers, loopback) equals the serial run;
a worker killed in the middle of a run is replaced and the result is still complete and correct."""

import math
import os
import signal
import threading
import time

import numpy as np
import pytest
from astropy.io import fits

distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed (pip install 'starpix[dask]')")

from starpix.parallel import executor_workers, is_dask_client, map_jobs  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None, silence_logs=50)
    client = distributed.Client(cluster, set_as_default=False)
    yield client
    client.close()
    cluster.close()


def slow_square(value):
    time.sleep(0.05)
    return value * value


slow_square.__module__ = "__main__"  # sent by value: the workers cannot import test modules


def test_map_jobs_on_dask_equals_serial(client):
    assert is_dask_client(client) and executor_workers(client) == 2
    items = list(range(41))
    assert map_jobs(math.sqrt, items, executor=client, chunksize=3) == [math.sqrt(i) for i in items]
    assert map_jobs(math.sqrt, items, executor=client, window=1) == [math.sqrt(i) for i in items]
    with pytest.raises(ValueError, match="math domain"):
        map_jobs(math.sqrt, [1, -1, 4], executor=client, chunksize=1)


def test_a_killed_worker_is_replaced_and_nothing_is_lost(client):
    items = list(range(80))
    pids = list(client.run(os.getpid).values())
    result = {}

    def work():
        result["value"] = map_jobs(slow_square, items, executor=client, chunksize=2)

    thread = threading.Thread(target=work)
    thread.start()
    time.sleep(1.0)  # mid-run (80 items x 0.05 s on 2 workers: about 2 s)
    assert thread.is_alive()  # the kill lands while jobs are in flight
    os.kill(pids[0], signal.SIGKILL)
    thread.join(60)
    assert not thread.is_alive()
    assert result["value"] == [i * i for i in items]
    client.wait_for_workers(2, timeout=30)  # the nanny started a new worker
    assert pids[0] not in client.run(os.getpid).values()


def test_tiled_and_batch_photometry(client, tmp_path):
    from photometry.test_tiled import assert_same_table, make_scene, phot_with_finder
    from starpix.photometry import batch_photometry, tiled_photometry

    path, _, _ = make_scene(tmp_path, shape=(200, 160), n=50)
    phot = phot_with_finder()
    serial = tiled_photometry(path, phot, tile_size=64, hdu="SCI")
    assert_same_table(serial, tiled_photometry(path, phot, tile_size=64, hdu="SCI", executor=client))
    for a, b in zip(batch_photometry([path, path], phot, hdu="SCI", executor=client),
                    batch_photometry([path, path], phot, hdu="SCI")):
        assert_same_table(a, b)


def test_fits_cut_and_cube_cut(client, tess_ffis, tmp_path):
    from starpix.cutout import build_cube, cube_cut, fits_cut

    files, _ = tess_ffis
    targets = [(50.3, 60.7), (120.0, 100.2), (10.0, 190.0)]
    serial = fits_cut(files[:3], targets, 9, memory_only=True)
    dask = fits_cut(files[:3], targets, 9, memory_only=True, executor=client)
    assert len(serial) == len(dask) == 3
    for a, b in zip(serial, dask):
        assert len(a) == len(b) == 4
        for ha, hb in zip(a[1:], b[1:]):
            assert np.array_equal(ha.data, hb.data, equal_nan=True)
            assert _unstamped(ha.header.tostring().encode()) == _unstamped(hb.header.tostring().encode())
    cube = tmp_path / "cube.fits"
    build_cube(files, str(cube))
    pixels = [(20.0 + 7 * i, 30.0 + 5 * i) for i in range(12)]
    one = cube_cut(str(cube), pixels, 5, output_dir=tmp_path / "serial")
    two = cube_cut(str(cube), pixels, 5, output_dir=tmp_path / "dask", executor=client)
    assert [os.path.basename(p) for p in one] == [os.path.basename(p) for p in two]
    for a, b in zip(one, two):
        with fits.open(a) as fa, fits.open(b) as fb:
            assert np.array_equal(fa[1].data["FLUX"], fb[1].data["FLUX"], equal_nan=True)
            assert fa[2].header["WCS_MSEP"] == fb[2].header["WCS_MSEP"] > 0
        with open(a, "rb") as fa, open(b, "rb") as fb:  # the same bytes, but for checksum time stamps
            assert _unstamped(fa.read()) == _unstamped(fb.read())


def _unstamped(content):
    import re

    # the time stamps, and the header checksums that cover them, differ when the runs straddle a second
    content = re.sub(rb"(checksum updated |DATE    = )'?[0-9T:.-]+", b"", content)
    return re.sub(rb"CHECKSUM= '[^']*'", b"", content)


def test_coadd_by_tiles(client, tmp_path):
    import importlib.util

    from starpix.reproject import coadd

    # tests/reproject is loaded by path: the name "reproject" is the peer package's
    spec = importlib.util.spec_from_file_location(
        "coadd_tiled_cases", os.path.join(os.path.dirname(__file__), "reproject", "test_coadd_tiled.py"))
    cases = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cases)
    paths, wcs_out, shape = cases._write_exposures(tmp_path)
    assert_identical = cases.assert_identical
    for case in cases.CASES[2:4]:  # median + bicubic + background matching; clipped mean + exact
        assert_identical(coadd(paths, wcs_out, shape, **case),
                         coadd(paths, wcs_out, shape, executor=client, tile_size=12, **case))


def test_psf_stamps_and_cosmics_files(client, tmp_path):
    from preprocess.test_batch import OPTIONS, make_frames
    from stamp.test_batch import STARS, make_field
    from starpix.preprocess import mask_cosmics_files
    from starpix.stamp import psf_stamps

    image_path, seg_path, _ = make_field(tmp_path)
    serial = psf_stamps(image_path, STARS, width=(21, 21), normradii=(2, 6), segment=seg_path)
    dask = psf_stamps(image_path, STARS, width=(21, 21), normradii=(2, 6), segment=seg_path, executor=client,
                      chunksize=2)
    assert np.array_equal(serial.stamps, dask.stamps, equal_nan=True)
    paths, _ = make_frames(tmp_path, n=3)
    one = mask_cosmics_files(paths, output_dir=tmp_path / "a", **OPTIONS)
    two = mask_cosmics_files(paths, output_dir=tmp_path / "b", executor=client, **OPTIONS)
    assert [r.n_pixels for r in one] == [r.n_pixels for r in two]
    for a, b in zip(one, two):
        assert np.array_equal(fits.getdata(a.mask), fits.getdata(b.mask))
        assert np.array_equal(fits.getdata(a.cleaned), fits.getdata(b.cleaned))


def test_astrodrizzle_on_dask(client, tmp_path):
    from starpix.drizzle import astrodrizzle
    from starpix.simulate import make_dithered_exposures

    files, _ = make_dithered_exposures(tmp_path, 3, shape=(64, 48), n_chips=2, n_stars=4, n_galaxies=1, seed=5)
    serial = astrodrizzle(files, tmp_path / "s", in_memory=True, runfile=False)
    # per-exposure steps and the final drizzle by output bands on the cluster
    dask = astrodrizzle(files, tmp_path / "d", runfile=False, executor=client)
    for name in ("sci", "wht", "ctx"):
        assert np.array_equal(getattr(serial, name), getattr(dask, name), equal_nan=True), name
    assert all(np.array_equal(a, b) for x, y in zip(serial.crmasks, dask.crmasks) for a, b in zip(x, y))
    assert sum(int(m.sum()) for ms in serial.crmasks for m in ms) > 0
    assert np.array_equal(fits.getdata(tmp_path / "d_drz.fits", "SCI"), serial.sci, equal_nan=True)
