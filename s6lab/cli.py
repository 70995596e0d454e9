"""The ``s6lab`` command: a thin layer over the library. Only this module prints."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


class CLIError(Exception):
    """A user-facing error: printed without a traceback, exit status 2."""


def count_up_to(most: int, what: str) -> Callable[[str], int]:
    """An argparse type: a whole number from 1 to ``most``; ``what`` says why there is a most (a figure of
    100,000 rows never finishes drawing)."""

    def count(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
        if not 1 <= value <= most:
            raise argparse.ArgumentTypeError(f"must be 1 to {most} ({what}), got {value}")
        return value

    return count


def png_path(text: str) -> str:
    """An argparse type: a figure's file name, which must end in ``.png`` (the figure is written as PNG)."""
    if Path(text).suffix.lower() != ".png":
        raise argparse.ArgumentTypeError(f"the figure is a PNG: give a file name ending in .png, got {text!r}")
    return text


def file_stem(text: str) -> str:
    """An argparse type: a name for files inside ``--out`` (letters, digits, ``-``, ``_``, ``.``; no folders)."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*", text):
        raise argparse.ArgumentTypeError(f"give a plain file name (letters, digits, - _ .), not a path or empty, "
                                         f"got {text!r}; --results-dir chooses the folder")
    return text


class OneLineParser(argparse.ArgumentParser):
    """argparse with its errors in one line that names the fix (``s6lab train: error: argument --epochs:
    invalid int value: 'abc'; see `s6lab train --help```), not the whole usage block above it."""

    def error(self, message: str):  # type: ignore[override]
        if message.startswith("the following arguments are required: COMMAND"):
            options = [w for w in getattr(self, "_words", []) if w.startswith("-") and w not in ("-v", "--verbose")]
            unknown = f"unrecognized arguments: {' '.join(options)}; " if options else ""
            message = f"{unknown}give a command, one of {', '.join(COMMANDS)}"
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        """An unknown option after a command is refused by that command, with its own --help, not by the
        top-level parser (whose usage names no option of the command)."""
        self._words = list(sys.argv[1:] if args is None else args)
        parsed, extras = super().parse_known_args(args, namespace)
        command = getattr(parsed, "command", None)
        if extras and self.prog == "s6lab" and command:
            self.exit(2, f"s6lab {command}: error: unrecognized arguments: {' '.join(extras)}; see "
                         f"`s6lab {command} --help`\n")
        empty = [name for name, value in vars(parsed).items() if isinstance(value, str) and not value.strip()]
        if empty and self.prog == "s6lab":  # `--out ''` meant the current folder, `--model ''` the default model
            words = self._words
            typed = [w[:-1] for w in words if w.startswith("--") and w.endswith("=")] + [
                words[i - 1] for i, w in enumerate(words) if not w.strip() and i and words[i - 1].startswith("-")]
            if typed:  # the option as typed (--results-dir, whose value compare keeps as `out`)
                option, fix = typed[0], "give a value, or leave the option out for its default"
            else:  # a positional argument: the run directory, the pattern
                option, fix = empty[0], "give one"
            self.exit(2, f"s6lab {command}: error: {option} is empty; {fix}; see `s6lab {command} --help`\n")
        return parsed, extras


Handler = Callable[[argparse.Namespace], int]


def command(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        COMMANDS[name] = fn
        return fn
    return register


#: commands renamed to say the one name of their concept: old name -> new name (kept for one release)
RENAMED_COMMANDS = {"gallery": "mistakes"}


def _say_renamed(old: str, new: str) -> None:
    print(f"s6lab: warning: `{old}` is now `{new}`; the old spelling goes in the next release", file=sys.stderr)


def _renamed_command(argv: list[str]) -> list[str]:
    """``argv`` with an old command name (the first word that is not an option) replaced by its new one."""
    for i, word in enumerate(argv):
        if not word.startswith("-"):
            if word in RENAMED_COMMANDS:
                _say_renamed(f"s6lab {word}", f"s6lab {RENAMED_COMMANDS[word]}")
                argv[i] = RENAMED_COMMANDS[word]
            break
    return argv


class _Renamed(argparse.Action):
    """An option's old spelling: stores into the new option's destination, and says it was renamed."""

    def __init__(self, option_strings: list[str], dest: str, new: str = "", **kwargs: Any) -> None:
        super().__init__(option_strings, dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kwargs)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        _say_renamed(option_string or self.dest, self.new)
        setattr(namespace, self.dest, values)


def renamed(parser: argparse.ArgumentParser, old: str, new: str, **kwargs: Any) -> None:
    """Keep ``old`` working as a hidden, deprecated spelling of ``new`` (for one release)."""
    parser.add_argument(old, action=_Renamed, new=new, **kwargs)


def _overrides(pairs: Sequence[str] | None) -> dict[str, object]:
    """``["dropout=0.05", "batchnorm=false"]`` -> ``{"dropout": 0.05, "batchnorm": False}``; ``auto`` for a
    field where None means auto (``first_bn_from_patches=auto``) -> None, even over a preset that pins it."""
    from .train import field_kinds

    result: dict[str, object] = {}
    auto = {name for name, kinds in field_kinds().items() if set(kinds) == {bool, type(None)}}  # None means auto
    for pair in pairs or ():
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise CLIError(f"--set expects KEY=VALUE, got {pair!r} (e.g. --set dropout=0.05)")
        low = raw.lower()
        value: object
        if key in auto and low == "auto":
            value = None
        elif low in ("true", "false"):
            value = low == "true"
        else:
            try:
                value = int(raw)
            except ValueError:
                try:
                    value = float(raw)
                except ValueError:
                    value = raw
        result[key] = value
    return result


@command("models")
def _models(args: argparse.Namespace) -> int:
    from .analysis.receptive_field import final_receptive_field
    from .check import count_parameters
    from .models import get_model, get_spec, list_models

    names = list_models(args.pattern)
    if not names:
        raise CLIError(f"no model matches {args.pattern!r}; run `s6lab models` to list them")
    rows = []
    for name in names:
        model = get_model(name)
        rows.append({"name": name, "params": count_parameters(model), "receptive_field": final_receptive_field(model),
                     "description": get_spec(name).description})
    if args.json:
        return _print_json(rows)
    from ._table import render_table

    print(render_table(("name", "params", "RF", "description"), [
        (r["name"], f"{r['params']:,}", "?" if r["receptive_field"] is None else r["receptive_field"],
         r["description"]) for r in rows], align="lrrl"), end="")
    return 0


def _print_json(value: object) -> int:
    """``--json``: one JSON document on stdout (dataclasses and paths included)."""
    import dataclasses
    import json

    def plain(o: object) -> object:
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return {f.name: plain(getattr(o, f.name)) for f in dataclasses.fields(o)
                    if not hasattr(getattr(o, f.name), "shape")}  # tensors stay out
        if isinstance(o, (list, tuple)):
            return [plain(v) for v in o]
        if isinstance(o, dict):
            return {str(k): plain(v) for k, v in o.items()}
        return o if isinstance(o, (str, int, float, bool, type(None))) else str(o)

    print(json.dumps(plain(value), indent=2))
    return 0


@command("summary")
def _summary(args: argparse.Namespace) -> int:
    from .models import get_model
    from .summary import summary

    model = get_model(args.model, **_overrides(args.set))
    print(summary(model))
    if args.diagram is not None:
        from ._io import save_figure
        from .analysis.diagram import diagram_boxes, format_diagram, plot_diagram

        boxes = diagram_boxes(model)
        print(format_diagram(boxes), end="")
        print(f"diagram: {save_figure(plot_diagram(boxes, title=args.model), Path(args.diagram))}")
    return 0


@command("data")
def _data(args: argparse.Namespace) -> int:
    from .data import MNIST_FILES, ensure_mnist

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if args.refetch and args.verify_only:
        raise CLIError("--refetch downloads the files again and --verify-only never downloads: give one of them")
    info = ensure_mnist(args.root, download=not args.verify_only, refetch=args.refetch, rehash=args.verify_only,
                        report=say)
    print(f"MNIST root: {info.root}  (source: {info.source})")
    for name in MNIST_FILES:
        print(f"  {info.raw / name}  ok")
    print(f"load it with torchvision.datasets.MNIST({str(info.root)!r}, train=True, download=False)")
    return 0


def config_help(cls: type) -> dict[str, str]:
    """Each dataclass field's trailing ``# comment`` in ``cls``'s source: its help text.

    The comments are the documentation a reader of the dataclass sees; deriving the CLI's
    help from them keeps one source. Returns ``{}`` where the source is not available.
    """
    import inspect
    import re

    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    pattern = re.compile(r"^\s+(\w+): [^=]+=.*?#\s*(.+)$")
    return {m.group(1): m.group(2).strip() for m in map(pattern.match, source.splitlines()) if m}


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, title: str,
                         exclude: frozenset[str] = frozenset()) -> None:
    """One option per field of the dataclass ``cls``: type, choices, help and default derived.

    Booleans get ``--x/--no-x``; every option defaults to ``None`` (not given), so that
    `config_values` applies only what the user typed over the recipe's own values.
    """
    import typing
    from dataclasses import MISSING, fields

    from .train import CHOICES, RETIRED, TrainConfig

    helps = config_help(cls)
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(title)
    for f in fields(cls):
        if f.name in exclude:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        text = helps.get(f.name, f.name).replace("%", "%%")
        kinds = [k for k in typing.get_args(hints[f.name]) or (hints[f.name],) if k is not type(None)]
        if kinds == [bool]:  # bool, or bool | None where None means auto
            shown = {True: "on", False: "off", None: "auto"}[default]
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                               help=f"{text} (default: {shown})")
            continue
        kind = kinds[0] if kinds and kinds[0] in (int, float, str) else str
        shown = f" (default: {default})" if default is not None else ""
        group.add_argument(flag, type=kind, default=None, choices=CHOICES.get(f.name), metavar=None
                           if f.name in CHOICES else f.name.upper(), help=f"{text}{shown}")
    if cls is TrainConfig:
        for name in RETIRED:
            for flag in (f"--{name.replace('_', '-')}", f"--no-{name.replace('_', '-')}"):
                parser.add_argument(flag, action=_Retired, nargs=0)


class _Retired(argparse.Action):
    """A flag of a lever that left the trainer (`s6lab.train.RETIRED`): one line saying why, exit 2."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, argparse.SUPPRESS, default=argparse.SUPPRESS, help=argparse.SUPPRESS,
                         **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from .train import RETIRED

        name = (option_string or "").removeprefix("--").removeprefix("no-").replace("-", "_")
        parser.exit(2, f"s6lab: error: {option_string} is no longer an s6lab option: {RETIRED[name]}, so it "
                       "left the trainer; benchmarks/levers.py still measures it (make bench-levers)\n")


