"""The trainer. Real-MNIST tests use the 4k/2k subset (see conftest)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from s6lab import get_model
from s6lab.data import MNISTTensors, TensorSplit
from s6lab.errors import ConfigError
from s6lab.runs import RunError, load_run, train_run
from s6lab.train import (
    EpochRecord,
    History,
    TrainConfig,
    TrainingDiverged,
    augment_batch,
    evaluate,
    fit,
    lr_at,
    predict,
    seed_everything,
)


def synthetic(n=256, seed=0) -> MNISTTensors:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    images = torch.randn(n, 1, 28, 28, generator=g) * 0.1
    images[torch.arange(n), 0, labels * 2 + 4, 4:24] += 3.0  # a bright row whose position is the label
    split = TensorSplit(images, labels)
    return MNISTTensors(split, split)


def test_numpy_numbers_are_numbers():
    """A value from a numpy array or a sweep (np.float32, np.int64) is a number: stored as float or int."""
    import numpy as np

    config = TrainConfig(weight_decay=np.float32(1e-3), rotation=np.int64(5), momentum=np.float64(0.8),
                         epochs=np.int64(3), seed=np.int32(7), lr=np.float32(0.05))
    assert config.rotation == 5 and config.momentum == pytest.approx(0.8) and config.lr == pytest.approx(0.05)
    assert type(config.weight_decay) is float and type(config.epochs) is int and type(config.seed) is int
    assert json.loads(json.dumps(config.to_dict()))["epochs"] == 3
    with pytest.raises(ValueError, match="TrainConfig.epochs must be a positive integer, got 0"):
        TrainConfig(epochs=np.int64(0))


@pytest.mark.parametrize("field, value, match", [
    ("epochs", 0, "epochs must be a positive integer"),
    ("batch_size", 1.5, "batch_size must be a positive integer"),
    ("lr", -1.0, "lr must be a positive finite number"),
    ("lr", float("nan"), "lr must be a positive finite number"),
    ("momentum", 1.0, r"momentum must be in \[0, 1\)"),
    ("optimizer", "lbfgs", "optimizer must be one of sgd, adam, adamw"),
    ("schedule", "cyclic", "schedule must be one of"),
    ("precision", "fp16", "precision must be one of auto, bf16, fp32"),
    ("translate", 0.7, r"translate must be in \[0, 0.5\)"),
    ("translate", float("nan"), r"translate must be in \[0, 0.5\)"),
    ("rotation", -1.0, "rotation must be a finite number >= 0"),
    ("rotation", float("nan"), "rotation must be a finite number >= 0"),  # passed before: nan < 0 is False
    ("rotation", float("inf"), "rotation must be a finite number >= 0"),
    ("weight_decay", -1e-4, "weight_decay must be a finite number >= 0"),
    ("weight_decay", float("nan"), "weight_decay must be a finite number >= 0"),
    ("weight_decay", float("inf"), "weight_decay must be a finite number >= 0"),
    ("gamma", 0.0, r"gamma must be in \(0, 1\)"),
    ("ema", 1.0, r"ema must be in \[0, 1\)"),
    ("ema", -0.5, r"ema must be in \[0, 1\)"),
    ("clean_last_epochs", 18, r"clean_last_epochs must be an integer in \[0, epochs\) = \[0, 18\)"),
    ("clean_last_epochs", -1, r"clean_last_epochs must be an integer in \[0, epochs\)"),
    ("clean_last_epochs", 1.5, r"clean_last_epochs must be an integer in \[0, epochs\)"),
    # the wrong type, as --set or a JSON file can give it: one ConfigError, never a TypeError
    ("weight_decay", "abc", "weight_decay must be a number, got 'abc'"),
    ("momentum", "x", "momentum must be a number"),
    ("rotation", None, "rotation must be a number"),
    ("warmup", True, "warmup must be a number"),
    ("augment", "auto", "augment must be True or False, got 'auto'"),
    ("nesterov", 2, "nesterov must be True or False, got 2"),
    ("channels_last", "yes", "channels_last must be True or False"),
    ("device", 3, "device must be a string, got 3"),
    ("scheduler", 5, r"scheduler must be a string \(or None\)"),
])
def test_config_rejects_bad_values(field, value, match):
    with pytest.raises(ValueError, match=f"TrainConfig.{field} {match}" if not match.startswith(field)
                       else f"TrainConfig.{match}"):
        TrainConfig(**{field: value})


def test_config_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match=r"unknown TrainConfig field\(s\) epoch; valid: .*epochs"):
        TrainConfig.from_dict({"epoch": 3})


def test_onecycle_schedule_shape():
    cfg = TrainConfig(epochs=10, lr=0.1, warmup=0.2)
    lrs = [lr_at(s, 100, cfg) for s in range(1000)]
    peak = lrs.index(max(lrs))
    assert peak == 200 and max(lrs) == pytest.approx(0.1)
    assert lrs[0] == pytest.approx(0.1 / 25) and lrs[-1] < 1e-3
    assert all(a <= b for a, b in zip(lrs[:peak], lrs[1:peak + 1]))
    assert all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1:]))


def test_step_schedule():
    cfg = TrainConfig(schedule="step", lr=0.1, step_epochs=2, gamma=0.5, epochs=6)
    assert [lr_at(e * 10, 10, cfg) for e in range(6)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])


def test_augmentation_keeps_shape_and_black_background():
    x = torch.full((8, 1, 28, 28), -0.1307 / 0.3081)  # an all-black batch
    out = augment_batch(x, torch.Generator().manual_seed(0), rotation=15, translate=0.1)
    assert out.shape == x.shape
    assert torch.allclose(out, x, atol=1e-5)  # nothing but black comes in from outside


def test_augmentation_is_seeded_and_varies_per_sample():
    x = synthetic(8).train.images
    a = augment_batch(x, torch.Generator().manual_seed(1), 10, 0.1)
    b = augment_batch(x, torch.Generator().manual_seed(1), 10, 0.1)
    assert torch.equal(a, b)
    assert not torch.allclose(a, x)


def test_fit_learns_synthetic_task():
    seed_everything(0)
    model = get_model("s6")
    history = fit(model, synthetic(), TrainConfig(epochs=3, batch_size=32, augment=False, lr=0.05),
                  progress=False)
    assert len(history) == 3
    assert history.final_acc > 90
    # every field, but the trained weights' own accuracy (only with weight averaging, test_averaging) and the
    # fewest threads (only when other programs kept a core busy, test_load_follower)
    assert set(json.loads(history.to_json())[0]) == set(EpochRecord.__dataclass_fields__) - {"raw_test_acc",
                                                                                             "fewest_threads"}


def test_same_seed_same_history(mnist_small):
    """Real MNIST subset: 1,000 training images, 1 epoch, twice."""
    data = MNISTTensors(mnist_small.train.subset(1000), mnist_small.test.subset(500))
    results = []
    for _ in range(2):
        seed_everything(3)
        model = get_model("s6")
        h = fit(model, data, TrainConfig(epochs=2, seed=3, batch_size=64), progress=False)
        results.append(([(e.train_loss, e.test_acc, e.test_loss) for e in h.epochs],
                        model.head.fc.weight.detach().clone()))
    assert results[0][0] == results[1][0]
    assert torch.equal(results[0][1], results[1][1])


def test_resume_ends_like_an_uninterrupted_run(tmp_path):
    data = synthetic(320)
    cfg = TrainConfig(epochs=3, batch_size=32, seed=5)
    full = train_run("s6", tmp_path / "full", cfg, data=data, progress=False)

    class Stop(Exception):
        pass

    calls = []

    def interrupt_after_two(history, model):
        calls.append(len(history))
        if len(history) == 2:
            raise Stop

    seed_everything(cfg.seed)
    model = get_model("s6")
    with pytest.raises(Stop):
        fit(model, data, cfg, checkpoint=tmp_path / "part" / "checkpoint.pt", progress=False,
            on_epoch=interrupt_after_two)
    resumed_model = get_model("s6")
    history = fit(resumed_model, data, cfg, checkpoint=tmp_path / "part" / "checkpoint.pt", resume=True,
                  progress=False)
    assert [e.test_acc for e in history.epochs] == full.history.test_acc
    assert [e.train_loss for e in history.epochs] == [e.train_loss for e in full.history.epochs]
    for a, b in zip(resumed_model.state_dict().values(), full.model.state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu())


def test_train_run_resume_through_run_directory(tmp_path):
    data = synthetic(160)
    cfg = TrainConfig(epochs=2, batch_size=32)
    out = tmp_path / "run"
    train_run("s6", out, cfg, data=data, progress=False)
    with pytest.raises(RunError, match="already holds a run; add --resume"):
        train_run("s6", out, cfg, data=data, progress=False)
    with pytest.raises(RunError, match="its train settings differ"):
        train_run("s6", out, TrainConfig(epochs=3, batch_size=32), data=data, resume=True, progress=False)
    again = train_run("s6", out, cfg, data=data, resume=True, progress=False)
    assert len(again.history) == 2  # finished: nothing retrained


def test_resume_with_other_config_is_refused(tmp_path):
    data = synthetic(64)
    ckpt = tmp_path / "c.pt"
    fit(get_model("s6"), data, TrainConfig(epochs=1, batch_size=32), checkpoint=ckpt, progress=False)
    with pytest.raises(ValueError, match="different config.*lr differ"):
        fit(get_model("s6"), data, TrainConfig(epochs=1, batch_size=32, lr=0.2), checkpoint=ckpt,
            resume=True, progress=False)


def test_checkpoint_loads_with_weights_only(tmp_path):
    ckpt = tmp_path / "c.pt"
    fit(get_model("s6"), synthetic(64), TrainConfig(epochs=1, batch_size=32), checkpoint=ckpt, progress=False)
    state = torch.load(ckpt, weights_only=True)
    assert state["epoch"] == 1 and "optimizer" in state


def test_diverging_run_stops_with_a_clear_message():
    data = synthetic(64)
    bad = TensorSplit(data.train.images.clone(), data.train.labels)
    bad.images[3] = float("nan")
    with pytest.raises(TrainingDiverged, match="loss became nan at epoch 1, step 1.*lower the learning rate"):
        fit(get_model("s6"), MNISTTensors(bad, bad), TrainConfig(epochs=1, batch_size=64), progress=False)


def test_huge_learning_rate_diverges():
    with pytest.raises(TrainingDiverged):
        fit(get_model("s6", batchnorm=False), synthetic(256),
            TrainConfig(epochs=3, batch_size=32, lr=1e12, schedule="constant", precision="fp32",
                        augment=False), progress=False)


def test_predict_and_evaluate_shapes():
    model = get_model("s6")
    data = synthetic(30)
    assert predict(model, data.test.images, batch_size=7).shape == (30, 10)
    ev = evaluate(model, data.test, batch_size=7)
    assert ev.n == 30 and 0 <= ev.accuracy <= 100 and math.isfinite(ev.loss)


def test_fp32_and_no_channels_last_switches():
    h = fit(get_model("s6"), synthetic(64), TrainConfig(epochs=1, batch_size=32, precision="fp32",
                                                        channels_last=False), progress=False)
    assert len(h) == 1


def test_cuda_request_without_cuda_is_explained():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(ValueError, match="CUDA is not available; use --device cpu"):
        fit(get_model("s6"), synthetic(32), TrainConfig(epochs=1, device="cuda"), progress=False)


def test_real_mnist_subset_reaches_a_floor(tiny_run):
    """Real MNIST: 4,000 training images, 2 epochs, tested on 2,000 test images."""
    assert tiny_run.history.final_acc >= 90.0
    assert (tiny_run.path / "report.md").exists()


def test_load_run_errors(tmp_path, tiny_run):
    with pytest.raises(RunError, match="is not a run directory"):
        load_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="has no config.json"):
        load_run(tmp_path / "empty")
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_run.path, copy)
    (copy / "model.pt").unlink()
    (copy / "checkpoint.pt").unlink()
    with pytest.raises(RunError, match="recorded run.*weights are not committed.*--resume"):
        load_run(copy)
    (copy / "history.json").unlink()
    with pytest.raises(RunError, match="never finished an epoch.*--resume"):
        load_run(copy)


def test_weights_of_another_architecture_are_named(tmp_path, tiny_run):
    import shutil

    copy = tmp_path / "other"
    shutil.copytree(tiny_run.path, copy)
    torch.save(get_model("s6", num_classes=7).state_dict(), copy / "model.pt")
    with pytest.raises(RunError, match="do not fit the architecture 's6'.*another model"):
        load_run(copy)


def test_history_helpers():
    h = History([EpochRecord(i, 0.1, 99, 0.1, a, 0.1, i + 0.5, 0.8) for i, a in enumerate([99.0, 99.5, 99.3], 1)])
    assert h.first_epoch_reaching(99.4) == 2 and h.first_epoch_reaching(99.9) is None
    assert h.seconds_to_reach(99.4) == 4.0 and h.seconds_to_reach(99.0) == 1.5 and h.seconds_to_reach(99.9) is None
    assert History.from_json(h.to_json()) == h


def test_old_checkpoint_config_without_new_fields_resumes(tmp_path):
    """A run written before a TrainConfig field existed resumes: the new field takes its default."""
    data = synthetic(64)
    cfg = TrainConfig(epochs=2, batch_size=32)
    ckpt = tmp_path / "c.pt"

    class Stop(Exception):
        pass

    def stop(history, model):
        raise Stop

    with pytest.raises(Stop):
        fit(get_model("s6"), data, cfg, checkpoint=ckpt, progress=False, on_epoch=stop)
    state = torch.load(ckpt, weights_only=True)
    del state["config"]["label_smoothing"]  # written before the field existed: its default
    state["config"]["compile"] = True  # and a lever that left the trainer since (RETIRED): dropped
    torch.save(state, ckpt)
    assert len(fit(get_model("s6"), data, cfg, checkpoint=ckpt, resume=True, progress=False)) == 2


def test_fast_dropout_switch_is_seeded_either_way():
    for flag in (True, False):
        seed_everything(0)
        h = fit(get_model("s6"), synthetic(64), TrainConfig(epochs=2, batch_size=32, fast_dropout=flag),
                progress=False)
        seed_everything(0)
        again = fit(get_model("s6"), synthetic(64), TrainConfig(epochs=2, batch_size=32, fast_dropout=flag),
                    progress=False)
        assert again.test_acc == h.test_acc  # each path is seeded


@pytest.mark.parametrize("flag", [True, False])
def test_retain_memory_switch_decides_whether_fit_asks_the_allocator(monkeypatch, flag):
    import s6lab.train

    calls = []
    monkeypatch.setattr(s6lab.train, "retain_freed_memory", lambda: calls.append(1) or True)
    h = fit(get_model("s6"), synthetic(32), TrainConfig(epochs=1, batch_size=32, retain_memory=flag, device="cpu"),
            progress=False)
    assert len(h) == 1 and len(calls) == int(flag)


def test_retired_levers_left_the_config_and_old_run_files_still_load():
    from s6lab.train import RETIRED

    assert set(RETIRED) == {"inplace_relu", "fused", "compile"}
    assert not set(RETIRED) & {f.name for f in dataclasses.fields(TrainConfig)}
    old = {**TrainConfig(epochs=3).to_dict(), "inplace_relu": True, "fused": False, "compile": False}
    assert TrainConfig.from_dict(old) == TrainConfig(epochs=3)
    with pytest.raises(ConfigError, match="unknown TrainConfig field"):
        TrainConfig.from_dict({"compiled": True})
    for reason in RETIRED.values():  # each names its measurement per machine class
        assert "AVX-512" in reason and "AVX2" in reason


def test_reproducible_switches_cudnn_to_deterministic_on_cuda_and_restores_it(monkeypatch):
    """Only the flags: the bit-for-bit check itself runs on a GPU (benchmarks/cuda_determinism.py)."""
    from s6lab.train import reproducible

    cudnn = torch.backends.cudnn
    monkeypatch.setattr(cudnn, "deterministic", False)
    monkeypatch.setattr(cudnn, "benchmark", True)
    with reproducible(torch.device("cpu")):
        assert (cudnn.deterministic, cudnn.benchmark) == (False, True)  # a CPU run leaves them alone
    with pytest.raises(RuntimeError), reproducible(torch.device("cuda")):
        assert (cudnn.deterministic, cudnn.benchmark) == (True, False)
        raise RuntimeError("a training that fails half way")
    assert (cudnn.deterministic, cudnn.benchmark) == (False, True)


def test_the_last_clean_epochs_train_on_the_images_as_they_are(monkeypatch):
    """clean_last_epochs=1 of 3: augmentation runs in epochs 1 and 2 only; the clean epoch draws
    nothing from the augmentation generator, so the first two epochs are those of a plain run."""
    import s6lab.train as train

    calls: list[int] = []
    real = train.augment_batch
    monkeypatch.setattr(train, "augment_batch", lambda xb, *a: calls.append(len(xb)) or real(xb, *a))
    histories = []
    for clean in (0, 1):
        calls.clear()
        torch.manual_seed(0)
        histories.append(fit(get_model("s6"), synthetic(128), TrainConfig(
            epochs=3, batch_size=64, precision="fp32", clean_last_epochs=clean), progress=False))
        assert len(calls) == 2 * (3 - clean)  # two steps per epoch, augmented epochs only
    losses = [[e.test_loss for e in h.epochs] for h in histories]
    assert losses[0][:2] == losses[1][:2] and losses[0][2] != losses[1][2]
