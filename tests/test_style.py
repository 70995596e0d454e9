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
