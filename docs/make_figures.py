"""Regenerate every figure and table the docs show, from the measured runs in results/.

    python docs/make_figures.py          (or: make docs-figures)
    python docs/make_figures.py --only benchmarks|inside|preview|diagrams|fields|attribution   (one group)

Inputs are produced by `make evidence` (the reference runs, the comparisons) and
`make bench` (throughput). Nothing here trains; a missing input is named with the command
that makes it.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
FIGURES = ROOT / "docs" / "figures"
GENERATED = ROOT / "docs" / "generated"
REFERENCE_RUN = RESULTS / "runs" / "s6" / "e15-s0"


def need(path: Path, command: str) -> Path:
    if not path.exists():
        sys.exit(f"missing {path.relative_to(ROOT)}: run `{command}` first")
    return path


def main() -> None:
    from s6lab import get_model, load_run, summary
    from s6lab._io import atomic_write_text
    from s6lab.analysis.budget import format_budget, parameter_budget, plot_budget
    from s6lab.analysis.curves import plot_history
    from s6lab.analysis.mistakes import format_mistakes
    from s6lab.analysis.receptive_field import (
        format_receptive_fields,
        plot_receptive_field_growth,
        receptive_fields,
    )
    from s6lab.check import assignment_check, format_check
    from s6lab.data import load_split
    from s6lab.report import save_figure, write_gallery

    FIGURES.mkdir(parents=True, exist_ok=True)
    GENERATED.mkdir(parents=True, exist_ok=True)

    def text(name: str, body: str) -> None:
        atomic_write_text(GENERATED / name, body)

    # the architecture, no training needed
    model = get_model("s6")
    text("summary_s6.txt", str(summary(model)) + "\n")
    rows = receptive_fields(model)
    text("rf_s6.md", format_receptive_fields(rows, markdown=True))
    text("rf_s6_changes.md", format_receptive_fields(rows, markdown=True, only_changes=True))
    save_figure(plot_receptive_field_growth(rows), FIGURES / "rf_growth.png")
    budget = parameter_budget(model)
    text("budget_s6_blocks.md", format_budget(budget, markdown=True))
    text("budget_s6_layers.md", format_budget(budget, level="layers", markdown=True))
    save_figure(plot_budget(budget), FIGURES / "budget.png")
    for name in ("s6-no-1x1", "s6-gap", "s6-two-3x3", "s6-5k"):
        text(f"budget_{name}_blocks.md", format_budget(parameter_budget(get_model(name)), markdown=True))
        text(f"rf_{name}_changes.md", format_receptive_fields(receptive_fields(get_model(name)), markdown=True,
                                                             only_changes=True))

    # the trained reference run (seed 0)
    run = load_run(need(REFERENCE_RUN, "make evidence-s6"))
    text("check_s6.md", format_check(assignment_check(run.model, run.history), markdown=True))
    save_figure(plot_history(run.history), FIGURES / "curves.png")
    test = load_split(train=False)
    p, files = write_gallery(run, test)
    for f in files:
        shutil.copy(f, FIGURES / f.name)
    text("mistakes_s6.md", format_mistakes(p, markdown=True))

    # comparisons and benchmark, as measured
    for name, command in (("reference", "make evidence-s6"), ("small-nets", "make evidence-small"),
                          ("layer-choices", "make evidence-variants")):
        md = need(RESULTS / f"{name}.md", command).read_text()
        table = md.split("\n\n![")[0].split("\n", 2)[2]  # drop the title, keep table + note
        text(f"{name}.md", table.strip() + "\n")
        for suffix in ("_curves.png", "_params.png"):
            shutil.copy(RESULTS / f"{name}{suffix}", FIGURES / f"{name}{suffix}")
    print(f"wrote {len(list(FIGURES.iterdir()))} figures to {FIGURES} and tables to {GENERATED}")


#: a run of today's recipe whose weights exist where `make recipe-confirm` trained it (seed 0, fp32)
INSIDE_RUN = RESULTS / "recipe" / "runs" / "wd-5e-4-18-epochs" / "fp32-s0"


def inside() -> None:
    """The "inside the network" figures of the layer-by-layer page, from a run of today's recipe.

    Weights are not committed: on a fresh clone, `make recipe-confirm` (seed 0 at least) trains them.
    """
    from s6lab import load_run
    from s6lab.data import load_split
    from s6lab.report import write_inside

    run = load_run(need(INSIDE_RUN, "make recipe-confirm"))
    table, files = write_inside(run, load_split(train=False, size=10), index=0, out=FIGURES)
    atomic_write_text(GENERATED / "inside_s6.md", table)
    print(f"wrote {', '.join(f.name for f in files)} to {FIGURES}")


def preview() -> None:
    """The data and augmentation figures of getting started (the default recipe, no training)."""
    from s6lab import get_recipe
    from s6lab.report import write_preview

    table, files = write_preview(get_recipe("s6").train, FIGURES)
    atomic_write_text(GENERATED / "class_balance.md", table)
    print(f"wrote {', '.join(f.name for f in files)} to {FIGURES}")


#: variants whose architecture changes the diagram, each drawn beside the reference on the comparing page
DIAGRAM_PAIRS = ("s6-no-1x1", "s6-two-3x3", "s6-gap", "s6-pool-after-1x1", "s6-8k", "s6-5k")


def diagrams() -> None:
    """The architecture diagrams: the reference net (layer by layer) and each variant beside it
    (comparing variants). No training."""
    from s6lab import get_model
    from s6lab._io import save_figure
    from s6lab.analysis.diagram import diagram_boxes, format_diagram, plot_diagram, plot_diagrams_side_by_side

    files = [save_figure(plot_diagram(get_model("s6"), title="s6: the reference net"), FIGURES / "diagram_s6.png")]
    atomic_write_text(GENERATED / "diagram_s6.md", format_diagram(diagram_boxes(get_model("s6")), markdown=True))
    for name in DIAGRAM_PAIRS:
        pair = {"s6": get_model("s6"), name: get_model(name)}
        files.append(save_figure(plot_diagrams_side_by_side(pair), FIGURES / f"diagram_s6_vs_{name}.png"))
    print(f"wrote {', '.join(f.name for f in files)} to {FIGURES}")


def recipe_fields_table() -> str:
    """Every TrainConfig and DataSelection field with its type, default and the comment that documents it
    (the same text as `s6lab train --help`)."""
    import typing
    from dataclasses import MISSING, fields

    from s6lab.cli import config_help
    from s6lab.recipe import DataSelection
    from s6lab.train import TrainConfig

    lines = ["| field | type | default | what it decides |", "|---|---|---|---|"]
    for cls in (TrainConfig, DataSelection):
        helps, hints = config_help(cls), typing.get_type_hints(cls)
        for f in fields(cls):
            kind = str(hints[f.name]).replace("typing.", "").replace("<class '", "").replace("'>", "")
            kind = kind.replace(" | ", " or ")  # a bar would split the markdown table
            default = "" if f.default is MISSING else f"`{f.default!r}`"
            speed = " (speed only: runs differing here are the same run)" if f.metadata.get("speed_only") else ""
            lines.append(f"| `{cls.__name__}.{f.name}` | `{kind}` | {default} | "
                         f"{helps.get(f.name, '').replace('|', '/')}{speed} |")
    return "\n".join(lines) + "\n"


def fields_table() -> None:
    """The recipe's fields for the API reference (no training)."""
    atomic_write_text(GENERATED / "recipe_fields.md", recipe_fields_table())
    print(f"wrote {GENERATED / 'recipe_fields.md'}")


