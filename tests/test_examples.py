"""Every example runs in quick mode (1 epoch on 1k real MNIST images), and refuses bad input in one line."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted(p for p in (Path(__file__).parents[1] / "examples").glob("[0-9][0-9]_*.py"))


def test_there_is_an_example_per_layer_choice():
    assert len(EXAMPLES) >= 11


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_runs_only_as_the_main_script(script):
    """``--jobs 2`` trains in spawned worker processes, which import the script's file: without the
    ``if __name__ == "__main__":`` guard each worker ran the example again, and every training failed
    (multiprocessing's "bootstrapping phase" error, found in session 20). Only definitions and imports may
    stand outside the guard."""
    import ast

    tree = ast.parse(script.read_text())
    loose = [node for node in tree.body if not isinstance(
        node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign, ast.If))
        and not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]  # the docstring
    guards = [node for node in tree.body if isinstance(node, ast.If)]
    assert not loose, [ast.unparse(node)[:60] for node in loose]
    assert [ast.unparse(node.test) for node in guards] == ["__name__ == '__main__'"]


#: run exactly as a user starts it, in a fresh interpreter; the others run in this process, which saves
#: an interpreter and a torch import per script (the suite's time limit) and runs the same code
AS_A_SUBPROCESS = {"01_reference"}


def run_example(script: Path, args: list[str], monkeypatch, capsys, *, status: int = 0):
    """``python SCRIPT ARGS`` in this process (cwd, argv and sys.path as the script would have them), expecting
    exit ``status``; stdout and stderr (``.out``, ``.err``). An exception the script lets out fails the test."""
    import matplotlib.pyplot as plt

    monkeypatch.setattr(sys, "argv", [str(script), *args])
    monkeypatch.syspath_prepend(str(script.parent))
    monkeypatch.chdir(script.parent)
    code = 0
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as e:
        code = e.code or 0
    finally:
        plt.close("all")
    captured = capsys.readouterr()
    assert code == status, f"{script.name} exited with {code}: {captured.err[-3000:]}"
    return captured


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs_in_quick_mode(script, tmp_path, monkeypatch, capsys):
    text = script.read_text()
    assert text.startswith('"""') and "What to look at" in text
    assert len(text.splitlines()) <= 80
    args = ["--quick", "--results-dir", str(tmp_path)]
    if script.stem in AS_A_SUBPROCESS:
        done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, cwd=script.parent,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        out = done.stdout
    else:
        out = run_example(script, args, monkeypatch, capsys).out
    assert "params" in out or "Total params" in out
    # what the docstring tells the reader to look at is printed
    promised = {"03_no_dropout": "train %  test %    gap", "09_augmentation": "train %  test %    gap",
                "10_lr_schedule": "learning rate at the end of each epoch"}
    if script.stem in promised:
        assert promised[script.stem] in out


def assert_one_line_error(script: Path, err: str, expected: str) -> None:
    """What a user sees for a mistake they can fix: ``SCRIPT: error: ...`` naming it, and no traceback."""
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"{script.name}: error: ") and expected in err, err


EXAMPLE = {p.stem: p for p in EXAMPLES}
NOT_A_FOLDER = "FILE"  # replaced by a regular file in tmp_path

#: (example, arguments, what its one line says): none trains, every one stops before a training starts
BAD_INPUT = [
    ("02_no_batchnorm", ["--epochs", "0"], "TrainConfig.epochs must be a positive integer, got 0"),
    ("02_no_batchnorm", ["--seed", "-1"], "TrainConfig.seed must be an integer in [0, 2**63 - 1), got -1"),
    ("02_no_batchnorm", ["--jobs", "abc"], "--jobs must be a positive number of trainings at once, or auto; got 'abc'"),
    ("02_no_batchnorm", ["--jobs", "0"], "--jobs must be a positive number of trainings at once, or auto; got 0"),
    ("12_class_study", ["--jobs", "999"], "--jobs 999 x --threads-per-job 1 needs 999 cores"),
    ("01_reference", ["--epochs", "0"], "TrainConfig.epochs must be a positive integer, got 0"),
    ("01_reference", ["--epochs", "-3"], "TrainConfig.epochs must be a positive integer, got -3"),
    ("02_no_batchnorm", ["--quick", "--results-dir", NOT_A_FOLDER], "is a file; choose a folder"),
]


