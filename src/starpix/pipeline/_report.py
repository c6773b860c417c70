"""The pipeline's report: what each stage made, with the plots people would rather look at than read.

Markdown (``report.md`` with PNG files beside it) or one self-contained HTML
file (``report.html``, the PNGs embedded).  Plots: the PSF grid (when a gridded
PSF is given), the drizzle weight map, data/model/residual panels, the PSF
stamps, the stacked extended PSF with its radial profile, and the recovered
versus input fluxes and positions (when a truth table is given).
"""

from __future__ import annotations

import base64
import html
import json
import os
import time

import numpy as np

from .._version import __version__
from ._config import STAGE_HELP, STAGES

__all__ = ["write_report"]


def _figure(ncols=1, nrows=1, size=(5.0, 4.2)):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False,
                             layout="constrained")  # keeps one panel's labels off its neighbour
    return fig, axes


def _save(fig, path):
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)


def _limits(image, low=1.0, high=99.5):
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, [low, high])
    return float(lo), float(hi if hi > lo else lo + 1.0)


def _plot_psf_grid(ctx, outdir):
    from ..psf import GriddedPSF

    grid = GriddedPSF.read(ctx.config.inputs["psf"])
    fig = grid.plot_grid(deltas=len(grid.positions) > 1)
    path = os.path.join(outdir, "psf-grid.png")
    fig.savefig(path, dpi=80, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path, "PSF grid: each PSF of the grid minus their mean" if len(grid.positions) > 1 else "PSF grid"


def _plot_weight(ctx, outdir):
    from astropy.io import fits

    path = os.path.join(ctx.stage_dir("drizzle"), "final_drz.fits")
    with fits.open(path) as hdul:
        wht = np.array(hdul["WHT"].data, dtype=float)
    fig, axes = _figure()
    ax = axes[0, 0]
    im = ax.imshow(wht, origin="lower", cmap="gray", vmin=0, vmax=_limits(wht, 0, 99.9)[1])
    fig.colorbar(im, ax=ax, label="weight")
    ax.set_title("drizzle weight map (WHT)")
    out = os.path.join(outdir, "drizzle-weight.png")
    _save(fig, out)
    return out, "The final drizzle's weight map: dips are cosmic rays and bad pixels left out, edges the dithers"


def _plot_residual(ctx, outdir, zoom):
    from astropy.io import fits

    with fits.open(os.path.join(ctx.stage_dir("photometry"), "residual.fits")) as hdul:
        data, model, residual = (np.array(hdul[n].data, float) for n in ("DATA", "MODEL", "RESIDUAL"))
    ny, nx = data.shape
    h = min(zoom, ny) // 2
    w = min(zoom, nx) // 2
    cy, cx = ny // 2, nx // 2
    box = (slice(cy - h, cy + h), slice(cx - w, cx + w))
    fig, axes = _figure(3, 1, size=(4.2, 4.2))
    # data and model on one asinh stretch (soft below a few noise levels), the residual linear around 0
    lo, hi = _limits(data[box], 1.0, 99.9)
    noise = max(float(np.nanstd(residual[box])), 1e-12)

    def stretch(image):
        return np.arcsinh((image - lo) / (3 * noise))

    rlo, rhi = _limits(residual[box], 0.5, 99.5)
    bound = max(abs(rlo), abs(rhi))
    top = float(stretch(np.array(hi)))
    for ax, image, title, limits in ((axes[0, 0], stretch(data), "data (asinh)", (0, top)),
                                     (axes[0, 1], stretch(model), "model (asinh)",
                                      (0, top)),
                                     (axes[0, 2], residual, "residual", (-bound, bound))):
        ax.imshow(image[box], origin="lower", cmap="gray" if title != "residual" else "RdBu_r",
                  vmin=limits[0], vmax=limits[1], extent=(cx - w - 0.5, cx + w - 0.5, cy - h - 0.5, cy + h - 0.5))
        ax.set_title(title)
    out = os.path.join(outdir, "photometry-residual.png")
    _save(fig, out)
    return out, f"Data, PSF model and residual of the central {2 * w}x{2 * h} pixels (background subtracted)"


def _plot_stamps(ctx, outdir):
    from astropy.io import fits

    with fits.open(os.path.join(ctx.stage_dir("stamps"), "stamps.fits")) as hdul:
        stamps = np.array(hdul[0].data, float)
    if stamps.ndim == 2:
        stamps = stamps[None]
    n = min(len(stamps), 16)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = _figure(cols, rows, size=(2.2, 2.2))
    for k, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if k < n:
            stamp = stamps[k]
            positive = stamp[np.isfinite(stamp) & (stamp > 0)]
            floor = np.percentile(positive, 5) if positive.size else 1e-6
            ax.imshow(np.log10(np.clip(stamp, floor, None)), origin="lower", cmap="magma")
            ax.set_title(f"star {k + 1}", fontsize=8)
    out = os.path.join(outdir, "stamps.png")
    _save(fig, out)
    return out, f"The first {n} of {len(stamps)} PSF stamps (log scale)"


def _plot_stacked(ctx, outdir):
    from astropy.io import fits

    from ..stamp import radial_profile

    with fits.open(os.path.join(ctx.stage_dir("stamps"), "extended-psf.fits")) as hdul:
        psf = np.array(hdul["PSF"].data, float)
    fig, axes = _figure(2, 1)
    positive = psf[np.isfinite(psf) & (psf > 0)]
    floor = np.percentile(positive, 1) if positive.size else 1e-6
    axes[0, 0].imshow(np.log10(np.clip(psf, floor, None)), origin="lower", cmap="magma")
    axes[0, 0].set_title("stacked extended PSF (log)")
    half = psf.shape[0] // 2
    profile = radial_profile(psf, (half, half), half, measures=("mean",))
    axes[0, 1].semilogy(np.asarray(profile["RADIUS"], float), np.abs(np.asarray(profile["MEAN"], float)), "o-",
                        ms=3)
    axes[0, 1].set_xlabel("radius (pixels)")
    axes[0, 1].set_ylabel("mean (normalized)")
    axes[0, 1].set_title("radial profile")
    out = os.path.join(outdir, "extended-psf.png")
    _save(fig, out)
    return out, "The stacked extended PSF and its radial profile"


def _plot_truth(ctx, outdir):
    from astropy.table import QTable

    from ._stages import match_truth, read_truth

    table = QTable.read(os.path.join(ctx.stage_dir("photometry"), "photometry.ecsv"))
    data, header, wcs, _ = ctx.read_science()
    x_true, y_true, flux_true = read_truth(ctx, wcs)
    index, distance = match_truth(np.asarray(table["x_fit"], float), np.asarray(table["y_fit"], float),
                                  x_true, y_true, ctx.config.inputs["match_radius"])
    found = index >= 0
    if not found.any():
        return None
    fit = np.asarray(table["flux_fit"], float)[index[found]]
    dx = np.asarray(table["x_fit"], float)[index[found]] - x_true[found]
    dy = np.asarray(table["y_fit"], float)[index[found]] - y_true[found]
    fig, axes = _figure(2, 1)
    ax = axes[0, 0]
    ax.semilogx(flux_true[found], fit / flux_true[found], ".", ms=4)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xlabel("input flux")
    ax.set_ylabel("recovered / input flux")
    ax.set_title(f"{found.sum()}/{len(x_true)} true stars matched")
    ax = axes[0, 1]
    ax.plot(dx, dy, ".", ms=4)
    ax.axhline(0, color="k", lw=0.8)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("x_fit - x_true (pixels)")
    ax.set_ylabel("y_fit - y_true (pixels)")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title("position offsets")
    out = os.path.join(outdir, "recovered-vs-input.png")
    _save(fig, out)
    return out, "Recovered versus input: flux ratio against input flux, and position offsets"


def write_report(ctx, outdir, final_dir, result):
    """Write the report and its plots into ``outdir``; return the summary lines."""
    config = ctx.config
    available = ctx.notes.get("_available", set())
    zoom = config.params["report"]["zoom"]
    figures = []
    plots = [("psf", _plot_psf_grid, config.inputs["psf"] is not None),
             ("drizzle", _plot_weight, "drizzle" in available),
             ("photometry", lambda c, o: _plot_residual(c, o, zoom), "photometry" in available),
             ("stamps", _plot_stamps, "stamps" in available),
             ("stamps", _plot_stacked, "stamps" in available),
             ("photometry", _plot_truth, "photometry" in available and config.inputs["truth"] is not None)]
    for _, function, wanted in plots:
        if wanted:
            made = function(ctx, outdir)
            if made is not None:
                figures.append(made)
    manifest_path = os.path.join(ctx.output_dir, "pipeline-manifest.json")
    stages = {}
    if os.path.exists(manifest_path):
        with open(manifest_path) as handle:
            stages = json.load(handle).get("stages", {})
    sections = []
    for name in STAGES:
        if name == "report" or name not in available:
            continue
        lines = result.summaries.get(name) or stages.get(name, {}).get("summary", [])
        status = ("ran" if name in result.ran else "up to date" if name in result.skipped
                  else "switched off; outputs of an earlier run")
        seconds = result.seconds.get(name, stages.get(name, {}).get("seconds"))
        sections.append((name, status, seconds, lines))
    cutout_pngs = []
    if "cutouts" in available:
        folder = ctx.stage_dir("cutouts")
        if os.path.isdir(folder):
            cutout_pngs = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".png"))[:8]
    title = f"starpix pipeline report: {os.path.basename(config.path) if config.path else 'configuration'}"
    if config.report_format == "html":
        path = os.path.join(outdir, "report.html")
        _write_html(path, title, config, sections, figures, cutout_pngs)
    else:
        path = os.path.join(outdir, "report.md")
        _write_markdown(path, title, config, sections, figures, cutout_pngs, final_dir)
    return [f"{os.path.join(final_dir, os.path.basename(path))} with {len(figures)} plot(s)"
            + (f" and {len(cutout_pngs)} cutout picture(s)" if cutout_pngs else "")]