def config_values(args: argparse.Namespace, cls: type, exclude: frozenset[str] = frozenset()) -> dict[str, object]:
    """The fields of ``cls`` the user gave on the command line."""
    from dataclasses import fields

    return {f.name: getattr(args, f.name) for f in fields(cls)
            if f.name not in exclude and getattr(args, f.name, None) is not None}


#: TrainConfig fields that compare sets itself (--epochs for all runs, --seeds per run)
_COMPARE_OWN = frozenset({"epochs", "seed"})


def recipe_from_args(args: argparse.Namespace, *, data: bool = True):
    """The recipe a command line asks for: ``--config FILE`` or ``--model`` (default s6), then the
    recipe flags the user typed, merged by [`get_recipe`][s6lab.models.get_recipe]."""
    from .models import get_recipe
    from .recipe import DataSelection
    from .train import TrainConfig

    config_file = getattr(args, "config", None)
    if config_file is not None and args.model is not None:
        raise CLIError("--model and --config both name the model; drop --model (or edit the file's \"model\")")
    base = read_recipe_file(Path(config_file)) if config_file is not None else get_recipe(args.model or "s6")
    overrides = {**config_values(args, TrainConfig), **_overrides(getattr(args, "set", None))}
    if data:
        overrides.update(config_values(args, DataSelection))
    return get_recipe(base, **overrides)


