"""fit's on_epoch hook: the live plot and the CSV log (synthetic data, 3 epochs of 64 images)."""

from __future__ import annotations

import csv

import pytest
import torch

from s6lab import callbacks
from s6lab.callbacks import CSVLogger, LivePlot
from s6lab.data import MNISTTensors, TensorSplit
from s6lab.models import get_recipe
from s6lab.train import fit


def synthetic(n: int = 64) -> MNISTTensors:
    g = torch.Generator().manual_seed(0)
    split = TensorSplit(torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g))
    return MNISTTensors(split, split)


def train(on_epoch) -> object:
    recipe = get_recipe("s6", epochs=3, batch_size=32, precision="fp32", device="cpu")
    return fit(recipe.build(), synthetic(), recipe.train, progress=False, on_epoch=on_epoch)


def test_every_callback_sees_the_history_so_far(tmp_path):
    seen: list[int] = []
    live, log = LivePlot(title="s6, seed 0"), CSVLogger(tmp_path / "logs" / "history.csv")
    history = train([live, log, lambda h, model: seen.append(len(h))])
    assert seen == [1, 2, 3]
    rows = list(csv.DictReader((tmp_path / "logs" / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [float(r["test_acc"]) for r in rows] == history.test_acc  # every digit survives the CSV
    accuracy_axis = live.figure.axes[0]
    assert list(accuracy_axis.lines[0].get_xdata()) == [1, 2, 3]
    assert list(accuracy_axis.lines[0].get_ydata()) == history.test_acc
    assert live.figure._suptitle.get_text() == "s6, seed 0"


def test_one_callable_is_accepted_as_well():
    seen: list[int] = []
    train(lambda h, model: seen.append(h.epochs[-1].epoch))
    assert seen == [1, 2, 3]


def test_in_a_notebook_the_plot_is_shown_once_and_then_updated(monkeypatch):
    calls: list[str] = []

    class Handle:
        def update(self, figure):
            calls.append("update")

    def display(figure, display_id=False):
        assert display_id is True
        calls.append("display")
        return Handle()

    pytest.importorskip("IPython")  # comes with ipykernel (the dev extra)
    import IPython.display

    monkeypatch.setattr(callbacks, "in_notebook", lambda: True)
    monkeypatch.setattr(IPython.display, "display", display)
    train(LivePlot())
    assert calls == ["display", "update", "update"]


def test_outside_a_notebook_nothing_is_displayed():
    assert callbacks.in_notebook() is False


def test_a_folder_is_not_a_csv_file(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder; give a file name"):
        CSVLogger(tmp_path)
