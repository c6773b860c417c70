"""FITS and table input/output.

Reading: ``open_fits`` opens a file memory-mapped and turns every way a file
can be unusable (missing, not FITS, truncated) into an
:class:`~starpix.errors.InputFileError`; ``read_image`` picks an image HDU by
number, EXTNAME or the ``file.fits[SCI]`` syntax and gives lazy access to its
pixels, header and WCS.

Writing: every output goes through ``atomic_output``: the content is written
to a temporary file beside the target and renamed over it only when complete,
so a failure never leaves a partial file, and an existing file is replaced
only when ``overwrite`` is true.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import tempfile
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._version import __version__
from .errors import HDUError, InputFileError, NoWCSError, OutputExistsError

__all__ = [
    "parse_hdu_spec",
    "open_fits",
    "select_image_hdu",
    "is_image_hdu",
    "ImageSource",
    "read_image",
    "celestial_wcs",
    "lazy_pixels",
    "raw_header_text",
    "check_output",
    "atomic_output",
    "write_fits",
    "read_table",
    "write_table",
    "add_provenance",
    "provenance_cards",
]

_SPEC = re.compile(r"^(?P<path>.+?)\[(?P<hdu>[^\[\]]+)\]$")
_FITS_MAGIC = b"SIMPLE  ="
_GZIP_MAGIC = b"\x1f\x8b"


def parse_hdu_spec(spec):
    """Split ``'file.fits[1]'`` or ``'file.fits[SCI]'`` into path and HDU.

    Parameters
    ----------
    spec : str or os.PathLike
        A file name, optionally followed by an HDU in square brackets: a
        number (0-based, as astropy and Gnuastro count), an EXTNAME, or
        ``EXTNAME,EXTVER``.

    Returns
    -------
    path : str
    hdu : int, str, tuple or None
        None when no HDU was given.  A file whose whole name, brackets
        included, exists is taken as it is.
    """
    spec = os.fspath(spec)
    match = _SPEC.match(spec)
    if match is None or os.path.exists(spec):
        return spec, None
    return match.group("path"), _parse_hdu_token(match.group("hdu"))


def _parse_hdu_token(token):
    token = token.strip()
    if "," in token:
        name, ver = (part.strip() for part in token.split(",", 1))
        try:
            return (name, int(ver))
        except ValueError:
            raise HDUError(f"HDU '[{token}]': expected EXTNAME,EXTVER with an integer EXTVER") from None
    try:
        return int(token)
    except ValueError:
        return token


def _check_readable(path):
    if not os.path.exists(path):
        raise InputFileError(f"{path}: no such file")
    if os.path.isdir(path):
        raise InputFileError(f"{path}: is a directory, not a FITS file")
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(_FITS_MAGIC))
    except OSError as exc:
        raise InputFileError(f"{path}: cannot be read ({exc.strerror})") from None
    if head.startswith(_GZIP_MAGIC):
        try:
            with gzip.open(path, "rb") as handle:
                head = handle.read(len(_FITS_MAGIC))
        except (OSError, EOFError):
            raise InputFileError(f"{path}: not a valid gzip-compressed file") from None
    if head != _FITS_MAGIC:
        raise InputFileError(f"{path}: not a FITS file (it does not start with 'SIMPLE  =')")


def open_fits(path, *, memmap=True):
    """Open a FITS file read-only, with clear errors for unusable files.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.fits``, ``.fit``, ``.fts`` or gzip-compressed ``.fits.gz`` file.
    memmap : bool
        Memory-map the data (ignored by astropy for compressed files).

    Returns
    -------
    astropy.io.fits.HDUList
        Opened with ``mode='denywrite'`` where memory-mapped, so the input
        can never be modified.  Every header is read; data stay lazy.
    """
    from astropy.io import fits

    path = os.fspath(path)
    _check_readable(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mode = "denywrite" if memmap else "readonly"
            hdul = fits.open(path, memmap=memmap, mode=mode, lazy_load_hdus=False)
    except (OSError, ValueError, EOFError, IndexError, TypeError) as exc:
        raise InputFileError(f"{path}: not a readable FITS file ({exc})") from None
    try:
        _check_not_truncated(hdul, path)
    except InputFileError:
        hdul.close()
        raise
    return hdul


def _check_not_truncated(hdul, path):
    """Raise if the file is shorter than its HDUs say it is.

    Two ways a cut file shows: an HDU's data reach past the end of the file,
    or the file ends inside a header, which astropy skips silently (the
    file then seems to have fewer HDUs).  A gzip-compressed file is checked
    against its decompressed size, and must end with its end-of-stream
    marker.
    """
    compressed = _is_gzip(path)
    try:
        size = _gzip_size(path) if compressed else os.path.getsize(path)
    except OSError:
        return
    end = 0
    for index, hdu in enumerate(hdul):
        info = hdu.fileinfo()
        if info is None:
            continue
        header = _disk_header(hdu)
        if header is None:
            continue
        needed = info["datLoc"] + _raw_data_bytes(header)
        if needed > size:
            raise InputFileError(
                f"{path}: truncated FITS file (HDU {index} needs {needed} bytes, the file has {size})"
            )
        end = max(end, info["datLoc"] + info["datSpan"])
    if not compressed and size > end:
        with open(path, "rb") as handle:
            handle.seek(end)
            if handle.read(8) == b"XTENSION":
                raise InputFileError(
                    f"{path}: truncated FITS file (it ends inside the header of HDU {len(hdul)})"
                )


def _is_gzip(path):
    with open(path, "rb") as handle:
        return handle.read(len(_GZIP_MAGIC)) == _GZIP_MAGIC


def _gzip_size(path):
    """Decompressed size of a gzip file; InputFileError if it is cut short or corrupt."""
    size = 0
    try:
        with gzip.open(path, "rb") as handle:
            while chunk := handle.read(1 << 24):
                size += len(chunk)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise InputFileError(f"{path}: truncated or corrupt gzip-compressed file ({exc})") from None
    return size


def _disk_header(hdu):
    """The header that describes the bytes on disk (a compressed image's table)."""
    from astropy.io import fits

    if isinstance(hdu, fits.CompImageHDU):
        table = getattr(hdu, "_bintable", None)
        return None if table is None else table.header
    return hdu.header


def _raw_data_bytes(header):
    naxis = header.get("NAXIS", 0)
    if not naxis:
        return 0
    count = 1
    for axis in range(1, naxis + 1):
        count *= header.get(f"NAXIS{axis}", 0)
    count = header.get("GCOUNT", 1) * (count + header.get("PCOUNT", 0))
    return abs(header.get("BITPIX", 8)) // 8 * count


def is_image_hdu(hdu):
    """True for an image HDU (primary, image or compressed) that holds pixels."""
    from astropy.io import fits

    return isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)) and _shape(hdu) != ()


