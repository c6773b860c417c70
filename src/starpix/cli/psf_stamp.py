"""``starpix psf-stamp``: a normalized, sub-pixel-centred stamp of a star (Gnuastro's astscript-psf-stamp).

The options are Gnuastro's, one for one (``-h`` is ``--hdu``; help is
``--help``), and positions on the command line are 1-based FITS pixels as in
Gnuastro.  With ``--catalog`` one command cuts the stamps of many stars of
one image, reading it once.
"""

from __future__ import annotations

import math
import os
import re
import shutil

from . import _common

EXAMPLE = """\
  starpix psf-stamp image.fits -h1 --mode=img --center=300.37,280.62 --widthinpix=151,151 \\
      --segment=seg.fits --normradii=5,10 --snthresh=3
  starpix psf-stamp image.fits -O wcs -c 150.0123,2.2034 -W 101,101 -n 5,10 -N sigclip-mean -o star.fits
  starpix psf-stamp image.fits --catalog stars.ecsv --mode img -W 151,151 -S seg.fits -n 5,10 --jobs 2 -o stamps/
  starpix psf-stamp image.fits --catalog stars.ecsv --mode wcs -W 151,151 -n 5,10 -o stamps.fits

Pixel positions (--center, and catalogue x/y in img mode) are 1-based FITS pixels, as in Gnuastro.
Without -o a stamp is written to <base>_stamp_<x>_<y>.fits in the current directory (x, y as typed); a
batch writes one such file per star into the directory -o (default: the current directory), or one cube
when -o ends in .fits (stamps along NAXIS3, the catalogue in HDU CATALOG)."""

_NUMBER = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")
# argparse takes '-30.3,50' for an option; this lets negative coordinate lists through as values
_NEGATIVE_VALUE = re.compile(r"^-(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?:,.*)?$")


def _numbers(text, option, count, what):
    """``count`` comma-separated finite numbers; returns (floats, stripped strings)."""
    parts = [part.strip() for part in str(text).split(",")]
    if len(parts) != count or not all(parts):
        raise _invalid(f"{option}: expected {what} ({count} comma-separated numbers), got {text!r}")
    values = []
    for part in parts:
        if not _NUMBER.match(part):
            raise _invalid(f"{option}: cannot read {part!r} of {text!r} as a number")
        value = float(part)
        if not math.isfinite(value):
            raise _invalid(f"{option}: {part!r} of {text!r} is not finite")
        values.append(value)
    return tuple(values), tuple(parts)


def _invalid(message):
    from ..errors import InvalidParameterError

    return InvalidParameterError(message)


def parse_center(text, option="--center"):
    """'X,Y' (or 'RA,DEC'): two finite numbers; returns (floats, the strings as typed)."""
    return _numbers(text, option, 2, "X,Y")


def parse_width(text, option="--widthinpix"):
    """'NX,NY' (or one 'N' for both): positive widths in pixels, returned as (nx, ny).

    Integers stay integers; Crop's rounding and odd-making is done by the stamp.
    """
    parts = [part for part in str(text).split(",")]
    values, _ = _numbers(text, option, 1 if len(parts) == 1 else 2, "NX,NY")
    if len(values) == 1:
        values = values * 2
    if any(value < 0.5 for value in values):
        raise _invalid(f"{option}: widths must be at least one pixel, got {text!r}")
    return tuple(int(value) if value.is_integer() else value for value in values)


def parse_normradii(text, option="--normradii"):
    """'RMIN,RMAX' with 0 <= RMIN < RMAX (pixels)."""
    (rmin, rmax), _ = _numbers(text, option, 2, "RMIN,RMAX")
    if rmin < 0:
        raise _invalid(f"{option}: RMIN must not be negative, got {text!r}")
    if rmin >= rmax:
        raise _invalid(f"{option}: RMIN must be smaller than RMAX, got {text!r}")
    return rmin, rmax


def parse_sigmaclip(text, option="--sigmaclip"):
    """'MULTIPLE,TOLERANCE' (or MULTIPLE,NUMBER when the second is >= 1), both positive."""
    values, _ = _numbers(text, option, 2, "MULTIPLE,TOLERANCE")
    if values[0] <= 0 or values[1] <= 0:
        raise _invalid(f"{option}: both values must be positive, got {text!r}")
    if values[1] >= 1 and not values[1].is_integer():
        raise _invalid(f"{option}: a second value >= 1 is a number of clips and must be an integer, got {text!r}")
    return values


