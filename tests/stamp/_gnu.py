"""Helpers for the agreement tests of the extended-PSF tools against Gnuastro."""

import shutil
import subprocess

import numpy as np
import pytest
from astropy.io import fits


def need(program):
    if shutil.which(program) is None:
        pytest.skip(f"{program} (Gnuastro 0.19) is not installed")


def write(path, data, header=None, extra=()):
    hdus = [fits.PrimaryHDU(), fits.ImageHDU(np.asarray(data), header=header)] + list(extra)
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return str(path)


def run(*argv, cwd=None):
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout
