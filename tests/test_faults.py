"""Nothing lost, nothing mixed: run directories under faults, and every bad input a one-line error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch

from s6lab.cli import main
from s6lab.comparison import compare, run_dir
from s6lab.data import MNISTTensors, TensorSplit
from s6lab.models import get_model
from s6lab.runs import RunError, load_run, train_run
from s6lab.train import TrainConfig, TrainingDiverged, fit, resolve_device


def synthetic(n: int) -> MNISTTensors:
    g = torch.Generator().manual_seed(0)
    split = TensorSplit(torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g))
    return MNISTTensors(split, split)


def tiny(tmp_path, **kw):
    cfg = TrainConfig(**{"epochs": 1, "batch_size": 32, "device": "cpu", "precision": "fp32", **kw})
    return train_run("s6", tmp_path / "run", cfg, data=synthetic(64), progress=False)


def test_a_second_trainer_on_the_same_directory_is_refused(tmp_path):
    """Another process holds the run directory's OS lock: training into it stops with a clear message."""
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom filelock import FileLock\n"
                               f"lock = FileLock({str(out / '.lock')!r})\nlock.acquire()\nprint('held', flush=True)\n"
                               "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunError, match="being trained by another s6lab process right now"):
            train_run("s6", out, TrainConfig(epochs=1, batch_size=32), data=synthetic(32), progress=False)
        assert not (out / "config.json").exists()  # nothing of the second run was written
    finally:
        holder.kill()
        holder.wait()
    tiny(tmp_path)  # the lock is free again once the holder is gone


