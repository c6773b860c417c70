"""Reprojection and coadding, starpix against reproject, on the same images.

    python bench/reprojection.py [--workdir /tmp/starpix-reproject-bench] [--quick] [--record]

bench/preprocess.py imports this file and calls ``add_rows(table, args)`` (or
``reproject_rows(table, workdir, quick=False)``), which adds the rows below to its
``_benchlib.Table`` (whose peer column then holds reproject's times) and returns agreement lines.

Rows: a 2048x2048 TAN-SIP star field (1 arcsec pixels, 20 deg rotation) reprojected onto a TAN grid
(1.1 arcsec pixels, shifted and rotated) with bilinear interpolation (starpix ``reproject`` against
``reproject_interp``) and with exact overlap (against ``reproject_exact``); and a median coadd of 20
dithered 2048x2048 exposures read from FITS files onto their common optimal grid (starpix ``coadd``,
bounded memory, against ``reproject_interp`` of each image onto that grid followed by
``numpy.nanmedian`` of the stack).  Agreement is the largest difference away from the edges, in units
of the image peak.  Each measurement runs in a fresh process (peak RSS is its own).
"""

from __future__ import annotations

import os
import shutil
import sys
import time

import numpy as np

from _benchlib import Table, arguments, in_child

N_COADD = 20
HERE = os.path.dirname(os.path.abspath(__file__))


def _peer():
    """The reproject package."""
    import reproject

    return reproject


