"""s6lab: learn and explore how small convolutional networks are designed.

Examples:
    >>> import s6lab
    >>> model = s6lab.get_model("s6")
    >>> s6lab.count_parameters(model)
    19602
"""

from __future__ import annotations

from .threads import configure_threads_at_import

configure_threads_at_import()  # before torch loads OpenMP: passive waits, threads = the cores available (s6lab.threads)

from .blocks import ConvBN, GAPHead, LinearHead, PoolDrop, Transition1x1
from .check import assignment_check, count_parameters, format_check
from .comparison import compare
from .data import MNISTTensors, TensorSplit, ensure_mnist, load_mnist, mnist_dataset
from .models import get_model, get_recipe, get_spec, list_models, register_model
from .recipe import DataSelection, Recipe, quick_mode
from .runs import Run, load_run, train_run
from .specs import (
    ConvBNSpec,
    GAPHeadSpec,
    LinearHeadSpec,
    Net,
    NetSpec,
    PoolDropSpec,
    Transition1x1Spec,
    build,
)
from .summary import summary
from .train import History, TrainConfig, evaluate, fit, predict, seed_everything

__version__ = "0.1.0"


def __getattr__(name: str):
    """The spec classes' old names (``s6lab.Conv`` is `ConvBNSpec`, ...), deprecated for one release."""
    from . import specs

    if name in specs.OLD_NAMES:
        return specs.renamed_spec(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "ConvBN", "GAPHead", "LinearHead", "PoolDrop", "Transition1x1",
    "compare", "assignment_check", "count_parameters", "format_check",
    "MNISTTensors", "TensorSplit", "ensure_mnist", "load_mnist", "mnist_dataset",
    "get_model", "get_recipe", "get_spec", "list_models", "register_model",
    "DataSelection", "Recipe", "quick_mode",
    "Run", "load_run", "train_run",
    "ConvBNSpec", "GAPHeadSpec", "LinearHeadSpec", "Net", "NetSpec", "PoolDropSpec", "Transition1x1Spec", "build",
    "summary",
    "History", "TrainConfig", "evaluate", "fit", "predict", "seed_everything",
]
