"""PSF stamps, starpix against Gnuastro's astscript-psf-stamp, on the same image and segmentation.

    python bench/stamps.py [--workdir /tmp/starpix-stamps-bench] [--quick] [--record] [--stars N]

Scene: a 1000x1000 simulated star field (float32), segmented by Gnuastro
(astnoisechisel + astsegment; the stamps are cut from Segment's sky-subtracted
INPUT HDU, as in the manual's tutorial).  Two measurements:

(a) one whole process: ``starpix psf-stamp`` against ``astscript-psf-stamp``
    with a 151x151 stamp, centring, --segment and --normradii=5,10 (best of 5,
    interleaved);
(b) N stars (default 100) of the image: one ``starpix psf-stamp --catalog``
    command against the manual's shell loop over astscript-psf-stamp.

Every stamp is checked against Gnuastro's before the times are reported:
the same NaN mask, pixels within 1e-3 of the stamp's peak, NORMVAL within
1e-4 relative, the same CLABEL/OLABEL.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import numpy as np

from _benchlib import Table, arguments

OPTIONS = ["--mode=img", "--widthinpix=151,151", "--normradii=5,10"]


def _run(argv, cwd=None):
    """(seconds, peak RSS in MB of the largest process of the command) of one command.

    The peak comes from /usr/bin/time (%M): a fork of this (large) Python process would carry its RSS.
    """
    timer = ["/usr/bin/time", "-f", "%M"] if os.path.exists("/usr/bin/time") else []
    start = time.perf_counter()
    proc = subprocess.run(timer + argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    lines = proc.stderr.strip().splitlines()
    peak = float(lines[-1]) / 1024.0 if timer and lines and lines[-1].isdigit() else float("nan")
    return elapsed, peak


def _scene(work, n_stars):
    from astropy.io import fits
    from astropy.table import QTable

    from starpix.simulate import make_star_field

    image, truth = make_star_field((1000, 1000), 400, fwhm=3.0, flux=(2e3, 2e5), background=100.0, noise=5.0,
                                   seed=7)
    path = os.path.join(work, "field.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(image.astype(np.float32))]).writeto(path)
    subprocess.run(["astnoisechisel", path, "-h1", "-o", os.path.join(work, "nc.fits"), "-q"], check=True)
    seg = os.path.join(work, "seg.fits")
    subprocess.run(["astsegment", os.path.join(work, "nc.fits"), "-o", seg, "-q"], check=True)
    x, y, flux = (np.asarray(truth[c], float) for c in ("x_0", "y_0", "flux"))
    inside = (x > 5) & (x < 994) & (y > 5) & (y < 994)
    order = np.argsort(-flux[inside])[:n_stars]
    # 1-based FITS pixels, rounded to 4 decimals as typed on a command line (Gnuastro reads the text)
    stars = [(round(float(a) + 1, 4), round(float(b) + 1, 4)) for a, b in zip(x[inside][order], y[inside][order])]
    catalog = os.path.join(work, "stars.ecsv")
    QTable({"x": [s[0] for s in stars], "y": [s[1] for s in stars]}).write(catalog)
    return seg, catalog, stars


def _text(value):
    from starpix.stamp._batch import coordinate_text

    return coordinate_text(value)


def _compare(ours, theirs):
    """(max pixel difference / peak where both are finite, NORMVAL relative difference, pixels whose NaN-ness
    differs); raises on a label mismatch."""
    from astropy.io import fits

    with fits.open(ours) as a, fits.open(theirs) as b:
        da, db, ha, hb = a[1].data, b[1].data, a[1].header, b[1].header
        nan_diff = int(np.count_nonzero(np.isnan(da) != np.isnan(db)))
        for key in ("CLABEL", "OLABEL"):
            if ha.get(key) != hb.get(key):
                raise AssertionError(f"{ours}: {key} {ha.get(key)} != Gnuastro's {hb.get(key)}")
        peak = np.nanmax(np.abs(db))
        pixel = float(np.nanmax(np.abs(da - db)) / peak) if np.isfinite(peak) else 0.0
        norm = abs(float(ha["NORMVAL"]) / float(hb["NORMVAL"]) - 1.0)
    return pixel, norm, nan_diff


def _exact_zeros(path, sx, sy, half=76):
    """Exact zeros in the input box of a stamp at 1-based (sx, sy): Gnuastro's Crop makes them NaN."""
    from astropy.io import fits

    data = fits.getdata(path, 1)
    x, y = int(np.floor(sx + 0.5)) - 1, int(np.floor(sy + 0.5)) - 1
    box = data[max(y - half, 0):y + half + 1, max(x - half, 0):x + half + 1]
    return int(np.count_nonzero(box == 0.0))


