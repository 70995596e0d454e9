"""Golden files pin what the `s6lab` command prints: every --help, every --json schema, the tables.

A golden file is the expected output, committed under ``tests/golden/``. When a change to the output
is intended, refresh the files and read the diff before committing it::

    S6LAB_REFRESH_GOLDEN=1 pytest tests/test_golden.py
    git diff tests/golden

The JSON goldens pin the *schema* (keys and value types, recursively), not the values, so they
hold on every machine. No test here trains: ``check`` and ``compare`` read the committed runs
under ``results/runs``.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import json
import os
import shutil
import sys
import warnings
from pathlib import Path

import pytest

from s6lab.cli import build_parser, main

GOLDEN = Path(__file__).parent / "golden"
RECORDED = Path(__file__).resolve().parents[1] / "results" / "runs"
REFRESH = "S6LAB_REFRESH_GOLDEN"
HOW_TO_REFRESH = f"{REFRESH}=1 pytest tests/test_golden.py"


def assert_golden(name: str, text: str) -> None:
    """Compare ``text`` with ``tests/golden/NAME``; with ``S6LAB_REFRESH_GOLDEN=1``, rewrite the file instead.

    Args:
        name: the file's path under ``tests/golden/`` (``"help/models.txt"``).
        text: what the code prints now; a final newline is added if missing.
    """
    path = GOLDEN / name
    text = text if text.endswith("\n") else text + "\n"
    if os.environ.get(REFRESH) == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, newline="\n")  # LF on every OS, so the files diff cleanly
        # a warning, not a print: pytest lists it in its summary, and a later CLI call's capsys never has it
        warnings.warn(f"refreshed golden file tests/golden/{name}", stacklevel=2)
        return
    if not path.exists():
        pytest.fail(f"golden file tests/golden/{name} is missing; create it with `{HOW_TO_REFRESH}` "
                    "and read it before committing", pytrace=False)
    expected = path.read_text()
    if text != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(keepends=True), text.splitlines(keepends=True),
                                            fromfile=f"tests/golden/{name}", tofile="printed now"))
        pytest.fail(f"the output differs from tests/golden/{name}:\n{diff}\nIf the change is intended, run "
                    f"`{HOW_TO_REFRESH}` and review `git diff tests/golden`", pytrace=False)


# --- JSON schemas ---------------------------------------------------------------------------------------------

_JSON_TYPES = {bool: "bool", int: "int", float: "float", str: "str", type(None): "null"}


def json_schema(value: object) -> object:
    """Keys and value types of a parsed JSON document, recursively; a list's items are merged into one schema.

    Examples:
        >>> json_schema({"name": "s6", "params": 19602, "rf": [3.0, None]})
        {'name': 'str', 'params': 'int', 'rf': ['float | null']}
    """
    if isinstance(value, dict):
        return {key: json_schema(v) for key, v in value.items()}
    if isinstance(value, list):
        items = [json_schema(v) for v in value]
        return [functools.reduce(_merge, items)] if items else []
    return _JSON_TYPES[type(value)]


def _merge(a: object, b: object) -> object:
    """One schema for two items of a list: ``"int"`` and ``"null"`` make ``"int | null"``."""
    if a == b:
        return a
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        return {key: _merge(a[key], b[key]) for key in a}
    if isinstance(a, list) and isinstance(b, list):
        return [_merge(a[0], b[0])] if a and b else a or b  # an empty list says nothing about its items
    alternatives = {alternative for s in (a, b) for alternative in _spelled(s).split(" | ")}
    return " | ".join(sorted(alternatives))


def _spelled(schema: object) -> str:
    """A schema as one string, for a union: ``["float"]`` is ``"list[float]"``."""
    if isinstance(schema, list):
        return f"list[{_spelled(schema[0])}]" if schema else "list"
    if isinstance(schema, dict):
        return json.dumps(schema, sort_keys=True)
    return str(schema)


def cli(capsys, *argv: str) -> tuple[int, str]:
    """``s6lab ARGV`` in-process: its exit status and stdout."""
    shown = warnings.showwarning
    try:
        code = main(list(argv))
    finally:  # main() routes warnings to its one-line form; give them back to pytest (the refresh notes are some)
        warnings.showwarning = shown
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return code, out


def assert_json_schema(name: str, capsys, *argv: str, code: int = 0) -> None:
    status, out = cli(capsys, *argv)
    assert status == code, out
    assert_golden(f"schema/{name}.json", json.dumps(json_schema(json.loads(out)), indent=2))


def test_models_json_schema(capsys):
    assert_json_schema("models", capsys, "models", "--json")


def test_rf_json_schema(capsys):
    assert_json_schema("rf", capsys, "rf", "--json")


def test_budget_json_schema(capsys):
    assert_json_schema("budget", capsys, "budget", "--json")  # "check": null without --max-params
    assert_json_schema("budget_max_params", capsys, "budget", "--json", "--max-params", "20000")


def test_check_json_schema(capsys, tmp_path):
    """A committed run (config.json and history.json only); it predates ``machine_class``, so that is null."""
    run = tmp_path / "e15-s0"
    shutil.copytree(RECORDED / "s6" / "e15-s0", run)
    assert_json_schema("check", capsys, "check", str(run), "--json")


def test_compare_json_schema(capsys, tmp_path, monkeypatch):
    """Re-renders the committed reference runs with the recipe they were recorded with; trains nothing."""
    from s6lab.runs import run_dir

    monkeypatch.setenv("S6LAB_NATIVE_BF16", "0")  # recorded in bf16: matched by resolved precision
    for seed in (0, 1):
        shutil.copytree(RECORDED / "s6" / f"e15-s{seed}", run_dir(tmp_path, "s6", seed, 15))

    def no_training(*args, **kwargs):
        raise AssertionError("a recorded run was retrained")

    monkeypatch.setattr("s6lab.comparison.train_run", no_training)
    assert_json_schema("compare", capsys, "compare", "--model", "s6", "--seed", "0", "1", "--epochs", "15",
                       "--no-train", "--weight-decay", "0", "--precision", "bf16", "--results-dir", str(tmp_path),
                       "--quiet", "--json")


def _one_fake_gpu(monkeypatch) -> None:
    """``cuda_devices`` lists one device on every machine, so its item type is pinned too."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Fake GPU")