def read_recipe_file(path: Path):
    """A recipe from a JSON file: a run's config.json, or ``{"model": NAME, "train": {...}, "data": {...}}``."""
    import json

    from .models import recipe_from_dict

    try:
        values = json.loads(path.read_text())
    except FileNotFoundError:
        raise CLIError(f"--config {path}: no such file; give a run's config.json or a file written by "
                       "`s6lab train --print-config`") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CLIError(f"--config {path}: cannot read it ({e}); check the path and its permissions") from None
    except json.JSONDecodeError as e:
        raise CLIError(f"--config {path} is not valid JSON ({e.msg} at line {e.lineno}); fix the file, or write a "
                       "fresh one with `s6lab train --print-config > recipe.json`") from None
    return recipe_from_dict(values)


def _recipe_json(recipe) -> str:
    """``--print-config``: the resolved recipe, in the form ``--config`` reads."""
    import json

    resolved = recipe.resolve()
    return json.dumps({**recipe.to_dict(), "resolved": {  # what the recipe means on this machine
        "device": str(resolved.device), "precision": resolved.precision.precision,
        "why": resolved.precision.reason, "patch_statistics": resolved.patches.on}}, indent=2)


@command("train")
def _train(args: argparse.Namespace) -> int:
    from .check import all_passed, assignment_check, format_check
    from .report import advice, write_report
    from .report_html import render_html
    from .runs import run_dir, train_run

    recipe = recipe_from_args(args)
    if args.print_config:
        print(_recipe_json(recipe))
        return 0
    out = Path(args.out) if args.out else run_dir(".", recipe.name, recipe.train.seed, recipe.train.epochs,
                                                 recipe.data.train_size)
    if args.quiet:  # fit says it beside its progress bars; without them, say it here
        from .train import start_line

        resolved = recipe.resolve()
        print(start_line(resolved.device, resolved.precision, resolved.patches), file=sys.stderr)
    run = train_run(recipe, out, resume=args.resume, progress=not args.quiet)
    rows = assignment_check(run.model, run.history)
    print(format_check(rows), end="")
    _print_advice(advice(run))
    if args.no_report:
        print(f"run written to {out} (no report: write it with `s6lab report {out} --html`)")
    else:
        print(f"run written to {out} (report: {write_report(run)}, {render_html(out)})")
    return 0 if all_passed(rows) or not args.strict else 1


