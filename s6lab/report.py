"""A run's report: ``report.md`` plus the figures it shows, in the run directory."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from ._io import atomic_write_text
from .check import assignment_check, format_check
from .runs import Run
from .summary import summary

log = logging.getLogger(__name__)


def save_figure(fig, path: Path) -> Path:
    """Save a matplotlib figure atomically as PNG and close it."""
    import matplotlib.pyplot as plt

    from ._io import atomic_write

    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return path


def history_table(run: Run) -> str:
    """The per-epoch history as a markdown table."""
    lines = ["| epoch | train loss | train acc | test loss | test acc | lr | seconds |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for e in run.history.epochs:
        lines.append(f"| {e.epoch} | {e.train_loss:.4f} | {e.train_acc:.2f}% | {e.test_loss:.4f} | "
                     f"{e.test_acc:.2f}% | {e.lr:.2e} | {e.seconds:.1f} |")
    return "\n".join(lines)


def _section_check(run: Run) -> str:
    table = format_check(assignment_check(run.model, run.history), markdown=True)
    atomic_write_text(run.path / "check.md", table)
    return "## The assignment check\n\n" + table


def _section_history(run: Run) -> str:
    from .analysis.curves import plot_history

    save_figure(plot_history(run.history), run.path / "curves.png")
    seconds = [e.seconds for e in run.history.epochs]
    mean = sum(seconds) / len(seconds) if seconds else float("nan")
    return (f"## Training\n\n![accuracy and loss per epoch](curves.png)\n\n"
            f"Mean seconds per epoch (training + evaluation): {mean:.1f}\n\n" + history_table(run))


def _section_summary(run: Run) -> str:
    text = str(summary(run.model))
    atomic_write_text(run.path / "summary.txt", text)
    return "## Model summary (torchinfo)\n\n```text\n" + text + "\n```"


#: Report sections in order; the analysis toolkit appends its own.
SECTIONS: list[Callable[[Run], str]] = [_section_check, _section_history, _section_summary]


def write_report(run: Run) -> Path:
    """Write ``report.md`` (and its figures) into the run directory.

    A section that fails is reported in the file with its error, not silently dropped.
    """
    meta = run.meta
    cfg = run.config
    sizes = meta.get("data") or {}
    subset = "".join(f" --{k.replace('_', '-')} {v}" for k, v in sizes.items() if v)
    header = [
        f"# Run report: `{run.spec.name}`",
        "",
        run.spec.description,
        "",
        f"- data: {'a subset of ' if subset else ''}MNIST{subset and ' (' + subset.strip() + ')'}",
        f"- seed {cfg.seed}, {len(run.history)} of {cfg.epochs} epochs, batch {cfg.batch_size}, "
        f"{cfg.optimizer} lr {cfg.lr} ({cfg.schedule}), augmentation {'on' if cfg.augment else 'off'}",
        f"- device {meta.get('device')}, bf16 autocast {meta.get('bf16')}, torch {meta.get('torch')}, "
        f"{meta.get('threads')} threads",
        f"- reproduce: `s6lab train --model {run.spec.name} --epochs {cfg.epochs} --seed {cfg.seed} "
        f"--out {run.path}{subset}`",
    ]
    parts = ["\n".join(header)]
    for section in SECTIONS:
        try:
            parts.append(section(run))
        except Exception as e:  # keep the rest of the report
            log.warning("report section %s failed: %s", section.__name__, e)
            parts.append(f"## {section.__name__.removeprefix('_section_')}\n\n"
                         f"*This section failed: {type(e).__name__}: {e}*")
    return atomic_write_text(run.path / "report.md", "\n\n".join(p for p in parts if p) + "\n")
