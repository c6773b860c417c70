"""Pre-processing: masks of unusable pixels, cosmic rays, bias/dark/flat calibration and master frames.

- :func:`make_mask` — STDPipe's ``make_mask``: non-finite pixels, outside DATASEC/TRIMSEC,
  saturation, an external mask and (optionally) cosmic rays.
- :func:`detect_cosmics` — L.A.Cosmic as astroscrappy does it (same parameters, same mask).
- :func:`calibrate` — bias, dark (scaled by exposure time) and normalized flat, with the
  masks of under-illuminated flat and hot dark pixels.
- :func:`mask_cosmics_files` — cosmic-ray masks and cleaned images of many files, on any executor.
- :func:`combine_frames` — median, mean or sigma-clipped mean of frames in bounded memory.
"""

from ._batch import CosmicsFileResult, mask_cosmics_files
from ._calibrate import Calibrated, calibrate
from ._combine import combine_frames
from ._cosmics import detect_cosmics, psf_kernel
from ._mask import estimate_saturation, make_mask, parse_section

__all__ = ["make_mask", "parse_section", "estimate_saturation", "detect_cosmics", "psf_kernel", "calibrate",
           "Calibrated", "combine_frames", "mask_cosmics_files", "CosmicsFileResult"]
