"""``starpix cosmics``: detect and clean cosmic rays (L.A.Cosmic, as astroscrappy)."""

from __future__ import annotations

from . import _common

EXAMPLE = """\
  starpix cosmics image.fits -o clean.fits --mask-out crmask.fits
  starpix cosmics image.fits -o clean.fits --mask-out crmask.fits --gain 1.6 --readnoise 4 --sigclip 5
  starpix cosmics image.fits -o clean.fits --mask bad.fits --cleantype medmask --no-sepmed
  starpix cosmics frames/*.fits --output-dir clean/ --jobs 4     # -> clean/NAME_crmask.fits, NAME_clean.fits
  starpix cosmics frames/*.fits --output-dir clean/ --scheduler tcp://head:8786

Options follow astroscrappy.detect_cosmics (satlevel in electrons); flagged groups that fit a
star core with the PSF (--psffwhm) are unflagged unless --no-star-guard."""


def register(subparsers):
    """Register ``starpix cosmics``."""
    parser = _common.add_parser(
        subparsers, "cosmics",
        help="detect and clean cosmic rays with L.A.Cosmic (astroscrappy's algorithm)",
        description="Find cosmic rays with the Laplacian edge detection of L.A.Cosmic (van Dokkum 2001) "
                    "exactly as astroscrappy does it, and replace them from their neighbourhood.",
        example=EXAMPLE,
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="FITS image (ADU, sky included); IMAGE[HDU] picks an HDU; several with --output-dir")
    parser.add_argument("-o", "--output", help="cleaned image (FITS), for one IMAGE")
    parser.add_argument("--mask-out", metavar="FITS", help="cosmic-ray mask (FITS, uint8, 1 = cosmic ray), "
                                                           "with -o")
    parser.add_argument("--output-dir", metavar="DIR",
                        help="for any number of images: write DIR/NAME_crmask.fits (the mask) and "
                             "DIR/NAME_clean.fits (the cleaned image) per IMAGE (DIR is created)")
    parser.add_argument("--mask-suffix", help="mask names with --output-dir (_crmask)")
    parser.add_argument("--clean-suffix", help="cleaned-image names with --output-dir (_clean)")
    parser.add_argument("--mask", metavar="FITS", help="bad-pixel mask (for every image): non-zero pixels are "
                                                       "ignored")
    parser.add_argument("--gain", type=float, default=1.0, help="electrons per ADU (1.0)")
    parser.add_argument("--readnoise", type=float, default=6.5, help="read noise, electrons (6.5)")
    parser.add_argument("--sigclip", type=float, default=4.5, help="Laplacian-to-noise detection limit (4.5)")
    parser.add_argument("--sigfrac", type=float, default=0.3, help="neighbour limit as a fraction of sigclip (0.3)")
    parser.add_argument("--objlim", type=float, default=5.0, help="least contrast to the fine structure (5.0)")
    parser.add_argument("--satlevel", type=float, default=50000.0, help="saturation level, electrons (50000)")
    parser.add_argument("--niter", type=int, default=4, help="most iterations (4)")
    parser.add_argument("--no-sepmed", dest="sepmed", action="store_false",
                        help="full median filters instead of separable ones")
    parser.add_argument("--cleantype", default="meanmask", choices=("meanmask", "median", "medmask", "idw"),
                        help="how cosmic-ray pixels are replaced (meanmask)")
    parser.add_argument("--fsmode", default="median", choices=("median", "convolve"),
                        help="fine-structure image from medians or a PSF matched filter (median)")
    parser.add_argument("--psfmodel", default="gauss", choices=("gauss", "gaussx", "gaussy", "moffat"),
                        help="PSF model for --fsmode convolve (gauss)")
    parser.add_argument("--psffwhm", type=float, default=2.5, help="PSF FWHM, pixels (2.5)")
    parser.add_argument("--psfsize", type=int, default=7, help="PSF kernel size, odd (7)")
    parser.add_argument("--psfbeta", type=float, default=4.765, help="Moffat beta (4.765)")
    parser.add_argument("--no-star-guard", dest="star_guard", action="store_false",
                        help="keep flagged star cores (no PSF test of the flagged groups): astroscrappy's exact mask")
    group = _common.add_parallel_options(parser)
    group.description = "with --output-dir: one job per image"
    parser.set_defaults(func=run)
    return parser


