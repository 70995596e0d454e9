"""What training sees: augmented copies from the trainer's own augmentation, and the class balance."""

from __future__ import annotations

import pytest
import torch

from s6lab.analysis.preview import (
    augmentation_preview,
    class_balance,
    format_class_balance,
    plot_augmentation_preview,
    plot_class_balance,
)
from s6lab.cli import main
from s6lab.data import TensorSplit
from s6lab.errors import ConfigError
from s6lab.train import TrainConfig, augment_batch
from tests.conftest import png_is_not_blank

SPLIT = TensorSplit(torch.randn(6, 1, 28, 28, generator=torch.Generator().manual_seed(0)),
                    torch.tensor([0, 1, 1, 3, 3, 3]))


def test_augmented_copies_are_the_trainers_own_draws():
    p = augmentation_preview(SPLIT, TrainConfig(rotation=10, translate=0.1), n=2, copies=3, seed=5)
    assert p.augmented.shape == (2, 3, 1, 28, 28) and p.labels.tolist() == [0, 1]
    expected = augment_batch(SPLIT.images[:2].repeat(3, 1, 1, 1), torch.Generator().manual_seed(5), 10, 0.1)
    assert torch.equal(p.augmented[1, 2], expected[2 * 2 + 1])  # copy 2 of digit 1
    assert not torch.equal(p.augmented[0, 0], p.augmented[0, 1])  # copies differ


def test_no_augmentation_shows_the_digit_unchanged():
    p = augmentation_preview(SPLIT, TrainConfig(augment=False), n=2, copies=2)
    assert torch.equal(p.augmented[0, 1], SPLIT.images[0]) and p.rotation == 0


def test_bad_sizes():
    with pytest.raises(ConfigError, match="n and copies must be >= 1"):
        augmentation_preview(SPLIT, TrainConfig(), n=0)
    with pytest.raises(ConfigError, match="n=7 is more than the 6 digits"):
        augmentation_preview(SPLIT, TrainConfig(), n=7)


def test_class_balance():
    counts = class_balance(SPLIT)
    assert [(c.digit, c.count) for c in counts][:4] == [(0, 1), (1, 2), (2, 0), (3, 3)]
    assert counts[3].percent == 50.0 and len(counts) == 10
    assert "|     3 |" not in format_class_balance(counts) and "| 3 | 3 | 50.0 |" in format_class_balance(
        counts, markdown=True)


def test_figures_have_content(tmp_path):
    plot_augmentation_preview(augmentation_preview(SPLIT, TrainConfig(), n=3)).savefig(tmp_path / "a.png")
    plot_class_balance(class_balance(SPLIT)).savefig(tmp_path / "b.png")
    assert png_is_not_blank(tmp_path / "a.png") and png_is_not_blank(tmp_path / "b.png")


def test_preview_command(tmp_path, capsys):
    """Real MNIST: the first training digits and the class balance of all 60k."""
    assert main(["preview", "--out", str(tmp_path), "-n", "4", "--rotation", "15"]) == 0
    out = capsys.readouterr().out
    assert "rotation up to 15 degrees, shift up to 8% of the side" in out and "| 1 | 6,742 | 11.2 |" in out
    assert png_is_not_blank(tmp_path / "augmentation.png") and png_is_not_blank(tmp_path / "class_balance.png")
    with pytest.raises(SystemExit) as e:
        main(["preview", "-n", "0", "--out", str(tmp_path)])
    assert e.value.code == 2 and "argument -n: must be 1 to 100" in capsys.readouterr().err
