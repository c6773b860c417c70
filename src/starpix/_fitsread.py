"""Plain FITS image HDUs read without astropy, for commands whose whole run is short.

Importing ``astropy.io.fits`` costs more than a one-stamp command does with
its pixels (astropy imports ``astropy.units`` on the way).  This module reads
the headers of an uncompressed FITS file card by card, picks an image HDU by
the rules of :func:`starpix.io.read_image` and memory-maps its pixels.

It reads only what it is certain to read as astropy would.  Anything else —
gzip or tile-compressed data, random groups, truncated files or trailing
bytes, scaled pixels other than the unsigned-integer conventions, BLANK,
non-standard or duplicated keywords where they matter, a missing or
non-image HDU — raises :class:`Unsupported`, and the caller goes the astropy
way (:mod:`starpix.io`), which reads the file or gives the proper error.
"""

from __future__ import annotations

import os
import re

import numpy as np

__all__ = ["Unsupported", "Card", "Header", "FitsImage", "parse_card", "scan_file", "read_image", "read_named_images"]

BLOCK = 2880
_CARD = 80
_BITPIX_DTYPES = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
# unsigned/signed conventions: BITPIX -> (BZERO, dtype astropy returns)
_INTEGER_ZERO = {8: (-128, np.dtype("int8")), 16: (1 << 15, np.dtype("uint16")),
                 32: (1 << 31, np.dtype("uint32")), 64: (1 << 63, np.dtype("uint64"))}

_KEYWORD = re.compile(r"[A-Z0-9_-]{1,8} *")
_NUMBER = re.compile(r"[+-]?(?:\.\d+|\d+(?:\.\d*)?)(?:[DE][+-]?\d+)?")
_AFTER_VALUE = re.compile(r" *(?:/ *(?P<comment>.*))?")
# a string value astropy would read as a record-valued keyword ('field: number')
_RVKC_VALUE = re.compile(r"[a-zA-Z_]\w*(?:\.\d+)?: *[+-]?[.\d]")
_COMMENTARY = frozenset(("", "COMMENT", "HISTORY"))


class Unsupported(Exception):
    """The file needs astropy (or is unusable): read it through :mod:`starpix.io` instead."""


class _Unparsed:
    """Marker of a value this module does not read as astropy would."""

    __slots__ = ()

    def __repr__(self):
        return "<unparsed>"


UNPARSED = _Unparsed()


class Card:
    """One header card: ``keyword``, ``value`` and ``comment`` as astropy reads them, and the ``image``.

    Reading ``value`` of a card whose value this module cannot read with
    certainty raises :class:`Unsupported`.
    """

    __slots__ = ("keyword", "_value", "comment", "image")

    def __init__(self, keyword, value, comment, image):
        self.keyword = keyword
        self._value = value
        self.comment = comment
        self.image = image

    @property
    def value(self):
        if self._value is UNPARSED:
            raise Unsupported(f"header card {self.image.rstrip()!r}: value not read without astropy")
        return self._value

    def __repr__(self):
        return f"Card({self.keyword!r}, {self._value!r}, {self.comment!r})"