def _shape(hdu):
    shape = tuple(getattr(hdu, "shape", ()) or ())
    return () if not shape or 0 in shape else shape


def select_image_hdu(hdul, hdu=None, *, path="<file>"):
    """Return ``(index, hdu)`` of the requested image HDU.

    Parameters
    ----------
    hdul : astropy.io.fits.HDUList
    hdu : int, str, tuple or None
        Index, EXTNAME (case-insensitive), ``(EXTNAME, EXTVER)``, or None for
        the first HDU that holds an image.
    path : str
        The file name, for error messages.
    """
    if hdu is None:
        for index, candidate in enumerate(hdul):
            if is_image_hdu(candidate):
                return index, candidate
        raise HDUError(f"{path}: no HDU holds an image")
    if isinstance(hdu, (int, np.integer)):
        if not 0 <= hdu < len(hdul):
            raise HDUError(f"{path}: HDU {hdu} does not exist (the file has HDUs 0 to {len(hdul) - 1})")
        index = int(hdu)
    else:
        name, ver = (hdu if isinstance(hdu, tuple) else (hdu, None))
        index = _index_by_name(hdul, str(name), ver)
        if index is None:
            names = ", ".join(sorted({h.name for h in hdul if h.name})) or "none"
            label = f"{name},{ver}" if ver is not None else name
            raise HDUError(f"{path}: no HDU named '{label}' (EXTNAMEs present: {names})")
    candidate = hdul[index]
    if not is_image_hdu(candidate):
        kind = type(candidate).__name__
        raise HDUError(f"{path}: HDU {index} ({candidate.name or 'unnamed'}, {kind}) holds no image")
    return index, candidate


def _index_by_name(hdul, name, ver):
    for index, candidate in enumerate(hdul):
        if candidate.name.upper() != name.upper():
            continue
        if ver is None or candidate.header.get("EXTVER", 1) == ver:
            return index
    return None


