"""The demo runs end to end and recovers what it simulated."""

import re

from starpix.demo import main


def test_demo_runs_and_recovers_the_truth(tmp_path, capsys):
    assert main(["--outdir", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    ratio = float(re.search(r"flux in the image / flux simulated = ([0-9.]+)", out).group(1))
    assert 0.999 < ratio <= 1.0
    assert (tmp_path / "demo" / "psf-grid.fits").exists()
    matched = re.search(r"(\d+)/(\d+) true stars matched", out)
    assert matched.group(1) == matched.group(2)
    median = float(re.search(r"flux_fit/flux_true: median ([0-9.]+)", out).group(1))
    assert abs(median - 1) < 2e-3
    offset = float(re.search(r"worst offset ([0-9.]+) px", out).group(1))
    assert offset < 0.1
    assert "frame 0 identical to FFI 0: True" in out
    corr, ratio = (float(v) for v in re.search(r"correlation ([0-9.]+), amplitude ratio ([0-9.]+)", out).groups())
    assert corr > 0.999 and 0.95 < ratio < 1.05
    assert (tmp_path / "demo" / "s0014-1-1-cube.fits").exists()
    shifted = re.search(r"through the same sub-pixel shift: largest difference within r < 10 px ([0-9.e+-]+) of the "
                        r"peak; radial profile ratio at r = 0..5: ([0-9., ]+)", out)
    assert float(shifted.group(1)) < 5e-3
    assert all(abs(float(v) - 1) < 0.01 for v in shifted.group(2).split(","))
    assert (tmp_path / "demo" / "extended-psf.fits").exists()


def test_demo_never_removes_a_directory_it_did_not_make(tmp_path, capsys):
    own = tmp_path / "mine"
    own.mkdir()
    (own / "notes.txt").write_text("keep me")
    assert main(["--outdir", str(own)]) == 1
    assert "is not an earlier demo's output" in capsys.readouterr().err
    assert (own / "notes.txt").read_text() == "keep me"