def _parse_value(field):
    """(value, comment) of the text after '= ', fixed or free format as FITS allows; UNPARSED if unsure."""
    text = field.lstrip(" ")
    if not text or text.startswith("/"):
        return UNPARSED, ""  # undefined value: astropy's UNDEFINED, never needed here
    if text[0] == "'":
        chars = []
        index = 1
        while True:
            if index >= len(text):
                return UNPARSED, ""  # no closing quote
            char = text[index]
            if char == "'":
                if text[index + 1:index + 2] == "'":
                    chars.append("'")
                    index += 2
                    continue
                break
            chars.append(char)
            index += 1
        value = "".join(chars).rstrip(" ")
        rest = text[index + 1:]
        if rest and rest[0] not in " /":
            return UNPARSED, ""
        # astropy ends the string at the first quote (from the third character on) that only spaces and a
        # comment follow, even inside a doubled quote or after an empty string: refuse where that differs
        limit = index if index >= 2 else len(text)
        quote = text.find("'", 2)
        while 0 <= quote < limit:
            if not text[quote + 1:].lstrip(" ") or text[quote + 1:].lstrip(" ").startswith("/"):
                return UNPARSED, ""
            quote = text.find("'", quote + 1)
        if _RVKC_VALUE.match(value):
            value = UNPARSED
    elif text[0] in "TF" and (len(text) == 1 or text[1] in " /"):
        value = text[0] == "T"
        rest = text[1:]
    else:
        number = _NUMBER.match(text)
        if number is None:
            return UNPARSED, ""
        digits = number.group(0)
        rest = text[number.end():]
        if rest and rest[0] not in " /":
            return UNPARSED, ""
        try:
            value = int(digits)
        except ValueError:
            value = float(digits.replace("D", "E"))
    after = _AFTER_VALUE.fullmatch(rest)
    if after is None:
        return UNPARSED, ""
    comment = (after.group("comment") or "").rstrip(" ")
    return value, comment


def parse_card(image):
    """A :class:`Card` from an 80-character card image; Unsupported for keywords astropy would read
    differently (lower case, spaces inside, HIERARCH names that look like standard keywords)."""
    head = image[:8]
    if head == "        ":
        return Card("", None, image[8:].rstrip(" "), image)
    if not _KEYWORD.fullmatch(head):
        raise Unsupported(f"header card {image.rstrip()!r}: non-standard keyword")
    keyword = head.rstrip(" ")
    if keyword in _COMMENTARY:
        return Card(keyword, image[8:].rstrip(" "), "", image)
    if keyword == "HIERARCH":
        name = image[8:].split("=", 1)[0].strip() if "=" in image[8:] else ""
        if name and len(name) <= 8:
            raise Unsupported(f"header card {image.rstrip()!r}: a HIERARCH keyword astropy may read as "
                              f"a standard one")
        return Card("HIERARCH " + name if name else keyword, UNPARSED, "", image)
    if keyword == "CONTINUE":
        return Card(keyword, UNPARSED, "", image)
    if image[8:10] != "= ":
        return Card(keyword, UNPARSED, "", image)
    value, comment = _parse_value(image[10:])
    return Card(keyword, value, comment, image)


class Header:
    """The cards of one HDU header, with the bits of astropy's Header API :mod:`starpix` uses.

    ``get`` and ``in`` look up a keyword; a keyword that is duplicated or
    whose value is not read with certainty raises :class:`Unsupported` on
    ``get`` (never silently a different value from astropy's).
    """

    def __init__(self, cards):
        self.cards = list(cards)
        self._index = {}
        previous = None
        for card in self.cards:
            if card.keyword == "CONTINUE" and previous is not None:
                previous._value = UNPARSED  # a long string astropy would join: not read here
            if card.keyword not in _COMMENTARY and card.keyword != "CONTINUE":
                self._index.setdefault(card.keyword, []).append(card)
                previous = card if isinstance(card._value, str) else None

    @property
    def images(self):
        """The 80-character card images, as stored."""
        return [card.image for card in self.cards]

    def __contains__(self, keyword):
        return keyword in self._index

    def get(self, keyword, default=None):
        """The value of ``keyword`` or ``default``; Unsupported if duplicated or not read with certainty."""
        found = self._index.get(keyword)
        if not found:
            return default
        if len(found) > 1:
            raise Unsupported(f"keyword {keyword} appears {len(found)} times in one header")
        return found[0].value

    def __getitem__(self, keyword):
        if keyword not in self._index:
            raise KeyError(keyword)
        return self.get(keyword)


