"""Where a plot draws: `panels` and the one ``ax=`` convention of every ``plot_*`` function (untrained models,
synthetic digits; nothing is trained)."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib
import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.figure import Figure

from s6lab import get_model
from s6lab._canvas import old_spellings, panel, panels
from s6lab.errors import ConfigError

matplotlib.use("Agg")

DIGIT = torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ---------------------------------------------------------------- panels: every accepted ax


def test_none_makes_a_constrained_figure_of_the_plots_size():
    fig, axes = panels(None, 2, 3, figsize=(4, 2))
    assert isinstance(fig, Figure) and fig.get_constrained_layout()
    assert tuple(fig.get_size_inches()) == (4, 2)
    assert axes.shape == (2, 3) and list(axes.flat) == fig.axes


def test_a_figure_or_subfigure_is_filled():
    fig = plt.figure()
    got, axes = panels(fig, 1, 2, figsize=(9, 9))
    assert got is fig and axes.shape == (1, 2) and list(axes.flat) == fig.axes
    assert tuple(fig.get_size_inches()) != (9, 9)  # the caller's figure keeps its size
    sub = plt.figure().subfigures(1, 2)[1]
    got, axes = panels(sub, 2, 1, figsize=(1, 1), sharex=True)
    assert got is sub and all(a.figure is sub for a in axes.flat)
    assert axes[1, 0].get_shared_x_axes().joined(axes[0, 0], axes[1, 0])


def test_one_axes_is_used_as_is_by_a_one_panel_plot():
    fig, ax = plt.subplots()
    got, one = panel(ax, figsize=(1, 1))
    assert got is fig and one is ax
    got, axes = panels(ax, 1, 1, figsize=(1, 1))
    assert axes.shape == (1, 1) and axes[0, 0] is ax


def test_one_axes_in_a_grid_is_split_into_the_plots_panels():
    fig, (left, right) = plt.subplots(1, 2)
    cell = left.get_subplotspec()
    got, axes = panels(left, 2, 2, figsize=(1, 1), sharey=True)
    assert got is fig and axes.shape == (2, 2)
    assert left not in fig.axes and right in fig.axes  # the Axes gave its cell to the panels
    for a in axes.flat:
        assert a.figure is fig and a.get_subplotspec().get_topmost_subplotspec() == cell
    assert axes[1, 1].get_shared_y_axes().joined(axes[0, 0], axes[1, 1])


@pytest.mark.parametrize("form", ["list", "tuple", "rows", "array"])
def test_a_sequence_of_one_axes_per_panel_is_used_row_by_row(form):
    fig, grid = plt.subplots(2, 3)
    given = list(grid.flat)
    ax = {"list": given, "tuple": tuple(given), "rows": grid.tolist(), "array": grid}[form]
    got, axes = panels(ax, 3, 2, figsize=(1, 1))
    assert got is fig and axes.shape == (3, 2) and list(axes.flat) == given


# ---------------------------------------------------------------- panels: every refused ax


def test_an_axes_outside_a_grid_cannot_be_split():
    ax = plt.figure().add_axes((0.1, 0.1, 0.8, 0.8))
    assert panel(ax, figsize=(1, 1))[1] is ax  # a one-panel plot needs no grid
    with pytest.raises(ConfigError, match=r"draws 2 panels \(1 x 2\) and can split only an Axes in a grid"):
        panels(ax, 1, 2, figsize=(1, 1))


def test_wrong_number_of_axes():
    _, grid = plt.subplots(1, 3)
    with pytest.raises(ConfigError, match=r"this plot draws 2 panels \(1 x 2\): pass 2 axes, got 3"):
        panels(grid, 1, 2, figsize=(1, 1))
    with pytest.raises(ConfigError, match=r"pass 1 axes, got 0"):
        panels([], 1, 1, figsize=(1, 1))


def test_a_sequence_of_something_else_than_axes():
    _, ax = plt.subplots()
    with pytest.raises(ConfigError, match="ax must hold 2 matplotlib Axes, got a str at position 1"):
        panels([ax, "right"], 1, 2, figsize=(1, 1))


def test_axes_of_several_figures():
    _, a = plt.subplots()
    _, b = plt.subplots()
    with pytest.raises(ConfigError, match="the 2 axes of one plot must be in one figure"):
        panels([a, b], 1, 2, figsize=(1, 1))


@pytest.mark.parametrize(("ax", "name"), [("left", "str"), (3, "int"), ({"ax": None}, "dict")])
def test_anything_else_is_refused_by_its_type(ax, name):
    with pytest.raises(ConfigError, match=f"ax must be None, a matplotlib Axes, 2 axes, a Figure or a SubFigure, "
                                          f"got {name}$"):
        panels(ax, 2, 1, figsize=(1, 1))


# ---------------------------------------------------------------- every plot_* function


def _history(offset: float = 0.0):
    from s6lab.train import EpochRecord, History

    return History([EpochRecord(e, 0.1, 99.0, 0.05, 98.8 + e / 10 + offset, 0.01, 1.0) for e in range(1, 4)])


def _comparison():
    """Two variants over two seeds, from histories alone: what the comparison plots read."""
    from s6lab.comparison import Comparison, Spread, VariantResult

    rows = []
    for i, name in enumerate(("a", "b")):
        runs = tuple(SimpleNamespace(history=_history(i / 5 + seed / 10)) for seed in range(2))
        best = Spread.of([r.history.best_acc for r in runs])
        rows.append(VariantResult(name=name, description=name, params=15_000 + 4_000 * i, receptive_field=None,
                                  mult_adds=0, best=best, final=best, first_epoch=(None, None),
                                  seconds_per_epoch=1.0, passed=0, runs=runs))  # type: ignore[arg-type]
    return Comparison(tuple(rows), epochs=3, seeds=(0, 1))


def _predictions():
    from s6lab.analysis.mistakes import Predictions

    logp = torch.log_softmax(torch.tensor([[4.0, 0, 0], [0, 3.0, 0], [0, 0, 5.0], [2.0, 0, 0]]), 1)
    return Predictions(logp, torch.tensor([1, 1, 0, 0]))  # two mistakes: samples 0 and 2


def _digits(n: int):
    from s6lab.data import MNIST_MEAN, MNIST_STD

    ink = torch.zeros(n, 1, 28, 28)
    ink[:, :, 6:22, 12:16] = 1.0
    return (ink - MNIST_MEAN) / MNIST_STD


def _plots():
    """name -> (draw(ax), the plot's panels (rows, cols)), each on a tiny input."""
    from s6lab.analysis import budget, curves, diagram, inside, mistakes, preview, receptive_field, saliency
    from s6lab.comparison import plot_accuracy_vs_params, plot_curves
    from s6lab.data import TensorSplit
    from s6lab.train import TrainConfig

    model = get_model("s6")
    boxes = diagram.diagram_boxes(model)
    split = TensorSplit(torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0)),
                        torch.tensor([0, 1, 1, 3]))
    maps = inside.feature_maps(model, DIGIT)[:2]
    return {
        "plot_curves": (lambda ax: plot_curves(_comparison(), ax=ax), (1, 1)),
        "plot_accuracy_vs_params": (lambda ax: plot_accuracy_vs_params(_comparison(), ax=ax), (1, 1)),
        "plot_augmentation_preview": (lambda ax: preview.plot_augmentation_preview(
            preview.augmentation_preview(split, TrainConfig(), n=2, copies=1), ax=ax), (2, 2)),
        "plot_class_balance": (lambda ax: preview.plot_class_balance(preview.class_balance(split), ax=ax), (1, 1)),
        "plot_diagram": (lambda ax: diagram.plot_diagram(boxes, ax=ax), (1, 1)),
        "plot_diagrams_side_by_side": (lambda ax: diagram.plot_diagrams_side_by_side({"a": boxes, "b": boxes},
                                                                                     ax=ax), (1, 2)),
        "plot_receptive_field_growth": (lambda ax: receptive_field.plot_receptive_field_growth(
            receptive_field.receptive_fields(model), ax=ax), (1, 1)),
        "plot_measured_receptive_field": (lambda ax: receptive_field.plot_measured_receptive_field(
            model, "conv2.conv", DIGIT, ax=ax), (1, 1)),
        "plot_saliency": (lambda ax: saliency.plot_saliency(_digits(2), {"saliency": torch.rand(2, 28, 28)},
                                                            overlay=None, ax=ax), (2, 2)),
        "plot_budget": (lambda ax: budget.plot_budget(budget.parameter_budget(model), ax=ax), (1, 2)),
        "plot_feature_maps": (lambda ax: inside.plot_feature_maps(maps, DIGIT, channels=1, ax=ax), (2, 2)),
        "plot_kernels": (lambda ax: inside.plot_kernels(*inside.kernels(model), max_kernels=4, ax=ax), (1, 1)),
        "plot_block_stages": (lambda ax: inside.plot_block_stages(inside.block_stages(model, DIGIT, "conv1"),
                                                                  ax=ax), (1, 3)),
        "plot_mistakes": (lambda ax: mistakes.plot_mistakes(torch.zeros(4, 1, 28, 28), _predictions(), ncols=2,
                                                            ax=ax), (1, 2)),
        "plot_top_losses": (lambda ax: mistakes.plot_top_losses(torch.zeros(4, 1, 28, 28), _predictions(), k=2,
                                                                ncols=1, ax=ax), (2, 1)),
        "plot_confusion": (lambda ax: mistakes.plot_confusion(_predictions(), ax=ax), (1, 1)),
        "plot_history": (lambda ax: curves.plot_history(_history(), ax=ax), (1, 2)),
    }