def _options(args):
    return dict(gain=args.gain, readnoise=args.readnoise, sigclip=args.sigclip, sigfrac=args.sigfrac,
                objlim=args.objlim, satlevel=args.satlevel, niter=args.niter, sepmed=args.sepmed,
                fsmode=args.fsmode, psfmodel=args.psfmodel, psffwhm=args.psffwhm, psfsize=args.psfsize,
                psfbeta=args.psfbeta, star_guard=args.star_guard)


def _run_many(args):
    """``--output-dir``: every image through starpix.preprocess.mask_cosmics_files."""
    import time

    from ..preprocess import mask_cosmics_files

    start = time.perf_counter()
    with _common.parallel_executor(args) as (executor, max_workers):
        results = mask_cosmics_files(
            args.images, output_dir=args.output_dir, masks=[args.mask] * len(args.images),
            mask_suffix=args.mask_suffix or "_crmask", clean_suffix=args.clean_suffix or "_clean",
            overwrite=args.overwrite,
            executor=executor, max_workers=max_workers, progress_bar=_common.show_progress(args),
            cleantype=args.cleantype, **_options(args))
    for result in results:
        _common.say(args, f"{result.input}: {result.n_pixels} cosmic-ray pixels -> {result.mask}, {result.cleaned}")
    _common.say(args, f"{len(results)} images, {sum(r.n_pixels for r in results)} cosmic-ray pixels; "
                      f"{time.perf_counter() - start:.2f} s")
    return 0


def run(args):
    """Run ``starpix cosmics``."""
    import time

    import numpy as np

    from ..errors import InvalidParameterError
    from ..io import check_output
    from ..preprocess import detect_cosmics
    from .mask import output_header, read_2d, read_frame, write_images

    if args.output_dir is not None:
        if args.output is not None or args.mask_out is not None:
            raise InvalidParameterError("--output-dir: names the outputs itself; give it or -o/--mask-out, "
                                        "not both")
        return _run_many(args)
    if args.output is None:
        raise InvalidParameterError("give -o CLEANED.fits (one image) or --output-dir DIR (any number of images)")
    if len(args.images) > 1:
        raise InvalidParameterError(f"-o/--output: names one cleaned image, but {len(args.images)} images were "
                                    "given; use --output-dir DIR for several")
    if args.jobs is not None or args.scheduler is not None:
        raise InvalidParameterError("--jobs/--scheduler: they run one job per image with --output-dir; "
                                    "-o cleans one image here")
    if args.mask_suffix is not None or args.clean_suffix is not None:
        raise InvalidParameterError("--mask-suffix/--clean-suffix: they name the files of --output-dir; "
                                    "with -o give --mask-out instead")
    args.image = args.images[0]
    start = time.perf_counter()
    for path in [args.output] + ([args.mask_out] if args.mask_out else []):
        check_output(path, args.overwrite)
    data, header, label = read_2d(args.image)
    mask = read_frame(args.mask, data.shape, "--mask") != 0 if args.mask else None
    try:
        crmask, cleaned = detect_cosmics(data, mask, cleantype=args.cleantype, **_options(args))
    except InvalidParameterError as exc:
        raise InvalidParameterError(f"{label}: {exc}") from None
    inputs = [p for p in (args.image, args.mask) if p]
    clean_header = output_header(header, inputs)
    clean_header["CRNPIX"] = (int(crmask.sum()), "cosmic-ray pixels cleaned")
    clean_header["CRCLEAN"] = (args.cleantype, "cosmic-ray cleaning method")
    outputs = [(args.output, cleaned, clean_header)]
    if args.mask_out:
        mask_header = output_header(header, inputs)
        mask_header["CRNPIX"] = (int(crmask.sum()), "cosmic-ray pixels")
        outputs.append((args.mask_out, crmask.astype(np.uint8), mask_header))
    write_images(outputs, args.overwrite)
    _common.say(args, f"{args.output}: {int(crmask.sum())} cosmic-ray pixels cleaned; "
                      f"{time.perf_counter() - start:.2f} s")
    return 0
