"""``tokenscale demo`` at a tiny size writes every file it promises; the study is reproducible."""

import json
from html.parser import HTMLParser

import pytest

from tokenscale_sim.cli import main


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.tables = [], 0

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        self.tables += tag == "table"


@pytest.mark.slow
def test_demo_tiny_writes_report(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["demo", "--size", "tiny", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert str((out / "index.html").resolve()) in printed
    page = (out / "index.html").read_text()
    parser = _Images()
    parser.feed(page)
    assert parser.tables >= 3
    for src in parser.images:
        assert (out / src).stat().st_size > 2000, src
    names = {p.name for p in out.iterdir()}
    for expected in (
        "summary.json",
        "paper_fits.csv",
        "alpha_family.png",
        "regime_map.png",
        "mc_exchangeable.png",
        "mc_decaying.png",
        "mc_patch-grid.png",
        "mc_exchangeable.csv",
    ):
        assert expected in names, expected
        assert (out / expected).stat().st_size > 100
    summary = json.loads((out / "summary.json").read_text())
    if "layer" in summary["vision"].get("different images", {}):  # the vision extra is installed
        assert {"vision_0.csv", "vision_1.csv", "vision_1_layers.png"} <= names
        assert all(d > 0 for d in summary["vision"]["different images"]["delta_min"])
        # issue 23: the structure calibrated on n <= 64 predicts D(n) beyond, errors reported
        assert {"calibration.png", "calibrated_structure.toml"} <= names
        assert set(summary["calibration"]["prediction_errors"]) == {"exact", "bound", "monte_carlo"}
    assert set(summary["monte_carlo"]) == {"exchangeable", "decaying", "patch-grid"}
    assert len(summary["paper_fits"]) == 54
    assert summary["metadata"]["seed"] == 0
    # "which law?": the paper's curves through compare, with a finding written from the numbers
    assert {"compare.png", "curvature.png", "compare.csv"} <= names
    assert summary["compare"]["finding"].startswith("AICc picks")
    assert summary["compare"]["shape"]["n_curves"] == 54
    # the Monte Carlo agrees with the exact Gaussian E[D] even at the tiny size
    assert all(v["max_abs_z_vs_exact_mean"] < 5 for v in summary["monte_carlo"].values())
    wide = summary["realistic_width"]  # the width-free gram method, timed, against the oracle
    assert wide["method"] == "gram" and wide["d"] == 1024 and wide["seconds"] > 0
    assert wide["max_abs_z_vs_exact_mean"] < 5 and "mc_wide.png" in names
    assert summary["monte_carlo"]["exchangeable"]["structure"]["name"] == "exchangeable"
    # a second run into the same folder is refused without --overwrite, nothing touched
    before = (out / "summary.json").stat().st_mtime_ns
    assert main(["demo", "--size", "tiny", "--out", str(out), "--quiet"]) == 2
    assert "already holds a 'demo' run" in capsys.readouterr().err
    assert (out / "summary.json").stat().st_mtime_ns == before
    # --overwrite replaces the report and leaves no stale files behind
    (out / "stale.png").write_bytes(b"x")
    assert (
        main(["demo", "--size", "tiny", "--out", str(out), "--quiet", "--overwrite", "--no-vision"])
        == 0
    )
    assert not (out / "stale.png").exists() and not (out / "vision_0.csv").exists()


def test_stage_clock_prints_each_stage_time_and_the_total(capsys):
    from tokenscale_sim.cli._common import StageClock

    clock = StageClock()
    clock("[1/2] first")
    clock("[2/2] second")
    clock.finish()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "[1/2] first" and lines[2] == "[2/2] second"
    for line in (lines[1], lines[3]):
        assert line.startswith("  ... ") and line.endswith(" s") and float(line[6:-2]) >= 0
    assert lines[4].startswith("total ") and len(lines) == 5
    StageClock(quiet=True)("silent")
    assert capsys.readouterr().err == ""