def lazy_pixels(hdu, path=None):
    """Sliceable access to an image HDU's pixels that reads only what is sliced.

    For an uncompressed, unscaled image in a plain file this is a read-only
    ``numpy.memmap`` of the data unit (slicing it costs microseconds);
    otherwise astropy's ``hdu.section``, which also handles scaled and
    tile-compressed images.

    Parameters
    ----------
    hdu : astropy image HDU
    path : str, optional
        The file the HDU was read from (default: the HDU's own file).
    """
    from astropy.io import fits

    info = hdu.fileinfo()
    name = path or (info["file"].name if info and info.get("file") is not None else None)
    header = hdu.header
    plain = (
        info is not None
        and name is not None
        and isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU))
        and not isinstance(hdu, fits.CompImageHDU)
        and not os.fspath(name).endswith((".gz", ".bz2", ".zip"))
        and header.get("BSCALE", 1) == 1
        and header.get("BZERO", 0) == 0
        and header.get("BITPIX") in _BITPIX_DTYPES
        and os.path.isfile(name)
    )
    if plain:
        dtype = np.dtype(_BITPIX_DTYPES[header["BITPIX"]])
        return np.memmap(name, dtype=dtype, mode="r", offset=info["datLoc"], shape=_shape(hdu))
    scaled = (
        info is not None
        and name is not None
        and isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU))
        and not isinstance(hdu, fits.CompImageHDU)
        and not os.fspath(name).endswith((".gz", ".bz2", ".zip"))
        and header.get("BITPIX") in _BITPIX_DTYPES
        and os.path.isfile(name)
    )
    if scaled:
        # astropy refuses memory-mapped scaled data (BZERO/BSCALE/BLANK); scale each slice instead
        dtype = np.dtype(_BITPIX_DTYPES[header["BITPIX"]])
        raw = np.memmap(name, dtype=dtype, mode="r", offset=info["datLoc"], shape=_shape(hdu))
        return ScaledPixels(raw, header)
    return hdu.section


_BITPIX_DTYPES = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
# BITPIX -> (BZERO of FITS's unsigned/signed integer convention, the type it stands for)
_INTEGER_ZERO = {8: (-128, np.dtype("i1")), 16: (1 << 15, np.dtype("u2")), 32: (1 << 31, np.dtype("u4")),
                 64: (1 << 63, np.dtype("u8"))}


class ScaledPixels:
    """Sliceable pixels of a scaled image (BSCALE, BZERO, BLANK), read only where sliced.

    The values are astropy's: integers stored with the unsigned (or, for
    BITPIX 8, signed) BZERO convention come back as that integer type;
    other scaled integers as float32 (BITPIX 8 and 16) or float64, with
    BLANK pixels NaN; float images are scaled in their own precision.
    """

    def __init__(self, raw, header):
        self._raw = raw
        self.shape = raw.shape
        self.ndim = raw.ndim
        bitpix = header["BITPIX"]
        self._bscale = float(header.get("BSCALE", 1))
        bzero = header.get("BZERO", 0)
        self._blank = header.get("BLANK") if bitpix > 0 else None
        convention = _INTEGER_ZERO.get(bitpix)
        self._unsigned = (convention is not None and self._bscale == 1 and bzero == convention[0]
                          and self._blank is None)
        if self._unsigned:
            self.dtype = convention[1]
        elif bitpix > 0:
            self.dtype = np.dtype("f4") if bitpix in (8, 16) else np.dtype("f8")
        else:
            self.dtype = raw.dtype.newbyteorder("=")
        self._bzero = float(bzero)

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, key):
        raw = np.asarray(self._raw[key])
        if self._unsigned:
            if raw.dtype.itemsize == 1:  # BITPIX 8: stored unsigned, meant signed
                return (raw.astype(np.int16) - 128).astype(np.int8)
            unsigned = np.dtype(f"u{raw.dtype.itemsize}")
            return raw.astype(raw.dtype.newbyteorder("=")).view(unsigned) ^ unsigned.type(
                1 << (8 * raw.dtype.itemsize - 1))
        values = raw.astype(self.dtype)
        if self._bscale != 1:
            values *= self.dtype.type(self._bscale)
        if self._bzero != 0:
            values += self.dtype.type(self._bzero)
        if self._blank is not None:
            values[raw == self._blank] = np.nan
        return values


