"""starpix.reproject.reproject against the reproject package, flux conservation, SIP, NaNs, geometry."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from starpix.errors import InvalidParameterError, NoWCSError
from starpix.reproject import reproject
from starpix.reproject._reproject import _transform, pixel_map
from starpix.reproject._reproject_kernels import overlap_accumulate
from starpix.simulate import make_star_field, make_wcs

N = 120


@pytest.fixture(scope="module")
def scene():
    """A TAN-SIP star field and a rotated, rescaled TAN output grid."""
    wcs_in = make_wcs((N, N), center=(150.0, 2.0), pixel_scale_arcsec=1.0, rotation_deg=20.0, sip=True)
    image, _ = make_star_field((N, N), 25, fwhm=3.0, wcs=wcs_in, seed=4)
    wcs_out = make_wcs((N, N), center=(150.004, 2.002), pixel_scale_arcsec=1.2, rotation_deg=-5.0)
    return image, wcs_in, wcs_out


def _peer():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pytest.importorskip("reproject", reason="reproject (peer tool) is not installed")


def _interior(mask, width=4):
    inner = mask.copy()
    inner[:width] = inner[-width:] = False
    inner[:, :width] = inner[:, -width:] = False
    return inner


@pytest.mark.parametrize("order", ["nearest", "bilinear", "bicubic"])
def test_interp_agrees_with_reproject(scene, order):
    peer = _peer()
    image, wcs_in, wcs_out = scene
    ours, footprint = reproject(image, wcs_in, wcs_out, (N, N), order=order)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs, their_fp = peer.reproject_interp((image, wcs_in), wcs_out, (N, N),
                                                 order="nearest-neighbor" if order == "nearest" else order)
    both = _interior(np.isfinite(ours) & np.isfinite(theirs))
    assert both.sum() > 0.5 * N * N
    assert np.max(np.abs(ours - theirs)[both]) <= 1e-5 * image.max()
    assert np.array_equal(np.isfinite(ours), np.isfinite(theirs))
    assert np.array_equal(footprint, their_fp)


def test_exact_agrees_with_reproject_exact(scene):
    peer = _peer()
    image, wcs_in, wcs_out = scene
    ours, footprint = reproject(image, wcs_in, wcs_out, (N, N), method="exact")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs, their_fp = peer.reproject_exact((image, wcs_in), wcs_out, (N, N))
    covered = their_fp > 0.01
    assert np.max(np.abs(ours - theirs)[covered]) <= 1e-6 * image.max()
    assert np.max(np.abs(footprint - their_fp)) < 1e-6


def test_exact_wide_pixels_agree_with_reproject_exact():
    """30-arcsec pixels over 1.7 degrees: overlaps in the output TAN plane, weighted by the solid
    angle at their centroids, match the spherical overlaps to 1e-6 (unweighted they miss by ~4e-6).
    reproject's own overlaps are off by up to 1e-5 on a few pixels at this scale (its footprint of
    fully covered pixels drops to 0.99999 there, ours stays 1 within 1e-8): those are left out."""
    peer = _peer()
    n = 200
    wcs_in = make_wcs((n, n), center=(30.0, 60.0), pixel_scale_arcsec=30.0, rotation_deg=10.0)
    wcs_out = make_wcs((n, n), center=(30.5, 60.2), pixel_scale_arcsec=33.0)
    image = np.random.default_rng(2).uniform(1, 2, (n, n))
    ours, footprint = reproject(image, wcs_in, wcs_out, (n, n), method="exact")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs, their_fp = peer.reproject_exact((image, wcs_in), wcs_out, (n, n))
    covered = their_fp > 0.01
    consistent = covered & (np.abs(footprint - their_fp) < 1e-7)
    assert consistent.sum() > 0.97 * covered.sum()
    assert np.max(np.abs(ours - theirs)[consistent]) <= 1e-6 * image.max()
    inner = _interior(their_fp > 0.999999, 3) & _interior(footprint > 0.5, 3)
    assert np.max(np.abs(footprint[inner] - 1)) < 1e-8


def test_interp_other_frame_agrees_with_reproject(scene):
    peer = _peer()
    from astropy.wcs import WCS

    image, wcs_in, _ = scene
    galactic = WCS(naxis=2)
    galactic.wcs.ctype = ["GLON-TAN", "GLAT-TAN"]
    from astropy.coordinates import SkyCoord

    centre = SkyCoord(150.0, 2.0, unit="deg").galactic
    galactic.wcs.crval = [centre.l.deg, centre.b.deg]
    galactic.wcs.crpix = [N / 2, N / 2]
    galactic.wcs.cdelt = [-1.1 / 3600, 1.1 / 3600]
    ours, _ = reproject(image, wcs_in, galactic, (N, N))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs, _ = peer.reproject_interp((image, wcs_in), galactic, (N, N))
    both = _interior(np.isfinite(ours) & np.isfinite(theirs))
    assert both.sum() > 0.3 * N * N
    assert np.max(np.abs(ours - theirs)[both]) <= 1e-5 * image.max()


def test_nan_and_mask_handling_as_reproject(scene):
    peer = _peer()
    image, wcs_in, wcs_out = scene
    holed = image.copy()
    holed[40:44, 50:53] = np.nan
    holed[80, 30] = np.nan
    ours, _ = reproject(holed, wcs_in, wcs_out, (N, N))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs, _ = peer.reproject_interp((holed, wcs_in), wcs_out, (N, N))
    assert np.array_equal(np.isfinite(ours), np.isfinite(theirs))
    masked, _ = reproject(image, wcs_in, wcs_out, (N, N), mask=~np.isfinite(holed))
    np.testing.assert_array_equal(masked, ours)
    # the overlap methods skip bad pixels (reproject_exact lets a NaN spoil every output pixel it
    # touches): elsewhere they agree, and the footprint drops where bad pixels would have landed
    exact, fp = reproject(holed, wcs_in, wcs_out, (N, N), method="exact")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        their_exact, their_fp = peer.reproject_exact((holed, wcs_in), wcs_out, (N, N))
    clean = np.isfinite(their_exact) & (their_fp > 0.01)
    assert np.max(np.abs(exact - their_exact)[clean]) <= 1e-6 * image.max()
    assert np.max(np.abs(fp - their_fp)[clean]) < 1e-6
    spoiled = ~np.isfinite(their_exact) & (their_fp > 0.999)
    assert spoiled.sum() >= 12
    assert np.all(fp[spoiled] < 1 - 1e-3)
    assert image.max() == np.nanmax(image)  # the input is not modified


def test_bicubic_nan_stays_local(scene):
    image, wcs_in, _ = scene
    holed = image.copy()
    holed[60, 60] = np.nan
    out, _ = reproject(holed, wcs_in, wcs_in, (N, N), order="bicubic")
    bad = ~np.isfinite(out)
    assert bad[60, 60] and bad.sum() == bad[58:63, 58:63].sum()


@pytest.mark.parametrize("order", ["nearest", "bilinear", "bicubic"])
def test_identity_reprojection(scene, order):
    image, wcs_in, _ = scene
    out, footprint = reproject(image, wcs_in, wcs_in, (N, N), order=order)
    np.testing.assert_allclose(out, image, atol=1e-6 * image.max())
    assert footprint.min() == 1.0


@pytest.mark.parametrize("method", ["exact", "drizzle"])
def test_identity_overlap(scene, method):
    image, wcs_in, _ = scene
    out, footprint = reproject(image, wcs_in, wcs_in, (N, N), method=method)
    np.testing.assert_allclose(out, image, atol=1e-6 * image.max())
    np.testing.assert_allclose(footprint, 1.0, atol=1e-6)


def _source_scene(sip):
    n = 100
    wcs_in = make_wcs((n, n), center=(80.0, -30.0), pixel_scale_arcsec=0.5, rotation_deg=33.0, sip=sip)
    yy, xx = np.mgrid[:n, :n]
    image = 1000.0 * np.exp(-((xx - 48.3) ** 2 + (yy - 51.7) ** 2) / (2 * 2.5**2))
    wcs_out = make_wcs((n, n), center=(80.0002, -30.0001), pixel_scale_arcsec=0.7, rotation_deg=-12.0)
    return image, wcs_in, wcs_out


def test_drizzle_conserves_flux():
    image, wcs_in, wcs_out = _source_scene(sip=True)
    out, coverage = reproject(image, wcs_in, wcs_out, (100, 100), method="drizzle")
    assert abs(np.nansum(out) / image.sum() - 1) < 1e-6
    assert coverage[40:60, 40:60].min() > 1 - 1e-9


def test_exact_conserves_integrated_surface_brightness():
    from astropy.wcs.utils import proj_plane_pixel_area

    image, wcs_in, wcs_out = _source_scene(sip=False)
    out, _ = reproject(image, wcs_in, wcs_out, (100, 100), method="exact")
    ratio = proj_plane_pixel_area(wcs_out) / proj_plane_pixel_area(wcs_in)
    assert abs(np.nansum(out) * ratio / image.sum() - 1) < 1e-6


def test_sip_is_honoured(scene):
    """The distorted WCS moves pixels by up to a pixel; ignoring the SIP terms would be visible."""
    image, wcs_in, wcs_out = scene
    plain = wcs_in.deepcopy()
    plain.sip = None
    plain.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    xs, ys = pixel_map(wcs_out, wcs_in, 0, 0, N, N)
    xp, yp = pixel_map(wcs_out, plain, 0, 0, N, N)
    assert np.max(np.hypot(xs - xp, ys - yp)) > 0.01
    grid_y, grid_x = np.mgrid[:N, :N]
    ex, ey = _transform(wcs_out, wcs_in, grid_x.astype(float), grid_y.astype(float))
    assert np.max(np.hypot(xs - ex, ys - ey)) < 1e-6


def test_pixel_map_large_grid_stays_accurate():
    wcs_in = make_wcs((1024, 1024), center=(10.0, 80.0), pixel_scale_arcsec=2.0, rotation_deg=40.0, sip=True)
    wcs_out = make_wcs((1024, 1024), center=(10.3, 80.05), pixel_scale_arcsec=2.5)
    xs, ys = pixel_map(wcs_out, wcs_in, 0, 0, 1024, 1024)
    rows = np.array([0, 3, 517, 1000, 1023])
    gy, gx = np.meshgrid(rows, np.arange(1024), indexing="ij")
    ex, ey = _transform(wcs_out, wcs_in, gx.astype(float), gy.astype(float))
    assert np.max(np.hypot(xs[rows] - ex, ys[rows] - ey)) < 1e-6


def test_offset_reprojects_a_subgrid(scene):
    image, wcs_in, wcs_out = scene
    full, _ = reproject(image, wcs_in, wcs_out, (N, N), method="exact")
    part, _ = reproject(image, wcs_in, wcs_out, (30, 40), method="exact", offset=(20, 50))
    np.testing.assert_allclose(part, full[50:80, 20:60], rtol=1e-12, atol=1e-12 * image.max())
    full, _ = reproject(image, wcs_in, wcs_out, (N, N))
    part, _ = reproject(image, wcs_in, wcs_out, (30, 40), offset=(20, 50))
    np.testing.assert_allclose(part, full[50:80, 20:60], atol=1e-9 * image.max())


def test_bad_input(scene):
    from astropy.wcs import WCS

    image, wcs_in, wcs_out = scene
    linear = WCS(naxis=2)
    with pytest.raises(NoWCSError, match="wcs_in"):
        reproject(image, linear, wcs_out, (N, N))
    with pytest.raises(NoWCSError, match="wcs_out"):
        reproject(image, wcs_in, "not a wcs", (N, N))
    with pytest.raises(InvalidParameterError, match="method"):
        reproject(image, wcs_in, wcs_out, (N, N), method="lanczos")
    with pytest.raises(InvalidParameterError, match="order"):
        reproject(image, wcs_in, wcs_out, (N, N), order="quintic")
    with pytest.raises(InvalidParameterError, match="shape_out"):
        reproject(image, wcs_in, wcs_out, (0, N))
    with pytest.raises(InvalidParameterError, match="mask"):
        reproject(image, wcs_in, wcs_out, (N, N), mask=np.zeros((3, 3), bool))
    with pytest.raises(InvalidParameterError, match="2-d"):
        reproject(image[0], wcs_in, wcs_out, (N, N))


quad_params = st.tuples(
    st.floats(2.0, 8.0), st.floats(2.0, 8.0),          # centre
    st.floats(0.3, 2.5), st.floats(0.3, 2.5),          # scales
    st.floats(-np.pi, np.pi), st.floats(-0.4, 0.4),    # rotation, shear
    st.booleans(),                                     # parity flip
)


@settings(max_examples=60, deadline=None)
@given(quad_params)
def test_overlap_areas_sum_to_the_input_pixel_area(params):
    """A pixel mapped to any parallelogram inside the grid: its overlaps with the output pixels sum
    to its area, and drizzle hands out exactly its value."""
    cx0, cy0, sx, sy, theta, shear, flip = params
    c, s = np.cos(theta), np.sin(theta)
    matrix = np.array([[c, -s], [s, c]]) @ np.array([[sx, shear], [0.0, sy]])
    if flip:
        matrix = matrix @ np.diag([-1.0, 1.0])
    unit = np.array([[-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5], [0.5, 0.5]])
    mapped = unit @ matrix.T + [cx0, cy0]
    cx = np.array([[mapped[0, 0], mapped[1, 0]], [mapped[2, 0], mapped[3, 0]]])
    cy = np.array([[mapped[0, 1], mapped[1, 1]], [mapped[2, 1], mapped[3, 1]]])
    area = abs(np.linalg.det(matrix))
    for drizzle in (False, True):
        acc = np.zeros((12, 12))
        wacc = np.zeros((12, 12))
        overlap_accumulate(cx, cy, np.array([[3.0]]), 0, 12, 12, drizzle, acc, wacc)
        assert wacc.sum() == pytest.approx(area, rel=1e-12)
        assert wacc.max() <= 1 + 1e-12
        expected = 3.0 if drizzle else 3.0 * area
        assert acc.sum() == pytest.approx(expected, rel=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.floats(-3.0, 3.0), st.floats(-3.0, 3.0), st.floats(0.2, 1.5))
def test_shifted_grid_partition(dx, dy, scale):
    """Output pixels tiled by shifted, scaled input pixels: every fully covered output pixel gets
    total overlap 1 (the input pixels partition the plane)."""
    n = 8
    corners = (np.arange(n + 1) - 0.5) * scale
    cx, cy = np.meshgrid(corners + dx + 4, corners + dy + 4)
    values = np.ones((n, n))
    acc = np.zeros((24, 24))
    wacc = np.zeros((24, 24))
    overlap_accumulate(cx, cy, values, 0, 24, 24, False, acc, wacc)
    assert wacc.sum() == pytest.approx((n * scale) ** 2, rel=1e-12)
    lo_x, hi_x = cx.min(), cx.max()
    lo_y, hi_y = cy.min(), cy.max()
    p = np.arange(24)
    inside_x = (p - 0.5 >= lo_x) & (p + 0.5 <= hi_x)
    inside_y = (p - 0.5 >= lo_y) & (p + 0.5 <= hi_y)
    full = np.outer(inside_y, inside_x)
    if full.any():
        np.testing.assert_allclose(wacc[full], 1.0, rtol=1e-12)


def test_pixel_map_nodes_are_anchored_on_the_whole_grid(scene):
    """A sub-region evaluated with the same step gets bit-identical positions (tiles == whole image)."""
    from starpix.reproject._reproject import choose_step

    _, wcs_in, wcs_out = scene
    assert choose_step(wcs_out, wcs_in, 0, 0, N, N, roundtrip=True)[0] in (0, 4, 8, 16, 32)
    step = 8  # any step: the property holds for each
    xs, ys = pixel_map(wcs_out, wcs_in, 0, 0, N, N, roundtrip=True, step=step)
    for x0, y0, ny, nx in [(5, 9, 17, 30), (61, 0, 1, 59), (0, 100, 20, 120)]:
        px, py = pixel_map(wcs_out, wcs_in, x0, y0, ny, nx, roundtrip=True, step=step)
        assert np.array_equal(px, xs[y0:y0 + ny, x0:x0 + nx]) and np.array_equal(py, ys[y0:y0 + ny, x0:x0 + nx])
    # input-corner maps (anchor -0.5): the same
    cx, cy = pixel_map(wcs_in, wcs_out, -0.5, -0.5, N + 1, N + 1, step=16, anchor=(-0.5, -0.5))
    px, py = pixel_map(wcs_in, wcs_out, 39.5, 63.5, 20, 33, step=16, anchor=(-0.5, -0.5))
    assert np.array_equal(px, cx[64:84, 40:73]) and np.array_equal(py, cy[64:84, 40:73])
    with pytest.raises(ValueError, match="whole number"):
        pixel_map(wcs_in, wcs_out, 0.25, 0, 4, 4, step=16)


def test_distorted_inverse_is_point_by_point(scene):
    """The SIP inverse of a point does not depend on the other points of the call, and is accurate."""
    from starpix.reproject._reproject import _world2pix_distorted

    _, wcs_in, _ = scene
    rng = np.random.default_rng(3)
    x, y = rng.uniform(-10, N + 10, (2, 500))
    lon, lat = wcs_in.all_pix2world(x, y, 0)
    bx, by = _world2pix_distorted(wcs_in, lon, lat)
    assert np.max(np.hypot(bx - x, by - y)) < 1e-9
    sx, sy = _world2pix_distorted(wcs_in, lon[:7], lat[:7])
    assert np.array_equal(sx, bx[:7]) and np.array_equal(sy, by[:7])


@pytest.mark.parametrize("method", ["exact", "drizzle"])
def test_overlap_result_does_not_depend_on_threads_or_region(scene, method):
    image, wcs_in, wcs_out = scene
    one, f1 = reproject(image, wcs_in, wcs_out, (N, N), method=method, threads=1)
    two, f2 = reproject(image, wcs_in, wcs_out, (N, N), method=method, threads=2)
    assert np.array_equal(one, two, equal_nan=True) and np.array_equal(f1, f2)
    part, fp = reproject(image, wcs_in, wcs_out, (30, 40), method=method, offset=(20, 50), threads=2)
    assert np.array_equal(part, one[50:80, 20:60], equal_nan=True) and np.array_equal(fp, f1[50:80, 20:60])