def parse_float(text, option, *, low=None, high=None, low_open=False):
    """One finite number, optionally in [low, high] (or (low, high] with ``low_open``)."""
    (value,), _ = _numbers(text, option, 1, "a number")
    if low is not None and (value < low or (low_open and value == low)):
        bound = f"> {low}" if low_open else f">= {low}"
        raise _invalid(f"{option}: must be {bound}, got {text!r}")
    if high is not None and value > high:
        raise _invalid(f"{option}: must be <= {high}, got {text!r}")
    return value


def hdu_value(text):
    """Gnuastro's --hdu string: a number or an EXTNAME."""
    if text is None:
        return None
    text = str(text).strip()
    return int(text) if re.fullmatch(r"\d+", text) else text


def base_name(path):
    """Gnuastro's ``<base>``: the input's basename cut at its first '.fits'."""
    name = os.path.basename(os.fspath(path))
    cut = name.find(".fits")
    return name[:cut] if cut > 0 else name


def allow_negative_values(parser):
    """Let option values such as '-30.3,50' through (``-c -30.3,50`` works as ``--center=-30.3,50``)."""
    parser._negative_number_matcher = _NEGATIVE_VALUE  # noqa: SLF001 - argparse has no public switch
    return parser


def register(subparsers):
    """Register ``starpix psf-stamp``."""
    parser = _common.add_parser(
        subparsers, "psf-stamp",
        help="normalized, sub-pixel-centred stamps of stars (astscript-psf-stamp)",
        description="Cut a stamp around a star, mask the other sources with a segmentation (--segment, "
                    "--snthresh), centre it on the star to a fraction of a pixel with flux-conserving pixel "
                    "mixing, and divide it by the normop of the ring values between the --normradii (as "
                    "Gnuastro's astscript-psf-stamp, options one for one; positions 1-based FITS pixels). "
                    "With --catalog: the stamps of many stars of the image in one run.",
        example=EXAMPLE, add_help=False,
    )
    allow_negative_values(parser)
    parser.add_argument("image", metavar="IMAGE", help="FITS image; IMAGE[HDU] or --hdu picks the HDU")
    parser.add_argument("-h", "--hdu", metavar="STR",
                        help="HDU of the image, number or name (default: the first image HDU; Gnuastro: 1)")
    parser.add_argument("-O", "--mode", metavar="STR",
                        help="coordinate mode of --center and the catalogue: img or wcs (default img)")
    parser.add_argument("-c", "--center", metavar="FLT,FLT",
                        help="star position: X,Y 1-based pixels (img) or RA,DEC degrees (wcs); default: the "
                             "central pixel")
    parser.add_argument("-W", "--widthinpix", metavar="INT,INT",
                        help="stamp width NX,NY in pixels, made odd (default: the image size)")
    parser.add_argument("-n", "--normradii", metavar="FLT,FLT",
                        help="normalize by the rings RMIN <= r < RMAX (default: no normalization)")
    parser.add_argument("-S", "--segment", metavar="STR",
                        help="segmentation file (HDUs CLUMPS, OBJECTS, SKY_STD), pixel-aligned with the image")
    parser.add_argument("-T", "--snthresh", metavar="FLT",
                        help="mask pixels with value/SKY_STD below this S/N (needs --segment)")
    parser.add_argument("-N", "--normop", metavar="STR", default="median",
                        help="operator on the rings and over the ring values (default median)")
    parser.add_argument("-Q", "--axisratio", metavar="FLT", default="1",
                        help="axis ratio of the normalization rings (default 1)")
    parser.add_argument("-p", "--positionangle", metavar="FLT", default="0",
                        help="position angle of the rings, degrees from +x (default 0)")
    parser.add_argument("-s", "--sigmaclip", metavar="FLT,FLT",
                        help="sigma-clip multiple and tolerance of the sigclip-* operators (default 3,0.2 "
                             "per ring and 3,0.1 over rings, as Gnuastro)")
    parser.add_argument("-d", "--nocentering", action="store_true", help="no sub-pixel centring")
    parser.add_argument("-t", "--tmpdir", metavar="STR",
                        help="write the intermediate stamps (crop, masked, centred, radial profile) into "
                             "this NEW directory (starpix needs no temporary files)")
    parser.add_argument("-k", "--keeptmp", action="store_true",
                        help="write the intermediate stamps (into --tmpdir, default ./<base>_stamp; it must "
                             "not exist)")
    parser.add_argument("-o", "--output", metavar="STR",
                        help="output stamp (default <base>_stamp_<x>_<y>.fits); with --catalog a directory "
                             "(default .) or a .fits cube")
    batch = parser.add_argument_group("batch (many stars of one image)")
    batch.add_argument("--catalog", metavar="TABLE",
                       help="positions of the stars: x/y (1-based, img mode) or ra/dec (wcs mode) columns")
    batch.add_argument("--catalog-columns", metavar="C1,C2",
                       help="the two position columns of --catalog (default: x,y or ra,dec by name)")
    batch.add_argument("--jobs", metavar="N", type=int, default=1,
                       help="worker processes (default 1: this process; 0: one per CPU)")
    batch.add_argument("--scheduler", metavar="ADDRESS", help=_common.SCHEDULER_HELP)
    parser.set_defaults(func=run)
    return parser


