"""Reprojection onto a celestial WCS grid, optimal mosaic WCSs, and coadds.

``reproject`` maps one image onto another WCS grid by interpolation, exact
pixel overlap or drizzle; ``optimal_wcs`` finds a north-up grid that covers a
set of images; ``coadd`` reprojects and combines many images (mean, median,
sigma-clipped mean, sum) in bounded memory, with optional background matching.
"""

from ._coadd import coadd
from ._optimal_wcs import optimal_wcs
from ._reproject import reproject

__all__ = ["reproject", "optimal_wcs", "coadd"]