def _inputs_lines(config):
    lines = []
    inputs = config.inputs
    if inputs["exposures"]:
        lines.append(f"exposures: {len(inputs['exposures'])} files ({', '.join(map(os.path.basename, inputs['exposures'][:4]))}"
                     + (", ..." if len(inputs["exposures"]) > 4 else "") + ")")
    for key in ("image", "psf", "truth", "targets"):
        if inputs[key]:
            lines.append(f"{key}: {inputs[key]}")
    if inputs["ffis"]:
        lines.append(f"ffis: {len(inputs['ffis'])} files")
    return lines


def _write_markdown(path, title, config, sections, figures, cutout_pngs, final_dir):
    out = [f"# {title}", "", f"starpix {__version__}, {time.strftime('%Y-%m-%d %H:%M:%S')}; outputs in "
           f"`{config.output_dir}`", "", "## Inputs", ""]
    out += [f"- {line}" for line in _inputs_lines(config)]
    out += ["", "## Stages", ""]
    for name, status, seconds, lines in sections:
        timing = f", {seconds:.2f} s" if isinstance(seconds, (int, float)) and status == "ran" else ""
        out += [f"### {name}: {STAGE_HELP[name]} ({status}{timing})", ""]
        out += [f"- {line}" for line in lines] + [""]
    if figures:
        out += ["## Plots", ""]
        for figure, caption in figures:
            out += [f"![{caption}]({os.path.basename(figure)})", "", f"*{caption}*", ""]
    if cutout_pngs:
        out += ["## Cutouts", ""]
        for png in cutout_pngs:
            rel = os.path.relpath(png, final_dir)
            out += [f"![{os.path.basename(png)}]({rel})"]
        out.append("")
    with open(path, "w") as handle:
        handle.write("\n".join(out))


