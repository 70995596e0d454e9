"""Where a plot draws: the one ``ax=`` argument of every s6lab ``plot_*`` function.

A plot of ``rows x cols`` panels asks `panels` for its axes; ``ax`` may be

- ``None``: a new figure (constrained layout) of the plot's own size;
- one matplotlib Axes: used as is by a one-panel plot; a plot of several panels splits the
  Axes' grid cell into its panels (the Axes itself is removed), so a whole plot can sit in one
  cell of the caller's grid;
- a sequence (list, tuple, array; flat or in rows) of one Axes per panel, used row by row;
- a Figure or SubFigure: filled with the plot's panels.

Figure-level parts of a plot (a suptitle, a shared legend, colour bars) go to the figure or
subfigure that holds the panels; the plot returns the whole Figure (``fig.figure``, which is
``fig`` itself unless it is a SubFigure), so ``plot_x(...).savefig(path)`` always works.

``axes=`` and ``fig=`` were this argument's names in some plots, and some took ``ax``
positionally; `old_spellings` keeps those calls working, with a DeprecationWarning, for one release.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.axes import Axes
    from matplotlib.figure import FigureBase

F = TypeVar("F", bound=Callable[..., Any])


def panels(ax: Any, rows: int, cols: int, *, figsize: tuple[float, float],
           **subplots_kw: Any) -> tuple[FigureBase, np.ndarray]:
    """The figure and the ``rows x cols`` axes a plot draws into (see the module docstring for ``ax``).

    Args:
        ax: ``None``, an Axes, a sequence of ``rows * cols`` Axes, or a Figure or SubFigure.
        rows: panel rows of the plot.
        cols: panel columns of the plot.
        figsize: inches of the new figure when ``ax`` is ``None``.
        **subplots_kw: passed to ``subplots`` (``sharex``, ``sharey``, ``subplot_kw``) where the
            axes are made here; axes the caller made are used as they are.

    Returns:
        The Figure or SubFigure that holds the axes, and the axes as an object array of shape
        ``(rows, cols)``.

    Raises:
        ConfigError: ``ax`` is none of the above, holds the wrong number of axes, axes of
            several figures, or is an Axes outside a grid that a plot of several panels would split.
    """
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.axes import Axes
    from matplotlib.figure import FigureBase

    n = rows * cols
    if ax is None:
        fig = plt.figure(figsize=figsize, constrained_layout=True)
        return fig, fig.subplots(rows, cols, squeeze=False, **subplots_kw)
    if isinstance(ax, FigureBase):
        return ax, ax.subplots(rows, cols, squeeze=False, **subplots_kw)
    if isinstance(ax, Axes):
        if n == 1:
            one = np.empty((1, 1), dtype=object)
            one[0, 0] = ax
            return ax.figure, one
        spec = ax.get_subplotspec()
        if spec is None:
            raise ConfigError(f"this plot draws {n} panels ({rows} x {cols}) and can split only an Axes in a grid "
                              "(from subplots or add_subplot): pass that, a Figure, or one Axes per panel")
        fig = ax.figure
        ax.remove()  # its grid cell now holds the plot's panels
        return fig, spec.subgridspec(rows, cols).subplots(squeeze=False, **subplots_kw)
    if isinstance(ax, (list, tuple, np.ndarray)):
        given = list(np.asarray(ax, dtype=object).ravel())  # also rows of axes, as subplots gives them
        if len(given) != n:
            raise ConfigError(f"this plot draws {n} panels ({rows} x {cols}): pass {n} axes, got {len(given)}")
        for i, a in enumerate(given):
            if not isinstance(a, Axes):
                raise ConfigError(f"ax must hold {n} matplotlib Axes, got a {type(a).__name__} at position {i}")
        if len({id(a.figure) for a in given}) > 1:
            raise ConfigError(f"the {n} axes of one plot must be in one figure, got axes of several figures")
        grid = np.empty(n, dtype=object)
        grid[:] = given
        return given[0].figure, grid.reshape(rows, cols)
    raise ConfigError(f"ax must be None, a matplotlib Axes, {n} axes, a Figure or a SubFigure, "
                      f"got {type(ax).__name__}")


def panel(ax: Any, *, figsize: tuple[float, float]) -> tuple[FigureBase, Axes]:
    """`panels` for a one-panel plot: the figure (or subfigure) and the one Axes to draw on."""
    fig, axes = panels(ax, 1, 1, figsize=figsize)
    return fig, axes[0, 0]


def old_spellings(*, renamed: tuple[str, ...] = (), positional: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Keep a plot's calls from before the one ``ax=`` convention working for one release.

    Args:
        renamed: old keyword names of ``ax`` (``"axes"``, ``"fig"``): passed on as ``ax``.
        positional: today's names, in order, of the arguments that the plot took positionally after
            those it still takes positionally (``("ax", "target")`` for ``plot_curves(c, ax, target)``).

    Each old spelling used gives a DeprecationWarning that points at the caller and names the new one.
    """
    def wrap(plot: F) -> F:
        kept = sum(p.kind is p.POSITIONAL_OR_KEYWORD for p in inspect.signature(plot).parameters.values())
        name = plot.__name__

        @functools.wraps(plot)
        def plot_with_old_spellings(*args: Any, **kwargs: Any) -> Any:
            if len(args) > kept and len(args) - kept <= len(positional):
                extra = dict(zip(positional, args[kept:]))
                args = args[:kept]
                given = ", ".join(f"{k}=" for k in extra)
                warnings.warn(f"{name}: pass {given} by keyword; passing {given} by position goes in the next "
                              "release", DeprecationWarning, stacklevel=2)
                for key, value in extra.items():
                    if key in kwargs:
                        raise TypeError(f"{name}() got multiple values for argument {key!r}")
                    kwargs[key] = value
            for old in renamed:
                if old in kwargs:
                    value = kwargs.pop(old)
                    if kwargs.get("ax") is not None:
                        raise ConfigError(f"{name}: pass ax= only ({old}= is its old name), not both")
                    warnings.warn(f"{name}({old}=...) is now {name}(ax=...); {old}= goes in the next release",
                                  DeprecationWarning, stacklevel=2)
                    kwargs["ax"] = value
            return plot(*args, **kwargs)

        return plot_with_old_spellings  # type: ignore[return-value]

    return wrap