def raw_header_text(hdu, path=None):
    """An HDU's header cards exactly as stored in its file, without END and padding.

    Reading the bytes back is much cheaper than ``header.tostring()``, which
    re-verifies every card of a freshly opened file.  Headers of compressed
    files, or of HDUs not read from a file, come from ``header.tostring()``.
    """
    info = hdu.fileinfo()
    name = path or (info["file"].name if info and info.get("file") is not None else None)
    if info is None or name is None or os.fspath(name).endswith((".gz", ".bz2", ".zip")) or not os.path.isfile(name):
        return hdu.header.tostring(sep="", endcard=False, padding=False)
    with open(name, "rb") as handle:
        handle.seek(info["hdrLoc"])
        text = handle.read(info["datLoc"] - info["hdrLoc"]).decode("ascii", "replace")
    for start in range(0, len(text), 80):
        if text[start:start + 8] == "END     ":
            return text[:start]
    return text


def celestial_wcs(header, *, path="<file>", hdu=None, required=False, fobj=None):
    """Build the celestial WCS of an image header.

    Parameters
    ----------
    header : astropy.io.fits.Header
    path, hdu
        Where the header came from, for error messages.
    required : bool
        Raise :class:`~starpix.errors.NoWCSError` rather than returning None
        when the header has no celestial WCS.
    fobj : astropy.io.fits.HDUList, optional
        The file the header came from; needed for lookup-table distortions
        (CPDIS/D2IM), whose tables lie in other HDUs.

    Returns
    -------
    astropy.wcs.WCS or None
        A two-axis celestial WCS with SIP and lookup-table distortions as
        the header describes them.
    """
    from astropy.wcs import WCS, FITSFixedWarning

    header = _rename_archaic_keywords(header)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(header, fobj, relax=True)
    except Exception as exc:  # noqa: BLE001 - astropy raises many types here
        if required:
            where = f"{path}" + (f"[{hdu}]" if hdu is not None else "")
            raise NoWCSError(f"{where}: its WCS cannot be read ({exc})") from None
        return None
    if wcs.has_celestial and wcs.naxis == 2:
        return wcs
    if required:
        where = f"{path}" + (f"[{hdu}]" if hdu is not None else "")
        raise NoWCSError(f"{where}: sky coordinates need a celestial WCS, and the header has none")
    return None


def _rename_archaic_keywords(header):
    """Rename ``PC001001``/``CD001001`` style keywords to the modern form."""
    archaic = [key for key in header if re.fullmatch(r"(PC|CD)00\d00\d", key or "")]
    if not archaic:
        return header
    header = header.copy()
    for key in archaic:
        modern = f"{key[:2]}{int(key[4])}_{int(key[7])}"
        header[modern] = header[key]
        del header[key]
    return header


@dataclass
class ImageSource:
    """An image HDU opened lazily: pixels are read only where sliced.

    Attributes
    ----------
    path : str
        The file name.
    index : int
        The HDU's position in the file.
    hdu : astropy HDU
        The HDU; ``section`` slices it without reading the rest.
    header : astropy.io.fits.Header
    """

    path: str
    index: int
    hdu: object
    header: object
    _hdul: object = field(repr=False, default=None)
    _wcs: object = field(repr=False, default=False)

    @property
    def shape(self):
        """Image shape ``(ny, nx)``."""
        return _shape(self.hdu)

    @property
    def extname(self):
        """EXTNAME of the HDU, or '' for an unnamed one."""
        return self.header.get("EXTNAME", "")

    @property
    def section(self):
        """Lazy slicing access to the pixels (see :func:`lazy_pixels`)."""
        return lazy_pixels(self.hdu, self.path)

    @property
    def data(self):
        """All pixels (memory-mapped where the file allows; scaled images are read and scaled)."""
        pixels = self.section
        return pixels[...] if isinstance(pixels, ScaledPixels) else self.hdu.data

    @property
    def wcs(self):
        """The celestial WCS, or None."""
        if self._wcs is False:
            self._wcs = celestial_wcs(self.header, path=self.path, hdu=self.index, fobj=self._hdul)
        return self._wcs

    def require_wcs(self):
        """The celestial WCS; raises NoWCSError naming the file if missing."""
        if self.wcs is None:
            raise NoWCSError(
                f"{self.path}[{self.index}]: sky coordinates need a celestial WCS, and the header has none"
            )
        return self.wcs

    @property
    def label(self):
        """``file[index]`` for messages."""
        return f"{self.path}[{self.index}]"

    def close(self):
        """Close the underlying file."""
        if self._hdul is not None:
            self._hdul.close()
            self._hdul = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_image(spec, hdu=None):
    """Open one image HDU of a FITS file lazily.

    Parameters
    ----------
    spec : str or os.PathLike
        File name, optionally with ``[HDU]`` (see :func:`parse_hdu_spec`).
    hdu : int, str or None
        HDU to use when ``spec`` names none; None picks the first image HDU.

    Returns
    -------
    ImageSource
    """
    path, spec_hdu = parse_hdu_spec(spec)
    hdul = open_fits(path)
    try:
        index, chosen = select_image_hdu(hdul, spec_hdu if spec_hdu is not None else hdu, path=path)
        dims = len(_shape(chosen))
        if dims < 2:
            raise HDUError(f"{path}: HDU {index} holds a {dims}-dimensional array, not an image")
    except Exception:
        hdul.close()
        raise
    return ImageSource(path=path, index=index, hdu=chosen, header=chosen.header, _hdul=hdul)


