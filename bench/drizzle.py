"""Drizzle kernels, pixel maps and blot: starpix against the drizzle package (spacetelescope, C).

    python bench/drizzle.py [--workdir /tmp/starpix-drizzle-bench] [--quick] [--record]

One 2048x2048 exposure (rotated 0.3 deg, sub-pixel shift, mild quadratic
distortion) drizzled onto a 2100x2100 grid with the square, turbo and point
kernels; starpix on one core (NUMBA_NUM_THREADS=1 in its process) and on all
cores, drizzle (whose C code holds the GIL: one core). Pixel maps between two
TAN-SIP WCSs: drizzle.utils.calc_pixmap against starpix's exact map and its
stepsize=10 map (AstroDrizzle's default). Blot (poly5) of the 2100x2100 grid back
onto the exposure. Then starpix's whole AstroDrizzle pipeline on four 2048x2048
dithered exposures (in memory), each step's time printed. Each measurement runs
in a fresh process; agreement is checked before the times are reported.
"""

from __future__ import annotations

import os
import shutil
import sys

import numpy as np

from _benchlib import Table, arguments, best_of, in_child

_HERE = os.path.dirname(os.path.abspath(__file__))


def _peer(name):
    """Import a module of the drizzle package: this script's name shadows it on the import path."""
    import importlib

    saved = sys.path[:]
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
    try:
        return importlib.import_module(name)
    finally:
        sys.path[:] = saved


def _scene(workdir, n):
    rng = np.random.default_rng(0)
    data = rng.normal(100.0, 10.0, (n, n)).astype(np.float32)
    y, x = np.indices((n, n), dtype=np.float64)
    t = np.deg2rad(0.3)
    xc, yc = x - n / 2, y - n / 2
    ox = np.cos(t) * xc - np.sin(t) * yc + 2e-6 * xc * yc + n / 2 + 26.37
    oy = np.sin(t) * xc + np.cos(t) * yc + 2e-6 * xc * xc + n / 2 + 25.81
    np.save(os.path.join(workdir, "data.npy"), data)
    np.save(os.path.join(workdir, "pixmap.npy"), np.dstack([ox, oy]))


def _wcs_pair(n):
    from starpix.simulate import make_wcs

    w_in = make_wcs((n, n), pixel_scale_arcsec=0.1, rotation_deg=12.0, sip=True)
    w_out = make_wcs((n + 52, n + 52), center=(150.00001, 2.00002), pixel_scale_arcsec=0.1, sip=False)
    w_in.pixel_shape = (n, n)
    return w_in, w_out


def _job_kernel(tool, kernel, workdir, out_n, threads, out_path):
    if threads:
        os.environ["NUMBA_NUM_THREADS"] = str(threads)
    data = np.load(os.path.join(workdir, "data.npy"))
    pixmap = np.load(os.path.join(workdir, "pixmap.npy"))
    if tool == "drizzle":
        Drizzle = _peer("drizzle.resample").Drizzle
    else:
        from starpix.drizzle import Drizzle

        Drizzle(kernel=kernel, out_shape=(8, 8)).add_image(data[:8, :8], 1.0, pixmap[:8, :8])  # compile

    def run():
        drz = Drizzle(kernel=kernel, out_shape=(out_n, out_n), fillval=0.0)
        drz.add_image(data, 1.0, pixmap, pixfrac=0.8, pixel_scale_ratio=1.0)
        return drz

    seconds, _, drz = best_of(run, 5)
    np.save(out_path, np.stack([drz.out_img, drz.out_wht]))
    return seconds


def _job_pixmap(tool, n, stepsize, out_path):
    w_in, w_out = _wcs_pair(n)
    if tool == "drizzle":
        calc_pixmap = _peer("drizzle.utils").calc_pixmap
        seconds, _, pm = best_of(lambda: calc_pixmap(w_in, w_out), 2)
    else:
        from starpix.drizzle import calc_pixmap

        calc_pixmap(w_in, w_out, shape=(32, 32), stepsize=10)  # compile
        seconds, _, pm = best_of(lambda: calc_pixmap(w_in, w_out, stepsize=stepsize), 3)
    np.save(out_path, pm)
    return seconds


def _job_blot(tool, workdir, out_n, threads, out_path):
    if threads:
        os.environ["NUMBA_NUM_THREADS"] = str(threads)
    pixmap = np.load(os.path.join(workdir, "pixmap.npy"))
    rng = np.random.default_rng(1)
    src = rng.normal(100.0, 10.0, (out_n, out_n)).astype(np.float32)
    if tool == "drizzle":
        blot_image = _peer("drizzle.resample").blot_image
        seconds, _, out = best_of(lambda: blot_image(src, pixmap, interp="poly5"), 5)
    else:
        from starpix.drizzle import blot

        blot(src[:16, :16], pixmap[:4, :4] * 0 + 5, interp="poly5")  # compile
        seconds, _, out = best_of(lambda: blot(src, pixmap, interp="poly5"), 5)
    np.save(out_path, out)
    return seconds


