"""Every example runs in quick mode (1 epoch on 1k real MNIST images)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted(p for p in (Path(__file__).parents[1] / "examples").glob("[0-9][0-9]_*.py"))


def test_there_is_an_example_per_layer_choice():
    assert len(EXAMPLES) >= 11


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs_in_quick_mode(script, tmp_path):
    text = script.read_text()
    assert text.startswith('"""') and "What to look at" in text
    assert len(text.splitlines()) <= 80
    done = subprocess.run([sys.executable, str(script), "--quick", "--results-dir", str(tmp_path)], capture_output=True,
                          text=True, cwd=script.parent, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "params" in done.stdout or "Total params" in done.stdout
    # what the docstring tells the reader to look at is printed
    promised = {"03_no_dropout": "train %  test %    gap", "09_augmentation": "train %  test %    gap",
                "10_lr_schedule": "learning rate at the end of each epoch"}
    if script.stem in promised:
        assert promised[script.stem] in done.stdout
