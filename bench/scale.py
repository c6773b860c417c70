"""Scale-out benchmark: the same batch work serially and on a dask.distributed LocalCluster of 2 workers.

1. PSF photometry of a large mosaic (8192 x 8192, 20000 Gaussian stars) in 1024 x 1024 tiles
   (starpix.photometry.tiled_photometry): serial in one process versus the cluster; the two
   catalogues must be identical, column for column and bit for bit.
2. 1000 target pixel files cut out of one cube of TESS-like FFIs (starpix.cutout.cube_cut): serial
   versus the cluster; the TPFs must hold identical pixels.

Serial runs in one process with numba's default threads (all cores); each cluster worker gets one
numba thread (NUMBA_NUM_THREADS=1 in its environment), so that 2 workers do not run 2 x 2 threads on
the cores.  The photometry's time on the cluster is split with Dask's task stream: the seconds the
workers spent computing tiles (summed) against the wall-clock time.

Peak memory: VmHWM of the serial process, and the largest VmHWM of the cluster's worker processes
(fresh workers for each task).  Run: .venv/bin/python bench/scale.py [--quick]
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _benchlib import Table, arguments, in_child, peak_mb  # noqa: E402


def _phot():
    from starpix.detect import StarFinder
    from starpix.photometry import PSFPhotometry, SourceGrouper
    from starpix.psf import GaussianPSF

    return PSFPhotometry(GaussianPSF(2.5), 7, finder=StarFinder(15.0, 2.5), grouper=SourceGrouper(6),
                         aperture_radius=4)


def _warm():
    """Import and compile (numba) what the photometry uses, outside the timing."""
    from starpix.psf import GaussianPSF
    from starpix.simulate import make_model_image

    image, _ = make_model_image((64, 64), GaussianPSF(2.5), 5, flux=(3000, 6000), min_separation=8, seed=0)
    _phot()(image)
    return True


def _job_tiles(path, tile, executor=None):
    from starpix.photometry import tiled_photometry

    _warm()
    start = time.perf_counter()
    table = tiled_photometry(path, _phot(), tile_size=tile, executor=executor)
    return time.perf_counter() - start, table


def _job_cube(cube, pixels, outdir, executor=None):
    from starpix.cutout import clear_cube_cache, cube_cut

    clear_cube_cache()
    start = time.perf_counter()
    paths = cube_cut(cube, pixels, 10, output_dir=outdir, executor=executor)
    return time.perf_counter() - start, paths


def _worker_peak(client):
    return max(client.run(peak_mb).values())


def _numba_threads():
    import numba

    return numba.get_num_threads()


def _busy_seconds(stream):
    """Seconds the workers spent computing, summed over the tasks of a Dask task stream."""
    return sum(part["stop"] - part["start"] for task in stream for part in task.get("startstops", ())
               if part.get("action") == "compute")


def main(argv=None):
    args = arguments(__doc__, "/tmp/starpix-bench-scale", "a 2048 x 2048 mosaic and a small cube", argv)
    import numpy as np
    from astropy.io import fits
    from distributed import Client, LocalCluster, get_task_stream

    from starpix.cutout import build_cube
    from starpix.psf import GaussianPSF
    from starpix.simulate import make_model_image, make_noise_image, make_tess_ffis

    side, n_stars, tile = (8192, 20000, 1024) if not args.quick else (2048, 1250, 512)
    work = args.workdir
    table = Table("scale.py", "serial", "1 process")

    print(f"simulating a {side}x{side} mosaic with {n_stars} stars ...", flush=True)
    image, _ = make_model_image((side, side), GaussianPSF(2.5), n_stars, flux=(3000, 60000), min_separation=4,
                                seed=1)
    image += make_noise_image(image.shape, mean=0, stddev=2.0, seed=2)
    mosaic = os.path.join(work, "mosaic.fits")
    fits.writeto(mosaic, image.astype(np.float32))
    del image

    print("simulating FFIs and building the cube ...", flush=True)
    ffi_shape = (1024, 1024) if not args.quick else (300, 320)
    files, _ = make_tess_ffis(os.path.join(work, "ffis"), 20, shape=ffi_shape, n_stars=500, seed=1)
    cube = os.path.join(work, "cube.fits")
    build_cube(files, cube)
    rng = np.random.default_rng(0)
    n_tpf = 1000
    pixels = [(float(x), float(y)) for x, y in zip(rng.uniform(10, ffi_shape[1] - 10, n_tpf),
                                                  rng.uniform(10, ffi_shape[0] - 10, n_tpf))]
    # no two targets may share an output name: nudge duplicates apart
    pixels = list(dict.fromkeys((round(x, 2), round(y, 2)) for x, y in pixels))

    (t_serial, serial), m_serial = in_child(_job_tiles, mosaic, tile)
    for dirname in ("serial", "dask"):
        os.makedirs(os.path.join(work, dirname))
    (tc_serial, tpf_serial), mc_serial = in_child(_job_cube, cube, pixels, os.path.join(work, "serial"))

    serial_threads, _ = in_child(_numba_threads)
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, silence_logs=50, env={"NUMBA_NUM_THREADS": "1"})
    client = Client(cluster)
    try:
        worker_threads = sorted(set(client.run(_numba_threads).values()))
        client.run(_warm)
        with get_task_stream(client) as stream:
            t_dask, tiled = _job_tiles(mosaic, tile, client)
        busy = _busy_seconds(stream.data)
        m_dask = _worker_peak(client)
        client.restart()
        tc_dask, tpf_dask = _job_cube(cube, pixels, os.path.join(work, "dask"), client)
        mc_dask = _worker_peak(client)
    finally:
        client.close()
        cluster.close()

    same = serial.colnames == tiled.colnames and len(serial) == len(tiled) and all(
        np.array_equal(np.asarray(serial[c]), np.asarray(tiled[c]), equal_nan=True) for c in serial.colnames)
    if not same:
        raise SystemExit("the catalogues differ")
    for a, b in zip(tpf_serial, tpf_dask):
        with fits.open(a) as fa, fits.open(b) as fb:
            if not np.array_equal(fa[1].data["FLUX"], fb[1].data["FLUX"], equal_nan=True):
                raise SystemExit(f"TPFs differ: {a} {b}")
    n_tiles = (-(-side // tile)) ** 2
    print(f"  photometry on the cluster: {t_dask:.1f} s wall, workers busy {busy:.1f} s in all "
          f"({busy / (2 * t_dask):.0%} of 2 workers x wall); serial {t_serial:.1f} s", flush=True)
    table.add(f"PSF photometry {side}x{side}, {len(serial)} stars, {n_tiles} tiles of {tile}", t_dask, t_serial,
              m_dask, m_serial, f"starpix column: LocalCluster 2 workers (peak = largest worker); workers "
              f"computed tiles {busy:.1f} s in all ({busy / (2 * t_dask):.0%} busy)")
    table.add(f"{len(pixels)} TPFs 10x10 from a cube of 20 FFIs {ffi_shape[1]}x{ffi_shape[0]}", tc_dask, tc_serial,
              mc_dask, mc_serial, "starpix column: LocalCluster 2 workers")
    table.finish(f"Serial = one process, executor=None, {serial_threads} numba threads; dask = "
                 f"LocalCluster(n_workers=2, threads_per_worker=1), numba threads per worker "
                 f"{'/'.join(map(str, worker_threads))}, on loopback, inputs read by the workers by file name.",
                 f"Agreement: tiled catalogues identical (all {len(serial.colnames)} columns, {len(serial)} rows, "
                 f"bit for bit); all {len(pixels)} TPFs hold identical FLUX.",
                 quick=args.quick, record=args.record)


if __name__ == "__main__":
    main()
