"""Names and writers of the AstroDrizzle pipeline's products (final, intermediate, log, plot)."""

from __future__ import annotations

import os

import numpy as np

from ..errors import InvalidParameterError

__all__ = ["ProductNames", "write_image", "write_runfile", "plot_final"]


class ProductNames:
    """File names of every product, AstroDrizzle's way, beside the final output.

    ``output`` may be a root (``'final'``), ``'final_drz.fits'`` or ``'final.fits'``;
    the final product is ``{root}_drz.fits`` (``build``) or ``{root}_drz_sci.fits``,
    ``_drz_wht.fits``, ``_drz_ctx.fits``. Intermediates go to the same directory:
    ``{input root}_single_sci.fits`` / ``_single_wht.fits``, ``{root}_med.fits``,
    ``{input root}_sci{N}_blt.fits``, ``{input root}_sci{N}_crmask.fits``,
    ``{input root}_crclean.fits``, ``{root}_sci{N}_staticMask.fits``.
    """

    def __init__(self, output):
        text = os.fspath(output)
        if not text or text.endswith(os.sep):
            raise InvalidParameterError(f"output: expected a file name or root name, got {output!r}")
        directory, name = os.path.split(text)
        for ext in (".fits.gz", ".fits", ".fit"):
            if name.lower().endswith(ext):
                name = name[: -len(ext)]
                break
        if name.endswith("_drz"):
            name = name[:-4]
        if not name:
            raise InvalidParameterError(f"output: no root name in {output!r}")
        self.directory = directory or "."
        self.root = name

    def _path(self, name):
        return os.path.join(self.directory, name)

    def final(self, build):
        if build:
            return {"drz": self._path(f"{self.root}_drz.fits")}
        return {kind: self._path(f"{self.root}_drz_{kind}.fits") for kind in ("sci", "wht", "ctx")}

    def single(self, rootname):
        return self._path(f"{rootname}_single_sci.fits"), self._path(f"{rootname}_single_wht.fits")

    def median(self):
        return self._path(f"{self.root}_med.fits")

    def blot(self, rootname, extver):
        return self._path(f"{rootname}_sci{extver}_blt.fits")

    def crmask(self, rootname, extver):
        return self._path(f"{rootname}_sci{extver}_crmask.fits")

    def crclean(self, rootname):
        return self._path(f"{rootname}_crclean.fits")

    def static(self, extver):
        return self._path(f"{self.root}_sci{extver}_staticMask.fits")

    def runfile(self):
        return self._path(f"{self.root}_astrodrizzle.log")

    def plot(self):
        return self._path(f"{self.root}_drz.png")


def write_image(path, data, *, header=None, wcs=None, overwrite=False, extname=None, extra=None):
    """Write one image (primary HDU, optional WCS and cards) atomically."""
    from astropy.io import fits

    from ..io import add_provenance, write_fits

    hdr = fits.Header() if header is None else header.copy()
    if wcs is not None:
        hdr.update(wcs.to_header())
    if extname:
        hdr["EXTNAME"] = extname
    for key, value in (extra or {}).items():
        hdr[key] = value
    add_provenance(hdr)
    write_fits(fits.HDUList([fits.PrimaryHDU(np.asarray(data), header=hdr)]), path, overwrite=overwrite,
               checksum=False)
    return path


def write_runfile(path, *, inputs, params, timings, products, notes=(), overwrite=False):
    """AstroDrizzle's runfile analogue: inputs, every parameter, each step's time, the products."""
    import datetime

    from .._version import __version__
    from ..io import atomic_output

    lines = [f"starpix {__version__} drizzle (AstroDrizzle pipeline) run of "
             f"{datetime.datetime.now().isoformat(timespec='seconds')}", "", "Inputs:"]
    lines += [f"  {name}" for name in inputs]
    lines += ["", "Parameters:"]
    lines += [f"  {key} = {value!r}" for key, value in params.items()]
    lines += ["", "Steps (seconds):"]
    total = 0.0
    for step, seconds in timings.items():
        lines.append(f"  {step:<28s} {seconds:10.3f}")
        total += seconds
    lines.append(f"  {'total':<28s} {total:10.3f}")
    if notes:
        lines += ["", "Notes:"] + [f"  {note}" for note in notes]
    lines += ["", "Products:"] + [f"  {name}" for name in products]
    with atomic_output(path, overwrite) as tmp:
        with open(tmp, "w") as handle:
            handle.write("\n".join(lines) + "\n")
    return path


def plot_final(path, sci, wht, *, title="", overwrite=False):
    """PNG of the final image (percentile stretch) and its weight map, side by side."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    from ..io import atomic_output

    fig = Figure(figsize=(10, 4.6), layout="constrained")
    axes = fig.subplots(1, 2)
    finite = sci[np.isfinite(sci)]
    lo, hi = (np.percentile(finite, [1.0, 99.5]) if finite.size else (0.0, 1.0))
    for ax, image, label, limits in ((axes[0], sci, "SCI", (lo, hi)), (axes[1], wht, "WHT", (None, None))):
        shown = ax.imshow(image, origin="lower", cmap="gray" if label == "SCI" else "viridis", vmin=limits[0],
                          vmax=limits[1], interpolation="nearest")
        ax.set_title(f"{title} {label}".strip())
        ax.set_xlabel("x (pixels)")
        ax.set_ylabel("y (pixels)")
        fig.colorbar(shown, ax=ax, shrink=0.85)
    suffix = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    with atomic_output(path, overwrite) as tmp:
        fig.savefig(tmp, format=suffix, dpi=100)
    return path
