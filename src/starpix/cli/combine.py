"""``starpix combine``: master bias, dark or flat from a stack of frames."""

from __future__ import annotations

from . import _common

EXAMPLE = """\
  starpix combine bias_*.fits --method median -o master_bias.fits
  starpix combine flat_*.fits --method sigclip-mean --sigma 3 --normalize -o master_flat.fits

Frames are read a block of rows at a time (--max-memory), so hundreds of frames fit."""


def register(subparsers):
    """Register ``starpix combine``."""
    parser = _common.add_parser(
        subparsers, "combine",
        help="combine frames pixel by pixel into a master frame",
        description="Median, mean or sigma-clipped mean of frames of one shape, pixel by pixel, in bounded "
                    "memory.  The output carries the first frame's header and NCOMBINE.",
        example=EXAMPLE,
    )
    parser.add_argument("files", metavar="FILE", nargs="*", help="FITS frames; FILE[HDU] picks an HDU")
    parser.add_argument("--method", default="median", choices=("median", "mean", "sigclip-mean"),
                        help="how values are combined (median)")
    parser.add_argument("--sigma", type=float, default=3.0, help="clipping limit of sigclip-mean (3)")
    parser.add_argument("--maxiters", type=int, default=5, help="most clipping passes of sigclip-mean (5)")
    parser.add_argument("--normalize", action="store_true", help="divide each frame by its median (flats)")
    parser.add_argument("--max-memory", type=float, default=256.0, metavar="MB",
                        help="memory for a block of stacked rows, MB (256)")
    parser.add_argument("-o", "--output", required=True, help="master frame (FITS)")
    parser.set_defaults(func=run)
    return parser


def run(args):
    """Run ``starpix combine``."""
    from ..errors import InvalidParameterError
    from ..io import check_output, read_image
    from ..preprocess import combine_frames
    from .mask import output_header, write_images

    if not args.files:
        raise InvalidParameterError("no input files: give the frames to combine")
    if not args.max_memory > 0:
        raise InvalidParameterError(f"--max-memory: must be a positive number of MB, got {args.max_memory:g}")
    check_output(args.output, args.overwrite)
    master = combine_frames(args.files, args.method, sigma=args.sigma, maxiters=args.maxiters,
                            normalize=args.normalize, max_memory_mb=args.max_memory)
    with read_image(args.files[0]) as source:
        header = output_header(source.header, args.files[:99])
    header["NCOMBINE"] = (len(args.files), "number of frames combined")
    header["COMBTYPE"] = (args.method, "combination method")
    write_images([(args.output, master, header)], args.overwrite)
    _common.say(args, f"{args.output}: {args.method} of {len(args.files)} frames")
    return 0
