"""Shared fixtures. Tests on real MNIST use a small subset and say so."""

from __future__ import annotations

import os

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("S6LAB_OFFLINE", "1")  # CI has no internet: skip torchvision's download attempt


@pytest.fixture(scope="session")
def mnist_small():
    """Real MNIST, first 4,000 training and 2,000 test images (fetched and verified once)."""
    from s6lab.data import load_mnist

    return load_mnist(train_size=4000, test_size=2000)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, mnist_small):
    """A finished 2-epoch run of the reference net on the 4k/2k real-MNIST subset."""
    from s6lab.runs import train_run
    from s6lab.train import TrainConfig

    out = tmp_path_factory.mktemp("runs") / "s6-tiny"
    return train_run("s6", out, TrainConfig(epochs=2, seed=0), data=mnist_small,
                     train_size=4000, test_size=2000, progress=False)


def png_is_not_blank(path) -> bool:
    """A figure has content: more than one colour, and not nearly all white."""
    from matplotlib.image import imread

    img = imread(path)[..., :3]
    return img.std() > 0.02 and (img < 0.9).mean() > 0.01
