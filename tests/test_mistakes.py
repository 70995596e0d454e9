from __future__ import annotations

import math

import pytest
import torch

from s6lab.analysis.mistakes import (
    Predictions,
    confusion_matrix,
    find_mistakes,
    format_mistakes,
    most_confused,
    per_class_accuracy,
    plot_confusion,
    plot_mistakes,
)
from tests.conftest import png_is_not_blank


def preds(pairs, k=3):
    """(true, predicted, confidence) triples -> Predictions."""
    logp = torch.full((len(pairs), k), -10.0)
    for i, (_, q, c) in enumerate(pairs):
        logp[i] = torch.log(torch.full((k,), (1 - c) / (k - 1)))
        logp[i, q] = torch.log(torch.tensor(c))
    return Predictions(logp, torch.tensor([t for t, _, _ in pairs]))


def test_computations_by_hand():
    p = preds([(0, 0, 0.9), (0, 1, 0.6), (1, 1, 0.8), (2, 1, 0.99), (2, 1, 0.7), (2, 2, 0.5)])
    assert confusion_matrix(p).tolist() == [[1, 1, 0], [0, 1, 0], [0, 2, 1]]
    assert [(c.true, c.predicted, c.count) for c in most_confused(p)] == [(2, 1, 2), (0, 1, 1)]
    assert p.misclassified().tolist() == [3, 4, 1]  # highest loss first
    assert [round(c.accuracy, 1) for c in per_class_accuracy(p)] == [50.0, 100.0, 33.3]
    assert "3 of 6 test images misclassified" in format_mistakes(p)


def test_no_mistakes():
    p = preds([(0, 0, 0.9), (1, 1, 0.9)])
    assert "none" in format_mistakes(p)
    with pytest.raises(ValueError, match="no misclassified samples to show"):
        plot_mistakes(torch.zeros(2, 1, 28, 28), p)


def test_gallery_and_confusion_on_a_trained_run(tmp_path, tiny_run, mnist_small):
    """Real MNIST subset (the 2-epoch tiny run on 4k images, 2k test images)."""
    p = find_mistakes(tiny_run.model, mnist_small.test)
    assert p.log_probs.shape == (2000, 10)
    assert confusion_matrix(p).sum() == 2000
    plot_mistakes(mnist_small.test.images, p, n=10).savefig(tmp_path / "g.png")
    plot_confusion(p, normalize=True).savefig(tmp_path / "c.png")
    assert png_is_not_blank(tmp_path / "g.png") and png_is_not_blank(tmp_path / "c.png")
    with pytest.raises(ValueError, match="n must be >= 1"):
        plot_mistakes(mnist_small.test.images, p, n=0)


def test_top_losses_with_the_true_class_probability():
    import torch

    from s6lab.analysis.mistakes import Predictions, top_losses

    log_probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]).log()
    p = Predictions(log_probs, torch.tensor([1, 1, 0]))
    rows = top_losses(p, 2)
    assert [(r.index, r.label, r.predicted) for r in rows] == [(0, 1, 0), (2, 0, 0)]
    assert rows[0].true_probability == pytest.approx(0.1) and rows[0].confidence == pytest.approx(0.9)
    assert rows[0].loss == pytest.approx(-math.log(0.1), rel=1e-5)
    with pytest.raises(ValueError, match="k must be >= 1"):
        top_losses(p, 0)


def test_gallery_titles_show_loss_and_true_probability(tmp_path):
    import torch

    from s6lab.analysis.mistakes import Predictions, plot_mistakes

    p = Predictions(torch.tensor([[0.9, 0.1], [0.2, 0.8]]).log(), torch.tensor([1, 1]))
    fig = plot_mistakes(torch.zeros(2, 1, 28, 28), p, n=1, ncols=1)
    assert fig.axes[0].get_title() == "true 1 / pred 0 (90%)\nloss 2.30, p(true) 10%"


def test_plot_top_losses_is_the_gallery_under_fastais_name():
    import matplotlib

    matplotlib.use("Agg")
    from s6lab.analysis.mistakes import Predictions, plot_top_losses

    logp = torch.log_softmax(torch.tensor([[4.0, 0, 0], [0, 3.0, 0], [0, 0, 5.0], [2.0, 0, 0]]), 1)
    p = Predictions(logp, torch.tensor([1, 1, 0, 0]))  # two mistakes: samples 0 and 2
    fig = plot_top_losses(torch.zeros(4, 1, 28, 28), p, k=9)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 2 and all("true" in t for t in titles)


def test_the_old_module_name_still_imports_and_says_what_it_is_now():
    import importlib
    import sys

    sys.modules.pop("s6lab.analysis.gallery", None)
    with pytest.warns(DeprecationWarning, match="s6lab.analysis.gallery is now s6lab.analysis.mistakes"):
        gallery = importlib.import_module("s6lab.analysis.gallery")
    assert gallery.interpret is find_mistakes and gallery.plot_gallery is plot_mistakes
    assert gallery.format_mistakes is format_mistakes
