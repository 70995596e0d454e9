"""Run and tabulate several variants over several seeds.

Every (variant, seed) is an ordinary run directory under ``OUT/runs/VARIANT/eEPOCHS-sSEED``
([`run_dir`][s6lab.runs.run_dir]: the same layout ``s6lab train`` uses by default),
so an interrupted comparison resumes where it stopped (finished runs are loaded, not
retrained) and tables and figures can be re-rendered from disk at any time.

Examples:
    >>> c = compare(["s6", "s6-gap"], seeds=[0, 1], epochs=15, out="results")  # doctest: +SKIP
    >>> print(format_comparison(c))  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import logging
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._canvas import old_spellings, panel
from ._io import atomic_write_text
from ._style import TARGET_LINE
from ._table import render_table
from .check import MAX_PARAMS, TARGET_ACC, all_passed, assignment_check
from .errors import ConfigError
from .models import get_recipe, get_spec
from .parallel import Job, JobResult, Workers, check_backend, run_jobs, workers
from .runs import WEIGHTS, Run, RunError, load_run, recorded_in_full, run_dir, train_run
from .train import TrainConfig, patch_flag

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)




@dataclass(frozen=True)
class Spread:
    """Mean and sample standard deviation over seeds (0 for one seed)."""

    mean: float
    std: float
    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        values = tuple(values)
        return cls(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0, values)

    def __str__(self) -> str:
        # one seed has no spread: say so instead of a misleading "± 0.00"
        return f"{self.mean:.2f} ± {self.std:.2f}" if len(self.values) > 1 else f"{self.mean:.2f} ± n/a"


@dataclass(frozen=True)
class VariantResult:
    """One row of the comparison."""

    name: str
    description: str
    params: int
    receptive_field: int | None  # px, of the last spatial layer; None: not known
    mult_adds: int
    best: Spread
    final: Spread
    first_epoch: tuple[int | None, ...]  # per seed: first epoch >= TARGET_ACC, None if never
    seconds_per_epoch: float  # median over all epochs of all seeds
    passed: int  # seeds whose run passes the assignment check
    runs: tuple[Run, ...]

    @property
    def seeds(self) -> int:
        return len(self.runs)


@dataclass(frozen=True)
class Comparison:
    rows: tuple[VariantResult, ...]
    epochs: int
    seeds: tuple[int, ...]
    test_size: int | None = None  # None: the full 10k test set

    def _repr_html_(self) -> str:
        """In a notebook, the comparison table as HTML (``format_comparison(c, markdown=True)`` rendered)."""
        import markdown

        return markdown.markdown(format_comparison(self, markdown=True), extensions=["tables"])


def summarize(name: str, runs: Sequence[Run]) -> VariantResult:
    """Aggregate the runs of one variant."""
    from .analysis.budget import parameter_budget
    from .analysis.receptive_field import final_receptive_field

    model = runs[0].model
    budget = parameter_budget(model)
    seconds = [e.seconds for r in runs for e in r.history.epochs]
    return VariantResult(
        name=name, description=runs[0].spec.description, params=budget.total_params,
        receptive_field=final_receptive_field(model), mult_adds=budget.total_mult_adds,
        best=Spread.of([r.history.best_acc for r in runs]),
        final=Spread.of([r.history.final_acc for r in runs]),
        first_epoch=tuple(r.history.first_epoch_reaching(TARGET_ACC) for r in runs),
        seconds_per_epoch=statistics.median(seconds) if seconds else float("nan"),
        passed=sum(all_passed(assignment_check(r.model, r.history)) for r in runs),
        runs=tuple(runs))


def compare(
    variants: Sequence[str],
    *,
    seeds: Sequence[int] = (0, 1),
    epochs: int | None = None,
    out: str | Path = "results",
    train: bool = True,
    data: Any = None,
    data_root: str | Path | None = None,
    train_size: int | None = None,
    test_size: int | None = None,
    progress: bool = True,
    recipe: dict[str, Any] | None = None,
    jobs: int | str = 1,
    threads_per_job: int | None = None,
    backend: str = "process",
    address: str | None = None,
    on_job: Callable[[JobResult], None] | None = None,
) -> Comparison:
    """Train (or load) every (variant, seed) and aggregate.

    Args:
        variants: registered model names.
        seeds: seeds per variant.
        epochs: epochs per run; default the trainer's default.
        out: results folder; runs go to ``out/runs/VARIANT/eEPOCHS-sSEED``.
        train: ``False`` only loads finished runs (re-render without retraining).
        data: preloaded tensors; default loads MNIST once for all runs.
        data_root: MNIST root.
        train_size: quick mode: train on the first N images.
        test_size: quick mode: evaluate on the first N test images.
        progress: tqdm bars.
        recipe: `TrainConfig` fields that override the defaults and each variant's
            own training overrides (``{"weight_decay": 0.0, "precision": "bf16", "first_bn_from_patches": False}``).
        jobs: trainings at once ([`parallel`][s6lab.parallel]): 1 trains one after another in this process;
            N or ``"auto"`` trains the runs that are needed in worker processes (or on Ray). Finished runs
            are loaded and partial runs resume either way, and every run is seeded by its recipe.
        threads_per_job: threads of each parallel training (see [`workers`][s6lab.parallel.workers]).
        backend: ``"process"`` (this machine) or ``"ray"`` (``pip install 's6lab[ray]'``).
        address: Ray only: the cluster to use; its nodes must see ``out`` at the same path.
        on_job: called with each parallel job's result as it finishes (the CLI prints a line).

    Returns:
        A `Comparison`, one row per variant in the order given.

    Raises:
        ValueError: no variants, duplicate or unknown names, or no seeds; bad ``jobs``, threads or backend.
        RunError: ``train=False`` and a run is missing or unfinished; or, in parallel, one or more jobs
            failed: one error lists them all, after every other job has finished (their runs are kept,
            so the same call again trains only the failed ones).
    """
    if not variants:
        raise ConfigError("name at least one variant (see `s6lab models`)")
    if len(set(variants)) != len(variants):
        raise ConfigError(f"a variant is named twice: {', '.join(variants)}")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"give one or more distinct seeds, got {list(seeds)}")
    specs = [get_spec(v) for v in variants]  # unknown names fail before any training
    epochs = TrainConfig().epochs if epochs is None else epochs  # 0 is an error (TrainConfig says so), not "unset"
    plan = workers(jobs, threads_per_job, backend=backend)  # bad input fails before any training
    check_backend(backend, address)
    parallel = plan.jobs != 1 or backend != "process"  # one at a time: in this process, no worker to start
    pending: list[tuple[list[Run | None], int, Job]] = []  # parallel: (the variant's runs, index, job)
    variant_runs = []
    for spec in specs:
        runs: list[Run | None] = []
        variant_runs.append(runs)
        for seed in seeds:
            path = run_dir(out, spec.name, seed, epochs, train_size)
            wanted = get_recipe(spec.name, **{**(recipe or {}), "epochs": epochs, "seed": seed, "root": data_root,
                                              "train_size": train_size, "test_size": test_size})
            if (path / WEIGHTS).exists() or recorded_in_full(path):
                run = load_run(path, need_weights=False)  # a recorded run (fresh clone) has no weights
                stale = wanted.differences(run.meta)
                if stale and train:
                    ran = run.recipe.train.first_bn_from_patches  # Recipe.from_dict pins it to what ran
                    patches_differ = any(s.startswith("first_bn_from_patches") for s in stale)
                    hint = f"; to compare it as it ran, add {patch_flag(ran)}" if patches_differ and ran is not None \
                        else ""
                    raise RunError(f"the finished run at {path} was trained with other settings "
                                   f"({', '.join(stale)} differ from today's recipe for {spec.name}); delete "
                                   f"that directory to retrain it, or compare into a new --out{hint}")
                runs.append(run)
                continue
            if not train:
                raise RunError(f"no finished run at {path}; run the comparison with training on "
                               f"(`s6lab compare --model {spec.name} --epochs {epochs} --seed {seed}`)")
            if parallel:
                pending.append((runs, len(runs), Job(wanted, path)))
                runs.append(None)
                continue
            if data is None:
                from .data import load_mnist

                data = load_mnist(data_root, train_size=train_size, test_size=test_size)
            log.info("training %s seed %d -> %s", spec.name, seed, path)
            runs.append(train_run(wanted, path, resume=True, data=data, progress=progress))
    if pending:
        _train_in_parallel(pending, plan, backend, address, data, on_job)
    rows = [summarize(spec.name, runs) for spec, runs in zip(specs, variant_runs)]
    return Comparison(tuple(rows), epochs, tuple(seeds), test_size)


def _train_in_parallel(pending: list[tuple[list[Run | None], int, Job]], plan: Workers, backend: str,
                       address: str | None, data: Any, on_job: Callable[[JobResult], None] | None) -> None:
    """Train the pending jobs at once and put each finished run in its place; one RunError names every
    job that failed, after the others have finished."""
    log.info("training %d runs, %s at once, %d thread(s) each, backend %s", len(pending),
             plan.jobs or "as many as Ray fits", plan.threads, backend)
    results = run_jobs([job for _, _, job in pending], workers=plan, backend=backend, address=address,
                       data=data, on_done=on_job)
    failed = [r for r in results if not r.ok]
    if failed:
        names = "; ".join(f"{r.job.label} ({r.job.path}): {' '.join(str(r.error).split())}" for r in failed)
        raise RunError(f"{len(failed)} of {len(results)} trainings failed: {names}. The other runs are kept: "
                       "fix the cause and run the same command again to train only the failed ones")
    for runs, index, job in pending:
        if not (job.path / WEIGHTS).exists():  # a Ray node wrote it where this machine cannot see it
            raise RunError(f"{job.label} trained, but {job.path} holds no weights on this machine; with a Ray "
                           "cluster, --out must be a folder every node sees at the same path (a shared disk)")
        runs[index] = load_run(job.path)


# ---------------------------------------------------------------- formatting

COLUMNS = ("variant", "params", "RF", "MACs", "best acc %", "final acc %", f"first epoch >= {TARGET_ACC}",
           "s/epoch", "assignment")


def _cells(r: VariantResult) -> list[str]:
    first = "/".join("-" if e is None else str(e) for e in r.first_epoch)
    rf = "?" if r.receptive_field is None else str(r.receptive_field)
    return [r.name, f"{r.params:,}", rf, f"{r.mult_adds / 1e6:.2f}M", str(r.best), str(r.final),
            first, f"{r.seconds_per_epoch:.1f}", f"{r.passed}/{r.seeds} pass"]


def format_comparison(c: Comparison, markdown: bool = False) -> str:
    """The table as aligned text or markdown (accuracy: mean ± std over seeds)."""
    body = [_cells(r) for r in c.rows]
    test = f"the first {c.test_size:,} test images" if c.test_size else "the 10k test set"
    seeds = f"seed{'s' if len(c.seeds) > 1 else ''} {', '.join(map(str, c.seeds))}"
    note = (f"{c.epochs} epoch{'s' if c.epochs != 1 else ''}, {seeds}; accuracy on {test}, "
            "mean ± sample std over seeds; first epoch per seed ('-': never); s/epoch: median, "
            "training + evaluation.")
    align = "l" + ("r" if markdown else "l") * (len(COLUMNS) - 1)
    return render_table(COLUMNS, body, markdown=markdown, align=align) + f"\n{note}\n"


def comparison_csv(c: Comparison) -> str:
    """One row per variant with raw numbers (per-seed values joined by ';')."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["variant", "params", "receptive_field", "mult_adds", "best_mean", "best_std", "final_mean",
                "final_std", "best_per_seed", "final_per_seed", "first_epoch_per_seed", "seconds_per_epoch",
                "assignment_passed", "seeds", "epochs", "description"])
    for r in c.rows:
        rf = "" if r.receptive_field is None else r.receptive_field  # raw numbers: unknown is empty
        w.writerow([r.name, r.params, rf, r.mult_adds, f"{r.best.mean:.4f}", f"{r.best.std:.4f}",
                    f"{r.final.mean:.4f}", f"{r.final.std:.4f}", ";".join(f"{v:.2f}" for v in r.best.values),
                    ";".join(f"{v:.2f}" for v in r.final.values),
                    ";".join("" if e is None else str(e) for e in r.first_epoch), f"{r.seconds_per_epoch:.2f}",
                    r.passed, r.seeds, c.epochs, r.description])
    return buf.getvalue()