def _options(args):
    """Validate every option before any file is read; returns psf_stamp's keywords."""
    from ..errors import InvalidParameterError

    if args.mode is not None and args.mode not in ("img", "wcs"):
        raise InvalidParameterError(f"--mode: expected img or wcs, got {args.mode!r}")
    if args.snthresh is not None and not args.segment:
        raise InvalidParameterError("--snthresh needs --segment (the S/N is value / SKY_STD of the segmentation)")
    snthresh = parse_float(args.snthresh, "--snthresh") if args.snthresh is not None else None
    options = dict(
        width=parse_width(args.widthinpix) if args.widthinpix is not None else None,
        normradii=parse_normradii(args.normradii) if args.normradii is not None else None,
        snthresh=snthresh,
        normop=args.normop.strip(),
        axis_ratio=parse_float(args.axisratio, "--axisratio", low=0, high=1, low_open=True),
        position_angle=parse_float(args.positionangle, "--positionangle"),
        sigmaclip=parse_sigmaclip(args.sigmaclip) if args.sigmaclip is not None else None,
        centering=not args.nocentering,
    )
    from ..stamp import NORMOPS

    if options["normop"] not in NORMOPS:
        raise InvalidParameterError(f"--normop: unknown operator {args.normop!r}; expected one of "
                                    f"{', '.join(NORMOPS)}")
    if args.jobs < 0:
        raise InvalidParameterError(f"--jobs: expected 0 (one per CPU) or a positive number, got {args.jobs}")
    if args.catalog is None and (args.jobs != 1 or args.scheduler is not None):
        raise InvalidParameterError("--jobs/--scheduler spread the stars of a --catalog over workers; one stamp "
                                    "(--center) takes neither")
    return options


def run(args):
    """Run ``starpix psf-stamp``."""
    options = _options(args)
    if args.catalog is not None:
        return _run_batch(args, options)
    return _run_single(args, options)