PLOTS = sorted(_plots())


def _plot_functions() -> dict:
    """Every ``plot_*`` function of s6lab, by name."""
    import inspect

    from s6lab import comparison
    from s6lab.analysis import budget, curves, diagram, inside, mistakes, preview, receptive_field, saliency

    modules = (comparison, budget, curves, diagram, inside, mistakes, preview, receptive_field, saliency)
    return {name: f for m in modules for name, f in vars(m).items()
            if name.startswith("plot_") and inspect.isfunction(f) and f.__module__ == m.__name__}


def test_every_plot_function_is_in_the_table():
    """A new plot_* function joins the table above, so the convention keeps holding."""
    assert set(_plot_functions()) == set(PLOTS)


@pytest.mark.parametrize("name", PLOTS)
def test_one_signature_keyword_ax_returning_the_figure(name):
    import inspect

    f = _plot_functions()[name]
    sig = inspect.signature(f)
    ax = sig.parameters["ax"]
    assert ax.kind is ax.KEYWORD_ONLY and ax.default is None
    assert sig.return_annotation == "Figure"
    assert "ax: where to draw: ``None`` (a new figure" in f.__doc__
    assert "The matplotlib Figure the plot is drawn in." in f.__doc__


def _drawn(axes) -> bool:
    return any(a.has_data() or a.texts or a.images for a in axes)