@command("doctor")
def _doctor(args: argparse.Namespace) -> int:
    from .doctor import diagnose, doctor_json, format_doctor

    if not args.seconds > 0:
        raise CLIError(f"--seconds must be > 0, got {args.seconds}")
    report = diagnose(root=args.root, measure=not args.no_measure, device=args.device, budget_seconds=args.seconds)
    print(doctor_json(report) if args.json else format_doctor(report))
    return 0


@command("check")
def _check(args: argparse.Namespace) -> int:
    from .check import all_passed, assignment_check, format_check, requirements_json
    from .runs import load_run

    run = load_run(args.run_dir, need_weights=False)  # the rules need the architecture, not the weights
    rows = assignment_check(run.model, run.history)
    if args.json:
        import json

        from .runs import recorded_precision

        print(json.dumps({"run": str(run.path), "passed": all_passed(rows), "precision": recorded_precision(run.meta),
                          "machine_class": run.meta.get("machine_class"),
                          "requirements": requirements_json(rows)}, indent=2))
        return 0 if all_passed(rows) else 1
    from .report import advice

    print(format_check(rows, markdown=args.markdown), end="")
    _print_advice(advice(run, markdown=args.markdown))
    return 0 if all_passed(rows) else 1


@command("rf")
def _rf(args: argparse.Namespace) -> int:
    from .analysis.receptive_field import (
        format_receptive_fields,
        plot_receptive_field_growth,
        receptive_fields,
    )
    from .models import get_model

    rows = receptive_fields(get_model(args.model, **_overrides(args.set)))
    if args.json:
        return _print_json(rows)
    print(format_receptive_fields(rows, markdown=args.markdown, only_changes=not args.all), end="")
    if args.plot:
        from ._io import save_figure

        print(f"figure: {save_figure(plot_receptive_field_growth(rows), Path(args.plot))}")
    return 0


@command("budget")
def _budget(args: argparse.Namespace) -> int:
    from .analysis.budget import check_budget, format_budget, parameter_budget, plot_budget
    from .models import get_model

    model = get_model(args.model, **_overrides(args.set))
    if args.max_params is not None and (args.max_params < 1):
        raise CLIError(f"--max-params must be a positive integer, got {args.max_params}")
    budget = parameter_budget(model)
    if args.json:
        verdict = check_budget(model, args.max_params) if args.max_params is not None else None
        _print_json({"budget": budget, "check": verdict})
        return 0 if verdict is None or verdict.ok else 1
    print(format_budget(budget, level="layers" if args.layers else "blocks", markdown=args.markdown), end="")
    if args.plot:
        from ._io import save_figure

        print(f"figure: {save_figure(plot_budget(budget), Path(args.plot))}")
    if args.max_params is not None:
        verdict = check_budget(model, args.max_params)
        print(("OK: " if verdict.ok else "OVER BUDGET: ") + verdict.message)
        return 0 if verdict.ok else 1
    return 0


