"""One look for every reference line (target, budget, even share) across s6lab's figures."""

from __future__ import annotations

import matplotlib
import matplotlib.colors as mcolors

from s6lab._style import TARGET_LINE

matplotlib.use("Agg")


def _reference_lines(fig):
    return [line for ax in fig.axes for line in ax.lines
            if line.get_linestyle() == TARGET_LINE["ls"] and len(set(line.get_ydata())) == 1]


def test_history_and_class_balance_draw_their_reference_line_alike():
    from s6lab.analysis.curves import plot_history
    from s6lab.analysis.preview import ClassCount, plot_class_balance
    from s6lab.train import EpochRecord, History

    history = History([EpochRecord(e, 0.1, 99.0, 0.05, 99.0 + e / 10, 0.01, 1.0) for e in range(1, 4)])
    counts = [ClassCount(d, 100, 10.0) for d in range(10)]
    for fig in (plot_history(history), plot_class_balance(counts)):
        lines = _reference_lines(fig)
        assert lines, fig
        for line in lines:
            assert mcolors.to_hex(line.get_color()) == mcolors.to_hex(TARGET_LINE["color"])
            assert line.get_linewidth() == TARGET_LINE["lw"]


def _is_axline(line) -> bool:
    """Drawn by axhline (x from 0 to 1 in axes units, one y) or axvline (the other way round)."""
    x, y = list(line.get_xdata()), list(line.get_ydata())
    return (x == [0, 1] and len(set(y)) == 1) or (y == [0, 1] and len(set(x)) == 1)


def test_every_reference_line_of_every_plot_has_the_one_look():
    """Each axhline / axvline in an s6lab figure (a target, a budget, an even share, the image side)."""
    import matplotlib.pyplot as plt

    from tests.test_canvas import _plots

    found = []
    for name, (draw, _) in sorted(_plots().items()):
        fig = draw(None)
        for ax in fig.axes + [child for parent in fig.axes for child in parent.child_axes]:
            for line in filter(_is_axline, ax.lines):
                found.append(name)
                look = (mcolors.to_hex(line.get_color()), line.get_linestyle(), line.get_linewidth())
                assert look == (mcolors.to_hex(TARGET_LINE["color"]), "--", TARGET_LINE["lw"]), name
        plt.close(fig)
    assert {"plot_accuracy_vs_params", "plot_class_balance", "plot_curves", "plot_history",
            "plot_receptive_field_growth"} <= set(found)