def _default_center_text(shape):
    ny, nx = shape
    # 1-based central pixel (Gnuastro's odd-size default is one pixel low; starpix's is the centre)
    return str(nx // 2 + 1), str(ny // 2 + 1)


def _tmpdir(args):
    """The new directory for the intermediate stamps, or None; checked before any work."""
    from ..errors import OutputExistsError

    if args.tmpdir is None and not args.keeptmp:
        return None
    directory = args.tmpdir if args.tmpdir is not None else f"{base_name(args.image)}_stamp"
    if os.path.lexists(directory):
        raise OutputExistsError(f"--tmpdir: {directory} already exists; starpix writes its intermediate stamps "
                                f"only into a new directory (it never deletes or reuses one)")
    return directory


def _run_single(args, options):
    if (args.catalog_columns is None and (args.mode or "img") == "img" and args.tmpdir is None
            and not args.keeptmp):
        from .._fitsread import Unsupported

        try:
            return _run_single_fast(args, options)
        except Unsupported:
            pass  # the file (or the stamp's header) needs astropy: the general path reads it
    return _run_single_astropy(args, options)


def _fast_segment(path):
    """The segmentation layers read without astropy (Unsupported where read_segment_file would
    raise or the file needs astropy)."""
    from .._fitsread import Unsupported, read_named_images

    layers = read_named_images(path, ("CLUMPS", "OBJECTS", "SKY_STD"))
    if layers["CLUMPS"] is None or layers["OBJECTS"] is None:
        raise Unsupported(f"{path}: no CLUMPS or OBJECTS HDU")
    shapes = {layer.shape for layer in layers.values() if layer is not None}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise Unsupported(f"{path}: layers that are not 2-D images of one shape")
    return {key.lower(): (None if layer is None else layer.data) for key, layer in layers.items()}


def _stamp_file_bytes(stamp, cards):
    """Gnuastro's stamp file (empty primary HDU, the float32 stamp in HDU 1) as bytes, formatted as
    astropy formats the same cards; Unsupported for a card that needs astropy (a long string)."""
    import numpy as np

    from .._fitsbytes import card, checksum_stamp, image_hdu_bytes
    from .._fitsread import Unsupported

    images = []
    for keyword, value, comment in cards:
        if isinstance(value, str) and len(value.replace("'", "''")) > 68:
            raise Unsupported(f"header card {keyword}: a long string value")
        if not isinstance(value, (str, bool, int, float, np.integer, np.floating, np.bool_, type(None))):
            raise Unsupported(f"header card {keyword}: value {value!r}")
        if isinstance(value, str) and not value:  # astropy writes an empty string unpadded
            images.append((f"{keyword:<8}= ''" + (f" / {comment}" if comment else ""))[:80].ljust(80))
        else:
            images.append(card(keyword, value, comment))
    when = checksum_stamp()
    return image_hdu_bytes([], None, when) + image_hdu_bytes(images, np.asarray(stamp, dtype=np.float32), when)


def _run_single_fast(args, options):
    """One stamp in img mode without astropy: the image and the segmentation read by
    :mod:`starpix._fitsread`, the file written with :mod:`starpix._fitsbytes`.

    Raises Unsupported (before writing anything) wherever the general path
    is needed; every error of the general path is then raised by it.
    """
    from .._fitsread import Unsupported, read_image
    from ..io import atomic_output, check_output
    from ..stamp._stamp import _header_wcs_cards, _psf_stamp_cards

    center = texts = None
    if args.center is not None:
        center, texts = parse_center(args.center)
    image = read_image(args.image, hdu_value(args.hdu))
    if len(image.shape) != 2:
        raise Unsupported(f"{image.label}: not a 2-D image")
    if _header_wcs_cards(image.header, (0.0, 0.0)) is None:
        raise Unsupported(f"{image.label}: a WCS that needs astropy.wcs")
    if texts is None:
        texts = _default_center_text(image.shape)
    output = args.output or stamp_name(args.image, *texts)
    check_output(output, args.overwrite)
    if center is not None:
        center = (center[0] - 1.0, center[1] - 1.0)
    segment = _fast_segment(args.segment) if args.segment else None
    stamp, cards = _psf_stamp_cards(image.data, center, mode="img", segment=segment, header=image.header,
                                    **options)
    content = _stamp_file_bytes(stamp, cards)
    with atomic_output(output, args.overwrite) as tmp, open(tmp, "wb") as handle:
        handle.write(content)
    normval = dict((card[0], card[1]) for card in cards).get("NORMVAL")
    _common.say(args, f"{output}: {stamp.shape[1]}x{stamp.shape[0]} stamp, NORMVAL "
                      f"{'nan' if normval is None or isinstance(normval, str) else f'{normval:.10g}'}")
    return 0


def _run_single_astropy(args, options):
    from ..errors import InvalidParameterError
    from ..io import check_output, read_image
    from ..stamp._batch import read_segment_file, write_stamp

    if args.catalog_columns is not None:
        raise InvalidParameterError("--catalog-columns needs --catalog")
    mode = args.mode or "img"
    center = texts = None
    if args.center is not None:
        center, texts = parse_center(args.center)
    elif args.mode == "wcs":
        raise InvalidParameterError("--mode=wcs needs --center=RA,DEC")
    tmpdir = _tmpdir(args)
    with read_image(args.image, hdu_value(args.hdu)) as source:
        if texts is None:
            texts = _default_center_text(source.shape)
        output = args.output or stamp_name(args.image, *texts)
        check_output(output, args.overwrite)
        if tmpdir is not None:
            check_output_dir = os.path.dirname(os.path.abspath(tmpdir))
            if not os.path.isdir(check_output_dir):
                raise InvalidParameterError(f"--tmpdir: the parent directory of {tmpdir} does not exist")
        if center is not None and mode == "img":
            center = (center[0] - 1.0, center[1] - 1.0)
        # img mode: psf_stamp moves the header's WCS itself (no astropy.wcs to import for one stamp)
        wcs = source.require_wcs() if mode == "wcs" else None
        segment = read_segment_file(args.segment) if args.segment else None
        try:
            from ..stamp import psf_stamp

            kwargs = dict(mode=mode, segment=segment, wcs=wcs, header=source.header, **options)
            stamp, header = psf_stamp(source.data, center, **kwargs)
            steps = None
            if tmpdir is not None:
                steps = _intermediates(source.data, center, kwargs)
        finally:
            if segment is not None:
                segment.close()
    if steps is not None:
        _write_intermediates(tmpdir, steps, texts)  # a new directory: removed again if the stamp cannot be written
    try:
        write_stamp(output, stamp, header, overwrite=args.overwrite)
    except BaseException:
        if steps is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    normval = header.get("NORMVAL")
    _common.say(args, f"{output}: {stamp.shape[1]}x{stamp.shape[0]} stamp, NORMVAL "
                      f"{'nan' if normval is None or isinstance(normval, str) else f'{normval:.10g}'}")
    return 0


def stamp_name(image, x_text, y_text):
    """Gnuastro's default output: ``<base>_stamp_<x>_<y>.fits`` in the current directory."""
    from ..stamp._batch import stamp_file_name

    return stamp_file_name(base_name(image), x_text, y_text)


def _intermediates(data, center, kwargs):
    """Gnuastro's temporary stamps, each made by psf_stamp with the later steps switched off.

    ``cropped`` (the box, unmasked and unshifted), ``cropped-masked`` (with
    --segment), ``cropped-masked-centered`` (unless --nocentering) and
    ``rprofile`` (the ring values out to RMAX + 1, with --normradii).
    """
    from ..stamp import psf_stamp, radial_profile

    base = dict(kwargs, normradii=None)
    steps = {"cropped": psf_stamp(data, center, **dict(base, segment=None, snthresh=None, centering=False))}
    if kwargs.get("segment") is not None:
        steps["cropped-masked"] = psf_stamp(data, center, **dict(base, centering=False))
    last = steps.get("cropped-masked", steps["cropped"])
    if kwargs.get("centering", True):
        last = steps["cropped-masked-centered"] = psf_stamp(data, center, **base)
    if kwargs.get("normradii") is not None:
        stamp = last[0]
        ny, nx = stamp.shape
        steps["rprofile"] = radial_profile(stamp, ((nx - 1) / 2, (ny - 1) / 2), kwargs["normradii"][1] + 1,
                                           axis_ratio=kwargs["axis_ratio"], position_angle=kwargs["position_angle"],
                                           measures=(kwargs["normop"],), sigmaclip=kwargs["sigmaclip"])
    return steps


def _write_intermediates(directory, steps, texts):
    """Each intermediate stage as a FITS image (tables as FITS tables) in a new directory."""
    from astropy.io import fits

    from ..io import write_fits, write_table

    os.makedirs(directory)
    suffix = f"{texts[0]}_{texts[1]}"
    try:
        for name, value in steps.items():
            if value is None:
                continue
            if hasattr(value, "colnames"):
                write_table(value, os.path.join(directory, f"{name}-{suffix}.fits"))
            else:
                data, header = value if isinstance(value, tuple) else (value, None)
                write_fits(fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, header=header)]),
                           os.path.join(directory, f"{name}-{suffix}.fits"))
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)  # the directory is new: nothing else is lost
        raise