def _print_advice(text: str) -> None:
    """What a run that missed the rule can try, after a blank line (nothing for a run that met it)."""
    if text:
        print("\n" + text, end="")


def _run_and_test_split(args: argparse.Namespace):
    """The run in ``args.run_dir`` and the test images it was evaluated on."""
    from .runs import load_run

    run = load_run(args.run_dir)
    return run, run.recipe.data.test_split(args.root)


@command("mistakes")
def _mistakes(args: argparse.Namespace) -> int:
    from .analysis.mistakes import format_mistakes
    from .report import write_gallery

    run, split = _run_and_test_split(args)
    out = _figure_folder(args, run)
    shown = _shown_by_report(run, out, ("gallery.png", "confusion.png", "confusion_normalized.png"))
    p, files = write_gallery(run, split, n=args.n, out=out)
    print(format_mistakes(p, markdown=args.markdown), end="")
    if not len(p.misclassified()):
        print("no misclassified test images: no gallery written")
    _say_written(files, shown)
    return 0


def _figure_folder(args: argparse.Namespace, run) -> Path:
    out = Path(args.out) if args.out else run.path
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} is a file; choose a folder for the figures")
    return out


def _shown_by_report(run, out: Path, names: tuple[str, ...]) -> set[Path]:
    """The figures in ``out`` that the run's report.md shows (so replacing them changes the report)."""
    report = run.path / "report.md"
    if out.resolve() != run.path.resolve() or not report.exists():
        return set()
    text = report.read_text()
    return {out / name for name in names if f"]({name})" in text and (out / name).exists()}


def _say_written(files: list[Path], shown: set[Path]) -> None:
    for f in files:
        note = " (replaced the figure report.md shows; pass --out DIR to keep it)" if f in shown else ""
        print(f"wrote {f}{note}")


@command("saliency")
def _saliency(args: argparse.Namespace) -> int:
    from .analysis.mistakes import find_mistakes
    from .report import write_saliency

    run, split = _run_and_test_split(args)
    out = _figure_folder(args, run)
    shown = _shown_by_report(run, out, ("saliency.png",))
    path = write_saliency(run, split, find_mistakes(run.model, split), n=args.n,
                          methods=tuple(args.methods) if args.methods else None, layer=args.layer, out=out)
    _say_written([path], shown)
    return 0


@command("inside")
def _inside(args: argparse.Namespace) -> int:
    from .report import write_inside

    run, split = _run_and_test_split(args)
    out = _figure_folder(args, run)
    shown = _shown_by_report(run, out, ("inside.png", "kernels_first.png", "kernels_widest.png", "stages.png"))
    table, files = write_inside(run, split, index=args.index, channels=args.n, out=out)
    print(f"test digit {args.index} (label {int(split.labels[args.index])}):")
    print(table, end="")
    _say_written(files, shown)
    return 0


@command("preview")
def _preview(args: argparse.Namespace) -> int:
    from .report import write_preview

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} is a file; choose a folder for the figures")
    config = recipe_from_args(args, data=False).train
    table, files = write_preview(config, out, root=args.root, n=args.n)
    print(f"augmentation in the {args.model} recipe: rotation up to {config.rotation:g} degrees, shift up to "
          f"{100 * config.translate:g}% of the side" + ("" if config.augment else " (augmentation off)"))
    print(table, end="")
    for f in files:
        print(f"wrote {f}")
    return 0


@command("report")
def _report(args: argparse.Namespace) -> int:
    from .report import write_report
    from .runs import load_run

    print(f"wrote {write_report(load_run(args.run_dir))}")
    if args.html:
        from .report_html import render_html

        print(f"wrote {render_html(args.run_dir)}")
    return 0


