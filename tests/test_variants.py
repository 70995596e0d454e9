"""Every registered variant, and compare's resume and re-render on tiny runs."""

from __future__ import annotations

import json

import pytest
import torch

import s6lab
from s6lab.analysis.receptive_field import final_receptive_field
from s6lab.comparison import compare, comparison_csv, format_comparison, render, run_dir
from s6lab.data import MNISTTensors, TensorSplit
from s6lab.runs import RunError
from tests.conftest import png_is_not_blank

# name -> (parameters, receptive field before the head); what the docs and `s6lab models` state
DOCUMENTED = {
    "s6": (19_602, 16),
    "s6-no-bn": (19_362, 16),
    "s6-no-dropout": (19_602, 16),
    "s6-dropout-0.25": (19_602, 16),
    "s6-dropout-every-conv": (19_602, 16),
    "s6-no-1x1": (40_522, 16),
    "s6-two-3x3": (19_010, 16),
    "s6-gap": (17_202, 16),
    "s6-pool-after-1x1": (19_602, 16),
    "s6-no-augment": (19_602, 16),
    "s6-step-lr": (19_602, 16),
    "s6-speedrun": (19_602, 16),
    "s6-speedrun-bf16": (19_602, 16),
    "s6-8k": (8_818, 16),
    "s6-5k": (4_822, 18),
}


def test_registry_is_documented():
    assert set(s6lab.list_models()) == set(DOCUMENTED)


@pytest.mark.parametrize("name", list(DOCUMENTED))
def test_variant(name):
    model = s6lab.get_model(name)
    params, rf = DOCUMENTED[name]
    assert s6lab.count_parameters(model) == params
    assert final_receptive_field(model) == rf
    out = model(torch.randn(3, 1, 28, 28))
    assert out.shape == (3, 10)
    out[:, 0].sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters()), name
    assert s6lab.get_spec(name).description


def test_each_variant_differs_from_the_reference_in_one_thing():
    ref = s6lab.get_recipe("s6")
    for name in DOCUMENTED:
        recipe = s6lab.get_recipe(name)
        if name in ("s6", "s6-8k", "s6-5k"):
            continue
        changed = [recipe.spec.layers != ref.spec.layers, recipe.spec.batchnorm != ref.spec.batchnorm,
                   recipe.train != ref.train]
        assert sum(changed) == 1, name


def test_training_overrides_reach_the_run(tmp_path):
    data = tiny_data()
    c = compare(["s6-no-augment"], seeds=[0], epochs=1, out=tmp_path, data=data, progress=False)
    assert c.rows[0].runs[0].config.augment is False


def tiny_data(n=96):
    g = torch.Generator().manual_seed(0)
    split = TensorSplit(torch.randn(n, 1, 28, 28, generator=g), torch.arange(n) % 10)
    return MNISTTensors(split, split)


def test_compare_resumes_and_rerenders(tmp_path, monkeypatch):
    data = tiny_data()
    first = compare(["s6", "s6-gap"], seeds=[0, 1], epochs=1, out=tmp_path, data=data, progress=False)
    assert [r.name for r in first.rows] == ["s6", "s6-gap"]
    assert (run_dir(tmp_path, "s6-gap", 1, 1) / "model.pt").exists()

    # a finished comparison is loaded, never retrained
    def no_training(*args, **kwargs):
        raise AssertionError("retrained a finished run")

    monkeypatch.setattr(s6lab.comparison, "train_run", no_training)
    again = compare(["s6", "s6-gap"], seeds=[0, 1], epochs=1, out=tmp_path, train=False)
    assert [r.best.values for r in again.rows] == [r.best.values for r in first.rows]
    files = render(again, tmp_path, "t")
    assert {f.name for f in files} == {"t.md", "t.csv", "t.txt", "t_curves.png", "t_params.png"}
    assert png_is_not_blank(tmp_path / "t_curves.png") and png_is_not_blank(tmp_path / "t_params.png")
    assert comparison_csv(again).splitlines()[1].startswith("s6,19602,16,")
    assert "| s6-gap | 17,202 | 16 |" in format_comparison(again, markdown=True)


def test_compare_finishes_an_interrupted_comparison(tmp_path):
    data = tiny_data()
    compare(["s6"], seeds=[0], epochs=1, out=tmp_path, data=data, progress=False)
    # seed 1 missing: re-rendering alone refuses and says how to finish
    with pytest.raises(RunError, match="no finished run.*s6lab compare --model s6 --epochs 1 --seed 1"):
        compare(["s6"], seeds=[0, 1], epochs=1, out=tmp_path, train=False)
    done = compare(["s6"], seeds=[0, 1], epochs=1, out=tmp_path, data=data, progress=False)
    assert done.rows[0].seeds == 2


