"""Weight averaging (TrainConfig.ema): the average follows the model, is what fit evaluates and hands back,
survives a resume, and is what a checkpoint's reader gets."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

from s6lab import get_model
from s6lab.averaging import corrected_decay, moving_average, too_long_for
from s6lab.runs import load_run, train_run
from s6lab.train import TrainConfig, checkpoint_weights, evaluate, fit, seed_everything

from .test_train import synthetic

#: these runs are a few dozen steps long, shorter than any useful average: the warning about it is expected
SHORT_RUN = pytest.mark.filterwarnings("ignore:ema=.*averages about:UserWarning")


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.1, 1.5])
def test_a_decay_outside_zero_to_one_is_refused(decay):
    with pytest.raises(ValueError, match=r"decay must be in \(0, 1\)"):
        moving_average(nn.Linear(2, 2), decay)


def test_the_corrected_average_weighs_each_step_by_decay_to_its_age():
    """After t steps the average is sum(decay**(t - s) * w_s) / sum(decay**(t - s)): no weight left on a
    starting point, and the decay means what it says from the first step."""
    decay, values = 0.9, [3.0, -1.0, 4.0, 1.0, -5.0, 9.0]
    model = nn.Linear(1, 1, bias=False)
    average = moving_average(model, decay)
    for value in values:
        with torch.no_grad():
            model.weight.fill_(value)
        average.update_parameters(model)
    t = len(values)
    weights = [decay ** (t - s) for s in range(1, t + 1)]
    expected = sum(w * v for w, v in zip(weights, values)) / sum(weights)
    assert average.module.weight.item() == pytest.approx(expected, rel=1e-6)
    assert corrected_decay(decay, 1) == 0.0 and corrected_decay(decay, 10**4) == pytest.approx(decay)


def test_the_average_follows_the_model_and_copies_integer_buffers():
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    average = moving_average(model, 0.5)
    average.update_parameters(model)  # the first update copies
    assert torch.equal(average.module[0].weight, model[0].weight)
    start = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
        model[1].running_mean.fill_(4.0)
        model[1].num_batches_tracked.fill_(7)
    average.update_parameters(model)  # step 2 of decay 0.5: weights 1/2 and 1 of a sum of 3/2, so 2/3 of the way
    moved = average.module[0].weight - start
    assert torch.allclose(moved, torch.full_like(moved, 2 / 3))
    assert torch.allclose(average.module[1].running_mean, torch.full((3,), 4.0 * 2 / 3))
    assert average.module[1].num_batches_tracked.item() == 7  # counted, not averaged
    for _ in range(200):
        average.update_parameters(model)
    assert torch.allclose(average.module[0].weight, model[0].weight)


@SHORT_RUN
def test_fit_evaluates_and_hands_back_the_average(tmp_path):
    data = synthetic(320)
    config = TrainConfig(epochs=2, batch_size=32, seed=3, ema=0.9, augment=False, device="cpu")
    seed_everything(config.seed)
    model = get_model("s6")
    history = fit(model, data, config, checkpoint=tmp_path / "checkpoint.pt", progress=False)
    assert all(e.raw_test_acc is not None for e in history.epochs)
    assert evaluate(model, data.test, device="cpu").accuracy == pytest.approx(history.final_acc)
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    trained = saved["model"]  # the last step's weights, kept for resuming
    handed_back = model.state_dict()
    assert any(not torch.equal(trained[k], handed_back[k]) for k in trained if trained[k].is_floating_point())
    averaged = checkpoint_weights(saved)
    assert averaged.keys() == handed_back.keys()
    assert all(torch.equal(averaged[k], handed_back[k]) for k in averaged)
    # the same recipe without averaging trains the same weights: averaging only changes what is evaluated
    seed_everything(config.seed)
    plain = get_model("s6")
    fit(plain, data, TrainConfig(**{**config.to_dict(), "ema": 0.0}), progress=False)
    assert all(torch.equal(plain.state_dict()[k], trained[k]) for k in trained)


@SHORT_RUN
def test_a_resumed_averaged_run_ends_like_an_uninterrupted_one(tmp_path):
    data = synthetic(320)
    config = TrainConfig(epochs=3, batch_size=32, seed=5, ema=0.95, device="cpu")
    full = train_run("s6", tmp_path / "full", config, data=data, progress=False)

    class Stop(Exception):
        pass

    def stop_after_two(history, model):
        if len(history) == 2:
            raise Stop

    seed_everything(config.seed)
    with pytest.raises(Stop):
        fit(get_model("s6"), data, config, checkpoint=tmp_path / "part.pt", progress=False, on_epoch=stop_after_two)
    resumed = get_model("s6")
    history = fit(resumed, data, config, checkpoint=tmp_path / "part.pt", resume=True, progress=False)
    assert [(e.test_acc, e.raw_test_acc) for e in history.epochs] == \
        [(e.test_acc, e.raw_test_acc) for e in full.history.epochs]
    for a, b in zip(resumed.state_dict().values(), full.model.state_dict().values()):
        assert torch.equal(a, b)


@SHORT_RUN
def test_an_unfinished_averaged_run_loads_its_average(tmp_path):
    data = synthetic(160)
    config = TrainConfig(epochs=2, batch_size=32, ema=0.9, device="cpu")
    run = train_run("s6", tmp_path / "run", config, data=data, progress=False)
    (tmp_path / "run" / "model.pt").unlink()  # as if it stopped before writing its final weights
    again = load_run(tmp_path / "run")
    for a, b in zip(again.model.state_dict().values(), run.model.state_dict().values()):
        assert torch.equal(a, b)


def test_a_history_without_averaging_records_no_raw_accuracy(tmp_path):
    run = train_run("s6", tmp_path / "run", TrainConfig(epochs=1, batch_size=64, device="cpu"),
                    data=synthetic(128), progress=False)
    assert run.history.epochs[0].raw_test_acc is None
    assert "raw_test_acc" not in json.loads(run.history.to_json())[0]


def test_the_curves_show_the_trained_weights_beside_the_average(tmp_path):
    from s6lab.analysis.curves import plot_history
    from s6lab.train import EpochRecord, History

    h = History([EpochRecord(e, 0.1, 99.0, 0.02, 99.0 + e / 10, 0.01, 1.0, raw_test_acc=97.0 + e / 10)
                 for e in range(1, 5)])
    ax = plot_history(h).axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "test accuracy, averaged weights" in labels and "trained weights, not averaged" in labels
    assert ax.get_ylim()[0] < 97.1  # the lower, dashed curve is in view
    plain = plot_history(History([EpochRecord(1, 0.1, 99.0, 0.02, 99.1, 0.01, 1.0)])).axes[0]
    assert [t.get_text() for t in plain.get_legend().get_texts()][0] == "test accuracy"


def test_the_report_table_has_a_column_for_the_trained_weights_only_when_averaged():
    from types import SimpleNamespace

    from s6lab.report import history_table
    from s6lab.train import EpochRecord, History

    averaged = History([EpochRecord(1, 0.1, 99.0, 0.02, 99.25, 0.01, 1.0, raw_test_acc=98.5)])
    text = history_table(SimpleNamespace(history=averaged))
    assert "not averaged" in text.splitlines()[0] and "| 99.25% | 98.50% |" in text
    plain = history_table(SimpleNamespace(history=History([EpochRecord(1, 0.1, 99.0, 0.02, 99.25, 0.01, 1.0)])))
    assert "not averaged" not in plain


@pytest.mark.parametrize("decay, steps, expected", [
    (0.998, 18 * 235, None),  # the default recipe's length: 500 of 4,230 steps
    (0.998, 4 * 469, "ema=0.998 averages about the last 500 steps, 27% of this run's 1876; the average will "
                     "trail the trained weights: use a decay of at most 0.9979, or 0 (off)"),
    (0.99, 3, "ema=0.99 averages about the last 100 steps, more than this run's 3; the average will trail the "
              "trained weights: the run is too short to average, use 0 (off)"),
])
def test_an_average_longer_than_a_quarter_of_the_run_is_pointed_out(decay, steps, expected):
    assert too_long_for(decay, steps) == expected


def test_fit_warns_in_one_line_when_the_average_is_too_long_for_the_run():
    with pytest.warns(UserWarning, match=r"^ema=0.99 averages about the last 100 steps, more than this run's 5;"):
        fit(get_model("s6"), synthetic(160), TrainConfig(epochs=1, batch_size=32, ema=0.99, device="cpu"),
            progress=False)