@command("compare")
def _compare(args: argparse.Namespace) -> int:
    from .comparison import compare, format_comparison, render
    from .parallel import format_result
    from .train import TrainConfig

    def job_done(result) -> None:  # one line per parallel training, as it finishes
        print(f"s6lab compare: {format_result(result)}", file=sys.stderr, flush=True)

    if args.old_variants:  # the spelling before --model: still accepted, for one release
        _say_renamed("compare VARIANT ...", "compare --model NAME ...")
        args.variants = [*(args.variants or []), *args.old_variants]
    if not args.variants:
        raise CLIError("name the variants to compare: --model NAME [NAME ...] (`s6lab models` lists them)")
    result = compare(args.variants, seeds=args.seeds, epochs=args.epochs, out=args.out,
                     train=not args.no_train, data_root=args.root, train_size=args.train_size,
                     test_size=args.test_size, progress=not args.quiet,
                     recipe=config_values(args, TrainConfig, exclude=_COMPARE_OWN), jobs=args.jobs,
                     threads_per_job=args.threads_per_job, backend=args.backend, address=args.address,
                     on_job=None if args.quiet else job_done)
    written = render(result, args.out, args.name)
    if args.json:
        return _print_json({"epochs": result.epochs, "seeds": list(result.seeds), "rows": [
            {k: v for k, v in vars(r).items() if k != "runs"} for r in result.rows], "files": written})
    print(format_comparison(result, markdown=args.markdown), end="")
    for path in written:
        print(f"wrote {path}")
    return 0


def _version() -> str:
    from . import __version__

    return __version__


MODEL_HELP = "registered model name (`s6lab models` lists them; default: s6)"


def add_model_arguments(parser: argparse.ArgumentParser, *, model: bool = True, default: str | None = "s6") -> None:
    """``--model NAME`` and ``--set KEY=VALUE``: the same spelling and help in every command."""
    if model:
        parser.add_argument("--model", default=default, help=MODEL_HELP)
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="architecture override, repeatable (dropout=0.05, batchnorm=false, ...)")


def add_root_argument(parser: argparse.ArgumentParser) -> None:
    """``--root DIR``: where MNIST lives, in every command that reads it."""
    parser.add_argument("--root", metavar="DIR", help="MNIST data root (default: $S6LAB_DATA or ~/.cache/s6lab)")