def _uncapped_x86(monkeypatch):
    """No instruction-set caps, and a CPU whose own level reads (as on every x86 Linux machine)."""
    from s6lab import hardware

    for name in hardware.ISA_CAP_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(hardware, "hardware_capability", lambda: "AVX2")


def test_doctor_json_schema(capsys, tmp_path, monkeypatch):
    """``--device cpu``, an empty data root, one fake GPU and no caps: the same lists and nulls on every machine."""
    _one_fake_gpu(monkeypatch)
    _uncapped_x86(monkeypatch)
    assert_json_schema("doctor", capsys, "doctor", "--json", "--no-measure", "--device", "cpu",
                       "--root", str(tmp_path))


def test_doctor_json_schema_with_an_estimate(capsys, tmp_path, monkeypatch):
    """The estimate's keys, with the timing replaced by fixed numbers (nothing is measured)."""
    from s6lab import doctor

    _one_fake_gpu(monkeypatch)
    _uncapped_x86(monkeypatch)
    monkeypatch.setattr(doctor, "estimate_epoch_seconds",
                        lambda device, budget_seconds: doctor.EpochEstimate(12.5, 5000.0, "fp32", 8.0, 25_600))
    status, out = cli(capsys, "doctor", "--json", "--device", "cpu", "--root", str(tmp_path))
    assert status == 0
    assert_golden("schema/doctor_estimate.json", json.dumps(json_schema(json.loads(out)["estimate"]), indent=2))


def test_json_schema_merges_the_items_of_a_list():
    assert json_schema([{"a": 1, "b": None}, {"a": 2.5, "b": "x"}]) == [{"a": "float | int", "b": "null | str"}]
    assert json_schema({"empty": [], "nested": [[1], [], [None]]}) == {"empty": [], "nested": [["int | null"]]}
    assert json_schema([True, 1]) == ["bool | int"]  # a bool is not an int in JSON
    assert json_schema([1, [2.0, 3.0], None]) == ["int | list[float] | null"]


# --- --help ---------------------------------------------------------------------------------------------------

def _commands() -> list[str]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


COMMAND_NAMES = _commands()

# argparse's help layout changes between Python versions (3.13 writes "-o, --output X" where 3.11 wrote
# "-o X, --output X" and rewraps usage; 3.14 adds colour): the goldens are recorded on CI's Python.
HELP_PYTHON = (3, 11)
help_python = pytest.mark.skipif(
    sys.version_info[:2] != HELP_PYTHON,
    reason=f"--help goldens are recorded on Python {HELP_PYTHON[0]}.{HELP_PYTHON[1]} (CI's); argparse formats "
           f"help differently on {sys.version_info[0]}.{sys.version_info[1]}")