class _HDU:
    """Where one HDU lies in its file, and what it holds."""

    __slots__ = ("index", "header", "data_offset", "data_bytes", "kind", "shape", "bitpix")

    def __init__(self, index, header, data_offset, data_bytes, kind, shape, bitpix):
        self.index = index
        self.header = header
        self.data_offset = data_offset
        self.data_bytes = data_bytes
        self.kind = kind          # 'image' (primary or IMAGE extension) or 'table'
        self.shape = shape        # numpy order; () when the HDU holds no pixels
        self.bitpix = bitpix

    @property
    def name(self):
        """astropy's ``hdu.name``: EXTNAME as a string, 'PRIMARY' for an unnamed primary HDU."""
        value = self.header.get("EXTNAME", "PRIMARY" if self.index == 0 else "")
        return str(value)

    @property
    def ver(self):
        return self.header.get("EXTVER", 1)

    @property
    def is_image(self):
        """:func:`starpix.io.is_image_hdu`: an image HDU with pixels."""
        return self.kind == "image" and self.shape != ()


def _int_card(header, keyword, *, low=None):
    value = header.get(keyword)
    if type(value) is not int or (low is not None and value < low):
        raise Unsupported(f"{keyword} = {value!r}: not read without astropy")
    return value


def _read_header(handle, offset):
    """Header cards from ``offset`` to END; returns (Header, offset after the header's blocks)."""
    cards = []
    position = offset
    while True:
        block = handle.read(BLOCK)
        if len(block) < BLOCK:
            raise Unsupported("the file ends inside a header")
        position += BLOCK
        try:
            text = block.decode("ascii")
        except UnicodeDecodeError:
            raise Unsupported("a header holds bytes that are not ASCII") from None
        if not text.isprintable():
            raise Unsupported("a header holds control characters")
        for start in range(0, BLOCK, _CARD):
            image = text[start:start + _CARD]
            if image[:8] == "END     ":
                if image[8:].strip(" "):
                    raise Unsupported("an END card with text after it")
                if text[start + _CARD:].strip(" "):
                    raise Unsupported("text after END in a header block")
                return Header(cards), position
            cards.append(parse_card(image))


def _structure(header, index):
    """(kind, shape, bitpix, data bytes) of an HDU from its mandatory keywords, in the standard's order."""
    cards = header.cards
    first = "SIMPLE" if index == 0 else "XTENSION"
    naxis_at = 2
    if len(cards) < 3 or cards[0].keyword != first or cards[1].keyword != "BITPIX" or cards[2].keyword != "NAXIS":
        raise Unsupported(f"HDU {index}: mandatory keywords missing or out of order")
    if index == 0:
        if cards[0].value is not True or "GROUPS" in header:
            raise Unsupported("HDU 0: not a standard primary HDU (SIMPLE = F or random groups)")
        kind = "image"
    else:
        xtension = cards[0].value
        if xtension == "IMAGE":
            kind = "image"
        elif xtension in ("BINTABLE", "TABLE"):
            kind = "table"
            if "ZIMAGE" in header or "ZTABLE" in header:
                raise Unsupported(f"HDU {index}: a tile-compressed HDU")
        else:
            raise Unsupported(f"HDU {index}: extension type {xtension!r}")
    bitpix = _int_card(header, "BITPIX")
    if bitpix not in _BITPIX_DTYPES:
        raise Unsupported(f"HDU {index}: BITPIX = {bitpix}")
    naxis = _int_card(header, "NAXIS", low=0)
    if naxis > 999 or len(cards) < naxis_at + 1 + naxis:
        raise Unsupported(f"HDU {index}: NAXIS = {naxis}")
    sizes = []
    for axis in range(1, naxis + 1):
        if cards[naxis_at + axis].keyword != f"NAXIS{axis}":
            raise Unsupported(f"HDU {index}: NAXIS{axis} missing or out of order")
        sizes.append(_int_card(header, f"NAXIS{axis}", low=0))
    if index == 0:
        pcount, gcount = 0, 1
        if "PCOUNT" in header or "GCOUNT" in header:
            raise Unsupported("HDU 0: PCOUNT/GCOUNT in a primary header")
    else:
        pcount = _int_card(header, "PCOUNT", low=0)
        gcount = _int_card(header, "GCOUNT", low=0)
        if kind == "image" and (pcount, gcount) != (0, 1):
            raise Unsupported(f"HDU {index}: an image extension with PCOUNT={pcount}, GCOUNT={gcount}")
    count = 0
    if naxis:
        count = 1
        for size in sizes:
            count *= size
        count = gcount * (pcount + count)
    shape = tuple(sizes[::-1]) if kind == "image" and naxis and 0 not in sizes else ()
    return kind, shape, bitpix, abs(bitpix) // 8 * count