def build_parser() -> argparse.ArgumentParser:
    from dataclasses import fields

    from .recipe import DataSelection
    from .train import TrainConfig

    parser = OneLineParser(
        prog="s6lab", description="Learn how small CNNs are designed: train the S6 Net and its variants on MNIST, "
        "check the assignment, read receptive fields, budgets, mistakes and saliency.",
        epilog="Start with `s6lab doctor` (what to expect on this machine), then `s6lab train`. "
               "`s6lab COMMAND --help` for each command's options.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress messages")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_parser = sub.add_parser

    def add_command(*a, **kw):  # every command also takes -v after its name
        command_parser = add_parser(*a, **kw)
        command_parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                                    help="log progress messages")
        return command_parser

    sub.add_parser = add_command  # type: ignore[method-assign]
    sub.required = True

    p = sub.add_parser("models", help="list registered models with parameters and receptive field")
    p.add_argument("pattern", nargs="?", default="*", help="glob over names (default: all)")
    p.add_argument("--json", action="store_true", help="one JSON list")

    p = sub.add_parser("summary", help="torchinfo summary of a model, and its architecture diagram")
    add_model_arguments(p)
    p.add_argument("--diagram", nargs="?", const="diagram.png", metavar="PNG", type=png_path,
                   help="also print the block table and draw the diagram: shape, parameters, multiply-adds and "
                        "receptive field of every block (default file: diagram.png)")

    p = sub.add_parser("data", help="fetch, verify and locate MNIST")
    add_root_argument(p)
    p.add_argument("--refetch", action="store_true",
                   help="fetch again and replace the files once the new ones verify (a failed fetch loses nothing)")
    p.add_argument("--verify-only", action="store_true", help="hash all four files again; never download")

    p = sub.add_parser("train", help="train a model into a run directory, then write its report")
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--config", metavar="FILE", help="read the recipe from a JSON file (a run's config.json, or "
                   "the output of --print-config); the flags you give override it")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved recipe as JSON (the form --config reads) and exit without training")
    add_config_arguments(p, TrainConfig, "training recipe (TrainConfig fields)")
    add_config_arguments(p, DataSelection, "data selection (DataSelection fields)")
    add_model_arguments(p, model=False)
    p.add_argument("--out", help="run directory (default: runs/MODEL/eEPOCHS-sSEED, the layout compare uses)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--strict", action="store_true", help="exit 1 if the assignment check fails")
    p.add_argument("--no-report", action="store_true",
                   help="skip report.md and report.html (seconds of figures); "
                        "`s6lab report RUN --html` writes them later")

    p = sub.add_parser("doctor", help="this machine: versions, CPU and bf16, CUDA, data, seconds per epoch")
    p.add_argument("--json", action="store_true", help="emit the report as JSON")
    p.add_argument("--no-measure", action="store_true", help="skip the ~10 s timing of the reference net")
    p.add_argument("--seconds", type=float, default=8.0, help="time budget of the measurement (default: 8)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    add_root_argument(p)

    p = sub.add_parser("check", help="the assignment's PASS/FAIL table for a run")
    p.add_argument("run_dir", help="a run directory written by `s6lab train` (or `compare`)")
    p.add_argument("--markdown", action="store_true", help="a markdown table")
    p.add_argument("--json", action="store_true", help="the verdict and every requirement as JSON (exit 1 on FAIL)")

    p = sub.add_parser("rf", help="receptive-field table of a model")
    add_model_arguments(p)
    p.add_argument("--markdown", action="store_true", help="a markdown table instead of text")
    p.add_argument("--all", action="store_true", help="every layer, not only those that change the field")
    p.add_argument("--json", action="store_true", help="every row as JSON")
    p.add_argument("--plot", metavar="PNG", type=png_path, help="also save the growth figure")

    p = sub.add_parser("budget", help="parameters and multiply-adds per block or layer")
    add_model_arguments(p)
    p.add_argument("--max-params", type=int,
                   help="exit 1 unless the model has fewer than this many parameters (the bound is exclusive)")
    p.add_argument("--json", action="store_true", help="the budget (and the check) as JSON")
    p.add_argument("--layers", action="store_true", help="per layer instead of per block")
    p.add_argument("--markdown", action="store_true", help="a markdown table instead of text")
    p.add_argument("--plot", metavar="PNG", type=png_path, help="also save the figure")

    p = sub.add_parser("mistakes", help="misclassified digits, confusion matrix, most-confused pairs")
    p.add_argument("run_dir", help="a run directory written by `s6lab train` (or `compare`)")
    p.add_argument("-n", type=count_up_to(100, "images in one gallery"), default=25,
                   help="images in the gallery (1 to 100)")
    p.add_argument("--out", help="folder for the figures (default: the run directory, replacing the report's)")
    p.add_argument("--markdown", action="store_true", help="a markdown table instead of text")
    add_root_argument(p)

    from .analysis.saliency import METHODS

    p = sub.add_parser("saliency", help="Captum attribution maps for a trained run")
    p.add_argument("run_dir", help="a run directory written by `s6lab train` (or `compare`)")
    p.add_argument("--methods", nargs="+", metavar="METHOD",
                   help="any of " + " ".join(METHODS) + " (default: all the net supports)")
    p.add_argument("-n", type=count_up_to(32, "rows of one figure"), default=8, help="rows (samples, 1 to 32)")
    p.add_argument("--out", help="folder for the figure (default: the run directory, replacing the report's)")
    p.add_argument("--layer", help="conv layer for Grad-CAM (default: the last non-1x1 conv)")
    add_root_argument(p)

    p = sub.add_parser("inside", help="feature maps, learned kernels and BatchNorm/ReLU for one test digit")
    p.add_argument("run_dir", help="a run directory written by `s6lab train` (or `compare`)")
    p.add_argument("--index", type=int, default=0, help="which test digit (default: 0)")
    p.add_argument("-n", type=count_up_to(64, "maps per block"), default=8,
                   help="maps shown per block (1 to 64; default: 8)")
    p.add_argument("--out", help="folder for the figures (default: the run directory, replacing the report's)")
    add_root_argument(p)

    p = sub.add_parser("preview", help="real digits beside their augmented copies, and the class balance")
    p.add_argument("--model", default="s6", help="whose recipe's augmentation to show (default: s6)")
    p.add_argument("-n", type=count_up_to(100, "digits in one figure"), default=8,
                   help="digits shown (1 to 100; default: 8)")
    p.add_argument("--out", default="preview", help="folder for the figures (default: ./preview)")
    add_root_argument(p)
    add_config_arguments(p, TrainConfig, "augmentation (TrainConfig fields)",
                         exclude=frozenset(f.name for f in fields(TrainConfig)) - {"augment", "rotation", "translate"})

    p = sub.add_parser("compare", help="train (or load) variants over seeds and tabulate them")
    p.add_argument("--model", nargs="+", metavar="NAME", dest="variants",
                   help="registered model names, one row each (`s6lab models` lists them)")
    p.add_argument("--seed", type=int, nargs="+", default=[0, 1], dest="seeds", metavar="N",
                   help="one run per seed (default: 0 1)")
    p.add_argument("--epochs", type=int, help="epochs of every run (default: the recipe's, 18)")
    p.add_argument("--results-dir", default="results", dest="out", metavar="DIR",
                   help="where the tables and figures go; the runs go to DIR/runs/MODEL/eEPOCHS-sSEED "
                        "(default: results)")
    renamed(p, "--seeds", "--seed", dest="seeds", type=int, nargs="+")
    renamed(p, "--out", "--results-dir", dest="out")
    p.add_argument("old_variants", nargs="*", metavar="VARIANT", help=argparse.SUPPRESS)  # now --model
    p.add_argument("--name", type=file_stem, default="comparison", help="file stem of the tables and figures")
    p.add_argument("--no-train", action="store_true", help="re-render from finished runs only")
    p.add_argument("--json", action="store_true", help="the table as JSON (files are still written)")
    p.add_argument("--train-size", type=int, help="quick mode: train on the first N images")
    p.add_argument("--test-size", type=int, help="quick mode: evaluate on the first N test images")
    p.add_argument("--markdown", action="store_true", help="a markdown table instead of text")
    add_root_argument(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    group = p.add_argument_group("parallel training (finished runs are reused either way)")
    group.add_argument("--jobs", default="1", metavar="N|auto",
                       help="trainings at once; auto: physical cores // threads per job (default: 1, in this "
                            "process)")
    group.add_argument("--threads-per-job", type=int, metavar="K",
                       help="threads of each training (default: cores // jobs; 1 with auto or Ray); jobs x "
                            "threads may not exceed the physical cores")
    group.add_argument("--backend", choices=("process", "ray"), default="process",
                       help="process: worker processes here; ray: a Ray cluster (pip install 's6lab[ray]') "
                            "(default: process)")
    group.add_argument("--address", metavar="HOST:PORT",
                       help="the Ray head (`ray start --head`); default: a local Ray")
    add_config_arguments(p, TrainConfig, "training recipe for every run (TrainConfig fields)", exclude=_COMPARE_OWN)

    p = sub.add_parser("report", help="(re)write report.md and its figures for a run")
    p.add_argument("run_dir", help="a run directory written by `s6lab train` (or `compare`)")
    p.add_argument("--html", action="store_true", help="also write report.html: one self-contained file")
    return parser


#: errors of the disk or the file system a user can fix, with the fix
#: what a command that was stopped (or ran out of disk) has kept, and how to go on
_GOING_ON = {"train": "a training run keeps its last finished epoch: run the same command with --resume",
             "compare": "finished runs are kept and reused: run the same command again"}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(_renamed_command(list(sys.argv[1:] if argv is None else argv)))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")

    def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
        # a user-facing warning (emulated bf16, ...) as one line, not Python's file:line form
        print(f"s6lab {args.command}: warning: {message}", file=sys.stderr)

    previous, warnings.showwarning = warnings.showwarning, show_warning
    try:
        return _run(args)
    finally:  # main() called in-process (a notebook, a test) leaves warnings as it found them
        warnings.showwarning = previous


def _run(args: argparse.Namespace) -> int:
    """One command, with the errors a user can fix turned into one line and an exit status."""
    from .errors import one_line
    from .threads import environment_error

    try:
        if (problem := environment_error()) is not None:
            raise CLIError(problem)
        return COMMANDS[args.command](args)
    except CLIError as e:
        print(f"s6lab {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        going_on = f"; {_GOING_ON[args.command]}" if args.command in _GOING_ON else ""
        print(f"\ninterrupted{going_on}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `s6lab models | head`: the reader left; not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second BrokenPipeError when Python flushes at exit
        return 0
    except Exception as e:  # after BrokenPipeError, an OSError of ours
        if (message := one_line(e)) is None:
            raise  # a programming error is not a user error: let it show
        out_of_disk = isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)
        going_on = f" ({_GOING_ON[args.command]})" if out_of_disk and args.command in _GOING_ON else ""
        print(f"s6lab {args.command}: error: {message}{going_on}", file=sys.stderr)
        return 2
