"""The recipe module: one object for what decides a run, one merge, one same-run rule, and the CLI
options derived from it (`--print-config`, `--config FILE`)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

import s6lab
from s6lab.cli import main
from s6lab.errors import ConfigError
from s6lab.hardware import resolve_precision
from s6lab.recipe import DataSelection, Recipe, merge, same_architecture
from s6lab.train import SPEED_ONLY, TrainConfig

CPU = torch.device("cpu")


def test_merge_sends_each_override_to_its_part():
    recipe = s6lab.get_recipe("s6-step-lr", seed=3, dropout=0.05, train_size=1000, root="/data")
    assert recipe.train.schedule == "step" and recipe.train.step_epochs == 6  # the variant's own training
    assert recipe.train.seed == 3
    assert recipe.spec.layers[2].dropout == 0.05  # architecture override
    assert recipe.data == DataSelection(root="/data", train_size=1000)
    assert s6lab.get_recipe("s6-step-lr").train.seed == 0  # the registry is not changed


def test_an_explicit_train_config_replaces_the_variants_own():
    recipe = s6lab.get_recipe("s6-step-lr", train=TrainConfig(epochs=2), seed=1)
    assert recipe.train.schedule == "onecycle" and recipe.train.epochs == 2 and recipe.train.seed == 1


@pytest.mark.parametrize("bad, message", [
    ({"colour": "red"}, "unknown recipe field.*colour.*training:.*architecture:.*data:"),
    ({"epochs": 0}, "TrainConfig.epochs must be a positive integer"),
    ({"train_size": 0}, "train_size must be a number of images from 1 to 60,000"),
    ({"train_size": 60_001}, r"train_size must be a number of images from 1 to 60,000 \(MNIST's train set\), "
                             "got 60001"),
    ({"test_size": 10_001}, r"test_size must be a number of images from 1 to 10,000 \(MNIST's test set\)"),
    ({"test_size": "all"}, "test_size must be a number of images"),
    ({"lr": 1e300}, "TrainConfig.lr must be a positive finite number a float32 holds"),
    ({"weight_decay": float("inf")}, "TrainConfig.weight_decay must be a finite number >= 0 a float32 holds"),
    ({"augmentation": "RandomCrop(999)"}, r"augmentation 'RandomCrop\(999\)' fails on a 28x28 digit"),
    ({"augmentation": "Pad(2)"}, r"turns a 28x28 digit into \(1, 32, 32\); end with a crop back to 28x28"),
    ({"dropout": 2.0}, "dropout"),
])
def test_merge_rejects_bad_overrides_with_the_fix(bad, message):
    with pytest.raises(ConfigError, match=message):
        s6lab.get_recipe("s6", **bad)


def test_the_recipe_is_frozen():
    recipe = s6lab.get_recipe("s6")
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.train.epochs = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.spec = s6lab.get_spec("s6-gap")  # type: ignore[misc]
    with pytest.raises(ConfigError, match="Recipe.train must be a TrainConfig"):
        Recipe(s6lab.get_spec("s6"), {"epochs": 2})  # type: ignore[arg-type]


def test_speed_only_fields_are_marked_on_the_field():
    marked = {f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("speed_only")}
    assert marked == SPEED_ONLY == {"retain_memory", "eval_batch_size", "relu_after_pool"}


def test_build_seeds_the_initialisation_from_the_recipe():
    a, b = s6lab.get_recipe("s6", seed=4).build(), s6lab.get_recipe("s6", seed=4).build()
    c = s6lab.get_recipe("s6", seed=5).build()
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.conv1.conv.weight, c.conv1.conv.weight)


@pytest.fixture(params=[False, True], ids=["cpu-without-bf16", "cpu-with-bf16"])
def cpu_class(request, monkeypatch):
    """Both CPU classes on whichever machine runs the tests: ``auto`` resolves as it would there."""
    monkeypatch.setattr("s6lab.hardware.native_bf16", lambda device: request.param)
    return request.param


def test_round_trip_through_config_json(cpu_class):
    recipe = s6lab.get_recipe("s6-5k", seed=2, train_size=500, test_size=100, root="/somewhere")
    again = Recipe.from_dict(json.loads(json.dumps(recipe.to_dict())))
    assert again == recipe
    ran = resolve_precision(recipe.train.precision, CPU).precision  # config.json records what ran
    assert recipe.differences({**recipe.to_dict(), "precision": ran}, CPU) == []


def test_a_config_file_may_name_a_registered_variant_and_part_of_its_training():
    from s6lab.models import recipe_from_dict

    recipe = recipe_from_dict({"model": "s6-step-lr", "train": {"seed": 7}, "data": {"train_size": 64}})
    assert recipe.train.schedule == "step" and recipe.train.seed == 7 and recipe.data.train_size == 64


@pytest.mark.parametrize("values, message", [
    ({"model": "s6", "trian": {}}, "unknown recipe key.*trian"),
    ({"model": "nope"}, "unknown model 'nope'"),
    ({"model": {"layers": [{"type": "Conv"}]}}, r"layer 1 \(ConvBNSpec\).*out_channels"),
    ({"model": {"layerz": []}}, "not a spec"),
    ({"model": "s6", "train": {"lr": -1}}, "TrainConfig.lr must be a positive finite number"),
    ([1, 2], "a recipe is a JSON object"),
])
def test_a_bad_config_file_is_named(values, message):
    from s6lab.models import recipe_from_dict

    with pytest.raises((ConfigError, KeyError), match=message):
        recipe_from_dict(values)


def test_runs_recorded_before_the_recipe_module_still_load(cpu_class):
    """Older config.json files kept a variant's training changes inside the spec, and no data root."""
    recipe = s6lab.get_recipe("s6-step-lr", epochs=2)
    old = recipe.to_dict()
    old["model"]["train"] = {"schedule": "step", "step_epochs": 6, "gamma": 0.1}
    del old["data_root"]
    old["bf16"] = resolve_precision(recipe.train.precision, CPU).precision == "bf16"  # what old runs recorded
    again = Recipe.from_dict(old)
    assert again.train == recipe.train and same_architecture(again.spec, recipe.spec)
    assert recipe.differences(old, CPU) == []