def scan_file(path):
    """Every HDU of a plain FITS file: headers parsed, data located, the file's size checked.

    Returns a list of HDU records (``index``, ``header``, ``shape``,
    ``bitpix``, ``data_offset``, ``name``, ``ver``, ``is_image``).  Raises
    :class:`Unsupported` for anything this module does not read with
    certainty, including a missing, gzip-compressed, truncated or padded-out
    file.
    """
    path = os.fspath(path)
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise Unsupported(f"{path}: cannot be opened ({exc})") from None
    with handle:
        try:
            size = os.fstat(handle.fileno()).st_size
        except OSError as exc:  # pragma: no cover - fstat of an open file
            raise Unsupported(str(exc)) from None
        if handle.read(9) != b"SIMPLE  =":
            raise Unsupported(f"{path}: not a plain FITS file")
        handle.seek(0)
        hdus = []
        offset = 0
        while offset < size:
            if hdus and handle.read(8) != b"XTENSION":
                raise Unsupported(f"{path}: bytes after HDU {len(hdus) - 1} that are no HDU")
            handle.seek(offset)
            header, data_offset = _read_header(handle, offset)
            kind, shape, bitpix, data_bytes = _structure(header, len(hdus))
            hdus.append(_HDU(len(hdus), header, data_offset, data_bytes, kind, shape, bitpix))
            offset = data_offset + data_bytes + (-data_bytes) % BLOCK
            if offset > size:
                raise Unsupported(f"{path}: truncated (HDU {len(hdus) - 1} needs {offset} bytes, "
                                  f"the file has {size})")
            handle.seek(offset)
    return hdus


class _OffsetPixels:
    """Pixels stored with an integer BZERO (FITS's unsigned/signed convention), offset when sliced.

    Holds the values astropy gives (uint16/32/64 or int8), exactly.
    """

    def __init__(self, raw, bitpix):
        self._raw = raw
        self._zero, self.dtype = _INTEGER_ZERO[bitpix]
        self.shape = raw.shape
        self.ndim = raw.ndim

    def __getitem__(self, key):
        raw = np.asarray(self._raw[key])
        size = raw.dtype.itemsize
        unsigned = np.dtype(raw.dtype.str.replace("i", "u"))  # same byte order (a scalar comes back native)
        flipped = raw.view(unsigned) ^ unsigned.type(1 << (8 * size - 1))  # adds BZERO = 2**(bits-1) mod 2**bits
        values = flipped.astype(np.dtype(f"u{size}")).view(self.dtype)
        return values[()] if values.ndim == 0 else values

    def __len__(self):
        return self.shape[0]


class FitsImage:
    """One image HDU read by :func:`read_image`: ``path``, ``index``, ``header`` (:class:`Header`),
    ``shape`` (numpy order) and ``data`` (a read-only memory map, or an exact wrapper for integer
    data with the unsigned-integer BZERO convention), read only where sliced."""

    def __init__(self, path, hdu):
        self.path = path
        self.index = hdu.index
        self.header = hdu.header
        self.shape = hdu.shape
        self.name = hdu.name
        self.data = _pixels(path, hdu)

    @property
    def label(self):
        """``file[index]`` for messages."""
        return f"{self.path}[{self.index}]"