def _job_pipeline(workdir, n):
    """The whole AstroDrizzle pipeline (starpix) on four n x n dithered exposures; seconds per step."""
    from starpix.drizzle import astrodrizzle
    from starpix.simulate import make_dithered_exposures

    scale = (n / 256) ** 2
    files, _ = make_dithered_exposures(workdir, 4, shape=(n, n), n_stars=int(25 * scale), n_galaxies=int(6 * scale),
                                       n_cosmics=(int(150 * scale), int(25 * scale)), seed=5, prefix="pipe")
    astrodrizzle(files[:1], os.path.join(workdir, "warm"), in_memory=True, runfile=False, driz_cr=False,
                 median=False, blot=False, static=False)  # compile the kernels
    result = astrodrizzle(files, os.path.join(workdir, "pipeline"), in_memory=True, runfile=False,
                          overwrite=True)
    return dict(result.timings)


def pipeline_row(table, workdir, n):
    """Add the pipeline row (four n x n exposures, each step's time) to ``table``; prints the steps."""
    timings, peak = in_child(_job_pipeline, workdir, n)
    total = sum(timings.values())
    steps = ", ".join(f"{k} {v:.2f} s" for k, v in timings.items())
    print(f"  pipeline steps: {steps}", flush=True)
    table.add(f"AstroDrizzle pipeline, 4 x {n}x{n} exposures, all 7 steps (starpix; in memory)", total,
              float("nan"), peak, float("nan"), note=steps)


def main(argv=None):
    args = arguments(__doc__, "/tmp/starpix-drizzle-bench", "512x512 images, to check the script", argv)
    from importlib.metadata import version

    _peer("drizzle")
    n = 512 if args.quick else 2048
    out_n = n + 52
    work = args.workdir
    _scene(work, n)
    table = Table("drizzle.py", "drizzle", version("drizzle"))
    ncores = os.cpu_count()
    agreement = ["", "| task | max abs diff SCI / max SCI | max abs diff WHT / max WHT |", "|---|---:|---:|"]
    ours, theirs = os.path.join(work, "ours.npy"), os.path.join(work, "theirs.npy")
    for kernel in ("square", "turbo", "point"):
        t_peer, m_peer = in_child(_job_kernel, "drizzle", kernel, work, out_n, None, theirs)
        ref = np.load(theirs)
        for threads, label in ((1, "1 core"), (ncores, f"{ncores} cores")):
            t_star, m_star = in_child(_job_kernel, "starpix", kernel, work, out_n, threads, ours)
            table.add(f"drizzle {n}x{n}, {kernel} kernel, pixfrac 0.8, starpix on {label}", t_star, t_peer,
                      m_star, m_peer)
        got = np.load(ours)
        inner = (slice(None), slice(3, -3), slice(3, -3))
        d_img = np.abs(got[inner][0] - ref[inner][0]).max() / np.abs(ref[0]).max()
        d_wht = np.abs(got[inner][1] - ref[inner][1]).max() / np.abs(ref[1]).max()
        agreement.append(f"| {kernel} (output border of 3 px excluded) | {d_img:.1e} | {d_wht:.1e} |")
    t_peer, m_peer = in_child(_job_pixmap, "drizzle", n, 1, theirs)
    ref = np.load(theirs)
    for stepsize, interp_label in ((1, "exact"), (10, "stepsize 10, bilinear")):
        t_star, m_star = in_child(_job_pixmap, "starpix", n, stepsize, ours)
        err = np.abs(np.load(ours) - ref).max()
        table.add(f"pixel map {n}x{n} TAN-SIP -> TAN, starpix {interp_label}", t_star, t_peer, m_star, m_peer,
                  note=f"max error {err:.1e} px")
    t_peer, m_peer = in_child(_job_blot, "drizzle", work, out_n, None, theirs)
    for threads, label in ((1, "1 core"), (ncores, f"{ncores} cores")):
        t_star, m_star = in_child(_job_blot, "starpix", work, out_n, threads, ours)
        table.add(f"blot poly5 {out_n}x{out_n} -> {n}x{n}, starpix on {label}", t_star, t_peer, m_star, m_peer)
    ref, got = np.load(theirs), np.load(ours)
    agreement.append(f"| blot poly5 | {np.abs(got - ref).max() / np.abs(ref).max():.1e} | – |")
    pipeline_row(table, work, n)
    table.finish(f"One {n}x{n} float32 exposure onto a {out_n}x{out_n} grid; kernel and blot times are the best of 5, pixel maps of 2 (drizzle) / 3.",
                 "Agreement with drizzle on the same pixel map:\n" + "\n".join(agreement),
                 quick=args.quick, record=args.record)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