@pytest.mark.parametrize("name", PLOTS)
def test_with_no_ax_a_new_figure(name):
    draw, _ = _plots()[name]
    fig = draw(None)
    assert isinstance(fig, Figure) and _drawn(fig.axes)


@pytest.mark.parametrize("name", PLOTS)
def test_into_one_cell_of_the_callers_grid(name):
    """One Axes: used as is by a one-panel plot, split into the panels otherwise; the other cell is left alone."""
    draw, _ = _plots()[name]
    fig, (mine, other) = plt.subplots(1, 2, figsize=(14, 6), constrained_layout=True)
    other.plot([0, 1])
    cell = mine.get_subplotspec()
    assert draw(mine) is fig
    assert other in fig.axes and len(other.lines) == 1 and not other.images
    drawn = [a for a in fig.axes if a.get_subplotspec() is not None
             and a.get_subplotspec().get_topmost_subplotspec() == cell]
    assert drawn and _drawn(drawn)


@pytest.mark.parametrize("name", PLOTS)
def test_into_one_axes_per_panel(name):
    draw, (rows, cols) = _plots()[name]
    fig, grid = plt.subplots(rows, cols, squeeze=False, constrained_layout=True)
    assert draw(list(grid.flat)) is fig
    assert _drawn(grid.flat)


@pytest.mark.parametrize("name", PLOTS)
def test_into_a_subfigure(name):
    fig = plt.figure(figsize=(14, 6), constrained_layout=True)
    left, right = fig.subfigures(1, 2)
    draw, _ = _plots()[name]
    assert draw(right) is fig  # the whole Figure: it saves
    assert right.axes and _drawn(right.axes) and not left.axes


# ---------------------------------------------------------------- the old spellings, for one release


def test_axes_and_fig_still_work_with_a_warning_at_the_caller():
    from s6lab.analysis.budget import parameter_budget, plot_budget
    from s6lab.analysis.curves import plot_history
    from s6lab.analysis.mistakes import plot_mistakes

    _, pair = plt.subplots(1, 2)
    with pytest.warns(DeprecationWarning, match=r"plot_history\(axes=...\) is now plot_history\(ax=...\)") as w:
        fig = plot_history(_history(), axes=pair)
    assert fig is pair[0].figure and w[0].filename == __file__
    target = plt.figure()
    with pytest.warns(DeprecationWarning, match=r"plot_mistakes\(fig=...\) is now plot_mistakes\(ax=...\); fig= "
                                                "goes in the next release") as w:
        assert plot_mistakes(torch.zeros(4, 1, 28, 28), _predictions(), fig=target) is target
    assert w[0].filename == __file__
    with pytest.raises(ConfigError, match=r"plot_budget: pass ax= only \(axes= is its old name\), not both"):
        plot_budget(parameter_budget(get_model("s6")), axes=pair, ax=pair)


def test_ax_passed_by_position_still_works_with_a_warning_at_the_caller():
    from s6lab.analysis.receptive_field import plot_receptive_field_growth, receptive_fields
    from s6lab.comparison import plot_curves

    fig, ax = plt.subplots()
    with pytest.warns(DeprecationWarning, match="plot_curves: pass ax=, target= by keyword") as w:
        assert plot_curves(_comparison(), ax, 99.0) is fig
    assert w[0].filename == __file__
    assert any(line.get_ydata()[0] == 99.0 for line in ax.lines if len(set(line.get_ydata())) == 1)
    fig, ax = plt.subplots()
    with pytest.warns(DeprecationWarning, match="plot_receptive_field_growth: pass ax= by keyword"):
        assert plot_receptive_field_growth(receptive_fields(get_model("s6")), 28, ax) is fig


def test_old_spellings_leave_todays_calls_alone():
    @old_spellings(renamed=("axes",), positional=("ax",))
    def plot_x(data, *, ax=None):
        return data, ax

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plot_x(1, ax=2) == (1, 2)
    with pytest.raises(TypeError):
        plot_x(1, 2, 3)  # more positional arguments than the plot ever took
