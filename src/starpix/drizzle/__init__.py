"""Drizzle: pixel maps, drizzle kernels and blot (the layer under AstroDrizzle's pipeline).

The kernels never see a WCS: :func:`calc_pixmap` turns two WCSs into a pixel
map, :class:`Drizzle` accumulates inputs through their maps onto one output
(SCI, WHT, CTX), and :func:`blot` samples an output-grid image back on an input
grid. :func:`good_pixel_mask` turns DQ arrays and AstroDrizzle bit-flag
expressions into weights.  On top of them: AstroDrizzle's steps (static mask,
sky, median, cosmic-ray detection) and :func:`astrodrizzle`, its whole pipeline.
"""

from ._bits import good_pixel_mask, interpret_bit_flags
from ._blot import BLOT_INTERPOLATIONS, blot
from ._cr import DRIZ_CR_METHODS, driz_cr, quick_deriv
from ._drizzle import FLUX_CONSERVING_KERNELS, KERNELS, Drizzle, pixmap_scale_ratio
from ._median import COMBINE_TYPES, combine_stack, weight_masks
from ._pipeline import PARAMETERS, STEPS, DrizzleResult, astrodrizzle
from ._pixmap import calc_pixmap
from ._sky import SKY_METHODS, SKY_STATISTICS, SkyChip, compute_sky, image_stats, sky_statistic
from ._static import static_mask

__all__ = ["Drizzle", "KERNELS", "FLUX_CONSERVING_KERNELS", "pixmap_scale_ratio", "calc_pixmap", "blot",
           "BLOT_INTERPOLATIONS", "interpret_bit_flags", "good_pixel_mask",
           "static_mask", "SkyChip", "sky_statistic", "image_stats", "compute_sky", "SKY_METHODS",
           "SKY_STATISTICS", "weight_masks", "combine_stack", "COMBINE_TYPES", "quick_deriv", "driz_cr",
           "DRIZ_CR_METHODS", "astrodrizzle", "DrizzleResult", "PARAMETERS", "STEPS"]
