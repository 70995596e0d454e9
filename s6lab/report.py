"""A run's report: ``report.md`` plus the figures it shows, in the run directory."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from ._io import atomic_write_text, save_figure
from ._table import render_table
from .analysis.mistakes import Predictions
from .check import assignment_check, format_check
from .data import TensorSplit, load_split
from .recipe import recorded_precision
from .runs import Run, machine_line, reproduce_command
from .summary import summary

log = logging.getLogger(__name__)


def history_table(run: Run) -> str:
    """The per-epoch history as a markdown table; a run with weight averaging also shows what the trained
    (not averaged) weights scored."""
    averaged = run.history.averaged
    header = ("epoch", "train loss", "train acc", "test loss", "test acc", *(("not averaged",) if averaged else ()),
              "lr", "seconds")
    rows = [(e.epoch, f"{e.train_loss:.4f}", f"{e.train_acc:.2f}%", f"{e.test_loss:.4f}", f"{e.test_acc:.2f}%",
             *((f"{e.raw_test_acc:.2f}%",) if averaged else ()),
             f"{e.lr:.2e}", f"{e.seconds:.1f}") for e in run.history.epochs]
    return render_table(header, rows, markdown=True, align="r" * len(header)).rstrip("\n")


def advice(run: Run, markdown: bool = False) -> str:
    """For a run that missed the accuracy rule: how close it came, where it trained, what to try next
    (empty for a run that met it)."""
    from .check import count_parameters, format_advice, next_steps, shortfalls

    test_images = run.recipe.data.test_size or 10_000
    shorts = shortfalls(run.history, test_images=test_images)
    machine = f"{machine_line(run.meta)}, in {recorded_precision(run.meta)}"
    steps = next_steps(run.config, count_parameters(run.model), history=run.history)
    return format_advice(shorts, steps, machine, markdown=markdown)


def _section_check(run: Run) -> str:
    table = format_check(assignment_check(run.model, run.history), markdown=True)
    help_text = advice(run, markdown=True)
    atomic_write_text(run.path / "check.md", table + ("\n" + help_text if help_text else ""))
    return "## The assignment check\n\n" + table + ("\n" + help_text if help_text else "")


def _section_history(run: Run) -> str:
    from .analysis.curves import plot_history

    save_figure(plot_history(run.history), run.path / "curves.png")
    seconds = [e.seconds for e in run.history.epochs]
    mean = sum(seconds) / len(seconds) if seconds else float("nan")
    total = sum(seconds)
    return (f"## Training\n\n![accuracy and loss per epoch](curves.png)\n\n"
            f"Total training and evaluation time: {total / 60:.1f} min ({total:.0f} s) on {machine_line(run.meta)}; "
            f"mean seconds per epoch: {mean:.1f}. The shaded band marks the last three epochs, which the "
            "assignment's rule checks.\n\n" + history_table(run))


def _section_architecture(run: Run) -> str:
    from .analysis.diagram import diagram_boxes, format_diagram, plot_diagram

    boxes = diagram_boxes(run.model)
    save_figure(plot_diagram(boxes, title=run.spec.name), run.path / "diagram.png")
    return ("## The architecture\n\nOne box per block: output shape (channels x height x width), parameters, "
            "multiply-adds per image, and the receptive field after the block. Arrows thin as the map shrinks; "
            "a dashed box sees the whole map.\n\n![architecture diagram](diagram.png)\n\n"
            + format_diagram(boxes, markdown=True))


def _section_summary(run: Run) -> str:
    text = str(summary(run.model))
    atomic_write_text(run.path / "summary.txt", text)
    return "## Model summary (torchinfo)\n\n```text\n" + text + "\n```"


def write_gallery(run: Run, split: TensorSplit, n: int = 25, out: Path | None = None) -> tuple[Predictions, list[Path]]:
    """gallery.png (top losses), confusion.png (counts), confusion_normalized.png into ``out``
    (default: the run directory, where the report shows them)."""
    from .analysis.mistakes import find_mistakes, plot_confusion, plot_mistakes

    out = Path(out) if out is not None else run.path
    p = find_mistakes(run.model, split)
    files = [save_figure(plot_confusion(p), out / "confusion.png"),
             save_figure(plot_confusion(p, normalize=True, hide_diagonal=True), out / "confusion_normalized.png")]
    if len(p.misclassified()):
        files.insert(0, save_figure(plot_mistakes(split.images, p, n=n), out / "gallery.png"))
    return p, files


def write_saliency(run: Run, split: TensorSplit, p: Predictions, *, n: int = 8,
                   methods: tuple[str, ...] | None = None, layer: str | None = None,
                   out: Path | None = None, early_layer: str | None = None) -> Path:
    """saliency.png into ``out`` (default: the run directory): the most confidently
    misclassified samples and a few correct ones, titled with the true label, the prediction and
    its confidence. ``methods`` defaults to every method this model can run
    ([`default_methods`][s6lab.analysis.saliency.default_methods])."""
    from .analysis.saliency import attributions, default_methods, pick_samples, plot_saliency

    idx = pick_samples(p, n)
    maps = attributions(run.model, split.images[idx], methods=methods or default_methods(run.model), layer=layer,
                        early_layer=early_layer)
    fig = plot_saliency(split.images[idx], maps, labels=p.labels[idx], predicted=p.predicted[idx],
                        confidence=p.confidence[idx])
    return save_figure(fig, (Path(out) if out is not None else run.path) / "saliency.png")


def _section_receptive_field(run: Run) -> str:
    from .analysis.inside import default_conv_layer
    from .analysis.receptive_field import (
        format_receptive_fields,
        plot_measured_receptive_field,
        plot_receptive_field_growth,
        receptive_fields,
    )

    rows = receptive_fields(run.model)
    save_figure(plot_receptive_field_growth(rows), run.path / "rf_growth.png")
    layer = default_conv_layer(run.model)
    text = ("## Receptive field\n\n" + format_receptive_fields(rows, markdown=True, only_changes=True)
            + "\n![receptive field per layer](rf_growth.png)\n")
    if layer:
        digit = run.recipe.data.test_split().images[:1]
        save_figure(plot_measured_receptive_field(run.model, layer, digit), run.path / "rf_measured.png")
        text += (f"\nMeasured field of the centre unit of `{layer}` on the first test digit: the solid blue "
                 "box is the extent of the non-zero input gradient on the linearised net (geometry), "
                 "the dashed magenta box the analytic field (where the two agree, the dashes run along the "
                 "blue line), the orange heat the trained net's own gradient.\n\n"
                 "![measured receptive field](rf_measured.png)\n")
    return text


def _section_budget(run: Run) -> str:
    from .analysis.budget import format_budget, parameter_budget, plot_budget

    budget = parameter_budget(run.model)
    save_figure(plot_budget(budget), run.path / "budget.png")
    return ("## Parameter budget\n\n" + format_budget(budget, markdown=True)
            + "\n![parameters and multiply-adds per block](budget.png)\n")


def _section_mistakes(run: Run) -> str:
    from .analysis.mistakes import format_mistakes

    split = run.recipe.data.test_split()
    p, files = write_gallery(run, split)
    names = {f.name for f in files}
    text = "## Mistakes\n\n" + format_mistakes(p, markdown=True) + "\n"
    if "gallery.png" in names:
        text += "Misclassified test digits, highest loss first:\n\n![gallery](gallery.png)\n\n"
    else:
        text += "No test digit is misclassified: no gallery.\n\n"
    text += "![confusion matrix](confusion.png)\n\n![row-normalized confusion](confusion_normalized.png)\n"
    if len(p.misclassified()):
        write_saliency(run, split, p)
        text += "\n" + _saliency_text(run)
    return text


def _saliency_text(run: Run) -> str:
    from .analysis.saliency import default_gradcam_layer, default_methods, early_gradcam_layer

    methods = default_methods(run.model)
    text = ("## Saliency (Captum)\n\nRows: the most confidently misclassified digits, then correct ones, titled "
            "with the true label, the prediction and its confidence. Columns: the digit, one map per method, then "
            "integrated gradients and Grad-CAM blended on the digit. Each method keeps one colour map in every "
            "row, with its colour bar underneath: red and blue for signed methods (evidence for and against the "
            "predicted class, white at 0), white to orange for magnitudes. Each map is scaled on its own, so "
            "compare shapes, not colours, across rows.\n\n![saliency maps](saliency.png)\n")
    if "gradcam" in methods:
        text += (f"\nGrad-CAM weighs the channels of `{default_gradcam_layer(run.model)}`, a map a few cells across; "
                 "upsampled to the digit, each cell becomes a blob that spills off the strokes onto empty paper. "
                 "Much of that glow is the map's resolution, not a sign that the net read the paper.")
        if "gradcam_early" in methods:
            text += (f" The same on the finer `{early_gradcam_layer(run.model)}` (Grad-CAM, earlier conv) stays on "
                     "the strokes; where it still lights a flat background, that layer's channels respond to empty "
                     "paper and the class gradient counts the missing ink as evidence.")
        text += (" Integrated gradients and occlusion measure against a black image, so empty paper gets "
                 "nothing (occlusion only next to a stroke its patch overlaps): check with them which strokes "
                 "mattered.\n")
    return text


def write_inside(run: Run, split: TensorSplit, index: int = 0, *, channels: int = 8,
                 out: Path | None = None) -> tuple[str, list[Path]]:
    """inside.png (feature maps of every block), kernels_first.png and kernels_widest.png (learned
    kernels), stages.png (one map through conv, BatchNorm and ReLU) for test digit ``index``.

    Returns:
        The feature-map table (markdown) and the files written into ``out`` (default: the run).

    Raises:
        ConfigError: ``index`` is outside the test split.
    """
    from .analysis.inside import (
        block_stages,
        feature_maps,
        format_feature_maps,
        kernels,
        plot_block_stages,
        plot_feature_maps,
        plot_kernels,
        widest_conv,
    )
    from .errors import ConfigError

    if not 0 <= index < len(split):
        raise ConfigError(f"--index must be in [0, {len(split)}) (the run's test digits), got {index}")
    out = Path(out) if out is not None else run.path
    image = split.images[index:index + 1]
    maps = feature_maps(run.model, image)
    files = [save_figure(plot_feature_maps(maps, image, channels=channels), out / "inside.png")]
    first = kernels(run.model)
    files.append(save_figure(plot_kernels(*first), out / "kernels_first.png"))
    widest = widest_conv(run.model)
    if widest != first[0]:
        files.append(save_figure(plot_kernels(*kernels(run.model, widest)), out / "kernels_widest.png"))
    conv_blocks = [n for n, m in run.model.named_children() if hasattr(m, "conv") and hasattr(m, "bn")]
    if conv_blocks:
        block = conv_blocks[min(1, len(conv_blocks) - 1)]
        # the channel that responds most to this digit: the clearest picture of what BN and ReLU do
        channel = int(next(m for m in maps if m.name == block).maps.amax((1, 2)).argmax())
        files.append(save_figure(plot_block_stages(block_stages(run.model, image, block, channel)),
                                 out / "stages.png"))
    return format_feature_maps(maps, markdown=True), files


def write_preview(config, out: Path, *, root: str | Path | None = None, train_size: int | None = None,
                  n: int = 8) -> tuple[str, list[Path]]:
    """augmentation.png (real digits and their augmented copies, with ``config``'s settings) and
    class_balance.png (images per digit in the training split) into ``out``.

    Returns:
        The class-balance table (markdown) and the files written.
    """
    from .analysis.preview import (
        augmentation_preview,
        class_balance,
        format_class_balance,
        plot_augmentation_preview,
        plot_class_balance,
    )

    train = load_split(root, train=True, size=train_size)
    counts = class_balance(train)
    files = [save_figure(plot_augmentation_preview(augmentation_preview(train, config, n=n)), out / "augmentation.png"),
             save_figure(plot_class_balance(counts, title=f"Class balance of the {len(train):,} training digits"),
                         out / "class_balance.png")]
    return format_class_balance(counts, markdown=True), files


def _section_data(run: Run) -> str:
    data = run.recipe.data
    table, _ = write_preview(run.config, run.path, root=data.readable_root(), train_size=data.train_size)
    return ("## What the net was trained on\n\nThe first training digits and three augmented copies of each, drawn "
            "by the trainer's own augmentation with this run's settings:\n\n![augmentation](augmentation.png)\n\n"
            "![class balance](class_balance.png)\n\n" + table)


def _section_inside(run: Run) -> str:
    split = run.recipe.data.test_split()
    table, files = write_inside(run, split, index=0)
    names = [f.name for f in files]
    text = (f"## Inside the network\n\nTest digit 0 (label {int(split.labels[0])}) through every block: the "
            "digit with the block's receptive field drawn at its centre, then its first maps (black is zero: "
            "switched off by ReLU).\n\n" + table + "\n![feature maps](inside.png)\n\nThe learned kernels of the "
            "first conv (red weights add, blue subtract):\n\n![first conv kernels](kernels_first.png)\n")
    if "kernels_widest.png" in names:
        text += "\nThe kernels of the widest conv:\n\n![widest conv kernels](kernels_widest.png)\n"
    if "stages.png" in names:
        text += "\nOne map through conv, BatchNorm and ReLU:\n\n![conv, BatchNorm, ReLU](stages.png)\n"
    return text


#: Report sections in order.
SECTIONS: list[Callable[[Run], str]] = [_section_check, _section_history, _section_data, _section_architecture,
                                        _section_summary,
                                        _section_receptive_field, _section_budget, _section_inside,
                                        _section_mistakes]


def write_report(run: Run) -> Path:
    """Write ``report.md`` (and its figures) into the run directory.

    A section that fails is reported in the file with its error, not silently dropped.
    """
    meta = run.meta
    cfg = run.config
    sizes = run.recipe.data.sizes()
    subset = "".join(f" --{k.replace('_', '-')} {v}" for k, v in sizes.items() if v)
    patches = "; layer 1's BatchNorm from patch statistics (s6lab.patch_batchnorm: the same math, one pass less)"
    header = [
        f"# Run report: `{run.spec.name}`",
        "",
        run.spec.description,
        "",
        f"- data: {'a subset of ' if subset else ''}MNIST{subset and ' (' + subset.strip() + ')'}",
        f"- seed {cfg.seed}, {len(run.history)} of {cfg.epochs} epochs, batch {cfg.batch_size}, "
        f"{cfg.optimizer} lr {cfg.lr} ({cfg.schedule}), augmentation {'on' if cfg.augment else 'off'}",
        f"- machine: {machine_line(meta)}; trained in {recorded_precision(meta)}"
        f"{' (' + meta['precision_reason'] + ')' if meta.get('precision_reason') else ''}"
        f"{patches if cfg.first_bn_from_patches else ''}",  # Recipe.from_dict pins it to what ran
        f"- reproduce: `{reproduce_command(run)}`",
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
