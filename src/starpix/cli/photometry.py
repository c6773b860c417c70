"""``starpix photometry``: PSF photometry of an image (photutils' PSFPhotometry)."""

from __future__ import annotations

import time

from . import _common

EXAMPLE = """\
  starpix photometry image.fits --psf grid.fits --fit-shape 5 --aperture-radius 5 \\
      --threshold 6 --fwhm 3 -o phot.ecsv --residual resid.fits --plot panels.png
  starpix photometry image.fits --psf grid.fits --fit-shape 5 --aperture-radius 5 --threshold 6 --fwhm 3 \\
      --error err.fits --min-separation 35 -o phot.ecsv
  starpix photometry image.fits --psf-fwhm 2.5 --fit-shape 7 --init stars.ecsv --fixed-positions -o forced.ecsv
  starpix photometry image.fits --psf grid.fits --fit-shape 5 --aperture-radius 5 --threshold 6 --fwhm 3 \\
      --iterative --mode new -o phot.ecsv
  starpix photometry mosaic.fits --psf-fwhm 2.5 --fit-shape 7 --aperture-radius 4 --threshold 20 --fwhm 2.5 \\
      --tile-size 1024 --jobs 4 -o phot.ecsv

Pixel positions are 0-based, as in photutils.  --init takes a table with x/y
(or x_init, x_centroid, ...) columns and optionally flux."""


def register(subparsers):
    """Register ``starpix photometry``."""
    parser = _common.add_parser(
        subparsers, "photometry",
        help="fit a PSF to the stars of an image (PSF photometry)",
        description="Find stars (or take them from a table), fit a PSF model to all of them at once "
                    "(grouping close stars and fitting them jointly), and write photutils' results table; "
                    "optionally the residual and model images and a data/model/residual figure.",
        example=EXAMPLE,
    )
    parser.add_argument("image", metavar="IMAGE", help="FITS image; IMAGE[HDU] picks an HDU")
    psf = parser.add_mutually_exclusive_group(required=True)
    psf.add_argument("--psf", metavar="GRID", help="gridded-PSF FITS file (STPSF format)")
    psf.add_argument("--psf-fwhm", type=float, metavar="FWHM", help="circular Gaussian PSF of this FWHM")
    parser.add_argument("--fit-shape", required=True, metavar="N|NY,NX", help="odd size of the fitted box")
    parser.add_argument("--aperture-radius", type=float, help="radius of the aperture giving initial fluxes")
    parser.add_argument("-o", "--output", required=True, help="results table (ECSV, CSV or FITS)")
    parser.add_argument("--error", metavar="FITS", help="1-sigma error image (FILE[HDU] syntax)")
    parser.add_argument("--mask", metavar="FITS", help="mask image: non-zero pixels are left out")
    find = parser.add_argument_group("finding (or --init)")
    find.add_argument("--init", metavar="TABLE", help="initial positions (and fluxes) instead of a finder")
    find.add_argument("--threshold", type=float, help="detection threshold (data units)")
    find.add_argument("--fwhm", type=float, help="FWHM of the finder's kernel, pixels")
    find.add_argument("--method", choices=("iraf", "dao"), default="iraf", help="star finder (iraf)")
    fit = parser.add_argument_group("fitting")
    fit.add_argument("--min-separation", type=float, help="group stars closer than this and fit them jointly")
    fit.add_argument("--local-bkg", metavar="RIN,ROUT", help="subtract a local background from this annulus")
    fit.add_argument("--fixed-positions", action="store_true", help="forced photometry: fit fluxes only")
    fit.add_argument("--maxiters", type=int, default=100, help="fitter iterations (100)")
    fit.add_argument("--iterative", action="store_true", help="find, fit, subtract, find again")
    fit.add_argument("--mode", choices=("new", "all"), default="new", help="iterative mode (new)")
    fit.add_argument("--iterations", type=int, default=3, help="iterative passes (3)")
    out = parser.add_argument_group("extra outputs")
    out.add_argument("--residual", metavar="FITS", help="write data minus the fitted model")
    out.add_argument("--model", metavar="FITS", help="write the fitted model image")
    out.add_argument("--plot", metavar="PNG", help="write data, model and residual panels")
    tiles = _common.add_parallel_options(parser)
    tiles.add_argument("--tile-size", type=int, metavar="N",
                       help="fit the image in N x N tiles (each read on its own; sources at tile seams kept once)")
    tiles.add_argument("--overlap", type=int, metavar="N",
                       help="margin of each tile, pixels (default: from --fit-shape, --min-separation, --fwhm)")
    parser.set_defaults(func=run)
    return parser


def _finder(args):
    from ..detect import StarFinder
    from ..errors import InvalidParameterError

    if args.threshold is None or args.fwhm is None:
        raise InvalidParameterError("finding stars needs --threshold and --fwhm (or give --init TABLE)")
    return StarFinder(args.threshold, args.fwhm, method=args.method)


def _plot(path, data, model, residual, overwrite):
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    from astropy.visualization import AsinhStretch, ImageNormalize, PercentileInterval
    from matplotlib.figure import Figure

    from ..io import atomic_output

    figure = Figure(figsize=(15, 5))
    axes = figure.subplots(1, 3)
    norm = ImageNormalize(data, interval=PercentileInterval(99.5), stretch=AsinhStretch())
    for ax, image, title in zip(axes, (data, model, residual), ("data", "model", "residual")):
        shown = ax.imshow(image, origin="lower", norm=norm if title != "residual" else None, cmap="viridis",
                          **({} if title != "residual" else
                             {"vmin": -5 * np.nanstd(residual), "vmax": 5 * np.nanstd(residual)}))
        ax.set_title(title)
        figure.colorbar(shown, ax=ax, shrink=0.7)
    figure.tight_layout()
    fmt = path.rsplit(".", 1)[-1].lower() if "." in path else "png"
    with atomic_output(path, overwrite) as tmp:
        figure.savefig(tmp, format=fmt, dpi=100)