def _data_uri(path):
    with open(path, "rb") as handle:
        return "data:image/png;base64," + base64.b64encode(handle.read()).decode("ascii")


def _write_html(path, title, config, sections, figures, cutout_pngs):
    e = html.escape
    out = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>", f"<title>{e(title)}</title>",
           "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}img{max-width:100%}"
           "li{font-family:monospace;font-size:90%}</style></head><body>",
           f"<h1>{e(title)}</h1>",
           f"<p>starpix {e(__version__)}, {e(time.strftime('%Y-%m-%d %H:%M:%S'))}; outputs in "
           f"<code>{e(config.output_dir)}</code></p>", "<h2>Inputs</h2><ul>"]
    out += [f"<li>{e(line)}</li>" for line in _inputs_lines(config)]
    out += ["</ul>", "<h2>Stages</h2>"]
    for name, status, seconds, lines in sections:
        timing = f", {seconds:.2f} s" if isinstance(seconds, (int, float)) and status == "ran" else ""
        out.append(f"<h3>{e(name)}: {e(STAGE_HELP[name])} ({e(status)}{timing})</h3><ul>")
        out += [f"<li>{e(line)}</li>" for line in lines]
        out.append("</ul>")
    if figures:
        out.append("<h2>Plots</h2>")
        for figure, caption in figures:
            out.append(f"<figure><img src='{_data_uri(figure)}' alt='{e(caption)}'>"
                       f"<figcaption>{e(caption)} ({e(os.path.basename(figure))})</figcaption></figure>")
    if cutout_pngs:
        out.append("<h2>Cutouts</h2><p>")
        for png in cutout_pngs:
            out.append(f"<img src='{_data_uri(png)}' alt='{e(os.path.basename(png))}' title='{e(png)}'>")
        out.append("</p>")
    out.append("</body></html>")
    with open(path, "w") as handle:
        handle.write("\n".join(out))
