"""Shared fixtures. Tests on real MNIST use a small subset and say so."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("S6LAB_OFFLINE", "1")  # CI has no internet: skip torchvision's download attempt
# a fixed thread count, so that tests comparing bits do not depend on what else the machine runs (the load
# follower, on by default, is tested on its own in test_load_follower.py, with followers it builds itself)
os.environ["S6LAB_FOLLOW_LOAD"] = "0"

ROOT = Path(__file__).parents[1]


@pytest.fixture(autouse=True)
def _close_figures():
    """Each test's figures are closed after it (pyplot keeps every open figure alive)."""
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


@pytest.fixture(scope="session")
def mnist_small():
    """Real MNIST, first 4,000 training and 2,000 test images (fetched and verified once)."""
    from s6lab.data import load_mnist

    return load_mnist(train_size=4000, test_size=2000)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, mnist_small):
    """A finished 2-epoch run of the reference net on the 4k/2k real-MNIST subset."""
    from s6lab.report import write_report
    from s6lab.runs import train_run
    from s6lab.train import TrainConfig

    out = tmp_path_factory.mktemp("runs") / "s6-tiny"
    run = train_run("s6", out, TrainConfig(epochs=2, seed=0), data=mnist_small,
                    train_size=4000, test_size=2000, progress=False)
    write_report(run)  # as `s6lab train` does
    return run


@pytest.fixture(scope="session")
def tiny_report(tmp_path_factory, tiny_run) -> Path:
    """A copy of ``tiny_run``'s directory with its report.md and figures, for tests that change it."""
    run_dir = tmp_path_factory.mktemp("report") / "s6-tiny"
    shutil.copytree(tiny_run.path, run_dir)
    return run_dir


@pytest.fixture(scope="session")
def docs_site(tmp_path_factory) -> Path:
    """The docs site, built once per session with ``mkdocs build --strict`` (skipped without the docs extra)."""
    mkdocs = Path(sys.executable).parent / "mkdocs"
    if not mkdocs.exists():
        found = shutil.which("mkdocs")
        if found is None:
            pytest.skip("docs extra not installed: pip install -e '.[docs]'")
        mkdocs = Path(found)
    site = tmp_path_factory.mktemp("docs") / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # keep Material's end-of-life banner out of the errors
    done = subprocess.run([str(mkdocs), "build", "--strict", "-d", str(site)], cwd=ROOT,
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        pytest.fail(f"mkdocs build --strict failed:\n{done.stderr[-3000:]}")
    return site


def png_is_not_blank(path) -> bool:
    """A figure has content: more than one colour, and not nearly all white."""
    from matplotlib.image import imread

    img = imread(path)[..., :3]
    return img.std() > 0.02 and (img < 0.9).mean() > 0.01