def _catalog_positions(args, mode):
    """Positions of the catalogue: 0-based (x, y) or (ra, dec) floats, and the coordinate strings."""
    import numpy as np

    from ..errors import InvalidParameterError
    from ..io import read_table
    from ..stamp._batch import coordinate_text

    table = read_table(args.catalog)
    if len(table) == 0:
        raise InvalidParameterError(f"{args.catalog}: the catalogue has no rows")
    if args.catalog_columns is not None:
        names = [part.strip() for part in args.catalog_columns.split(",")]
        if len(names) != 2 or not all(names):
            raise InvalidParameterError(f"--catalog-columns: expected two column names C1,C2, got "
                                        f"{args.catalog_columns!r}")
        lower = {name.lower(): name for name in table.colnames}
        columns = []
        for name in names:
            if name not in table.colnames and name.lower() not in lower:
                raise InvalidParameterError(f"--catalog-columns: {args.catalog} has no column {name!r}; it has "
                                            f"{', '.join(table.colnames)}")
            columns.append(name if name in table.colnames else lower[name.lower()])
    else:
        wanted = ((_common._RA_NAMES, _common._DEC_NAMES) if mode == "wcs"
                  else (_common._X_NAMES, _common._Y_NAMES))
        columns = [_common._find_column(table, names) for names in wanted]
        if not all(columns):
            what = "ra and dec" if mode == "wcs" else "x and y"
            raise InvalidParameterError(f"{args.catalog}: the catalogue needs columns {what} (or "
                                        f"--catalog-columns); it has {', '.join(table.colnames)}")
    values = []
    for name in columns:
        column = table[name]
        if mode == "wcs" and getattr(column, "unit", None) is not None:
            from astropy import units as u

            try:
                column = u.Quantity(column).to_value(u.deg)
            except u.UnitsError:
                raise InvalidParameterError(f"{args.catalog}: column {name} is not an angle "
                                            f"(unit {column.unit})") from None
        try:
            array = np.asarray(getattr(column, "value", column), dtype=float)
        except (TypeError, ValueError):
            raise InvalidParameterError(f"{args.catalog}: column {name} does not hold numbers") from None
        if array.ndim != 1:
            raise InvalidParameterError(f"{args.catalog}: column {name} is not a column of single numbers")
        values.append(array)
    x, y = values
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InvalidParameterError(f"{args.catalog}: row {row + 1} has no finite position ({columns[0]}="
                                    f"{x[row]}, {columns[1]}={y[row]})")
    texts = [(coordinate_text(a), coordinate_text(b)) for a, b in zip(x, y)]
    if mode == "img":
        x, y = x - 1.0, y - 1.0
    return np.column_stack([x, y]), texts


