"""Cosmic-ray detection, starpix against astroscrappy, on the same images.

    python bench/preprocess.py [--workdir /tmp/starpix-preprocess-bench] [--quick] [--sizes 2048,4096] [--record]

Scenes: star fields (Gaussian stars of FWHM 2.5 px on a 200 ADU sky, Poisson and
read noise, one star in twelve saturated at 50000 ADU) with injected cosmic rays
(single hot pixels and 2-8 pixel tracks).  Both tools run with astroscrappy's
defaults (sigclip 4.5, sigfrac 0.3, objlim 5, niter 4, sepmed, meanmask) and
satlevel 50000; starpix with its star guard (on by default: flagged groups that fit a
star core with the PSF are unflagged).  Each measurement runs in a fresh process; the masks are
compared pixel by pixel and against the injected truth.

The reprojection and coadd rows of issue 6 come from bench/reprojection.py (also
runnable alone).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys

import numpy as np

from _benchlib import HERE, Table, arguments, best_of, in_child


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _scene(workdir, size, seed):
    star_field = _load("_scenes", os.path.join(HERE, "..", "tests", "preprocess", "_scenes.py")).star_field
    density = size * size / 2048**2
    image, truth, xy, peak = star_field((size, size), n_stars=int(2500 * density), n_single=int(3000 * density),
                                        n_tracks=int(1000 * density), seed=seed)
    paths = {key: os.path.join(workdir, f"{size}-{key}.npy") for key in ("image", "truth", "xy")}
    np.save(paths["image"], image)
    np.save(paths["truth"], truth)
    np.save(paths["xy"], xy)
    return paths


def _job_starpix(image_path, out_path, repeat):
    from starpix.preprocess import detect_cosmics

    image = np.load(image_path)
    detect_cosmics(image[:64, :64], satlevel=50000.0)  # numba kernels load from the cache
    seconds, _, (crmask, _) = best_of(lambda: detect_cosmics(image, satlevel=50000.0), repeat)
    np.save(out_path, crmask)
    return seconds


def _job_astroscrappy(image_path, out_path, repeat):
    import astroscrappy

    image = np.load(image_path)
    seconds, _, (crmask, _) = best_of(lambda: astroscrappy.detect_cosmics(image, satlevel=50000.0), repeat)
    np.save(out_path, crmask)
    return seconds


def _star_cores(shape, xy, radius=1.5):
    cores = np.zeros(shape, dtype=bool)
    r = int(np.ceil(radius))
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            x = np.rint(xy[:, 0]).astype(int) + dx
            y = np.rint(xy[:, 1]).astype(int) + dy
            near = (x - xy[:, 0]) ** 2 + (y - xy[:, 1]) ** 2 <= radius**2
            inside = near & (x >= 0) & (y >= 0) & (x < shape[1]) & (y < shape[0])
            cores[y[inside], x[inside]] = True
    return cores


def _quality(mask, truth, cores):
    from scipy import ndimage

    near_truth = ndimage.binary_dilation(truth, np.ones((3, 3), bool), iterations=2)
    false = mask & ~near_truth
    labels, n = ndimage.label(false, np.ones((3, 3), bool))
    on_cores = np.unique(labels[false & cores])
    return {"recall": (mask & truth).sum() / truth.sum(), "false_px": int(false.sum()), "false_groups": int(n),
            "false_groups_on_cores": int((on_cores > 0).sum())}


def _reproject_rows(table, args):
    import reprojection  # bench/reprojection.py: its rows of this table

    return reprojection.add_rows(table, args) or ""


def main(argv=None):
    args = arguments(__doc__, "/tmp/starpix-preprocess-bench", "a 512x512 scene, to check the script", argv,
                     extra=[("--sizes", {"default": "2048,4096", "help": "image sizes (default 2048,4096)"}),
                            ("--no-reproject", {"action": "store_true", "help": "skip bench/reprojection.py's rows"})])
    import astroscrappy

    sizes = [512] if args.quick else [int(part) for part in args.sizes.split(",")]
    table = Table("preprocess.py", "astroscrappy", astroscrappy.__version__)
    lines = ["", "| image | agreement | starpix recall | astroscrappy recall | starpix false groups (on star cores) "
             "| astroscrappy false groups (on star cores) |", "|---|---:|---:|---:|---:|---:|"]
    for size in sizes:
        paths = _scene(args.workdir, size, seed=size)
        ours, theirs = (os.path.join(args.workdir, f"{size}-{tool}.npy") for tool in ("ours", "theirs"))
        repeat = 3 if size <= 2048 else 1
        t_star, m_star = in_child(_job_starpix, paths["image"], ours, repeat)
        t_peer, m_peer = in_child(_job_astroscrappy, paths["image"], theirs, 1)
        a, b = np.load(ours), np.load(theirs)
        agreement = (a == b).mean()
        table.add(f"detect_cosmics {size}x{size}", t_star, t_peer, m_star, m_peer,
                  f"masks agree on {100 * agreement:.4f}% of pixels")
        truth = np.load(paths["truth"])
        cores = _star_cores(truth.shape, np.load(paths["xy"]))
        qa, qb = _quality(a, truth, cores), _quality(b, truth, cores)
        lines.append(f"| {size}x{size} | {100 * agreement:.4f}% | {qa['recall']:.4f} | {qb['recall']:.4f} "
                     f"| {qa['false_groups']} ({qa['false_groups_on_cores']}) "
                     f"| {qb['false_groups']} ({qb['false_groups_on_cores']}) |")
    note = "" if args.no_reproject else _reproject_rows(table, args)
    table.finish("Star fields with injected cosmic rays; astroscrappy's defaults, satlevel 50000; best of 3 "
                 "(starpix, 2048 and less) or one run; peak RSS of each process.",
                 "Masks against the injected truth (false groups: flagged groups 2+ px from any injected hit; on star "
                 "cores: with a pixel within 1.5 px of a star's centre; starpix with its star guard):\n"
                 + "\n".join(lines) + (f"\n\n{note}" if note else ""), quick=args.quick, record=args.record)
    shutil.rmtree(args.workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
