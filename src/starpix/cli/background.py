"""``starpix background``: mesh background and rms maps of an image (photutils' Background2D)."""

from __future__ import annotations

import time

from . import _common

EXAMPLE = """\
  starpix background image.fits --box-size 64 -o bkg.fits [--rms-out rms.fits]
  starpix background image.fits[SCI] --box-size 50,64 --filter-size 5 --estimator median -o bkg.fits

Sizes are NY,NX or one number for both.  The output carries the input's header
(WCS included) and BKGMED/BKGRMS keywords with the medians of the meshes."""

_DROP = ("XTENSION", "SIMPLE", "PCOUNT", "GCOUNT", "EXTEND", "BSCALE", "BZERO", "BLANK", "CHECKSUM", "DATASUM")


def register(subparsers):
    """Register ``starpix background``."""
    parser = _common.add_parser(
        subparsers, "background",
        help="estimate a 2-D background and background-rms map",
        description="Estimate the background and its rms from sigma-clipped statistics in boxes, "
                    "median-filter the box values and interpolate them back to the image with a bicubic "
                    "spline (photutils' Background2D).",
        example=EXAMPLE,
    )
    parser.add_argument("file", metavar="FILE", help="FITS image; FILE[HDU] picks an HDU")
    parser.add_argument("--box-size", required=True, help="box size in pixels: N or NY,NX")
    parser.add_argument("--filter-size", default="3", help="odd median-filter size in boxes: N or NY,NX (default 3)")
    parser.add_argument("--filter-threshold", type=float,
                        help="filter only boxes whose background is above this value")
    parser.add_argument("--sigma", type=float, default=3.0, help="sigma-clipping limit (default 3)")
    parser.add_argument("--maxiters", type=int, default=10, help="most sigma-clipping passes (default 10)")
    parser.add_argument("--estimator", default="sextractor", choices=("sextractor", "median", "mean", "mode"),
                        help="background of a box (default sextractor)")
    parser.add_argument("--rms-estimator", default="std", choices=("std", "mad_std"),
                        help="rms of a box (default std)")
    parser.add_argument("--exclude-percentile", type=float, default=10.0,
                        help="drop boxes with more than this percentage of pixels masked or clipped (default 10)")
    parser.add_argument("--mask", metavar="FILE", help="FITS mask image: nonzero pixels are left out")
    parser.add_argument("-o", "--output", required=True, help="background image (FITS)")
    parser.add_argument("--rms-out", metavar="FILE", help="background-rms image (FITS)")
    parser.set_defaults(func=run)
    return parser


def _header(source, bkg, args, kind):
    header = source.header.copy()
    for key in _DROP:
        header.remove(key, ignore_missing=True, remove_all=True)
    header["BKGTYPE"] = (kind, "background or background rms map")
    header["BKGBOX"] = (args.box_size, "box size (ny,nx or n)")
    header["BKGFILT"] = (args.filter_size, "median filter size in boxes")
    header["BKGEST"] = (args.estimator if kind == "background" else args.rms_estimator, "box estimator")
    header["BKGSIG"] = (args.sigma, "sigma-clipping limit")
    header["BKGMED"] = (bkg.background_median, "median of the background mesh")
    header["BKGRMS"] = (bkg.background_rms_median, "median of the background rms mesh")
    from ..io import add_provenance

    add_provenance(header, [source.path])
    return header


def run(args):
    """Run ``starpix background``."""
    import os

    import numpy as np
    from astropy.io import fits

    from ..detect import Background
    from ..errors import InvalidParameterError
    from ..io import check_output, read_image, write_fits

    start = time.perf_counter()
    box = _common.parse_int_sizes(args.box_size, "--box-size")
    filt = _common.parse_int_sizes(args.filter_size, "--filter-size")
    outputs = [args.output] + ([args.rms_out] if args.rms_out else [])
    if args.rms_out and os.path.abspath(args.rms_out) == os.path.abspath(args.output):
        raise InvalidParameterError("--rms-out must differ from -o/--output")
    for path in outputs:
        check_output(path, args.overwrite)
    with read_image(args.file) as source:
        data = np.asarray(source.data)
        if data.ndim != 2:
            raise InvalidParameterError(f"{source.label}: expected a 2-D image, got shape {data.shape}")
        mask = None
        if args.mask:
            with read_image(args.mask) as mask_source:
                mask = np.asarray(mask_source.data) != 0
            if mask.shape != data.shape:
                raise InvalidParameterError(f"--mask {args.mask}: shape {mask.shape} differs from the image's "
                                            f"{data.shape}")
        try:
            bkg = Background(data, box, mask=mask, filter_size=filt, filter_threshold=args.filter_threshold,
                             exclude_percentile=args.exclude_percentile,
                             sigma_clip={"sigma": args.sigma, "maxiters": args.maxiters},
                             bkg_estimator=args.estimator, bkg_rms_estimator=args.rms_estimator)
        except InvalidParameterError as exc:
            raise InvalidParameterError(f"{source.label}: {exc}") from None
        images = [(args.output, bkg.background, "background")]
        if args.rms_out:
            images.append((args.rms_out, bkg.background_rms, "rms"))
        written = []
        try:
            for path, image, kind in images:
                write_fits([fits.PrimaryHDU(image, header=_header(source, bkg, args, kind))], path,
                           overwrite=args.overwrite)
                written.append(path)
        except BaseException:
            for path in written:  # no half-finished set of outputs
                os.remove(path)
            raise
    for path in written:
        _common.say(args, f"wrote {path}")
    _common.say(args, f"background median {bkg.background_median:.6g}, rms median "
                      f"{bkg.background_rms_median:.6g}; {time.perf_counter() - start:.2f} s")
    return 0
