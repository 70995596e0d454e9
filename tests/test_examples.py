"""Every example runs in quick mode (1 epoch on 1k real MNIST images)."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted(p for p in (Path(__file__).parents[1] / "examples").glob("[0-9][0-9]_*.py"))


def test_there_is_an_example_per_layer_choice():
    assert len(EXAMPLES) >= 11


#: run exactly as a user starts it, in a fresh interpreter; the others run in this process, which saves
#: an interpreter and a torch import per script (the suite's time limit) and runs the same code
AS_A_SUBPROCESS = {"01_reference"}


def run_example(script: Path, args: list[str], monkeypatch, capsys) -> str:
    """``python SCRIPT ARGS`` in this process (cwd, argv and sys.path as the script would have them); stdout."""
    import matplotlib.pyplot as plt

    monkeypatch.setattr(sys, "argv", [str(script), *args])
    monkeypatch.syspath_prepend(str(script.parent))
    monkeypatch.chdir(script.parent)
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as e:
        assert e.code in (None, 0), f"{script.name} exited with {e.code}"
    finally:
        plt.close("all")
    return capsys.readouterr().out


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
        out = run_example(script, args, monkeypatch, capsys)
    assert "params" in out or "Total params" in out
    # what the docstring tells the reader to look at is printed
    promised = {"03_no_dropout": "train %  test %    gap", "09_augmentation": "train %  test %    gap",
                "10_lr_schedule": "learning rate at the end of each epoch"}
    if script.stem in promised:
        assert promised[script.stem] in out
