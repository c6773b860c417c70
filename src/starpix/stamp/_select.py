"""Choosing isolated stars of a magnitude range for an extended PSF (``astscript-psf-select-stars``)."""

from __future__ import annotations

import math

import numpy as np

from ..errors import InvalidParameterError

__all__ = ["select_stars"]


def _column(table, name, option):
    if name not in table.colnames:
        raise InvalidParameterError(f"{option}: the catalogue has no column {name!r} (it has "
                                    f"{', '.join(table.colnames)})")
    column = table[name]
    value = getattr(column, "value", column)
    try:
        return np.asarray(np.ma.filled(np.ma.asarray(value, dtype=float), np.nan), dtype=float)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{option}: column {name!r} does not hold numbers") from None


def _unit_vectors(ra, dec):
    ra, dec = np.radians(ra), np.radians(dec)
    return np.column_stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])


def _sky_coverage(wcs, shape):
    """(ra_min, ra_max, dec_min, dec_max) of an image's corners (pixel edges)."""
    ny, nx = shape
    corners = np.array([[-0.5, -0.5], [nx - 0.5, -0.5], [-0.5, ny - 0.5], [nx - 0.5, ny - 0.5]])
    ra, dec = wcs.all_pix2world(corners, 0).T
    return ra.min(), ra.max(), dec.min(), dec.max()


