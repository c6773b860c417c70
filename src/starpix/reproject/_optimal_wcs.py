"""A common celestial WCS and shape covering a set of images."""

from __future__ import annotations

import os

import numpy as np

from ..errors import InvalidParameterError, NoWCSError
from ._reproject import _as_wcs

__all__ = ["optimal_wcs"]

_EDGE_SAMPLES = 9


def _shape_and_wcs(item, index, hdu=None):
    """(shape, wcs) of one input: a FITS file name or an (array or shape, wcs or header) pair."""
    if isinstance(item, (str, os.PathLike)):
        from ..io import read_image

        with read_image(item, hdu=hdu) as source:
            wcs = source.require_wcs()
            return tuple(source.shape[-2:]), wcs
    try:
        data, wcs = item
    except (TypeError, ValueError):
        raise InvalidParameterError(
            f"images[{index}]: expected a FITS file name or an (array, wcs) pair, got {type(item).__name__}"
        ) from None
    shape = tuple(data) if isinstance(data, tuple) else tuple(np.shape(data))
    if len(shape) != 2:
        raise InvalidParameterError(f"images[{index}]: expected a 2-d image, got shape {shape}")
    return shape, _as_wcs(wcs, f"images[{index}]")


def _edge_points(shape, n=_EDGE_SAMPLES):
    """Pixel positions along the outer edges of an image (corners included)."""
    ny, nx = shape
    t = np.linspace(0.0, 1.0, n)
    xs = np.concatenate([-0.5 + nx * t, np.full(n, nx - 0.5), nx - 0.5 - nx * t, np.full(n, -0.5)])
    ys = np.concatenate([np.full(n, -0.5), -0.5 + ny * t, np.full(n, ny - 0.5), ny - 0.5 - ny * t])
    return xs, ys


def optimal_wcs(images, *, projection="TAN", resolution=None, reference=None, frame=None, hdu=None):
    """A north-up celestial WCS and shape whose grid covers all the images.

    As reproject's ``find_optimal_celestial_wcs`` (without auto-rotation):
    the frame is the first image's, the reference point the direction of the
    mean unit vector of the images' reference pixels (CRPIX), the pixel scale
    the finest of the inputs (the smallest ``proj_plane_pixel_scales`` at
    the reference pixel), longitude increasing to the left, and the grid
    spans the images' outer edges.  The edges are sampled at 9 points each
    (not only the corners), so a distorted edge that bulges out is covered
    too; for undistorted inputs this gives reproject's grid.

    Parameters
    ----------
    images : sequence
        FITS file names (the image HDU's header must hold a celestial WCS)
        or ``(array or shape, wcs or header)`` pairs.
    projection : str
        Three-letter projection code of the output WCS ('TAN', 'CAR', ...).
    resolution : float or astropy.units.Quantity, optional
        Output pixel scale (degrees if a float).
    reference : astropy.coordinates.SkyCoord, optional
        Output reference point (CRVAL).
    frame : str or astropy frame, optional
        Output celestial frame ('icrs', 'galactic', ...); default the first image's.
    hdu : int or str, optional
        HDU of the FITS files (default: the first image HDU).

    Returns
    -------
    wcs : astropy.wcs.WCS
    shape : tuple of int
        ``(ny, nx)``.
    """
    from astropy import units as u
    from astropy.coordinates import SkyCoord, UnitSphericalRepresentation, frame_transform_graph
    from astropy.wcs.utils import (
        celestial_frame_to_wcs,
        pixel_to_skycoord,
        proj_plane_pixel_scales,
        skycoord_to_pixel,
        wcs_to_celestial_frame,
    )

    if isinstance(images, (str, os.PathLike)) or (isinstance(images, tuple) and len(images) == 2
                                                  and not isinstance(images[0], (str, os.PathLike, tuple))):
        images = [images]
    items = list(images)
    if not items:
        raise InvalidParameterError("images: the list of images is empty")
    if not (isinstance(projection, str) and len(projection) == 3 and projection.isalpha()):
        raise InvalidParameterError(f"projection: expected a three-letter code such as 'TAN', got {projection!r}")
    if isinstance(frame, str):
        cls = frame_transform_graph.lookup_name(frame)
        if cls is None:
            raise InvalidParameterError(f"frame: unknown celestial frame {frame!r}")
        frame = cls()
    edges, references, scales = [], [], []
    for index, item in enumerate(items):
        shape, wcs = _shape_and_wcs(item, index, hdu)
        if frame is None:
            frame = wcs_to_celestial_frame(wcs)
        xs, ys = _edge_points(shape)
        edges.append(wcs.pixel_to_world(xs, ys).transform_to(frame).frame)
        crpix = wcs.wcs.crpix
        references.append(pixel_to_skycoord(crpix[0], crpix[1], wcs, origin=1).transform_to(frame).frame)
        cunits = [u.Unit(unit or "deg") for unit in wcs.wcs.cunit]
        scales.append(min((abs(s) * unit).to_value(u.deg) for s, unit in zip(proj_plane_pixel_scales(wcs), cunits)))
    edges = SkyCoord(edges)
    references = SkyCoord(references)
    if reference is None:
        vectors = references.cartesian.xyz.value
        mean = vectors.mean(axis=1)
        if np.linalg.norm(mean) == 0:
            raise InvalidParameterError("images: their reference points average to no direction")
        rep = UnitSphericalRepresentation.from_cartesian(
            references.cartesian.__class__(*(mean / np.linalg.norm(mean))))
        reference = SkyCoord(rep, frame=references.frame)
    reference = reference.transform_to(frame)
    if resolution is None:
        resolution = min(scales)
    elif hasattr(resolution, "to_value"):
        resolution = resolution.to_value(u.deg)
    resolution = float(resolution)
    if not resolution > 0:
        raise InvalidParameterError(f"resolution: must be positive, got {resolution}")
    try:
        wcs_out = celestial_frame_to_wcs(frame, projection=projection)
    except ValueError as exc:
        raise InvalidParameterError(f"frame: {exc}") from None
    wcs_out.wcs.cunit = ["deg", "deg"]
    rep = reference.represent_as("unitspherical")
    wcs_out.wcs.crval = (rep.lon.to_value(u.deg), rep.lat.to_value(u.deg))
    wcs_out.wcs.cdelt = (-resolution, resolution)
    wcs_out.wcs.crpix = (1.0, 1.0)
    xp, yp = skycoord_to_pixel(edges, wcs_out, origin=1)
    if not (np.all(np.isfinite(xp)) and np.all(np.isfinite(yp))):
        raise NoWCSError(f"projection: the images do not all fit on one {projection} projection")
    xmin, xmax, ymin, ymax = xp.min(), xp.max(), yp.min(), yp.max()
    wcs_out.wcs.crpix = ((1 - xmin) + 0.5, (1 - ymin) + 0.5)
    wcs_out.wcs.set()
    shape = (max(1, int(round(ymax - ymin))), max(1, int(round(xmax - xmin))))
    wcs_out.pixel_shape = shape[::-1]
    return wcs_out, shape