def test_out_pointing_at_a_file_is_named(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    with pytest.raises(RunError, match="is a file, not a directory"):
        train_run("s6", tmp_path / "f", TrainConfig(epochs=1), data=synthetic(32), progress=False)
    assert main(["train", "--out", str(tmp_path / "f"), "--epochs", "1"]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err


def test_a_run_that_failed_before_its_first_epoch_does_not_block_a_retry(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged):
        train_run("s6", out, TrainConfig(epochs=1, batch_size=32, lr=1e4, precision="fp32"), data=synthetic(64),
                  progress=False)
    assert (out / "config.json").exists() and not (out / "history.json").exists()
    run = train_run("s6", out, TrainConfig(epochs=1, batch_size=32, precision="fp32"), data=synthetic(64),
                    progress=False)  # corrected flags, no --resume needed
    assert run.finished and run.config.lr == 0.1


def test_an_exploding_but_finite_loss_is_divergence():
    with pytest.raises(TrainingDiverged, match="training diverged; lower the learning rate"):
        fit(get_model("s6"), synthetic(256), TrainConfig(epochs=1, batch_size=32, lr=1e4, precision="fp32",
                                                         device="cpu"), progress=False)


@pytest.mark.parametrize("name", ["config.json", "history.json"])
def test_damaged_json_is_named_with_the_fix(tmp_path, name, capsys):
    run = tiny(tmp_path)
    (run.path / name).write_text("{not json")
    with pytest.raises(RunError, match=f"{name} is not valid JSON .* line 1.*delete it and train again"):
        load_run(run.path)
    assert main(["check", str(run.path)]) == 2
    err = capsys.readouterr().err
    assert name in err and "Traceback" not in err


def test_wrong_fields_in_history_are_named(tmp_path):
    run = tiny(tmp_path)
    (run.path / "history.json").write_text(json.dumps([{"epoch": 1, "colour": "red"}]))
    with pytest.raises(RunError, match="missing or wrong fields"):
        load_run(run.path)


@pytest.mark.parametrize("name", ["model.pt", "checkpoint.pt"])
def test_truncated_or_foreign_weights_never_suggest_unsafe_loading(tmp_path, name, capsys):
    run = tiny(tmp_path)
    if name == "checkpoint.pt":
        (run.path / "model.pt").unlink()
    data = (run.path / name).read_bytes()
    (run.path / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(RunError, match=f"{name} cannot be loaded as s6lab weights") as e:
        load_run(run.path)
    assert "weights_only=False" not in str(e.value)
    assert main(["mistakes", str(run.path)]) == 2
    assert "weights_only" not in capsys.readouterr().err


def test_a_checkpoint_without_model_weights_is_named(tmp_path):
    run = tiny(tmp_path)
    (run.path / "model.pt").unlink()
    torch.save({"epoch": 1, "weights": {}}, run.path / "checkpoint.pt")  # loadable, but not fit's layout
    with pytest.raises(RunError, match="checkpoint.pt: not a checkpoint written by s6lab's fit"):
        load_run(run.path)


def test_a_planted_pickle_is_refused_not_executed(tmp_path):
    import pickle

    class Boom:
        def __reduce__(self):
            return (print, ("planted code ran",))

    run = tiny(tmp_path)
    (run.path / "model.pt").write_bytes(pickle.dumps(Boom(), protocol=2))  # torch.save's protocol
    with pytest.raises(RunError, match="cannot be loaded as s6lab weights"):
        load_run(run.path)


def test_a_truncated_checkpoint_on_resume_is_one_clear_error(tmp_path):
    ckpt = tmp_path / "c.pt"
    ckpt.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="cannot be loaded as an s6lab checkpoint.*delete it to start over"):
        fit(get_model("s6"), synthetic(32), TrainConfig(epochs=1, batch_size=32), checkpoint=ckpt, resume=True,
            progress=False)


@pytest.mark.parametrize("device", ["foo", "tpu", "cuda:x"])
def test_unknown_devices_are_named(device, capsys):
    with pytest.raises(ValueError, match=f"unknown device {device!r}; use auto, cpu, cuda or cuda:N"):
        resolve_device(device)
    assert main(["train", "--device", device, "--epochs", "1"]) == 2
    assert "unknown device" in capsys.readouterr().err


@pytest.mark.parametrize("seed", [-1, 2**63])
def test_seeds_outside_the_valid_range(seed, capsys):
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*63 - 1\)"):
        TrainConfig(seed=seed)
    assert main(["train", "--seed", str(seed), "--epochs", "1"]) == 2


def test_compare_epochs_zero_is_an_error_not_the_default(tmp_path):
    with pytest.raises(ValueError, match="epochs must be a positive integer, got 0"):
        compare(["s6"], seeds=[0], epochs=0, out=tmp_path, data=synthetic(32), progress=False)


def test_compare_does_not_reuse_a_run_of_an_older_architecture(tmp_path):
    data = synthetic(64)
    compare(["s6"], seeds=[0], epochs=1, out=tmp_path, data=data, progress=False)
    config_file = run_dir(tmp_path, "s6", 0, 1) / "config.json"
    saved = json.loads(config_file.read_text())
    saved["model"]["layers"][0]["dropout"] = 0.3  # as if the variant's layers changed since
    config_file.write_text(json.dumps(saved))
    with pytest.raises(RunError, match=r"architecture \(the layers of 's6' differ"):
        compare(["s6"], seeds=[0], epochs=1, out=tmp_path, data=data, progress=False)


def test_resume_names_the_differing_fields_and_the_original_command(tmp_path):
    tiny(tmp_path, epochs=2)
    with pytest.raises(RunError,  # (a run trained with instruction-set caps: they come first)
                       match=r"\(lr\); repeat the original command \(`(\S+=\S+ )*s6lab train --model s6 --epochs 2 "):
        train_run("s6", tmp_path / "run", TrainConfig(epochs=2, batch_size=32, device="cpu", precision="fp32",
                                                      lr=0.3), data=synthetic(64), resume=True, progress=False)


def test_the_data_root_is_recorded(tmp_path):
    run = tiny(tmp_path)
    assert run.meta["data_root"]


def test_killed_trainer_releases_its_lock(tmp_path):
    """kill -9 of a training process: the OS drops its lock, and --resume continues the run."""
    out = tmp_path / "run"
    code = ("import torch\nfrom s6lab.runs import train_run\nfrom s6lab.train import TrainConfig\n"
            "from s6lab.data import MNISTTensors, TensorSplit\n"
            "s = TensorSplit(torch.randn(20000, 1, 28, 28), torch.randint(0, 10, (20000,)))\n"
            f"train_run('s6', {str(out)!r}, TrainConfig(epochs=50, batch_size=32, precision='fp32'), "
            "data=MNISTTensors(s, s.subset(64)), progress=False)\n")
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 120
    while not (out / "config.json").exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1)
    proc.kill()
    proc.wait()
    run = train_run("s6", out, TrainConfig(epochs=1, batch_size=32, precision="fp32"), data=synthetic(64),
                    progress=False)  # no history yet: a fresh start, not a refusal
    assert run.finished


@pytest.mark.parametrize("override, message", [("in_channels=3", "in_channels=3, but MNIST needs in_channels=1"),
                                               ("num_classes=2", "num_classes=2, but MNIST needs num_classes=10")])