def check_output(path, overwrite):
    """Raise OutputExistsError if ``path`` exists and ``overwrite`` is false."""
    if os.path.exists(path) and not overwrite:
        raise OutputExistsError(f"{path}: already exists (use --overwrite / overwrite=True to replace it)")


@contextlib.contextmanager
def atomic_output(path, overwrite=False):
    """Yield a temporary path beside ``path``; rename it over ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left as it
    was.  The check for an existing output is made before any work.
    """
    path = os.fspath(path)
    check_output(path, overwrite)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise InputFileError(f"{path}: the output directory {directory} does not exist")
    suffix = "".join(Path(path).suffixes[-2:]) or ".tmp"
    handle, tmp = tempfile.mkstemp(prefix=f".{Path(path).name}.", suffix=suffix, dir=directory)
    os.close(handle)
    # mkstemp makes the file private (0600); an output gets the usual mode
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield tmp
        check_output(path, overwrite)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_fits(hdul, path, *, overwrite=False, checksum=True, verify="exception"):
    """Write an HDUList atomically.

    Parameters
    ----------
    hdul : astropy.io.fits.HDUList
    path : str or os.PathLike
        Output file; ``.gz`` compresses.
    overwrite : bool
        Replace an existing file.
    checksum : bool
        Write CHECKSUM and DATASUM cards.
    verify : str
        astropy's ``output_verify``; 'ignore' skips re-checking headers that
        were already valid when read (a large share of a small file's cost).
    """
    from astropy.io import fits
    from astropy.io.fits.verify import VerifyWarning

    with atomic_output(path, overwrite) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", VerifyWarning)
            fits.HDUList(hdul).writeto(tmp, overwrite=True, checksum=checksum, output_verify=verify)
    return os.fspath(path)


_TABLE_FORMATS = {".ecsv": "ascii.ecsv", ".csv": "ascii.csv", ".fits": "fits", ".fit": "fits",
                  ".txt": "ascii", ".dat": "ascii", ".tbl": "ascii.ipac"}


def _table_format(path):
    suffix = Path(path).suffix.lower()
    if suffix == ".gz":
        suffix = Path(Path(path).stem).suffix.lower()
    return _TABLE_FORMATS.get(suffix)


def read_table(path):
    """Read an ECSV, CSV, FITS or whitespace-separated table."""
    from astropy.table import QTable

    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputFileError(f"{path}: no such file")
    fmt = _table_format(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return QTable.read(path, format=fmt) if fmt else QTable.read(path)
    except Exception as exc:  # noqa: BLE001 - astropy's readers raise many types
        raise InputFileError(f"{path}: cannot be read as a table ({exc})") from None


def write_table(table, path, *, overwrite=False):
    """Write a table as ECSV, CSV or FITS by the file's extension, atomically."""
    fmt = _table_format(path) or "ascii.ecsv"
    with atomic_output(path, overwrite) as tmp:
        table.write(tmp, format=fmt, overwrite=True)
    return os.fspath(path)


def provenance_cards(inputs=(), *, keyword_prefix="SPXIN"):
    """(keyword, value, comment) of the STARPIX version and the input file names."""
    cards = [("STARPIX", __version__, "starpix version that wrote this file")]
    for number, name in enumerate(inputs, start=1):
        value = os.path.basename(os.fspath(name))[:68]
        # a card has room for 68 characters of value, or 55 beside the comment
        comment = "input file" if len(value.replace("'", "''")) <= 55 else ""
        cards.append((f"{keyword_prefix}{number}"[:8], value, comment))
    return cards


def add_provenance(header, inputs=(), *, keyword_prefix="SPXIN"):
    """Add the STARPIX version keyword and the input file names to a header."""
    for key, value, comment in provenance_cards(inputs, keyword_prefix=keyword_prefix):
        header[key] = (value, comment)
    return header