def test_compare_refuses_a_run_trained_with_another_recipe(tmp_path):
    data = tiny_data()
    compare(["s6"], seeds=[0], epochs=1, out=tmp_path, data=data, progress=False)
    config_file = run_dir(tmp_path, "s6", 0, 1) / "config.json"
    saved = json.loads(config_file.read_text())
    saved["train"]["eval_batch_size"] = 500  # speed only: still the same run
    config_file.write_text(json.dumps(saved))
    assert compare(["s6"], seeds=[0], epochs=1, out=tmp_path, data=data, progress=False).rows[0].seeds == 1
    saved["train"]["batch_size"] = 64  # as if trained under an older default recipe
    config_file.write_text(json.dumps(saved))
    with pytest.raises(RunError, match=r"trained with other settings \(batch_size differ.*delete that directory"):
        compare(["s6"], seeds=[0], epochs=1, out=tmp_path, data=data, progress=False)
    assert compare(["s6"], seeds=[0], epochs=1, out=tmp_path, train=False).rows[0].seeds == 1  # re-render is fine


def test_compare_treats_another_resolved_precision_as_another_recipe(tmp_path, monkeypatch):
    """Same TrainConfig ("auto"), but it ran in bf16 elsewhere and would run in fp32 here."""
    monkeypatch.setenv("S6LAB_NATIVE_BF16", "0")
    data = tiny_data()
    compare(["s6"], seeds=[0], epochs=1, out=tmp_path, data=data, progress=False)
    config_file = run_dir(tmp_path, "s6", 0, 1) / "config.json"
    saved = json.loads(config_file.read_text())
    assert saved["precision"] == "fp32" and saved["train"]["precision"] == "auto"
    saved["precision"] = "bf16"
    config_file.write_text(json.dumps(saved))
    with pytest.raises(RunError, match=r"precision \(bf16 there, fp32 here: .*no native bf16.*\) differ"):
        compare(["s6"], seeds=[0], epochs=1, out=tmp_path, data=data, progress=False)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(variants=[]), ValueError, "at least one variant"),
    (dict(variants=["s6", "s6"]), ValueError, "named twice"),
    (dict(variants=["s6"], seeds=[]), ValueError, "distinct seeds"),
    (dict(variants=["nope"]), KeyError, "unknown model 'nope'"),
])
def test_compare_bad_input(kwargs, error, match, tmp_path):
    variants = kwargs.pop("variants")
    with pytest.raises(error, match=match):
        compare(variants, out=tmp_path, **kwargs)


