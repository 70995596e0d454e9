"""The notebooks execute top to bottom in quick mode (S6LAB_QUICK=1: real MNIST subset, 1 epoch),
and are stored without outputs. The docs show executed copies (docs/notebooks/), written by the same
execution with S6LAB_REFRESH_NOTEBOOKS=1 and checked here to hold the same cells as the source."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[1] / "examples" / "notebooks").glob("*.ipynb"))
DOCS_COPIES = Path(__file__).parents[1] / "docs" / "notebooks"


def test_notebooks_exist():
    assert {p.name for p in NOTEBOOKS} >= {"S6.ipynb", "compare_variants.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stripped(path):
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") and not c.get("execution_count") for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_quick_mode(path, tmp_path, monkeypatch):
    monkeypatch.setenv("S6LAB_QUICK", "1")
    monkeypatch.setenv("S6LAB_OUT", str(tmp_path))
    # as a learner runs it: the load follower on (conftest turns it off for tests that compare bits)
    monkeypatch.delenv("S6LAB_FOLLOW_LOAD", raising=False)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, "the notebook drew no figure"
    if os.environ.get("S6LAB_REFRESH_NOTEBOOKS") == "1":  # the executed copy the docs render
        DOCS_COPIES.mkdir(exist_ok=True)
        nbformat.write(nb, DOCS_COPIES / path.name)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_docs_show_an_executed_copy_of_todays_notebook(path):
    """docs/notebooks/NAME.ipynb: the same cells as the source, with outputs. After editing a notebook,
    refresh the copies with `S6LAB_REFRESH_NOTEBOOKS=1 pytest tests/test_notebooks.py`."""
    copy = DOCS_COPIES / path.name
    assert copy.exists(), f"no executed copy {copy}: run S6LAB_REFRESH_NOTEBOOKS=1 pytest tests/test_notebooks.py"
    source, shown = nbformat.read(path, as_version=4), nbformat.read(copy, as_version=4)
    assert [(c.cell_type, c.source) for c in shown.cells] == [(c.cell_type, c.source) for c in source.cells], \
        f"{copy} is out of date: run S6LAB_REFRESH_NOTEBOOKS=1 pytest tests/test_notebooks.py"
    assert any("image/png" in o.get("data", {}) for c in shown.cells for o in c.get("outputs", []))
    start_lines = [line for c in shown.cells for o in c.get("outputs", []) for line in o.get("text", "").splitlines()
                   if line.startswith("training on ")]
    assert all("fewer while other programs keep one busy" in line for line in start_lines), \
        f"{copy} was executed with the load follower off, unlike a learner's run: refresh it as above"