def run(args):
    """Run ``starpix photometry``."""
    import numpy as np
    from astropy.io import fits

    from ..errors import InvalidParameterError
    from ..io import add_provenance, check_output, read_image, read_table, write_fits, write_table
    from ..photometry import IterativePSFPhotometry, LocalBackground, PSFPhotometry, SourceGrouper
    from ..psf import GaussianPSF, GriddedPSF

    outputs = [p for p in (args.output, args.residual, args.model, args.plot) if p]
    for path in outputs:
        check_output(path, args.overwrite)
    start = time.perf_counter()
    size = _common.parse_size(args.fit_shape, "--fit-shape")
    fit_shape = tuple(size) if isinstance(size, tuple) else size
    psf = GriddedPSF.read(args.psf) if args.psf else GaussianPSF(args.psf_fwhm)
    if args.tile_size is not None or args.overlap is not None or args.jobs is not None or args.scheduler:
        return _run_tiled(args, psf, fit_shape, start)
    with read_image(args.image) as source:
        data = np.array(source.data, dtype=float)
        header = source.header.copy()
    error = mask = None
    if args.error:
        with read_image(args.error) as source:
            error = np.array(source.data, dtype=float)
    if args.mask:
        with read_image(args.mask) as source:
            mask = np.asarray(source.data) != 0
    init = read_table(args.init) if args.init else None
    grouper = SourceGrouper(args.min_separation) if args.min_separation else None
    local_bkg = None
    if args.local_bkg:
        inner, outer = _common.parse_pixel(args.local_bkg, "--local-bkg")
        local_bkg = LocalBackground(inner, outer)
    options = dict(grouper=grouper, aperture_radius=args.aperture_radius, fitter_maxiters=args.maxiters,
                   localbkg_estimator=local_bkg, progress_bar=_common.show_progress(args))
    if args.fixed_positions:
        if init is None:
            raise InvalidParameterError("--fixed-positions needs --init TABLE (the positions to keep)")
        options["fixed"] = ("x", "y")
    if args.iterative:
        if init is not None:
            raise InvalidParameterError("--iterative finds its own stars: drop --init")
        phot = IterativePSFPhotometry(psf, fit_shape, _finder(args), mode=args.mode, maxiters=args.iterations,
                                      **options)
    else:
        phot = PSFPhotometry(psf, fit_shape, finder=None if init is not None else _finder(args), **options)
    result = phot.fit(data, error=error, mask=mask, init_params=init)
    table = result.table
    write_table(table, args.output, overwrite=args.overwrite)
    if args.residual or args.model or args.plot:
        model = result.make_model_image(data.shape)
        residual = data - model
        for path, image in ((args.residual, residual), (args.model, model)):
            if path:
                add_provenance(header, [args.image])
                write_fits([fits.PrimaryHDU(image.astype(np.float32), header=header)], path,
                           overwrite=args.overwrite)
        if args.plot:
            _plot(args.plot, data, model, residual, args.overwrite)
    n_flagged = int(np.count_nonzero(np.asarray(table["flags"])))
    _common.say(args, f"{args.output}: {len(table)} stars fitted ({n_flagged} flagged) in "
                      f"{time.perf_counter() - start:.2f} s")
    return 0


def _run_tiled(args, psf, fit_shape, start):
    """``--tile-size`` (with ``--jobs``/``--scheduler``): tiled photometry; the image is read tile by tile."""
    import numpy as np

    from ..errors import InvalidParameterError
    from ..io import read_table, write_table
    from ..photometry import LocalBackground, PSFPhotometry, SourceGrouper, tiled_photometry

    if args.tile_size is None:
        raise InvalidParameterError("--jobs/--scheduler/--overlap fit the image in tiles: give --tile-size N")
    if args.tile_size < 1:
        raise InvalidParameterError(f"--tile-size: expected a positive number of pixels, got {args.tile_size}")
    if args.overlap is not None and args.overlap < 0:
        raise InvalidParameterError(f"--overlap: expected 0 or more pixels, got {args.overlap}")
    for option, value in (("--iterative", args.iterative), ("--residual", args.residual),
                          ("--model", args.model), ("--plot", args.plot)):
        if value:
            raise InvalidParameterError(f"{option} works on the whole image: it cannot be combined with --tile-size")
    init = read_table(args.init) if args.init else None
    options = dict(grouper=SourceGrouper(args.min_separation) if args.min_separation else None,
                   aperture_radius=args.aperture_radius, fitter_maxiters=args.maxiters)
    if args.local_bkg:
        inner, outer = _common.parse_pixel(args.local_bkg, "--local-bkg")
        options["localbkg_estimator"] = LocalBackground(inner, outer)
    if args.fixed_positions:
        if init is None:
            raise InvalidParameterError("--fixed-positions needs --init TABLE (the positions to keep)")
        options["fixed"] = ("x", "y")
    phot = PSFPhotometry(psf, fit_shape, finder=None if init is not None else _finder(args), **options)
    with _common.parallel_executor(args) as (executor, workers):
        table = tiled_photometry(args.image, phot, tile_size=args.tile_size, overlap=args.overlap,
                                 error=args.error, mask=args.mask, init_params=init, executor=executor,
                                 max_workers=workers, progress_bar=_common.show_progress(args))
    write_table(table, args.output, overwrite=args.overwrite)
    n_flagged = int(np.count_nonzero(np.asarray(table["flags"])))
    _common.say(args, f"{args.output}: {len(table)} stars fitted ({n_flagged} flagged) in "
                      f"{time.perf_counter() - start:.2f} s")
    return 0
