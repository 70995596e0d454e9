"""The code the tutorials include runs; training snippets run in a quick mode (1 epoch on a
real-MNIST subset) by wrapping the public functions they call."""

from __future__ import annotations

import functools
import runpy
from pathlib import Path

import pytest

import s6lab
from s6lab.recipe import QUICK_RUN

ROOT = Path(__file__).parents[1]
SNIPPETS = ROOT / "docs" / "snippets"


@pytest.fixture
def quick(monkeypatch):
    """s6lab's one quick mode (QUICK_RUN) for snippets written for real runs: load_mnist loads the
    quick subset, and every TrainConfig / get_recipe / compare runs the quick epochs."""
    real_load, real_config, real_compare = s6lab.load_mnist, s6lab.TrainConfig, s6lab.compare
    real_recipe = s6lab.get_recipe
    epochs, sizes = QUICK_RUN["epochs"], {k: QUICK_RUN[k] for k in ("train_size", "test_size")}
    monkeypatch.setattr(s6lab, "load_mnist", functools.partial(real_load, **sizes))
    monkeypatch.setattr(s6lab, "TrainConfig", lambda **kw: real_config(**{**kw, "epochs": epochs}))
    monkeypatch.setattr(s6lab, "get_recipe", lambda model, **kw: real_recipe(model, **{**kw, "epochs": epochs}))
    monkeypatch.setattr(s6lab, "compare", lambda variants, **kw: real_compare(
        variants, **{**kw, **QUICK_RUN, "progress": False}))


def test_every_included_snippet_exists():
    included = set()
    for page in (ROOT / "docs").rglob("*.md"):
        for line in page.read_text().splitlines():
            if line.strip().startswith('--8<-- "docs/snippets/'):
                included.add(line.split('"')[1])
    assert included and all((ROOT / p).exists() for p in included)
    assert {Path(p).name for p in included} == {p.name for p in SNIPPETS.glob("*.py")}


@pytest.mark.parametrize("name", ["architecture.py", "relu_maxpool.py", "custom_variant.py"])
def test_snippet_runs(name, capsys):
    runpy.run_path(str(SNIPPETS / name), run_name="__main__")
    assert capsys.readouterr().out
    if "my-net" in s6lab.list_models():
        s6lab.models._REGISTRY.pop("my-net")


def test_training_snippet_runs_quickly(quick, capsys):
    runpy.run_path(str(SNIPPETS / "train_and_check.py"), run_name="__main__")
    assert "Overall:" in capsys.readouterr().out


def test_course_recipe_snippet_runs_quickly(quick, capsys):
    """A plain nn.Module with torch's OneCycleLR and torchvision's transforms, trained by fit."""
    runpy.run_path(str(SNIPPETS / "course_recipe.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "Overall:" in out and "parameters" in out


def test_compare_snippet_runs_quickly(quick, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(SNIPPETS / "compare_variants.py"), run_name="__main__")
    assert (tmp_path / "results" / "my-comparison.csv").exists()


def test_analysis_snippet_runs_on_a_run(tiny_run, monkeypatch):
    monkeypatch.setenv("S6LAB_RUN", str(tiny_run.path))
    runpy.run_path(str(SNIPPETS / "analyse_run.py"), run_name="__main__")


def test_docs_build_strict(docs_site):
    """The site builds with warnings as errors (the session's docs_site fixture builds it once)."""
    assert (docs_site / "index.html").exists()
    assert (docs_site / "tutorials" / "getting-started" / "index.html").exists()


def test_speed_tutorial_lever_table_names_real_fields_switches_and_defaults():
    """Each row of the speed tutorial's lever table: its TrainConfig fields exist, its
    `s6lab train` switches exist, and a default stated as numbers or on/off is the field's default."""
    import re

    from s6lab.cli import build_parser
    from s6lab.train import TrainConfig

    page = (ROOT / "docs" / "tutorials" / "speed.md").read_text()
    table = page.split("## What the trainer does", 1)[1].split("\n\n", 2)[1]
    rows = [line.split(" | ") for line in table.splitlines()[2:]]
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    switches = {s for action in train._actions for s in action.option_strings}
    defaults = TrainConfig().to_dict()
    assert len(rows) >= 7
    from s6lab.train import RETIRED

    assert not any(f"`{name}`" in table for name in RETIRED)  # levers that left the trainer are not rows
    for _, fields, flags, default in rows:
        names = re.findall(r"`(\w+)`", fields)
        assert names and all(n in defaults for n in names), fields
        assert all(f in switches for f in re.findall(r"`(--[\w-]+)", flags)), flags
        stated = default.rstrip(" |").split(":")[0].split(", ")
        if len(stated) == len(names) and all(re.fullmatch(r"[\d.]+", v) for v in stated):
            assert [float(v) for v in stated] == [float(defaults[n]) for n in names], (fields, default)
        elif stated[0] in ("on", "off"):
            assert len(names) == 1 and defaults[names[0]] is (stated[0] == "on"), (fields, default)


def test_the_recipe_fields_table_is_current():
    """docs/generated/recipe_fields.md lists every TrainConfig and DataSelection field with its comment;
    a field added or changed without `python docs/make_figures.py --only fields` fails here."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_figures", ROOT / "docs" / "make_figures.py")
    make_figures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_figures)
    assert (ROOT / "docs" / "generated" / "recipe_fields.md").read_text() == make_figures.recipe_fields_table()