def main(argv=None):
    args = arguments(__doc__, "/tmp/starpix-stamps-bench", "20 stars instead of 100, 3 repeats", argv,
                     extra=[("--stars", dict(type=int, default=None, help="stars of the batch (default 100)"))])
    if shutil.which("astscript-psf-stamp") is None:
        print("Gnuastro (astscript-psf-stamp) is not installed: nothing to compare with")
        return 1
    version = subprocess.run(["astscript-psf-stamp", "--version"], capture_output=True, text=True).stdout.split()
    work = args.workdir
    n_stars = args.stars or (20 if args.quick else 100)
    repeat = 3 if args.quick else 5
    seg, catalog, stars = _scene(work, n_stars)
    starpix = [sys.executable, "-m", "starpix"] if shutil.which("starpix") is None else [shutil.which("starpix")]
    table = Table("stamps.py", "Gnuastro", version[version.index("0.19")] if "0.19" in version else "?")
    agreement = []

    # (a) one whole process, 151x151, centring, --segment, --normradii
    x, y = stars[0]
    center = f"--center={_text(x)},{_text(y)}"
    common = [seg, "-h1", *OPTIONS, center, f"--segment={seg}", "--quiet"]
    t_ours, t_theirs, m_ours, m_theirs = [], [], 0.0, 0.0
    for k in range(repeat):
        ours, theirs = os.path.join(work, f"one-ours-{k}.fits"), os.path.join(work, f"one-gnu-{k}.fits")
        seconds, peak = _run(starpix + ["psf-stamp", *common, "-o", ours])
        t_ours.append(seconds)
        m_ours = max(m_ours, peak)
        seconds, peak = _run(["astscript-psf-stamp", *common, f"--output={theirs}",
                              f"--tmpdir={os.path.join(work, f'tmp-one-{k}')}"])
        t_theirs.append(seconds)
        m_theirs = max(m_theirs, peak)
    pixel, norm, nan_diff = _compare(ours, theirs)
    table.add(f"one stamp, whole process (151x151, centring, --segment, --normradii; best of {repeat})",
              min(t_ours), min(t_theirs), m_ours, m_theirs, note=f"first runs {t_ours[0]:.2f} / {t_theirs[0]:.2f} s")
    agreement.append(f"one stamp: max |diff| / peak {pixel:.1e}, NORMVAL rel. diff {norm:.1e}, "
                     f"{nan_diff} pixels NaN in one only")

    # (b) N stars: one batch command vs the manual's shell loop
    outdir = os.path.join(work, "batch")
    t_batch, m_batch = _run(starpix + ["psf-stamp", seg, "-h1", "--catalog", catalog, *OPTIONS,
                                       f"--segment={seg}", "-q", "-o", outdir])
    loopdir = os.path.join(work, "loop")
    os.makedirs(loopdir)
    lines = ["set -e"]
    for sx, sy in stars:
        name = f"field_stamp_{_text(sx)}_{_text(sy)}"
        lines.append(f"astscript-psf-stamp {seg} -h1 {' '.join(OPTIONS)} --center={_text(sx)},{_text(sy)} "
                     f"--segment={seg} --quiet --output={name}.fits --tmpdir={name}-tmp >/dev/null 2>&1")
    script = os.path.join(work, "loop.sh")
    with open(script, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    t_loop, m_loop = _run(["sh", script], cwd=loopdir)
    worst_pixel = worst_norm = 0.0
    mismatched = []
    for sx, sy in stars:
        name = f"field_stamp_{_text(sx)}_{_text(sy)}.fits".replace("field_", "seg_")
        gnu = os.path.join(loopdir, f"field_stamp_{_text(sx)}_{_text(sy)}.fits")
        pixel, norm, nan_diff = _compare(os.path.join(outdir, name), gnu)
        worst_pixel, worst_norm = max(worst_pixel, pixel), max(worst_norm, norm)
        if nan_diff:
            zeros = _exact_zeros(seg, sx, sy)
            why = f"; {zeros} exact zero(s) in the input, which Gnuastro turns into NaN" if zeros else ""
            mismatched.append(f"{_text(sx)},{_text(sy)} ({nan_diff} px{why})")
    table.add(f"{n_stars} stars of one image: one batch command vs shell loop", t_batch, t_loop, m_batch, m_loop,
              note=f"{t_loop / n_stars:.2f} s per star in the loop")
    agreement.append(f"{n_stars} stars: CLABEL/OLABEL identical; NaN masks identical in "
                     f"{n_stars - len(mismatched)}/{n_stars} stamps"
                     f"{' (differ: ' + ', '.join(mismatched) + ')' if mismatched else ''}; worst |diff| / peak "
                     f"{worst_pixel:.1e}, worst NORMVAL rel. diff {worst_norm:.1e}")
    table.finish("Scene: 1000x1000 float32 star field (400 stars), Gnuastro NoiseChisel + Segment output as "
                 "image and --segment; stamps 151x151 with --normradii=5,10, centring. Times are whole processes "
                 "(python start and imports included).", "Agreement with Gnuastro: " + "; ".join(agreement) + ".",
                 quick=args.quick, record=args.record)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
