"""The run report and the analysis commands on a finished tiny run (real MNIST subset)."""

from __future__ import annotations

import shutil

import pytest
import torch

from s6lab import get_model
from s6lab.cli import main
from tests.conftest import png_is_not_blank


def test_report_holds_every_part_in_order(tiny_run):
    text = (tiny_run.path / "report.md").read_text()
    order = ["## The assignment check", "## Training", "## The architecture", "## Model summary", "## Receptive field",
             "## Parameter budget", "## Mistakes", "## Saliency"]
    positions = [text.index(h) for h in order]
    assert positions == sorted(positions)
    assert "failed" not in text
    assert "| conv2 | ConvBN 3x3 | 32 x 24 x 24 | 26->24 | 9,312 |" in text  # the diagram's table
    assert "Measured field of the centre unit of `conv3.conv`" in text  # the layer Grad-CAM and the docs use
    assert "; layer 1's BatchNorm from patch statistics (s6lab.patch_batchnorm" in text  # the default on a CPU
    for png in ("curves", "diagram", "rf_growth", "rf_measured", "budget", "gallery", "confusion", "saliency"):
        assert png_is_not_blank(tiny_run.path / f"{png}.png"), png


def test_mistakes_and_saliency_commands(capsys, tiny_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run.path, run_dir)
    for f in ("gallery.png", "saliency.png"):
        (run_dir / f).unlink()
    assert main(["mistakes", str(run_dir), "-n", "9"]) == 0
    out = capsys.readouterr().out
    assert "most confused" in out and "per-class accuracy" in out
    assert main(["-v", "gallery", str(run_dir), "-n", "9"]) == 0  # the old name, for one release
    captured = capsys.readouterr()
    assert "`s6lab gallery` is now `s6lab mistakes`" in captured.err and "most confused" in captured.out
    assert main(["saliency", str(run_dir), "--methods", "saliency", "gradcam", "-n", "3"]) == 0
    assert png_is_not_blank(run_dir / "gallery.png") and png_is_not_blank(run_dir / "saliency.png")


def test_analysis_commands_bad_input(capsys, tiny_run, tmp_path):
    assert main(["mistakes", str(tmp_path / "none")]) == 2
    assert "is not a run directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # refused while parsing, before the run loads
        main(["mistakes", str(tiny_run.path), "-n", "0"])
    assert e.value.code == 2 and "argument -n: must be 1 to 100" in capsys.readouterr().err
    assert main(["saliency", str(tiny_run.path), "--layer", "conv9"]) == 2
    assert "unknown layer 'conv9'" in capsys.readouterr().err
    other = tmp_path / "other"
    shutil.copytree(tiny_run.path, other)
    torch.save(get_model("s6", num_classes=3).state_dict(), other / "model.pt")
    assert main(["saliency", str(other)]) == 2
    assert "belongs to another model" in capsys.readouterr().err
    (other / "model.pt").unlink()
    (other / "checkpoint.pt").unlink()
    assert main(["mistakes", str(other)]) == 2  # config + full history, no weights: a recorded run
    assert "recorded run" in (err := capsys.readouterr().err) and "weights are not committed" in err
    (other / "history.json").unlink()
    assert main(["mistakes", str(other)]) == 2
    assert "never finished an epoch" in capsys.readouterr().err


def test_rf_and_budget_commands(capsys, tmp_path):
    assert main(["rf", "--model", "s6", "--markdown", "--plot", str(tmp_path / "rf.png")]) == 0
    assert "| conv3.conv | Conv2d | 8x8 |" in capsys.readouterr().out
    assert png_is_not_blank(tmp_path / "rf.png")
    assert main(["budget", "--max-params", "20000"]) == 0
    assert "OK: 19,602 parameters" in capsys.readouterr().out
    assert main(["budget", "--max-params", "10000", "--layers"]) == 1
    assert "OVER BUDGET" in capsys.readouterr().out
    assert main(["rf", "--model", "nope"]) == 2


def test_gallery_and_saliency_say_when_they_replace_the_reports_figures(capsys, tiny_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run.path, run_dir)
    assert main(["saliency", str(run_dir), "--methods", "saliency", "-n", "2"]) == 0
    assert "replaced the figure report.md shows; pass --out DIR to keep it" in capsys.readouterr().out
    before = (run_dir / "gallery.png").read_bytes()
    figures = tmp_path / "mine"
    assert main(["mistakes", str(run_dir), "-n", "4", "--out", str(figures)]) == 0
    out = capsys.readouterr().out
    assert "replaced" not in out and png_is_not_blank(figures / "gallery.png")
    assert (run_dir / "gallery.png").read_bytes() == before  # the report's figure is untouched
    (tmp_path / "file").write_text("x")
    assert main(["mistakes", str(run_dir), "--out", str(tmp_path / "file")]) == 2
    assert "is a file; choose a folder" in capsys.readouterr().err


def test_the_accuracy_legend_sits_below_its_panel_and_covers_no_curve():
    from s6lab.analysis.curves import plot_history
    from s6lab.train import EpochRecord, History

    # a short averaged run climbing through the lower-right corner, where the legend used to sit
    h = History([EpochRecord(e, 0.1, 99.0, 0.02, acc, 0.01, 1.0, raw_test_acc=raw)
                 for e, acc, raw in ((1, 98.46, 98.55), (2, 99.15, 98.52), (3, 99.27, 99.37), (4, 99.36, 99.38))])
    fig = plot_history(h)
    fig.canvas.draw()
    acc_ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    legend = acc_ax.get_legend().get_window_extent(renderer)
    below = acc_ax.xaxis.get_tightbbox(renderer)  # the x tick labels and the "epoch" label
    assert legend.y1 <= below.y0  # wholly below the panel and its x axis: it covers no curve and no label
    assert legend.y0 >= 0 and legend.x0 >= 0  # and still inside the figure


def test_curves_mark_the_last_three_epochs_and_the_report_states_the_total_time(tiny_run):
    from s6lab.analysis.curves import plot_history
    from s6lab.train import EpochRecord, History

    h = History([EpochRecord(e, 0.1, 99.0, 0.02, 99.0 + e / 10, 0.01, 1.0) for e in range(1, 6)])
    fig = plot_history(h)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "last three epochs (the rule)" in labels
    text = (tiny_run.path / "report.md").read_text()
    assert "Total training and evaluation time:" in text and "last three epochs" in text