def test_compare_cli(tmp_path, capsys):
    from s6lab.cli import main

    args = ["compare", "--model", "s6", "s6-5k", "--epochs", "1", "--seed", "0", "--train-size", "300",
            "--test-size", "200", "--results-dir", str(tmp_path), "--name", "cli", "--quiet"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "s6-5k" in captured.out and "the first 200 test images" in captured.out
    assert "warning" not in captured.err
    assert (tmp_path / "runs" / "s6-5k" / "e1-s0-n300" / "history.json").exists()  # the one layout
    assert main([*args, "--no-train"]) == 0
    capsys.readouterr()
    # the spellings before one concept got one name still work for one release, and say what they are now
    old = ["compare", "s6", "s6-5k", "--epochs", "1", "--seeds", "0", "--train-size", "300", "--test-size", "200",
           "--out", str(tmp_path), "--name", "cli", "--quiet", "--no-train", "--json"]
    assert main(old) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["seeds"] == [0] and len(json.loads(captured.out)["rows"]) == 2
    for was, now in (("--seeds", "--seed"), ("--out", "--results-dir"),
                     ("compare VARIANT ...", "compare --model NAME ...")):
        assert f"`{was}` is now `{now}`; the old spelling goes in the next release" in captured.err
    assert main(["compare", "--model", "s6", "--epochs", "2", "--seed", "0", "--results-dir", str(tmp_path),
                 "--no-train"]) == 2
    assert main(["compare", "--epochs", "2"]) == 2
    assert "name the variants to compare: --model NAME" in capsys.readouterr().err


def test_compare_renders_recorded_runs_of_a_fresh_clone_with_their_pinned_recipe(tmp_path, monkeypatch):
    """The committed reference runs have config.json + history.json only. With the recipe they were recorded
    with (no weight decay, bf16) they load without training; today's defaults name what differs."""
    import shutil
    from pathlib import Path

    monkeypatch.setenv("S6LAB_NATIVE_BF16", "0")  # the recorded bf16 must match by resolved precision anyway
    recorded = Path(__file__).resolve().parents[1] / "results" / "runs" / "s6"
    for seed in (0, 1, 2):
        shutil.copytree(recorded / f"e15-s{seed}", run_dir(tmp_path, "s6", seed, 15))

    def no_training(*args, **kwargs):
        raise AssertionError("a recorded run was retrained")

    monkeypatch.setattr("s6lab.comparison.train_run", no_training)
    c = compare(["s6"], seeds=[0, 1, 2], epochs=15, out=tmp_path, recipe={"weight_decay": 0.0, "precision": "bf16",
                                                                           "first_bn_from_patches": False})
    row = c.rows[0]
    assert row.seeds == 3 and row.passed == 3 and row.params == 19_602
    with pytest.raises(RunError, match=r"weight_decay, precision \(bf16 there, fp32 here.*\), first_bn_from_patches "
                                       r"\(layer 1's BatchNorm from patch statistics off there, on here\) differ.*"
                                       r"to compare it as it ran, add --no-first-bn-from-patches"):
        compare(["s6"], seeds=[0], epochs=15, out=tmp_path)


def test_one_seed_has_no_spread_and_one_epoch_is_singular(tmp_path):
    from s6lab.comparison import Spread

    assert str(Spread.of([99.5])) == "99.50 ± n/a" and str(Spread.of([99.5, 99.7])) == "99.60 ± 0.14"
    c = compare(["s6"], seeds=[0], epochs=1, out=tmp_path, data=tiny_data(), progress=False)
    text = format_comparison(c)
    assert "1 epoch, seed 0;" in text and "± n/a" in text


def test_comparison_plots_show_every_value_and_keep_the_legend_outside(tmp_path, monkeypatch):
    """The committed 10-epoch layer-choice runs (11 variants, config + history only), re-rendered: no epoch
    is clipped by the y-limits, 11 variants never share a colour and line style, the legend is outside the axes."""
    import shutil
    from pathlib import Path

    import matplotlib

    from s6lab.comparison import plot_accuracy_vs_params, plot_curves

    matplotlib.use("Agg")
    monkeypatch.setenv("S6LAB_NATIVE_BF16", "0")
    variants = ["s6", "s6-no-bn", "s6-no-dropout", "s6-dropout-0.25", "s6-dropout-every-conv", "s6-no-1x1",
                "s6-two-3x3", "s6-gap", "s6-pool-after-1x1", "s6-no-augment", "s6-step-lr"]
    recorded = Path(__file__).resolve().parents[1] / "results" / "runs"
    for name in variants:
        for seed in (0, 1):
            shutil.copytree(recorded / name / f"e10-s{seed}", run_dir(tmp_path, name, seed, 10))
    c = compare(variants, seeds=[0, 1], epochs=10, out=tmp_path, train=False,
                recipe={"weight_decay": 0.0, "precision": "bf16", "first_bn_from_patches": False})
    fig = plot_curves(c)
    ax = fig.axes[0]
    low, high = ax.get_ylim()
    every = [a for r in c.rows for run in r.runs for a in run.history.test_acc]
    assert low <= min(every) and high >= max(every)  # the weakest epoch of the weakest variant is on the axis
    looks = {(line.get_color(), line.get_linestyle()) for line in ax.lines if not line.get_label().startswith("99.4")}
    assert len(looks) == 11
    fig.canvas.draw()
    legend_box = ax.get_legend().get_window_extent()
    assert legend_box.x0 >= ax.get_window_extent().x1  # beside the data, not over it
    assert len(ax.child_axes) == 1  # the inset zooms on the last epochs around the target
    inset_low, inset_high = ax.child_axes[0].get_ylim()
    assert inset_low < 99.4 < inset_high
    assert png_is_not_blank(render(c, tmp_path, "lc")[3])
    plot_accuracy_vs_params(c)


def test_a_comparison_shows_as_an_html_table_in_a_notebook(tmp_path):
    c = compare(["s6"], seeds=[0], epochs=1, out=tmp_path, data=tiny_data(), progress=False)
    html = c._repr_html_()
    assert html.startswith("<table>") and "<td>s6</td>" in html and "19,602" in html