@pytest.fixture
def fixed_terminal(monkeypatch):
    """argparse wraps help to the terminal's width (``$COLUMNS``): fix it, and keep colour out."""
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("NO_COLOR", "1")


def help_text(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as e:
        main([*argv, "--help"])
    out, err = capsys.readouterr()
    assert e.value.code == 0 and not err, err
    return out


@help_python
def test_top_level_help(capsys, fixed_terminal):
    text = help_text(capsys)
    assert all(name in text for name in COMMAND_NAMES)
    assert_golden("help/s6lab.txt", text)


@help_python
@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_command_help(capsys, fixed_terminal, name):
    text = help_text(capsys, name)
    assert text.startswith(f"usage: s6lab {name} ")
    assert_golden(f"help/{name}.txt", text)


def test_no_help_golden_for_a_command_that_is_gone():
    if os.environ.get(REFRESH) == "1":
        for path in (GOLDEN / "help").glob("*.txt"):
            if path.stem not in {"s6lab", *COMMAND_NAMES}:
                path.unlink()
                warnings.warn(f"removed golden file {path}", stacklevel=1)
    stale = sorted(p.name for p in (GOLDEN / "help").glob("*.txt") if p.stem not in {"s6lab", *COMMAND_NAMES})
    assert not stale, (f"tests/golden/help/ has files for commands build_parser no longer has: {stale}; "
                       f"`{HOW_TO_REFRESH}` removes them")


# --- printed tables -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, name", [
    (("models",), "models.txt"),
    (("rf", "--model", "s6"), "rf_s6.txt"),
    (("rf", "--model", "s6", "--markdown"), "rf_s6.md"),
    (("budget", "--model", "s6"), "budget_s6.txt"),
    (("budget", "--model", "s6", "--layers"), "budget_s6_layers.txt"),
], ids=lambda v: " ".join(v) if isinstance(v, tuple) else None)
def test_table(capsys, argv, name):
    status, out = cli(capsys, *argv)
    assert status == 0
    assert_golden(f"table/{name}", out)


def test_summary_diagram_table(capsys, tmp_path):
    """The block table that ``summary --diagram`` prints after torchinfo's summary (whose layout is torchinfo's)."""
    png = tmp_path / "diagram.png"
    status, out = cli(capsys, "summary", "--model", "s6", "--diagram", str(png))
    assert status == 0 and png.exists()
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("block "))
    assert lines[-1] == f"diagram: {png}"
    assert_golden("table/diagram_s6.txt", "\n".join(lines[start:-1]))


def _history(accuracies: list[float]):
    """A hand-made History: one epoch per test accuracy, the other fields fixed."""
    from s6lab.train import EpochRecord, History

    return History([EpochRecord(epoch=i, train_loss=0.1, train_acc=98.9, test_loss=0.02, test_acc=acc, lr=0.01,
                                seconds=10.0, train_seconds=9.0) for i, acc in enumerate(accuracies, start=1)])


PASSING = [98.0, 98.9, 99.1, 99.2, 99.3, 99.35, 99.38, 99.4, 99.42, 99.45, 99.44, 99.5, 99.47, 99.52, 99.55]
# 20 epochs (one too many), a best epoch above the target but one of the last three below it
FAILING = [98.0, 98.5, 98.9, 99.0, 99.1, 99.15, 99.2, 99.25, 99.3, 99.3,
           99.35, 99.33, 99.36, 99.38, 99.39, 99.41, 99.38, 99.45, 99.37, 99.42]


@pytest.mark.parametrize("model, accuracies, markdown, name", [
    ("s6", PASSING, False, "check_pass.txt"),
    ("s6-no-dropout", FAILING, False, "check_fail.txt"),
    ("s6-no-dropout", FAILING, True, "check_fail.md"),
])
def test_format_check(model, accuracies, markdown, name):
    from s6lab import get_model
    from s6lab.check import all_passed, assignment_check, format_check

    rows = assignment_check(get_model(model), _history(accuracies))
    assert all_passed(rows) == (accuracies is PASSING)
    assert_golden(f"table/{name}", format_check(rows, markdown=markdown))
