"""``starpix segment``: sky, noise, objects and clumps of an image, written in Gnuastro Segment's layout."""

from __future__ import annotations

import time

from . import _common

EXAMPLE = """\
  starpix segment image.fits -o seg.fits
  starpix segment image.fits[SCI] --snr 5 --min-area 20 --mask bad.fits -o seg.fits
  starpix psf-stamp image.fits --segment seg.fits ...    (the stamps mask the other objects and clumps)

HDU numbers in IMAGE[HDU] count from 0 (as astropy and Gnuastro).  The output
has the HDUs SEGMENT-CONFIG (no data), INPUT-NO-SKY, CLUMPS, OBJECTS, SKY_STD
and SKY.  OBJECTS are labelled 1..N (0: undetected); CLUMPS are numbered from 1
within each object, -1 marks an object's pixels outside its clumps.  The
thresholds are signal-to-noise ratios of the image smoothed by a Gaussian of
--kernel-fwhm pixels."""


def register(subparsers):
    """Register ``starpix segment``."""
    from ..detect._segment import SEGMENT_DEFAULTS as D

    parser = _common.add_parser(
        subparsers, "segment",
        help="detect sources and segment them into objects and clumps (Gnuastro Segment's layout)",
        description="Estimate the sky and its noise in boxes, detect sources above a signal-to-noise threshold "
                    "of the smoothed image, grow them to a lower threshold, split each detection into objects "
                    "and each object into clumps around significant local maxima, and write the maps in the "
                    "layout of Gnuastro's Segment output (readable by 'starpix psf-stamp --segment' and by "
                    "Gnuastro's scripts).",
        example=EXAMPLE,
    )
    parser.add_argument("image", metavar="IMAGE", help="FITS image (sky not subtracted); IMAGE[HDU] picks an HDU")
    parser.add_argument("-o", "--output", required=True, help="output segmentation file (FITS)")
    parser.add_argument("--snr", type=float, default=D["snr"],
                        help=f"smoothed S/N threshold of detection cores (default {D['snr']:g})")
    parser.add_argument("--grow-snr", type=float, default=D["grow_snr"],
                        help=f"smoothed S/N down to which detections grow (default {D['grow_snr']:g})")
    parser.add_argument("--min-area", type=int, default=D["min_area"],
                        help=f"least number of pixels of a detection core (default {D['min_area']})")
    parser.add_argument("--clump-snr", type=float, default=D["clump_snr"],
                        help="least rise of a clump's peak above its saddle, smoothed S/N "
                             f"(default {D['clump_snr']:g})")
    parser.add_argument("--kernel-fwhm", type=float, default=D["kernel_fwhm"],
                        help=f"FWHM of the smoothing Gaussian, pixels (default {D['kernel_fwhm']:g})")
    parser.add_argument("--box-size", default=str(D["box_size"]),
                        help=f"sky box size in pixels: N or NY,NX (default {D['box_size']})")
    parser.add_argument("--mask", metavar="FILE", help="FITS mask image: nonzero pixels are left out")
    parser.set_defaults(func=run)
    return parser


def run(args):
    """Run ``starpix segment``."""
    import numpy as np

    from ..detect import segment
    from ..errors import InvalidParameterError
    from ..io import check_output, read_image

    start = time.perf_counter()
    check_output(args.output, args.overwrite)
    box = _common.parse_int_sizes(args.box_size, "--box-size")
    if args.min_area < 1:
        raise InvalidParameterError(f"--min-area must be a positive integer, got {args.min_area}")
    with read_image(args.image) as source:
        data = np.asarray(source.data)
        if data.ndim != 2:
            raise InvalidParameterError(f"{source.label}: expected a 2-D image, got shape {data.shape}")
        header = source.header.copy()
        wcs = source.wcs
        label = source.label
    mask = None
    if args.mask:
        with read_image(args.mask) as mask_source:
            mask = np.asarray(mask_source.data) != 0
        if mask.shape != data.shape:
            raise InvalidParameterError(f"--mask {args.mask}: shape {mask.shape} differs from the image's "
                                        f"{data.shape}")
    options = {"snr": ("--snr", args.snr), "grow_snr": ("--grow-snr", args.grow_snr),
               "clump_snr": ("--clump-snr", args.clump_snr), "kernel_fwhm": ("--kernel-fwhm", args.kernel_fwhm)}
    try:
        result = segment(data, mask=mask, min_area=args.min_area, box_size=box, header=header, wcs=wcs,
                         **{key: value for key, (_, value) in options.items()})
    except InvalidParameterError as exc:
        message = str(exc)
        for key, (flag, _) in options.items():
            if message.startswith(key + " "):
                message = flag + message[len(key):]
                break
        raise InvalidParameterError(f"{label}: {message}") from None
    result.options["input"] = label
    result.write(args.output, overwrite=args.overwrite)
    _common.say(args, f"{args.output}: {result.n_objects} objects, {result.n_clumps} clumps; sky median "
                      f"{float(np.median(result.sky)):.6g}, sky std median {float(np.median(result.sky_std)):.6g}; "
                      f"{time.perf_counter() - start:.2f} s")
    return 0