def _pixels(path, hdu):
    """The pixels of an image HDU as astropy gives them, read lazily; Unsupported for scaled data."""
    header = hdu.header
    bscale = header.get("BSCALE", 1)
    bzero = header.get("BZERO", 0)
    if type(bscale) not in (int, float) or type(bzero) not in (int, float):
        raise Unsupported(f"HDU {hdu.index}: BSCALE/BZERO not numbers")
    if "BLANK" in header:
        raise Unsupported(f"HDU {hdu.index}: BLANK (astropy converts such data to floating point)")
    raw = np.memmap(path, dtype=np.dtype(_BITPIX_DTYPES[hdu.bitpix]), mode="r", offset=hdu.data_offset,
                    shape=hdu.shape)
    if bscale == 1 and bzero == 0:
        return raw
    if bscale == 1 and hdu.bitpix > 0 and bzero == _INTEGER_ZERO[hdu.bitpix][0]:
        return _OffsetPixels(raw, hdu.bitpix)
    raise Unsupported(f"HDU {hdu.index}: scaled pixels (BSCALE = {bscale}, BZERO = {bzero})")


def _select(hdus, hdu):
    """:func:`starpix.io.select_image_hdu`'s choice, or Unsupported where it would raise."""
    if hdu is None:
        for candidate in hdus:
            if candidate.is_image:
                return candidate
        raise Unsupported("no HDU holds an image")
    if isinstance(hdu, (int, np.integer)):
        if not 0 <= hdu < len(hdus):
            raise Unsupported(f"HDU {hdu} does not exist")
        chosen = hdus[int(hdu)]
    else:
        name, ver = hdu if isinstance(hdu, tuple) else (hdu, None)
        name = str(name).upper()
        chosen = None
        for candidate in hdus:
            if candidate.name.upper() == name and (ver is None or candidate.ver == ver):
                chosen = candidate
                break
        if chosen is None:
            raise Unsupported(f"no HDU named {name!r}")
    if not chosen.is_image:
        raise Unsupported(f"HDU {chosen.index} holds no image")
    return chosen


def read_image(spec, hdu=None, *, hdus=None):
    """The image HDU :func:`starpix.io.read_image` would open, without astropy.

    Parameters
    ----------
    spec : str or os.PathLike
        File name, optionally with ``[HDU]``.
    hdu : int, str, tuple or None
        As for :func:`starpix.io.read_image` (None: the first image HDU).
    hdus : list, optional
        The file's :func:`scan_file` result, when already known.

    Returns
    -------
    FitsImage
        At least two-dimensional.

    Raises
    ------
    Unsupported
        Wherever :func:`starpix.io.read_image` would raise, and wherever the
        file needs astropy.
    """
    from .errors import StarpixError
    from .io import parse_hdu_spec

    try:
        path, spec_hdu = parse_hdu_spec(spec)
    except StarpixError as exc:
        raise Unsupported(str(exc)) from None
    if hdus is None:
        hdus = scan_file(path)
    chosen = _select(hdus, spec_hdu if spec_hdu is not None else hdu)
    if len(chosen.shape) < 2:
        raise Unsupported(f"HDU {chosen.index} holds a {len(chosen.shape)}-dimensional array")
    return FitsImage(path, chosen)


def read_named_images(path, names, *, hdus=None):
    """The first HDU of each EXTNAME in ``names`` (compared stripped and upper-case), as
    :func:`starpix.stamp._batch.read_segment_file` finds them.

    Returns a dict name -> :class:`FitsImage` or None (no such HDU).  A
    named HDU that holds no image raises :class:`Unsupported`.
    """
    path = os.fspath(path)
    if hdus is None:
        hdus = scan_file(path)
    found = {}
    for candidate in hdus:
        name = str(candidate.header.get("EXTNAME", "")).strip().upper()
        if name in names and name not in found:
            if not candidate.is_image:
                raise Unsupported(f"HDU {candidate.index} ({name}) holds no image")
            found[name] = FitsImage(path, candidate)
    return {name: found.get(name) for name in names}
