"""``starpix calibrate``: bias, dark and flat-field calibration of a raw frame."""

from __future__ import annotations

from . import _common

EXAMPLE = """\
  starpix calibrate raw.fits --bias bias.fits --dark dark.fits --flat flat.fits -o cal.fits
  starpix calibrate raw.fits --bias bias.fits --dark dark.fits --scale-dark -o cal.fits --mask-out calmask.fits

--scale-dark scales the dark by the EXPTIME (or --exptime-key) ratio of image and dark.
The flat is normalized by its median; pixels of the flat below --flat-low of the median
and hot dark pixels (above median + --dark-sigma MAD-sigma) go to the mask."""


def register(subparsers):
    """Register ``starpix calibrate``."""
    parser = _common.add_parser(
        subparsers, "calibrate",
        help="subtract bias and dark, divide by the normalized flat",
        description="Calibrate a raw frame with master bias, dark and flat frames, and optionally write the "
                    "mask of pixels the calibration spoils (under-illuminated flat, hot dark pixels).",
        example=EXAMPLE,
    )
    parser.add_argument("image", metavar="RAW", help="raw FITS image; RAW[HDU] picks an HDU")
    parser.add_argument("--bias", metavar="FITS", help="master bias")
    parser.add_argument("--dark", metavar="FITS", help="master dark (bias-subtracted unless --dark-has-bias)")
    parser.add_argument("--flat", metavar="FITS", help="master flat")
    parser.add_argument("--scale-dark", action="store_true", help="scale the dark by the exposure-time ratio")
    parser.add_argument("--exptime-key", help="exposure-time keyword of --scale-dark (EXPTIME)")
    parser.add_argument("--dark-has-bias", action="store_true", help="the dark still contains the bias")
    parser.add_argument("--flat-low", type=float, default=0.5, help="mask flat pixels below this x median (0.5)")
    parser.add_argument("--dark-sigma", type=float, default=10.0, help="hot-pixel limit in MAD-sigma (10)")
    parser.add_argument("-o", "--output", required=True, help="calibrated image (FITS)")
    parser.add_argument("--mask-out", metavar="FITS", help="mask of spoiled pixels (FITS, uint8)")
    parser.set_defaults(func=run)
    return parser


def _exptime(header, key, label):
    from ..errors import InvalidParameterError

    if key not in header:
        raise InvalidParameterError(f"{label}: --scale-dark needs the {key} keyword, and the header has none")
    try:
        return float(header[key])
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{label}: {key} = {header[key]!r} is not a number") from None


def run(args):
    """Run ``starpix calibrate``."""
    import numpy as np

    from ..errors import InvalidParameterError
    from ..io import check_output
    from ..preprocess import calibrate
    from .mask import output_header, read_2d, read_frame, write_images

    for path in [args.output] + ([args.mask_out] if args.mask_out else []):
        check_output(path, args.overwrite)
    if args.scale_dark and not args.dark:
        raise InvalidParameterError("--scale-dark needs --dark")
    if args.dark_has_bias and not args.dark:
        raise InvalidParameterError("--dark-has-bias needs --dark")
    if args.exptime_key is not None and not args.scale_dark:
        raise InvalidParameterError("--exptime-key is read by --scale-dark only; add --scale-dark")
    exptime_key = args.exptime_key or "EXPTIME"
    data, header, label = read_2d(args.image)
    frames = {}
    for name in ("bias", "dark", "flat"):
        spec = getattr(args, name)
        frames[name] = read_frame(spec, data.shape, f"--{name}") if spec else None
    exptime = dark_exptime = None
    if args.scale_dark:
        exptime = _exptime(header, exptime_key, label)
        _, dark_header, dark_label = read_2d(args.dark, "--dark")
        dark_exptime = _exptime(dark_header, exptime_key, dark_label)
    try:
        result = calibrate(data, frames["bias"], frames["dark"], frames["flat"], exptime=exptime,
                           dark_exptime=dark_exptime, dark_includes_bias=args.dark_has_bias,
                           flat_low=args.flat_low, dark_sigma=args.dark_sigma)
    except InvalidParameterError as exc:
        raise InvalidParameterError(f"{label}: {exc}") from None
    inputs = [p for p in (args.image, args.bias, args.dark, args.flat) if p]
    out_header = output_header(header, inputs)
    for key, flag in (("BIASCORR", args.bias), ("DARKCORR", args.dark), ("FLATCORR", args.flat)):
        out_header[key] = (bool(flag), "calibration step applied")
    if args.dark:
        out_header["DARKSCAL"] = (result.dark_scale, "factor applied to the dark")
    if result.flat_median is not None:
        out_header["FLATMED"] = (result.flat_median, "median the flat was normalized by")
    outputs = [(args.output, result.image, out_header)]
    if args.mask_out:
        outputs.append((args.mask_out, result.mask.astype(np.uint8), output_header(header, inputs)))
    write_images(outputs, args.overwrite)
    _common.say(args, f"{args.output}: calibrated; {int(result.mask.sum())} pixels masked")
    return 0
