"""The assignment as code: does a finished run meet the S6 rules?

Rules (``shared/reference/assignment6.md``): fewer than 20k parameters, fewer than 20
epochs, BatchNorm and Dropout used, and >= 99.4% test accuracy. We ask the accuracy
twice: the best epoch, and each of the last three epochs (a lucky single epoch is not
a result).

Examples:
    >>> from s6lab import get_model
    >>> from s6lab.train import History, EpochRecord
    >>> h = History([EpochRecord(i, 0.1, 99.0, 0.02, 99.5, 0.01, 1.0) for i in range(1, 16)])
    >>> all(r.passed for r in assignment_check(get_model("s6"), h))
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch.nn as nn

from ._table import render_table
from .train import History

MAX_PARAMS = 20_000
MAX_EPOCHS = 20
TARGET_ACC = 99.4


@dataclass(frozen=True)
class Requirement:
    """One row of the check table: what the run has against the rule's threshold, as numbers.

    `format_check` turns a row into text ("< 20,000", "19,602"); `requirements_json`
    gives both the text and the numbers.
    """

    name: str  # what is checked
    rule: str  # how ``measured`` must compare with ``threshold``: "<", ">=", ">= each" or "used"
    threshold: int | float | bool  # 20_000 (parameters), 20 (epochs), 99.4 (% test accuracy), True for "used"
    measured: int | float | bool | tuple[float, ...]  # what the run has; nan: no epoch; a tuple for ">= each"
    passed: bool
    unit: str = ""  # written after threshold and measured values: "%" for accuracies


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def uses_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def uses_dropout(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in model.modules())


def assignment_check(model: nn.Module, history: History, *, max_params: int = MAX_PARAMS,
                     max_epochs: int = MAX_EPOCHS, target: float = TARGET_ACC) -> list[Requirement]:
    """Evaluate the assignment's rules for a trained model and its history.

    Args:
        model: the trained network.
        history: its per-epoch history.
        max_params: parameters must be strictly fewer.
        max_epochs: epochs must be strictly fewer.
        target: test accuracy (%) to reach.

    Returns:
        One `Requirement` per rule, in a fixed order.
    """
    params = count_parameters(model)
    last3 = tuple(float(a) for a in history.test_acc[-3:])
    batchnorm, dropout = uses_batchnorm(model), uses_dropout(model)
    return [
        Requirement("parameters", "<", max_params, params, params < max_params),
        Requirement("epochs", "<", max_epochs, len(history), 0 < len(history) < max_epochs),
        Requirement("BatchNorm", "used", True, batchnorm, batchnorm),
        Requirement("Dropout", "used", True, dropout, dropout),
        Requirement("best test accuracy", ">=", target, float(history.best_acc),
                    bool(history.epochs) and history.best_acc >= target, unit="%"),
        Requirement("test accuracy, last 3 epochs", ">= each", target, last3,
                    len(last3) == 3 and min(last3) >= target, unit="%"),
    ]


def all_passed(rows: list[Requirement]) -> bool:
    return all(r.passed for r in rows)


@dataclass(frozen=True)
class Shortfall:
    """An epoch of the last three below the target: by how much, in test images."""

    epoch: int
    accuracy: float  # %
    images_short: int  # more test images it had to get right to reach the target


def shortfalls(history: History, *, target: float = TARGET_ACC, test_images: int = 10_000) -> list[Shortfall]:
    """The epochs among the last three whose test accuracy is below ``target``.

    Examples:
        >>> from s6lab.train import EpochRecord, History
        >>> h = History([EpochRecord(e, 0, 0, 0, a, 0, 0) for e, a in [(16, 99.37), (17, 99.42), (18, 99.41)]])
        >>> shortfalls(h)
        [Shortfall(epoch=16, accuracy=99.37, images_short=3)]
    """
    out = []
    for record in history.epochs[-3:]:
        if record.test_acc < target:
            short = math.ceil(round((target - record.test_acc) * test_images / 100, 6))
            out.append(Shortfall(record.epoch, record.test_acc, max(1, short)))
    return out


def next_steps(config, params: int, *, max_epochs: int = MAX_EPOCHS, max_params: int = MAX_PARAMS,
               history=None) -> list[str]:
    """Two or three changes the assignment's rules allow, for a run that missed the accuracy rule.

    Args:
        config: the run's [`TrainConfig`][s6lab.train.TrainConfig].
        params: the model's parameter count.
        history: the run's [`History`][s6lab.train.History], if known: with weight averaging, whether
            the average scored below the trained weights at the end.
    """
    steps = []
    last = history.epochs[-1] if history is not None and history.epochs else None
    if last is not None and last.raw_test_acc is not None and last.raw_test_acc > last.test_acc:
        steps.append(f"average fewer steps (a smaller --ema) or none (--ema 0): at the last epoch the averaged "
                     f"weights scored {last.test_acc:.2f}%, the trained ones {last.raw_test_acc:.2f}% "
                     "(docs: Speed, weight averaging)")
    if config.epochs < max_epochs - 1:
        steps.append(f"train longer: up to {max_epochs - 1} epochs are allowed (--epochs {max_epochs - 1}); "
                     "the OneCycle schedule stretches with them (docs: Speed, the OneCycle shape)")
    if config.weight_decay == 0:
        steps.append("add weight decay (--weight-decay 5e-4): the default recipe's margin comes from it "
                     "(README: The recipe, and its margin)")
    if not config.augment:
        steps.append("switch augmentation back on (--augment): rotation and shift fight overfitting "
                     "(docs: Comparing variants, s6-no-augment)")
    if params < max_params * 0.9:
        steps.append(f"widen a layer: {max_params - params - 1:,} parameters are still free under the "
                     f"{max_params:,} limit (docs: Parameter budgets)")
    steps.append("run other seeds (--seed 1, 2, ...): if some pass and some fail, the margin is thinner "
                 "than the seed-to-seed spread (README: The recipe, and its margin)")
    return steps[:3]


def format_advice(shorts: list[Shortfall], steps: list[str], machine: str | None = None,
                  target: float = TARGET_ACC, markdown: bool = False) -> str:
    """How close a failed accuracy rule came, where the run trained, and what to try next."""
    if not shorts:
        return ""
    bullet = "- " if markdown else "  - "

    def one(s: Shortfall) -> str:
        images = f"{s.images_short} test image{'s' if s.images_short != 1 else ''}"
        return f"epoch {s.epoch} at {s.accuracy:.2f}% ({images} short of {target}%)"

    lines = [f"How close: {', '.join(one(s) for s in shorts)}."]
    if machine:
        lines.append(f"Trained on: {machine}.")
    head = ("\n\n" if markdown else "\n").join(lines)
    return head + "\n\nWhat the rules allow you to try next:\n" + "\n".join(bullet + step for step in steps) + "\n"


def format_rule(r: Requirement) -> str:
    """The rule as the table shows it: ``"< 20,000"``, ``">= 99.4% each"``, ``"used"``."""
    if r.rule == "used":
        return "used"
    op, _, each = r.rule.partition(" ")
    return f"{op} {r.threshold:,}{r.unit}" + (f" {each}" if each else "")


def format_measured(r: Requirement) -> str:
    """What the run has, as the table shows it: ``"19,602"``, ``"99.52%"``, ``"yes"``, ``"none"``.

    Examples:
        >>> format_measured(Requirement("last 3", ">= each", 99.4, (99.41, 99.5), False, unit="%"))
        '99.41%, 99.50%'
    """
    def one(v: int | float | bool) -> str:
        if isinstance(v, bool):
            return "yes" if v else "no"
        return f"{v:,}{r.unit}" if isinstance(v, int) else f"{v:.2f}{r.unit}"

    if isinstance(r.measured, tuple):
        return ", ".join(one(v) for v in r.measured) or "none"
    return one(r.measured)


def requirements_json(rows: list[Requirement]) -> list[dict]:
    """The rows for ``s6lab check --json``: the table's text (``target``, ``value``) and the numbers
    behind it (``threshold``, ``measured``: a list for a per-epoch rule, null for no epoch).

    Examples:
        >>> row = requirements_json([Requirement("parameters", "<", 20_000, 19_602, True)])[0]
        >>> row["target"], row["value"], row["threshold"], row["measured"]
        ('< 20,000', '19,602', 20000, 19602)
    """
    def plain(v: object) -> object:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        return None if isinstance(v, float) and math.isnan(v) else v  # JSON has no NaN

    return [{"name": r.name, "target": format_rule(r), "value": format_measured(r), "passed": r.passed,
             "rule": r.rule, "threshold": r.threshold, "measured": plain(r.measured), "unit": r.unit} for r in rows]


def format_check(rows: list[Requirement], markdown: bool = False) -> str:
    """The check as a text or markdown table, with a final PASS/FAIL verdict."""
    header = ("requirement", "rule", "this run", "result")
    body = [(r.name, format_rule(r), format_measured(r), "PASS" if r.passed else "FAIL") for r in rows]
    verdict = "PASS" if all_passed(rows) else "FAIL"
    table = render_table(header, body, markdown=markdown)
    return table + (f"\n**Overall: {verdict}**\n" if markdown else f"\nOverall: {verdict}\n")
