"""DQ bit-flag expressions in AstroDrizzle's syntax, and the good-pixel masks they select.

AstroDrizzle's ``*_bits`` parameters (``driz_sep_bits``, ``final_bits``,
``sky_bits``) name the DQ flags to *ignore*: a pixel is good when it has no DQ
bit set outside them.  The forms accepted (those of
``astropy.nddata.bitmask.interpret_bit_flags``):

* ``None``, ``''``, ``'None'``, ``'INDEF'``: every pixel is good, whatever its DQ;
* an integer, or a string holding one (``12``, ``'12'``): the set of ignored bits;
  ``0`` makes every flagged pixel bad;
* a list of powers of two joined by ``+``, ``,`` or ``|`` (``'4+8'``, ``'4,8'``),
  optionally in parentheses;
* any of those prefixed by ``~`` (``'~4+8'``, ``'~(4+8)'``, ``'~12'``): the
  complement, i.e. *only* the listed bits make a pixel bad.

The parsed value is an int whose bitwise NOT is the set of bits that make a pixel
bad (so ``'~(4+8)'`` gives ``~12 == -13``), or ``None``.
"""

from __future__ import annotations

import re

import numpy as np

from ..errors import InvalidParameterError

__all__ = ["interpret_bit_flags", "good_pixel_mask"]

_NONE_WORDS = {"", "none", "indef"}
_SEPARATORS = re.compile(r"[+,|]")


def _bad(expr, why):
    return InvalidParameterError(f"malformed DQ bit-flag expression {expr!r}: {why}")


def interpret_bit_flags(bits):
    """Parse a DQ bit-flag expression in AstroDrizzle's syntax.

    Parameters
    ----------
    bits : int, str or None
        ``None``/``''``/``'None'``/``'INDEF'``; a non-negative integer (or its
        string); a ``+``/``,``/``|``-separated list of powers of two, optionally in
        parentheses; any of these with a leading ``~`` for the complement. A
        negative integer is taken as an already complemented value.

    Returns
    -------
    int or None
        The ignored bits (negative: the bitwise NOT of the bits that make a pixel
        bad), or ``None`` when every pixel is good.

    Raises
    ------
    InvalidParameterError
        For anything else (unbalanced parentheses, empty terms, terms that are not
        integers, list terms that are not powers of two, a ``~`` with nothing after).
    """
    if bits is None:
        return None
    if isinstance(bits, (bool, np.bool_)):
        raise _bad(bits, "expected an integer, a string or None, not a boolean")
    if isinstance(bits, (int, np.integer)):
        return int(bits)
    if not isinstance(bits, str):
        raise _bad(bits, f"expected an integer, a string or None, not {type(bits).__name__}")
    if re.search(r"\d\s+\d", bits):
        raise _bad(bits, "terms must be separated by '+', ',' or '|'")
    text = "".join(bits.split())
    if text.lower() in _NONE_WORDS:
        return None
    flip = text.startswith("~")
    if flip:
        text = text[1:]
    if text.count("(") != text.count(")"):
        raise _bad(bits, "unbalanced parentheses")
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
        if "(" in text or ")" in text:
            raise _bad(bits, "nested parentheses are not allowed")
    elif "(" in text or ")" in text:
        raise _bad(bits, "parentheses must enclose the whole list")
    if not text:
        raise _bad(bits, "empty bit-flag list")
    terms = _SEPARATORS.split(text)
    values = []
    for term in terms:
        if not term.isdigit():
            raise _bad(bits, f"{term!r} is not a non-negative integer" if term else "empty term")
        values.append(int(term))
    if len(values) == 1:
        value = values[0]
    else:
        for value in values:
            if value == 0 or value & (value - 1):
                raise _bad(bits, f"list terms must be powers of two, got {value}")
        value = 0
        for term in set(values):
            value |= term
    return ~value if flip else value


def good_pixel_mask(dq, bits=0):
    """Good-pixel mask (True = good) of a DQ array under a bit-flag expression.

    Parameters
    ----------
    dq : array_like of int, or None
        Data-quality flags. ``None`` gives ``None`` (no mask).
    bits : int, str or None
        Flags to ignore, in the syntax of :func:`interpret_bit_flags`. The default
        ``0`` makes every pixel with a non-zero DQ bad.

    Returns
    -------
    numpy.ndarray of bool or None
        True where ``dq`` has no bit set outside the ignored ones.
    """
    ignore = interpret_bit_flags(bits)
    if dq is None:
        return None
    dq = np.asarray(dq)
    if dq.dtype.kind not in "iub":
        raise InvalidParameterError(f"DQ array must hold integers, got dtype {dq.dtype}")
    if ignore is None:
        return np.ones(dq.shape, dtype=bool)
    nbits = 8 * dq.dtype.itemsize
    bad_bits = (~ignore) & ((1 << nbits) - 1)
    if dq.dtype.kind == "i":
        view = dq.view(np.dtype(f"u{dq.dtype.itemsize}"))
    elif dq.dtype.kind == "b":
        view = dq.astype(np.uint8)
    else:
        view = dq
    return (view & view.dtype.type(bad_bits)) == 0