def attribution() -> None:
    """The saliency grid and the measured receptive field, from a run of today's recipe (as inside())."""
    from s6lab import load_run
    from s6lab._io import save_figure
    from s6lab.analysis.inside import default_conv_layer
    from s6lab.analysis.mistakes import find_mistakes
    from s6lab.analysis.receptive_field import plot_measured_receptive_field
    from s6lab.data import load_split
    from s6lab.report import write_saliency

    run = load_run(need(INSIDE_RUN, "make recipe-confirm"))
    test = load_split(train=False)
    layer = default_conv_layer(run.model)  # conv3.conv: the layer the report and Grad-CAM look at too
    files = [save_figure(plot_measured_receptive_field(run.model, layer, test.images[:1]), FIGURES / "rf_measured.png"),
             write_saliency(run, test, find_mistakes(run.model, test), out=FIGURES)]
    print(f"wrote {', '.join(f.name for f in files)} to {FIGURES}")


def benchmark_tables() -> None:
    """The benchmark tables the speed tutorial shows, as measured (the raw JSON left out)."""
    from s6lab._io import atomic_write_text

    avx2, avx512 = "on an AVX2 CPU without bf16", "on an AVX-512 CPU with bf16"
    for name, command in (("throughput", "make bench"), ("throughput-full", "make bench-full"),
                          ("levers", "make bench-levers"), ("warmup-seeds", "make bench-warmup-seeds"),
                          ("levers-avx2-no-bf16", f"make bench-levers ({avx2})"),
                          ("levers-avx2-no-bf16-capped-on-avx512",
                           f"make bench-levers PREVIEW=avx2 ({avx512}, capped to AVX2)"),
                          ("speedrun-avx2-no-bf16", f"make bench-speedrun ({avx2})"),
                          ("speedrun-avx512-bf16", f"make bench-speedrun ({avx512})"),
                          ("speedrun-bf16-avx512-bf16", f"make bench-speedrun SPEEDRUN=s6-speedrun-bf16 ({avx512})"),
                          ("speedrun-bf16-avx512-bf16-session15",  # session 15's run, kept under this name
                           f"make bench-speedrun SPEEDRUN=s6-speedrun-bf16 ({avx512}, session 15)"),
                          ("speedrun-bf16-avx512-bf16-session16",  # session 16's run, kept under this name
                           f"make bench-speedrun SPEEDRUN=s6-speedrun-bf16 ({avx512}, session 16)"),
                          ("speedrun-bf16-avx2-no-bf16-capped-on-avx512",
                           f"make bench-speedrun SPEEDRUN=s6-speedrun-bf16 PREVIEW=avx2 ({avx512}, capped to AVX2)"),
                          ("fusion-avx2-no-bf16", f"make bench-fusion ({avx2})"),
                          ("fusion-avx2-no-bf16-capped-on-avx512",
                           f"make bench-fusion PREVIEW=avx2 ({avx512}, capped to AVX2)"),
                          ("fusion-avx512-bf16", f"make bench-fusion ({avx512})"),
                          ("fusion-avx512-bf16-session15",  # session 15's run, kept under this name
                           f"make bench-fusion ({avx512}, session 15)"),
                          ("fusion-avx512-bf16-session16",  # session 16's run, kept under this name
                           f"make bench-fusion ({avx512}, session 16)"),
                          ("data-parallel-avx2-no-bf16", f"make bench-data-parallel ({avx2})"),
                          ("data-parallel-avx512-bf16", f"make bench-data-parallel ({avx512})"),
                          ("data-parallel-avx2-no-bf16-capped-on-avx512",
                           f"make bench-data-parallel PREVIEW=avx2 ({avx512}, capped to AVX2)")):
        bench = need(ROOT / "benchmarks" / "results" / f"{name}.md", command).read_text()
        atomic_write_text(GENERATED / f"{name}.md", bench.split("<details>")[0].strip() + "\n")
    levers_full = need(ROOT / "benchmarks" / "results" / "levers-full.md", "make bench-levers-full").read_text()
    command = levers_full.splitlines()[0]
    parity = levers_full[levers_full.index("| full run"):]  # the accuracy-parity table only
    atomic_write_text(GENERATED / "parity.md", f"{command}\n\n{parity.strip()}\n")
    print(f"wrote the benchmark tables to {GENERATED}")


PARTS = {"benchmarks": benchmark_tables, "inside": inside, "preview": preview, "diagrams": diagrams,
         "fields": fields_table, "attribution": attribution}

if __name__ == "__main__":
    from s6lab._io import atomic_write_text

    if len(sys.argv) == 3 and sys.argv[1] == "--only" and sys.argv[2] in PARTS:
        PARTS[sys.argv[2]]()
    elif sys.argv[1:]:
        sys.exit(f"usage: python docs/make_figures.py [--only {'|'.join(PARTS)}]")
    else:
        main()
        for part in PARTS.values():
            part()