def select_stars(catalog, magnitude_range, min_distance=1.0 / 60.0, *, magnitude_column="phot_g_mean_mag",
                 ra_column="ra", dec_column="dec", x_column=None, y_column=None, faint_mag_diff=4.0,
                 parallax_columns=None, min_axis_ratio=None, axis_ratio_column=None, wcs=None, shape=None):
    """Stars of a magnitude range with no other catalogue star nearby, as ``astscript-psf-select-stars``.

    The rules of Gnuastro 0.19's script, on a catalogue you give (no Gaia
    query):

    1. Restricted to the image when ``wcs`` and ``shape`` are given (the RA
       and Dec ranges of the image's corners, sky mode) or ``shape`` (pixel
       mode), the *neighbour* catalogue is every star with
       ``bright <= mag < faint + faint_mag_diff``.
    2. The candidates are the neighbours with ``bright <= mag < faint``;
       with ``parallax_columns`` only those with a significant parallax
       (``|parallax| >= 3 * parallax_error``) are kept, with
       ``min_axis_ratio`` only those whose ``axis_ratio_column`` is at
       least that.
    3. A candidate is kept when no other neighbour lies within
       ``min_distance`` of it (angular distance in degrees in sky mode,
       pixels in pixel mode).  Stars brighter than ``bright`` are not
       neighbours (as in the script).

    Parameters
    ----------
    catalog : astropy.table.Table or QTable
    magnitude_range : (float, float)
        ``(bright, faint)``, bright < faint.
    min_distance : float
        Degrees (sky mode, default one arcminute) or pixels (pixel mode).
    magnitude_column, ra_column, dec_column : str
    x_column, y_column : str, optional
        Give both for pixel mode (0-based pixel positions; no WCS needed).
    faint_mag_diff : float
        How much fainter than ``faint`` neighbours are counted (Gnuastro's
        ``--faintmagdiff``, default 4).
    parallax_columns : (str, str), optional
        Parallax and parallax-error columns.
    min_axis_ratio : float, optional
        Needs ``axis_ratio_column`` (for example a MakeCatalog or
        starpix.detect measurement matched to the catalogue).
    wcs : astropy.wcs.WCS, optional
        With ``shape``: keep only stars inside the image's RA/Dec ranges.
    shape : (ny, nx), optional

    Returns
    -------
    astropy.table.QTable
        The selected rows (every input column), sorted by magnitude;
        ``meta['select_stars_counts']`` records how many stars passed each
        step.
    """
    from astropy.table import QTable
    from scipy.spatial import cKDTree

    table = QTable(catalog)
    try:
        bright, faint = (float(v) for v in magnitude_range)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"magnitude_range: expected two numbers (bright, faint), got "
                                    f"{magnitude_range!r}") from None
    if not (math.isfinite(bright) and math.isfinite(faint) and bright < faint):
        raise InvalidParameterError(f"magnitude_range: expected finite bright < faint, got {magnitude_range!r}")
    if not (np.isfinite(min_distance) and min_distance >= 0):
        raise InvalidParameterError(f"min_distance must be >= 0, got {min_distance!r}")
    if not (np.isfinite(faint_mag_diff) and faint_mag_diff >= 0):
        raise InvalidParameterError(f"faint_mag_diff must be >= 0, got {faint_mag_diff!r}")
    pixel = x_column is not None or y_column is not None
    if pixel and (x_column is None or y_column is None):
        raise InvalidParameterError("x_column and y_column: give both for pixel mode")
    mag = _column(table, magnitude_column, "magnitude_column")
    if pixel:
        a, b = _column(table, x_column, "x_column"), _column(table, y_column, "y_column")
    else:
        a, b = _column(table, ra_column, "ra_column"), _column(table, dec_column, "dec_column")

    inside = np.ones(len(table), dtype=bool)
    if shape is not None:
        ny, nx = (int(v) for v in shape)
        with np.errstate(invalid="ignore"):
            if pixel:
                inside = (a >= -0.5) & (a < nx - 0.5) & (b >= -0.5) & (b < ny - 0.5)
            elif wcs is not None:
                ra0, ra1, dec0, dec1 = _sky_coverage(wcs, (ny, nx))
                inside = (a >= ra0) & (a < ra1) & (b >= dec0) & (b < dec1)
    elif wcs is not None:
        raise InvalidParameterError("wcs needs shape (ny, nx) to restrict the catalogue to the image")
    if not inside.any():
        raise InvalidParameterError("catalog: no star of the catalogue lies on the image")
    with np.errstate(invalid="ignore"):
        neighbour = inside & (mag >= bright) & (mag < faint + faint_mag_diff)
        candidate = neighbour & (mag < faint)
    counts = {"in_image": int(inside.sum()), "neighbour_range": int(neighbour.sum()),
              "magnitude_range": int(candidate.sum())}
    if parallax_columns is not None:
        try:
            plx_name, err_name = parallax_columns
        except (TypeError, ValueError):
            raise InvalidParameterError(f"parallax_columns: expected two column names, got "
                                        f"{parallax_columns!r}") from None
        plx = _column(table, plx_name, "parallax_columns")
        err = _column(table, err_name, "parallax_columns")
        with np.errstate(invalid="ignore"):
            candidate &= np.isfinite(plx) & ~(np.abs(plx) < 3 * err)
        counts["good_parallax"] = int(candidate.sum())
    if min_axis_ratio is not None:
        if axis_ratio_column is None:
            raise InvalidParameterError("min_axis_ratio needs axis_ratio_column (the catalogue's measured "
                                        "axis ratios)")
        with np.errstate(invalid="ignore"):
            candidate &= _column(table, axis_ratio_column, "axis_ratio_column") >= min_axis_ratio
        counts["round"] = int(candidate.sum())

    index = np.flatnonzero(candidate & np.isfinite(a) & np.isfinite(b))
    others = np.flatnonzero(neighbour & np.isfinite(a) & np.isfinite(b))
    if pixel:
        points, radius = np.column_stack([a, b]), float(min_distance)
    else:
        points = _unit_vectors(a, b)
        radius = 2.0 * math.sin(math.radians(min(float(min_distance), 180.0)) / 2.0)
    if len(index) and len(others):
        tree = cKDTree(points[others])
        # the star itself is one of the 'others' (it is in the neighbour range)
        found = tree.query_ball_point(points[index], radius * (1 + 1e-12), return_length=True)
        isolated = index[np.asarray(found) < 2]
    else:
        isolated = index
    counts["isolated"] = int(len(isolated))
    order = isolated[np.argsort(mag[isolated], kind="stable")]
    result = table[order]
    result.meta["select_stars_counts"] = counts
    return result