def test_the_same_run_rule():
    recipe = s6lab.get_recipe("s6", epochs=2, precision="fp32")
    recorded = recipe.to_dict() | {"precision": "fp32"}
    assert recipe.differences(recorded, CPU) == []
    # speed-only fields and where the data lives do not count; the name and description do not either
    assert merge(recipe, eval_batch_size=1000, retain_memory=False, root="/elsewhere").differences(recorded, CPU) == []
    renamed = dataclasses.replace(recipe, spec=recipe.spec.replace(name="mine", description="same net"))
    assert renamed.differences(recorded, CPU) == []
    # everything that changes the numbers does
    assert merge(recipe, seed=1).differences(recorded, CPU) == ["seed"]
    assert "architecture" in merge(recipe, dropout=0.2).differences(recorded, CPU)[0]
    assert merge(recipe, test_size=100).differences(recorded, CPU)[0].startswith("data selection")
    other_net = dataclasses.replace(recipe, spec=s6lab.get_spec("s6-gap"))
    assert other_net.differences(recorded, CPU)[0].startswith("architecture")
    # the precision is compared as resolved
    assert merge(recipe, precision="bf16").differences(recorded, CPU)[-1].startswith("precision (fp32 there, bf16")


def test_test_split_falls_back_to_the_default_root_for_a_run_trained_elsewhere(tmp_path):
    split = DataSelection(root=str(tmp_path / "not-here"), test_size=10).test_split()
    assert len(split) == 10


def test_fit_takes_the_training_part_and_names_the_fix_otherwise():
    recipe = s6lab.get_recipe("s6")
    with pytest.raises(ConfigError, match="pass recipe.train"):
        s6lab.fit(recipe.build(), None, recipe)  # type: ignore[arg-type]


def test_get_recipe_and_fit_train_what_the_cli_trains(tmp_path, mnist_small):
    """The proof of the issue: a variant with its own training (s6-step-lr) trains the same through
    `get_recipe` + `fit` as through `s6lab train` (real MNIST subset, 2 epochs, fp32)."""
    from s6lab.data import MNISTTensors

    data = MNISTTensors(mnist_small.train.subset(1000), mnist_small.test.subset(300))
    assert main(["train", "--no-report", "--model", "s6-step-lr", "--epochs", "2", "--precision", "fp32",
                 "--train-size", "1000",
                 "--test-size", "300", "--quiet", "--out", str(tmp_path / "cli")]) == 0
    cli = json.loads((tmp_path / "cli" / "history.json").read_text())
    recipe = s6lab.get_recipe("s6-step-lr", epochs=2, precision="fp32")
    api = s6lab.fit(recipe.build(), data, recipe.train, progress=False)
    for a, b in zip(cli, api.epochs):
        assert (a["train_loss"], a["test_acc"], a["lr"]) == (b.train_loss, b.test_acc, b.lr)
    assert api.epochs[-1].lr == pytest.approx(0.1)  # the step schedule: no decay before epoch 6