@pytest.mark.parametrize("name, args, expected", BAD_INPUT, ids=[f"{n} {' '.join(a)}" for n, a, _ in BAD_INPUT])
def test_bad_input_is_one_line_and_exit_2_before_any_output(name, args, expected, tmp_path, monkeypatch, capsys):
    (tmp_path / NOT_A_FOLDER).write_text("not a folder")
    args = [str(tmp_path / a) if a == NOT_A_FOLDER else a for a in args]
    if "--results-dir" not in args:
        args += ["--results-dir", str(tmp_path)]
    script = EXAMPLE[name]
    done = run_example(script, args, monkeypatch, capsys, status=2)
    assert done.out == ""  # checked before the summaries and tables, not after them
    assert_one_line_error(script, done.err, expected)


@pytest.mark.parametrize("results_dir, expected", [
    (f"{NOT_A_FOLDER}/sub", "Not a directory"),  # inside a file: the disk says so when the run folder is made
    pytest.param("/proc/s6lab-examples", "/proc/s6lab-examples; check the path",
                 marks=pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="Linux's /proc")),
], ids=["inside a file", "unwritable"])
def test_a_results_dir_that_cannot_be_written_is_one_line(results_dir, expected, tmp_path, monkeypatch, capsys):
    (tmp_path / NOT_A_FOLDER).write_text("not a folder")
    script = EXAMPLE["02_no_batchnorm"]
    done = run_example(script, ["--quick", "--results-dir", str(tmp_path / results_dir)], monkeypatch, capsys,
                       status=2)
    assert_one_line_error(script, done.err, expected)


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_refuses_a_bad_setting_first(script, tmp_path, monkeypatch, capsys):
    """`import s6lab` keeps a bad S6LAB_THREADS for `environment_error` (the next test sets a real one); every
    example checks it before it prints or trains anything, so each goes through `one_line_errors`."""
    monkeypatch.syspath_prepend(str(script.parent))
    import _common

    problem = "S6LAB_THREADS='abc': give a positive number of threads, or auto (in the environment)"
    monkeypatch.setattr(_common, "environment_error", lambda: problem)
    done = run_example(script, ["--quick", "--results-dir", str(tmp_path)], monkeypatch, capsys, status=2)
    assert done.out == ""
    assert_one_line_error(script, done.err, problem)


@pytest.mark.parametrize("setting, expected", [("S6LAB_THREADS=abc", "S6LAB_THREADS='abc': give a positive number"),
                                               ("S6LAB_FOLLOW_LOAD=maybe", "S6LAB_FOLLOW_LOAD='maybe': give 1")])
def test_a_bad_setting_in_the_environment_is_one_line(setting, expected, tmp_path):
    """As a user starts it, in a fresh interpreter: `import s6lab` reads the setting (about 1.5 s, no torch work)."""
    script = EXAMPLE["02_no_batchnorm"]
    name, value = setting.split("=")
    done = subprocess.run([sys.executable, str(script), "--quick", "--results-dir", str(tmp_path)], capture_output=True,
                          text=True, cwd=script.parent, env={**os.environ, name: value}, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert_one_line_error(script, done.stderr, expected)


def test_ctrl_c_in_an_example_says_the_finished_runs_are_kept(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(EXAMPLES[0].parent))
    import _common

    monkeypatch.setattr(_common, "environment_error", lambda: None)
    with pytest.raises(SystemExit) as e, _common.one_line_errors():
        raise KeyboardInterrupt
    err = capsys.readouterr().err
    assert e.value.code == 130 and "interrupted; finished runs are kept and reused" in err and "Traceback" not in err