def _run_batch(args, options):
    from ..errors import InvalidParameterError
    from ..io import check_output
    from ..stamp import psf_stamps

    if args.center is not None:
        raise InvalidParameterError("--center and --catalog exclude each other (a batch takes its positions "
                                    "from the catalogue)")
    if args.tmpdir is not None or args.keeptmp:
        raise InvalidParameterError("--tmpdir/--keeptmp write the intermediate stamps of one star: use them "
                                    "with --center, not --catalog")
    mode = args.mode or "img"
    output = args.output or "."
    if output.lower().endswith((".fits", ".fit", ".fts", ".fits.gz")):
        check_output(output, args.overwrite)
    centers, texts = _catalog_positions(args, mode)
    if args.scheduler is not None and args.jobs != 1:
        raise InvalidParameterError("--jobs and --scheduler: give one or the other, not both")
    with _common.parallel_executor(args) as (executor, workers):
        stamps = psf_stamps(args.image, centers, mode=mode, hdu=hdu_value(args.hdu), segment=args.segment,
                            executor=executor, max_workers=workers, progress_bar=_common.show_progress(args),
                            **options)
    written = stamps.write(output, overwrite=args.overwrite, base=base_name(args.image), texts=texts)
    where = output if len(written) == 1 and written[0] == output else f"{len(written)} files in {output}"
    _common.say(args, f"{where}: {len(stamps)} stamps")
    return 0