def _scene(workdir, n):
    from astropy.io import fits

    from starpix.simulate import make_star_field, make_wcs

    wcs_in = make_wcs((n, n), center=(150.0, 2.0), pixel_scale_arcsec=1.0, rotation_deg=20.0, sip=True)
    image, _ = make_star_field((n, n), n // 4, fwhm=3.0, wcs=wcs_in, seed=1)
    wcs_out = make_wcs((n, n), center=(150.01, 2.005), pixel_scale_arcsec=1.1, rotation_deg=-5.0)
    path = os.path.join(workdir, "single.fits")
    hdul = fits.HDUList([fits.PrimaryHDU(image.astype(np.float32), header=wcs_in.to_header(relax=True)),
                         fits.ImageHDU(header=wcs_out.to_header(relax=True), name="OUTWCS")])
    hdul.writeto(path, overwrite=True)
    return path


def _exposures(workdir, n, count):
    from astropy.io import fits

    from starpix.simulate import make_star_field, make_wcs

    rng = np.random.default_rng(7)
    paths = []
    for k in range(count):
        dx, dy = rng.uniform(-20, 20, 2) / 3600.0
        wcs = make_wcs((n, n), center=(150.0 + dx, 2.0 + dy), pixel_scale_arcsec=1.0,
                       rotation_deg=rng.uniform(-2, 2))
        image, _ = make_star_field((n, n), n // 4, fwhm=3.0, wcs=wcs, seed=100 + k)
        image = image + rng.normal(0, 1.0, (n, n))
        path = os.path.join(workdir, f"exp{k:02d}.fits")
        fits.PrimaryHDU(image.astype(np.float32), header=wcs.to_header(relax=True)).writeto(path, overwrite=True)
        paths.append(path)
    return paths


def _load_single(path):
    from astropy.io import fits
    from astropy.wcs import WCS

    with fits.open(path) as hdul:
        return (np.array(hdul[0].data, dtype=float), WCS(hdul[0].header),
                WCS(hdul["OUTWCS"].header), hdul[0].data.shape)


def _job_single(tool, method, path, out_path):
    image, wcs_in, wcs_out, shape = _load_single(path)
    if tool == "starpix":
        from starpix.reproject import reproject

        reproject(image[:64, :64], wcs_in, wcs_out, (64, 64), method=method)  # compile the kernels
        start = time.perf_counter()
        out, _ = reproject(image, wcs_in, wcs_out, shape, method=method)
    else:
        peer = _peer()
        start = time.perf_counter()
        if method == "interp":
            out, _ = peer.reproject_interp((image, wcs_in), wcs_out, shape, order="bilinear")
        else:
            out, _ = peer.reproject_exact((image, wcs_in), wcs_out, shape)
    seconds = time.perf_counter() - start
    np.save(out_path, out.astype(np.float64))
    return seconds


def _job_coadd(tool, paths, out_path):
    from starpix.reproject import optimal_wcs

    wcs_out, shape = optimal_wcs(paths)
    if tool == "starpix":
        from starpix.reproject import coadd
        from starpix.simulate import make_wcs

        tiny = make_wcs((32, 32))
        coadd([(np.zeros((32, 32)), tiny)] * 2, tiny, (32, 32), method="median")  # compile the kernels
        start = time.perf_counter()
        out, _ = coadd(paths, wcs_out, shape, method="median")
    else:
        from astropy.io import fits
        from astropy.wcs import WCS
        reproject_interp = _peer().reproject_interp
        start = time.perf_counter()
        arrays = []
        for path in paths:
            with fits.open(path) as hdul:
                arrays.append(reproject_interp((hdul[0].data, WCS(hdul[0].header)), wcs_out, shape,
                                               return_footprint=False))
        out = np.nanmedian(np.array(arrays), axis=0)
    seconds = time.perf_counter() - start
    np.save(out_path, out)
    return seconds


def _agreement(ours, theirs, edge=8):
    both = np.isfinite(ours) & np.isfinite(theirs)
    both[:edge] = both[-edge:] = False
    both[:, :edge] = both[:, -edge:] = False
    peak = np.nanmax(np.abs(theirs))
    return float(np.max(np.abs(ours - theirs)[both]) / peak)


def reproject_rows(table, workdir, quick=False):
    """Add the reprojection and coadd rows to ``table``; return agreement lines (markdown)."""
    n = 512 if quick else 2048
    count = 4 if quick else N_COADD
    os.makedirs(workdir, exist_ok=True)
    single = _scene(workdir, n)
    ours_path, theirs_path = os.path.join(workdir, "ours.npy"), os.path.join(workdir, "theirs.npy")
    lines = []
    for method, peer in (("interp", "reproject_interp (bilinear)"), ("exact", "reproject_exact")):
        t_star, m_star = in_child(_job_single, "starpix", method, single, ours_path)
        t_peer, m_peer = in_child(_job_single, "reproject", method, single, theirs_path)
        diff = _agreement(np.load(ours_path), np.load(theirs_path))
        table.add(f"reproject {method} {n}x{n} (TAN-SIP -> TAN) vs {peer}", t_star, t_peer, m_star, m_peer,
                  f"max diff {diff:.1e} of peak")
        lines.append(f"- reproject {method}, {n}x{n}: largest difference {diff:.2e} of the peak (8-pixel edge "
                     "left out)")
    paths = _exposures(workdir, n, count)
    t_star, m_star = in_child(_job_coadd, "starpix", paths, ours_path)
    t_peer, m_peer = in_child(_job_coadd, "reproject", paths, theirs_path)
    diff = _agreement(np.load(ours_path), np.load(theirs_path))
    table.add(f"median coadd of {count} {n}x{n} images vs reproject_interp + numpy.nanmedian", t_star, t_peer,
              m_star, m_peer, f"max diff {diff:.1e} of peak")
    lines.append(f"- median coadd of {count} images: largest difference {diff:.2e} of the peak")
    return lines


def add_rows(table, args):
    """bench/preprocess.py's hook: this script's rows in its table, and the agreement lines as a note."""
    lines = reproject_rows(table, os.path.join(args.workdir, "reproject"), quick=args.quick)
    return "Agreement with reproject:\n" + "\n".join(lines)


def main(argv=None):
    args = arguments(__doc__, "/tmp/starpix-reproject-bench", "512x512 images and 4 exposures, to check the script",
                     argv)
    table = Table("reproject.py", "reproject", _peer().__version__)
    lines = reproject_rows(table, args.workdir, quick=args.quick)
    table.finish("Starpix reprojects with bilinear interpolation or exact overlap; the coadd is a median "
                 "in bounded memory (256 MB of reprojected data held at once).",
                 "Agreement with reproject:\n" + "\n".join(lines), quick=args.quick, record=args.record)
    shutil.rmtree(args.workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
