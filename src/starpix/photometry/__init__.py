"""Aperture photometry, source grouping and PSF photometry (photutils' photometry tools)."""

from ._apertures import (
    ApertureSums,
    annulus_sum,
    aperture_photometry,
    circular_sum,
    elliptical_annulus_sum,
    elliptical_sum,
)
from ._flags import PSF_FLAGS, PSFFlag, decode_flags
from ._grouping import SourceGrouper, group_sources
from ._iterative import IterativePSFPhotometry, IterativePSFResult
from ._local_background import LocalBackground
from ._psf_photometry import PSFPhotometry, PSFPhotometryResult, PSFTable
from ._tiled import batch_photometry, tile_grid, tiled_photometry

__all__ = []
__all__ += ["circular_sum", "annulus_sum", "elliptical_sum", "elliptical_annulus_sum", "ApertureSums",
            "aperture_photometry", "group_sources", "SourceGrouper", "LocalBackground"]
__all__ += ["PSFPhotometry", "PSFPhotometryResult", "PSFTable", "PSF_FLAGS", "PSFFlag", "decode_flags",
            "IterativePSFPhotometry", "IterativePSFResult"]
__all__ += ["tiled_photometry", "batch_photometry", "tile_grid"]