def test_models_that_cannot_take_mnist_are_refused_before_training(tmp_path, capsys, override, message):
    assert main(["train", "--set", override, "--epochs", "1", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err and "drop --set" in err and not (tmp_path / "r").exists()


def test_resume_under_another_thread_count_records_both(tmp_path):
    tiny(tmp_path, epochs=2)
    run_path = tmp_path / "run"
    (run_path / "model.pt").unlink()
    state = torch.load(run_path / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 2
    threads = torch.get_num_threads()
    torch.set_num_threads(1 if threads > 1 else 2)
    try:
        run = train_run("s6", run_path, TrainConfig(epochs=2, batch_size=32, device="cpu", precision="fp32"),
                        data=synthetic(64), resume=True, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert [t["threads"] for t in run.meta["trained_on"]] == [threads, 1 if threads > 1 else 2]


def test_a_full_disk_keeps_the_last_checkpoint_and_says_how_to_go_on(tmp_path, monkeypatch, capsys):
    """ENOSPC while writing the second epoch's checkpoint (mocked: no size-limited filesystem here)."""
    import errno

    import s6lab._io as io

    out = tmp_path / "run"
    real_write = io.atomic_write
    calls = {"n": 0}

    def full_disk(path, write):
        if str(path).endswith("checkpoint.pt"):
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_write(path, write)

    monkeypatch.setattr(io, "atomic_write", full_disk)
    code = main(["train", "--epochs", "2", "--train-size", "64", "--test-size", "32", "--batch-size", "32",
                 "--quiet", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "No space left on device: " in err and "free some disk space" in err
    assert "--resume" in err and "Traceback" not in err
    state = torch.load(out / "checkpoint.pt", weights_only=True)  # the first epoch's, intact
    assert state["epoch"] == 1
    monkeypatch.setattr(io, "atomic_write", real_write)
    assert main(["train", "--epochs", "2", "--train-size", "64", "--test-size", "32", "--batch-size", "32",
                 "--quiet", "--out", str(out), "--resume"]) in (0, 1)
    assert len(load_run(out).history) == 2


#: on the CPU: on a GPU all 8 epochs end before a kill lands (test_train checks resume wherever it runs)
TRAINER = """
import sys, torch
from s6lab.data import MNISTTensors, TensorSplit
from s6lab.runs import train_run
from s6lab.train import TrainConfig
g = torch.Generator().manual_seed(0)
split = TensorSplit(torch.randn(640, 1, 28, 28, generator=g), torch.randint(0, 10, (640,), generator=g))
train_run("s6", sys.argv[1], TrainConfig(epochs=8, batch_size=32, seed=3, precision="fp32", device="cpu"),
          data=MNISTTensors(split, split.subset(128)), resume=True, progress=False)
"""


def test_kill_9_at_random_points_then_resume_ends_exactly_like_an_uninterrupted_run(tmp_path):
    """Each restart is killed (SIGKILL) a random moment after it finished one more epoch: inside the
    next epoch, or while writing its files. The resumed run ends bit for bit where the whole one does."""
    import random

    def start(out):  # one thread each: the whole run trains beside the killed ones, with the same numerics
        env = {**os.environ, "S6LAB_THREADS": "1", "OMP_NUM_THREADS": "1"}
        return subprocess.Popen([sys.executable, "-c", TRAINER, str(out)], env=env)

    def epochs_done(out):
        try:
            return len(json.loads((out / "history.json").read_text()))
        except (FileNotFoundError, json.JSONDecodeError):
            return 0

    whole = start(tmp_path / "whole")
    rng = random.Random(0)
    out, kills = tmp_path / "killed", 0
    for _ in range(2):
        proc, before = start(out), epochs_done(out)
        while epochs_done(out) == before and proc.poll() is None:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.8))
        if proc.poll() is None:
            proc.kill()  # no cleanup, no flush
            kills += 1
        proc.wait()
    assert kills == 2 and 0 < epochs_done(out) < 8  # epochs were left for the resumed run to train
    assert start(out).wait(timeout=600) == 0
    assert whole.wait(timeout=600) == 0
    a, b = load_run(tmp_path / "whole"), load_run(out)
    assert [e.test_acc for e in a.history.epochs] == [e.test_acc for e in b.history.epochs]
    assert [e.train_loss for e in a.history.epochs] == [e.train_loss for e in b.history.epochs]
    for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()):
        assert torch.equal(x, y)


@pytest.fixture
def small_disk(tmp_path):
    """A real 300 KB filesystem (tmpfs): room for one checkpoint of the reference net, not two at once."""
    import shutil

    disk = tmp_path / "disk"
    disk.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command: the mocked-ENOSPC test covers this case")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(disk)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()[:80]}): the mocked-ENOSPC test covers it")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_a_really_full_disk_keeps_the_last_checkpoint(small_disk, capsys):
    """Real MNIST subset (64 / 32 images), 2 epochs, on a disk that holds one checkpoint but not two."""
    out = small_disk / "run"
    code = main(["train", "--epochs", "2", "--train-size", "64", "--test-size", "32", "--batch-size", "32",
                 "--quiet", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "No space left on device" in err and "free some disk space" in err, err
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 1  # intact, loadable
    assert not list(out.glob(".*.part"))  # no half-written temporary file left behind


def test_weights_that_are_not_a_state_dict_are_named(tmp_path, capsys):
    run = tiny(tmp_path)
    torch.save(torch.zeros(3), run.path / "model.pt")  # loads with weights_only=True, but is no model
    with pytest.raises(RunError, match="model.pt holds a Tensor, not a model's state dict"):
        load_run(run.path)
    assert main(["check", str(run.path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("history", [None, "[]"])
def test_weights_without_a_history_are_a_damaged_run_not_a_fail(tmp_path, history, capsys):
    """No history.json (or an empty one) beside the weights: the record is lost; `check` used to print a FAIL
    table with nan% and `report` wrote one. The message's --resume command rebuilds the history."""
    run = tiny(tmp_path)
    if history is None:
        (run.path / "history.json").unlink()
    else:
        (run.path / "history.json").write_text(history)
    with pytest.raises(RunError, match="holds weights but its history.json is missing or empty.*--resume"):
        load_run(run.path)
    for command in ("check", "report"):
        assert main([command, str(run.path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "history.json is missing or empty" in err


def test_a_damaged_checkpoint_is_not_told_to_resume_from_itself(tmp_path):
    run = tiny(tmp_path)
    (run.path / "model.pt").unlink()
    (run.path / "checkpoint.pt").write_bytes(b"garbage")
    with pytest.raises(RunError, match="checkpoint.pt cannot be loaded") as e:
        load_run(run.path)
    assert "resume from the run's checkpoint" not in str(e.value) and "train the run again" in str(e.value)


def test_a_run_directory_that_is_a_file_is_not_told_to_train_into_it(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert main(["check", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    assert "is a file, not a run directory" in err and f"--out {tmp_path / 'f'}" not in err  # no training into it


def test_resume_of_a_run_whose_config_is_not_an_object_is_one_line(tmp_path, capsys):
    run = tiny(tmp_path)
    (run.path / "config.json").write_text("[]")
    with pytest.raises(RunError, match=r"config.json holds no s6lab run settings \(a JSON list\)"):
        train_run("s6", run.path, TrainConfig(epochs=1, batch_size=32, precision="fp32"), data=synthetic(64),
                  progress=False, resume=True)


@pytest.mark.parametrize("recipe, message", [
    ({"model": "s6", "train": [1]}, "the recipe's train is a JSON list; give an object of TrainConfig fields"),
    ({"model": "s6", "data": 5}, "the recipe's data is a JSON int; give an object of DataSelection fields"),
])
def test_a_config_file_with_parts_of_the_wrong_shape_is_one_line(tmp_path, capsys, recipe, message):
    (tmp_path / "c.json").write_text(json.dumps(recipe))
    assert main(["train", "--config", str(tmp_path / "c.json"), "--print-config"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_weights_without_history_or_checkpoint_are_told_resume_starts_over(tmp_path):
    run = tiny(tmp_path)
    (run.path / "history.json").unlink()
    (run.path / "checkpoint.pt").unlink()
    with pytest.raises(RunError, match=r"trains the run again from the start \(there is no checkpoint\)"):
        load_run(run.path)


@pytest.mark.parametrize("config", ["[]", '{"model": {}}'])
def test_compare_names_a_damaged_config_of_a_recorded_run(tmp_path, config):
    from s6lab.runs import recorded_in_full

    run = tiny(tmp_path)
    (run.path / "config.json").write_text(config)
    with pytest.raises(RunError, match="missing or wrong fields"):
        recorded_in_full(run.path)


@pytest.mark.parametrize("value", ["1e999", "NaN", "-3"])
def test_an_accuracy_that_is_no_percentage_is_a_damaged_history_not_a_pass(tmp_path, value):
    """`check` printed `inf% PASS` for a history.json whose test_acc read 1e999 (json reads it as inf)."""
    run = tiny(tmp_path)
    text = (run.path / "history.json").read_text()
    rows = json.loads(text)
    (run.path / "history.json").write_text(text.replace(json.dumps(rows[0]["test_acc"]), value, 1))
    with pytest.raises(RunError, match="holds test_acc=.* at epoch 1, not a percentage"):
        load_run(run.path)
