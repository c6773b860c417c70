"""PSF stamps, radial profiles and the extended PSF (Gnuastro's astscript-psf-* scripts)."""

from ._profile import RADIAL_MEASURES, radial_profile
from ._stamp import NORMOPS, psf_stamp

__all__ = []
__all__ += ["psf_stamp", "NORMOPS", "radial_profile", "RADIAL_MEASURES"]
from ._batch import StampSet, psf_stamps  # noqa: E402

__all__ += ["psf_stamps", "StampSet"]
from ._scale import psf_scale_factor, subtract_psf  # noqa: E402
from ._select import select_stars  # noqa: E402
from ._stack import STACK_OPERATORS, stack_stamps  # noqa: E402
from ._unite import unite_psfs  # noqa: E402

__all__ += ["stack_stamps", "STACK_OPERATORS", "select_stars", "psf_scale_factor", "subtract_psf", "unite_psfs"]