def test_print_config_shows_the_resolved_recipe_and_config_reads_it_back(tmp_path, capsys):
    assert main(["train", "--model", "s6-5k", "--seed", "3", "--train-size", "200", "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["model"]["name"] == "s6-5k" and printed["train"]["batch_size"] == 128
    assert printed["train"]["seed"] == 3 and printed["data"]["train_size"] == 200
    assert printed["resolved"]["precision"] in ("bf16", "fp32") and printed["resolved"]["why"]
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(printed))
    # the file, then the flags typed over it
    assert main(["train", "--config", str(path), "--epochs", "2", "--print-config"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["train"] == {**printed["train"], "epochs": 2} and again["model"] == printed["model"]


@pytest.mark.parametrize("value, expected", [("auto", None), ("AUTO", None), ("true", True), ("false", False)])
def test_set_asks_for_auto_patch_statistics_over_a_preset_that_pins_them(capsys, value, expected):
    """s6-speedrun pins layer 1's stock BatchNorm; --set first_bn_from_patches=auto gives the auto rule back."""
    assert main(["train", "--model", "s6-speedrun", "--set", f"first_bn_from_patches={value}", "--device", "cpu",
                 "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["train"]["first_bn_from_patches"] is expected
    assert printed["resolved"]["patch_statistics"] is (True if expected is None else expected)  # auto: on a CPU


@pytest.mark.parametrize("pair, message", [
    ("augment=auto", "TrainConfig.augment must be True or False, got 'auto'"),  # no auto setting: refused
    ("weight_decay=abc", "TrainConfig.weight_decay must be a number, got 'abc'"),  # was a TypeError traceback
    ("rotation=nan", "TrainConfig.rotation must be a finite number >= 0"),  # was taken: nan < 0 is False
    ("first_bn_from_patches=maybe",
     "first_bn_from_patches must be True or False, or None for auto (null in JSON, --set first_bn_from_patches=auto)"),
])
def test_a_set_value_of_the_wrong_type_is_one_line_and_exit_2(capsys, pair, message):
    assert main(["train", "--set", pair, "--print-config"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("s6lab train: error: ")


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("{not json", "is not valid JSON"),
    ('{"model": "s6", "train": {"epoch": 3}}', "unknown recipe field"),
])
def test_a_bad_config_file_is_one_line_with_the_fix(tmp_path, capsys, content, message):
    path = tmp_path / "recipe.json"
    if content is not None:
        path.write_text(content)
    assert main(["train", "--config", str(path), "--print-config"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("s6lab train: error: ")


def test_model_and_config_together_are_refused(tmp_path, capsys):
    path = tmp_path / "recipe.json"
    path.write_text('{"model": "s6"}')
    assert main(["train", "--model", "s6-gap", "--config", str(path)]) == 2
    assert "--model and --config both name the model" in capsys.readouterr().err


def test_every_field_of_the_recipe_has_a_train_option():
    from s6lab.cli import build_parser

    train = next(a for a in build_parser()._subparsers._group_actions[0].choices.items() if a[0] == "train")[1]
    options = {o for action in train._actions for o in action.option_strings}
    for cls in (TrainConfig, DataSelection):
        for f in dataclasses.fields(cls):
            assert "--" + f.name.replace("_", "-") in options, f.name


def test_one_quick_mode_for_examples_notebooks_and_docs(monkeypatch):
    from s6lab.recipe import QUICK_ENV, QUICK_RUN

    quick = s6lab.get_recipe("s6-step-lr", seed=2).quick()
    assert (quick.train.epochs, quick.data.train_size, quick.data.test_size) == \
        (QUICK_RUN["epochs"], QUICK_RUN["train_size"], QUICK_RUN["test_size"])
    assert quick.train.schedule == "step" and quick.train.seed == 2  # the rest of the recipe is kept
    for value, expected in (("1", True), ("0", False), ("yes", True), ("off", False)):
        monkeypatch.setenv(QUICK_ENV, value)
        assert s6lab.quick_mode() is expected
    monkeypatch.delenv(QUICK_ENV)
    assert s6lab.quick_mode() is False
    # the examples, the notebooks and the docs tests name no sizes of their own
    root = Path(__file__).parents[1]
    for path in [root / "examples" / "_common.py", root / "tests" / "test_docs.py",
                 *(root / "examples" / "notebooks").glob("*.ipynb")]:
        text = path.read_text()
        assert "QUICK_RUN" in text or "quick()" in text, path
        assert "train_size=600" not in text and "2000 if QUICK" not in text, path


@pytest.mark.parametrize("part, value", [("train", 0), ("train", ""), ("data", []), ("data", False)])
def test_a_recipe_part_that_is_not_an_object_is_refused_even_when_empty(part, value):
    from s6lab.recipe import Recipe

    with pytest.raises(ConfigError, match=f"the recipe's {part} is a JSON"):
        Recipe.from_dict({"model": s6lab.get_recipe("s6").to_dict()["model"], part: value})
