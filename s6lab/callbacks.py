"""Things to pass as ``fit(..., on_epoch=...)``: a live plot for notebooks and a CSV log.

``fit`` calls each one after every epoch with the history so far and the model.

Examples:
    >>> import s6lab
    >>> recipe = s6lab.get_recipe("s6", epochs=2)
    >>> live, log = LivePlot(), CSVLogger("runs/s6-history.csv")
    >>> s6lab.fit(recipe.build(), s6lab.load_mnist(), recipe.train, on_epoch=[live, log])  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from ._io import atomic_write_text
from .check import TARGET_ACC
from .train import EpochRecord, History


def in_notebook() -> bool:
    """Whether this code runs in a Jupyter kernel (where a figure can be redrawn in place)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


class LivePlot:
    """Test accuracy and loss per epoch, redrawn in place after every epoch.

    In a notebook the figure under the cell updates as training goes; elsewhere nothing is shown
    and ``figure`` holds the latest drawing (save it, or show it at the end).

    Args:
        target: the accuracy line (the assignment's 99.4%).
        title: figure title, e.g. the variant and seed.
    """

    def __init__(self, *, target: float = TARGET_ACC, title: str | None = None) -> None:
        self.target = target
        self.title = title
        self.figure: Any = None
        self._display: Any = None  # IPython's display handle, once shown

    def __call__(self, history: History, model: Any = None) -> None:
        import matplotlib.pyplot as plt

        from .analysis.curves import plot_history

        self.figure = plot_history(history, target=self.target)
        if self.title:
            self.figure.suptitle(self.title)
        if in_notebook():
            from IPython.display import display

            if self._display is None:
                self._display = display(self.figure, display_id=True)
            else:
                self._display.update(self.figure)
        plt.close(self.figure)  # shown (or kept in self.figure), never left open to pile up


class CSVLogger:
    """The history as a CSV file, rewritten atomically after every epoch (one row per epoch).

    Args:
        path: the CSV file (its folder is created).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.exists() and self.path.is_dir():
            raise IsADirectoryError(f"CSVLogger: {self.path} is a folder; give a file name such as history.csv")

    def __call__(self, history: History, model: Any = None) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=[f.name for f in fields(EpochRecord)], lineterminator="\n")
        writer.writeheader()
        writer.writerows(asdict(record) for record in history.epochs)
        atomic_write_text(self.path, buffer.getvalue())