# ---------------------------------------------------------------- plots


def _styles(n: int) -> list[dict[str, Any]]:
    """Distinguishable line styles for n variants: ten colours (tab10), then the same colours dashed with
    another marker, so 11+ variants never share a look (tab20's light/dark pairs are hard to tell apart)."""
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("tab10")
    looks = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "D")]
    return [{"color": cmap(i % 10), "ls": looks[(i // 10) % len(looks)][0], "marker": looks[(i // 10) % len(looks)][1]}
            for i in range(n)]


def _accuracy_limits(values: list[float], target: float) -> tuple[float, float]:
    """Y-limits that show every value and the target line, with a small margin: from the data, never fixed."""
    low, high = min(values + [target]), max(values + [target])
    margin = max(0.05 * (high - low), 0.1)
    return low - margin, min(high + margin, 100.2)


@old_spellings(positional=("ax", "target"))
def plot_curves(c: Comparison, *, target: float = TARGET_ACC, ax: Any = None) -> Figure:
    """Test accuracy per epoch, mean over seeds with a min-max band, one line per variant.

    The y-axis shows every epoch of every variant. Where that range is wide (weak variants, early
    epochs, quick runs), an inset zooms on the last epochs around the target, where the assignment
    is decided. The legend sits outside the data.

    Args:
        c: the comparison.
        target: accuracy line to draw (the assignment's 99.4%).
        ax: where to draw: ``None`` (a new figure), one Axes (split into the plot's panels when it
            has several), one Axes per panel, or a Figure or SubFigure to fill.

    Returns:
        The matplotlib Figure the plot is drawn in.
    """
    import torch

    fig, ax = panel(ax, figsize=(10.5, 4.8))
    curves = []
    for r, style in zip(c.rows, _styles(len(c.rows))):
        accs = torch.tensor([run.history.test_acc for run in r.runs])  # (seeds, epochs)
        curves.append((r.name, style, accs))

    def draw(axis: Any, labels: bool) -> None:
        for name, style, accs in curves:
            epochs = list(range(1, accs.shape[1] + 1))
            axis.plot(epochs, accs.mean(0), ms=2.5, lw=1.4, label=name if labels else None, **style)
            axis.fill_between(epochs, accs.min(0).values, accs.max(0).values, color=style["color"], alpha=0.12)
        axis.axhline(target, **TARGET_LINE, label=f"{target}% target" if labels else None)

    draw(ax, labels=True)
    every = [float(v) for _, _, accs in curves for v in accs.flatten()]
    ax.set_ylim(*_accuracy_limits(every, target))
    ax.set(xlabel="epoch", ylabel="test accuracy (%)", title="Test accuracy (mean over seeds, band: min-max)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    epochs = max(accs.shape[1] for _, _, accs in curves)
    late = [float(v) for _, _, accs in curves for v in accs[:, accs.shape[1] // 2:].flatten()]
    if epochs >= 4 and max(every) - min(every) > 3 and max(late) > target - 1:
        inset = ax.inset_axes([0.42, 0.08, 0.55, 0.5])
        draw(inset, labels=False)
        near = [v for v in late if v >= target - 0.6]
        inset.set_xlim(epochs // 2 + 0.5, epochs + 0.3)
        inset.set_ylim(*_accuracy_limits(near or late, target))
        inset.set_title("last epochs, around the target", fontsize=8)
        inset.tick_params(labelsize=7)
        inset.xaxis.get_major_locator().set_params(integer=True)
        inset.grid(alpha=0.3)
        ax.indicate_inset_zoom(inset, edgecolor="grey")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return fig.figure


@old_spellings(positional=("ax", "target"))
def plot_accuracy_vs_params(c: Comparison, *, target: float = TARGET_ACC, ax: Any = None) -> Figure:
    """Best test accuracy (mean, error bar = std over seeds) against parameters (log scale), with
    the accuracy target and the parameter budget marked.

    Args:
        c: the comparison.
        target: accuracy line to draw (the assignment's 99.4%).
        ax: where to draw: ``None`` (a new figure), one Axes (split into the plot's panels when it
            has several), one Axes per panel, or a Figure or SubFigure to fill.

    Returns:
        The matplotlib Figure the plot is drawn in.
    """
    fig, ax = panel(ax, figsize=(8, 4.8))
    for r, style in zip(c.rows, _styles(len(c.rows))):
        ax.errorbar(r.params, r.best.mean, yerr=r.best.std, fmt=style["marker"], capsize=3, color=style["color"],
                    label=r.name)
    ax.axhline(target, **TARGET_LINE, label=f"{target}% target")
    ax.axvline(MAX_PARAMS, **TARGET_LINE, label=f"{MAX_PARAMS:,} parameter budget")
    # many variants share a parameter count: a legend stays readable where labels would overlap
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_xscale("log")
    ax.set(xlabel="parameters (log scale)", ylabel="best test accuracy (%)", title="Accuracy against parameters")
    ax.grid(alpha=0.3, which="both")
    return fig.figure


def render(c: Comparison, out: str | Path, name: str = "comparison") -> list[Path]:
    """Write ``NAME.md``, ``NAME.csv``, ``NAME.txt``, ``NAME_curves.png``, ``NAME_params.png``."""
    from ._io import save_figure

    out = Path(out)
    md = (f"# Comparison: {name}\n\n" + format_comparison(c, markdown=True)
          + f"\n![accuracy curves]({name}_curves.png)\n\n![accuracy against parameters]({name}_params.png)\n\n"
          + "\n".join(f"- **{r.name}**: {r.description}" for r in c.rows) + "\n")
    return [
        atomic_write_text(out / f"{name}.md", md),
        atomic_write_text(out / f"{name}.csv", comparison_csv(c)),
        atomic_write_text(out / f"{name}.txt", format_comparison(c)),
        save_figure(plot_curves(c), out / f"{name}_curves.png"),
        save_figure(plot_accuracy_vs_params(c), out / f"{name}_params.png"),
    ]
