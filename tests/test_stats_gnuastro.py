"""starpix.stats.gnuastro_sigma_clip: Gnuastro 0.19's sigma-clipping rule."""

import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from starpix.errors import InvalidParameterError
from starpix.stats import gnuastro_sigma_clip


def reference_clip(values, multip, param):
    """A plain-Python transcription of the rule in shared/specs/gnuastro-psf-stamp.md section 8.1."""
    data = np.sort(np.asarray(values, dtype=np.float64)[np.isfinite(values)])
    if data.size == 0:
        return (np.nan,) * 4
    tolerance = param < 1
    maxnum = 50 if tolerance else int(param)
    cur = data
    num = 0
    old = (np.nan, np.nan, np.nan)
    while num < maxnum and cur.size:
        mean = cur.sum() / cur.size
        var = ((cur ** 2).sum() - cur.sum() ** 2 / cur.size) / cur.size
        std = np.sqrt(var) if var > 0 else 0.0
        median = np.median(cur)
        if tolerance and num > 0 and (std == 0 or (old[1] - std) / std < param):
            if std == 0:
                old = (median, std, mean)
            break
        if std > 0:
            cur = cur[(cur > median - multip * std) & (cur < median + multip * std)]
        old = (median, std, mean)
        num += 1
    if cur.size == 0 or (tolerance and num == maxnum):
        return (np.nan,) * 4
    return (cur.size, old[0], old[2], old[1])


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 300), outliers=st.integers(0, 10),
       params=st.sampled_from([(3.0, 0.2), (3.0, 0.1), (2.0, 0.05), (3.0, 3.0), (2.5, 1.0)]))
def test_matches_the_rule(seed, n, outliers, params):
    rng = np.random.default_rng(seed)
    values = rng.normal(5.0, 1.0, n)
    values[:min(outliers, n)] += 50.0
    got = gnuastro_sigma_clip(values, params)
    want = reference_clip(values, *params)
    np.testing.assert_allclose(got, np.float32(want), rtol=1e-6, equal_nan=True)


def test_per_pixel_stack_equals_one_call_per_pixel():
    rng = np.random.default_rng(3)
    stack = rng.normal(0, 1, (9, 4, 5)).astype(np.float32)
    stack[0, 0, 0] = 40
    stack[:, 1, 1] = np.nan  # a pixel with no value at all
    stack[2:, 2, 2] = np.nan  # two values only
    number, median, mean, std = gnuastro_sigma_clip(stack, (3, 0.2), axis=0)
    assert median.shape == (4, 5) and median.dtype == np.float32
    for y in range(4):
        for x in range(5):
            one = gnuastro_sigma_clip(stack[:, y, x], (3, 0.2))
            np.testing.assert_array_equal([number[y, x], median[y, x], mean[y, x], std[y, x]], one)
    assert np.isnan(mean[1, 1]) and number[2, 2] == 2


def test_float32_median_is_computed_in_float32():
    values = np.array([1.0, 16777217.0 - 1.0], dtype=np.float32)  # even count, sum not representable
    _, median, _, _ = gnuastro_sigma_clip(values, (3, 1))
    assert median == np.float32((np.float32(1.0) + np.float32(16777216.0)) / np.float32(2.0))


def test_single_value_and_empty():
    assert gnuastro_sigma_clip([7.0]) == (1.0, 7.0, 7.0, 0.0)
    assert all(np.isnan(v) for v in gnuastro_sigma_clip([np.nan, np.nan]))


@pytest.mark.parametrize("bad", [(0, 0.2), (3, 0), (3, 1.5), (3,), "3,0.2", (np.nan, 0.2)])
def test_bad_parameters(bad):
    with pytest.raises(InvalidParameterError, match="sigmaclip"):
        gnuastro_sigma_clip([1.0, 2.0], bad)


@pytest.mark.skipif(shutil.which("aststatistics") is None, reason="Gnuastro's aststatistics is not installed")
@pytest.mark.parametrize("params", ["3,0.2", "3,3", "2,0.1"])
def test_agrees_with_aststatistics(tmp_path, params):
    rng = np.random.default_rng(1)
    values = rng.normal(10, 2, 1001)
    values[:5] = 100
    np.savetxt(tmp_path / "values.txt", values, fmt="%.10f")
    out = subprocess.run(["aststatistics", str(tmp_path / "values.txt"), "-c1", "--sigclip-number",
                          "--sigclip-median", "--sigclip-mean", "--sigclip-std", f"--sclipparams={params}", "-q"],
                         check=True, capture_output=True, text=True).stdout.split()
    ours = gnuastro_sigma_clip(values, tuple(float(p) for p in params.split(",")))
    np.testing.assert_allclose(ours, [float(v) for v in out], rtol=5e-6)  # Gnuastro prints 6 digits
