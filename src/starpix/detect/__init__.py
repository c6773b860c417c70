"""Background estimation and star finding (photutils' Background2D and star finders)."""

from ._background import Background, background_scalar

__all__ = []
__all__ += ["Background", "background_scalar"]
from ._finders import DAO_COLUMNS, IRAF_COLUMNS, StarFinder, find_stars  # noqa: E402

__all__ += ["find_stars", "StarFinder", "IRAF_COLUMNS", "DAO_COLUMNS"]
from ._segment import SEGMENT_DEFAULTS, Segmentation, read_segmentation, segment  # noqa: E402

__all__ += ["segment", "Segmentation", "read_segmentation", "SEGMENT_DEFAULTS"]
