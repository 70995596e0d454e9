"""The reference net against the assignment's table, and the registry."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import s6lab
from s6lab.summary import FUNCTIONAL_IN_ORIGINAL, layer_rows, summary

GOLDEN = Path(__file__).parent / "golden"


def assignment_table() -> list[tuple[str, tuple[int, ...], int]]:
    """Rows of the torchsummary table in shared/reference/assignment6.md (copied verbatim)."""
    rows = []
    for line in (GOLDEN / "assignment6_summary.txt").read_text().splitlines():
        m = re.match(r"\s*(\w+)-\d+\s+\[-1, ([\d, ]+)\]\s+([\d,]+)", line)
        if m:
            shape = tuple(int(v) for v in m.group(2).split(","))
            rows.append((m.group(1), shape, int(m.group(3).replace(",", ""))))
    return rows


def test_reference_matches_assignment_table():
    expected = assignment_table()
    assert len(expected) == 15
    ours = [(r.type, r.output_shape, r.params) for r in layer_rows(s6lab.get_model("s6"))
            if r.type not in FUNCTIONAL_IN_ORIGINAL]
    assert ours == expected


def test_reference_totals_from_torchinfo():
    stats = summary(s6lab.get_model("s6"))
    assert stats.total_params == 19_602
    assert stats.trainable_params == 19_602


def test_registry_lists_and_filters():
    assert "s6" in s6lab.list_models()
    assert s6lab.list_models("s6") == ["s6"]
    assert s6lab.list_models("no-such-*") == []


def test_unknown_model_lists_known_ones():
    with pytest.raises(KeyError, match="unknown model 'nope'; known models: .*s6"):
        s6lab.get_model("nope")


def test_register_rejects_duplicates_and_invalid_specs():
    with pytest.raises(ValueError, match="already registered"):
        s6lab.register_model(s6lab.get_spec("s6"))
    with pytest.raises(ValueError, match="last layer must be a head"):
        s6lab.register_model(s6lab.NetSpec("broken", (s6lab.ConvBNSpec(8),)))
    assert "broken" not in s6lab.list_models()


@pytest.mark.parametrize("name", s6lab.list_models())
def test_every_registered_model_trains_a_step(name):
    model = s6lab.get_model(name)
    out = model(torch.randn(4, 1, 28, 28))
    assert out.shape == (4, 10)
    out.sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient for {missing}"


def test_override_through_get_model():
    model = s6lab.get_model("s6", dropout=0.05)
    assert model.pool1.drop.p == 0.05
    no_bn = s6lab.get_model("s6", batchnorm=False)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in no_bn.modules())


def test_get_recipe_is_the_one_merge_and_the_cli_uses_it(tmp_path):
    """A variant's own training changes reach fit through get_recipe, as they reach `s6lab train`."""
    import json

    from s6lab import get_recipe
    from s6lab.cli import main

    recipe = get_recipe("s6-step-lr", seed=2)
    assert recipe.train.schedule == "step" and recipe.train.seed == 2
    assert get_recipe("s6").train.schedule == "onecycle"
    with pytest.raises(ValueError, match="unknown recipe field"):
        get_recipe("s6", colour="red")
    assert main(["train", "--no-report", "--model", "s6-step-lr", "--epochs", "1", "--train-size", "64",
                 "--test-size", "32",
                 "--quiet", "--out", str(tmp_path / "r")]) == 0
    recorded = json.loads((tmp_path / "r" / "config.json").read_text())["train"]
    assert recorded == get_recipe("s6-step-lr", epochs=1).train.to_dict()
