"""Run directories record the machine and the precision that ran; recorded runs are checkable from a fresh clone."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
import torch

from s6lab.cli import main
from s6lab.data import MNISTTensors, TensorSplit
from s6lab.models import get_model, get_recipe
from s6lab.runs import RunError, load_run, recorded_precision, reproduce_command, train_run
from s6lab.train import TrainConfig, fit

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "results" / "runs" / "s6" / "e15-s0"  # committed: config.json + history.json, no weights


def synthetic(n: int) -> MNISTTensors:
    g = torch.Generator().manual_seed(0)
    split = TensorSplit(torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g))
    return MNISTTensors(split, split)


@pytest.fixture
def no_bf16(monkeypatch):
    monkeypatch.setenv("S6LAB_NATIVE_BF16", "0")


def test_config_records_resolved_precision_machine_and_torch(tmp_path, no_bf16):
    out = tmp_path / "run"
    run = train_run("s6", out, TrainConfig(epochs=1, batch_size=32, device="cpu"), data=synthetic(64),
                    progress=False)
    meta = json.loads((out / "config.json").read_text())
    assert meta["train"]["precision"] == "auto" and meta["precision"] == "fp32"
    assert "no native bf16" in meta["precision_reason"]
    assert meta["machine"]["cpu_capability"] and meta["machine"]["cpu_model"] and meta["torch"] == torch.__version__
    assert meta["machine"]["native_bf16"] is False and "no bf16" in meta["machine_class"]
    assert "--precision fp32" in reproduce_command(run)  # the command means the same recipe everywhere


def test_resume_in_another_precision_is_refused_by_name(tmp_path, no_bf16):
    out = tmp_path / "run"
    cfg = TrainConfig(epochs=2, batch_size=32, device="cpu")
    train_run("s6", out, cfg, data=synthetic(64), progress=False)
    meta = json.loads((out / "config.json").read_text())
    meta["precision"] = "bf16"  # as if trained on a CPU with native bf16, where auto meant bf16
    (out / "config.json").write_text(json.dumps(meta))
    with pytest.raises(RunError, match=r"precision \(bf16 there, fp32 here.*--precision bf16"):
        train_run("s6", out, cfg, data=synthetic(64), resume=True, progress=False)


def test_a_run_records_the_patch_statistics_and_resume_compares_them(tmp_path):
    """The default (auto) computes layer 1's BatchNorm from patch statistics on a CPU: config.json says so, and
    a resume that would turn it off is another recipe, named; so is an older run, which recorded only the field
    (False, the default then) and trained with the stock BatchNorm."""
    out = tmp_path / "run"
    cfg = TrainConfig(epochs=2, batch_size=32, device="cpu")
    train_run("s6", out, cfg, data=synthetic(64), progress=False)
    meta = json.loads((out / "config.json").read_text())
    assert meta["patch_statistics"] is True and meta["train"]["first_bn_from_patches"] is None
    off = TrainConfig(epochs=2, batch_size=32, device="cpu", first_bn_from_patches=False)
    with pytest.raises(RunError, match=r"first_bn_from_patches \(layer 1's BatchNorm from patch statistics on "
                                       r"there, off here\)"):
        train_run("s6", out, off, data=synthetic(64), resume=True, progress=False)
    forced = TrainConfig(epochs=2, batch_size=32, device="cpu", first_bn_from_patches=True)
    train_run("s6", out, forced, data=synthetic(64), resume=True, progress=False)  # on either way: the same run
    del meta["patch_statistics"]
    meta["train"]["first_bn_from_patches"] = False  # as a run written before the default changed
    (out / "config.json").write_text(json.dumps(meta))
    with pytest.raises(RunError, match=r"patch statistics off there, on here"):
        train_run("s6", out, cfg, data=synthetic(64), resume=True, progress=False)
    assert get_recipe("s6", train=off).differences(meta, torch.device("cpu")) == []  # the stock path there too


def test_commands_and_config_files_of_a_run_pin_the_patch_statistics_it_trained_with(tmp_path):
    """A run's reproduce command and its config.json (``--config``) mean what ran on any machine: the default
    run here (on), a run of the older default (no field: off), a GPU run (auto there: off)."""
    from s6lab.recipe import Recipe

    out = tmp_path / "run"
    train_run("s6", out, TrainConfig(epochs=1, batch_size=32, device="cpu"), data=synthetic(64), progress=False)
    run = load_run(out)
    assert "--first-bn-from-patches" in reproduce_command(run).split()
    meta = json.loads((out / "config.json").read_text())
    for change, flag in ((lambda m: m.pop("patch_statistics") and m["train"].pop("first_bn_from_patches"),
                          "--no-first-bn-from-patches"),  # written before the field existed
                         (lambda m: m.update(patch_statistics=False, device="cuda:0"), "--no-first-bn-from-patches")):
        old = json.loads(json.dumps(meta))
        change(old)
        (out / "config.json").write_text(json.dumps(old))
        assert flag in reproduce_command(load_run(out)).split()
        assert Recipe.from_dict(old).differences(old, torch.device("cpu")) == []  # --config of it: the same run
    hand_written = {"model": meta["model"], "train": {**meta["train"], "first_bn_from_patches": None}}
    assert Recipe.from_dict(hand_written).train.first_bn_from_patches is None  # not a recorded run: auto stays
    off = get_recipe("s6", train=TrainConfig(epochs=1, batch_size=32, first_bn_from_patches=False))
    assert off.differences(hand_written, torch.device("cpu"))  # null there is auto: on, on a CPU


def test_fit_refuses_a_checkpoint_with_the_other_patch_statistics(tmp_path):
    ckpt = tmp_path / "c.pt"
    fit(get_model("s6"), synthetic(32), TrainConfig(epochs=1, batch_size=32, device="cpu"),
        checkpoint=ckpt, progress=False)
    assert torch.load(ckpt, weights_only=True)["patch_statistics"] is True
    with pytest.raises(ValueError, match=r"patch statistics on there, off here"):
        fit(get_model("s6"), synthetic(32), TrainConfig(epochs=2, batch_size=32, device="cpu",
                                                        first_bn_from_patches=False),
            checkpoint=ckpt, resume=True, progress=False)


def test_fit_refuses_a_checkpoint_of_another_precision(tmp_path, no_bf16):
    ckpt = tmp_path / "c.pt"
    fit(get_model("s6"), synthetic(32), TrainConfig(epochs=1, batch_size=32, device="cpu", precision="fp32"),
        checkpoint=ckpt, progress=False)
    state = torch.load(ckpt, weights_only=True)
    assert state["precision"] == "fp32"
    state["precision"] = "bf16"
    torch.save(state, ckpt)
    with pytest.raises(ValueError, match=r"precision \(bf16 there, fp32 here.*--precision bf16"):
        fit(get_model("s6"), synthetic(32), TrainConfig(epochs=1, batch_size=32, device="cpu", precision="fp32"),
            checkpoint=ckpt, resume=True, progress=False)


def test_older_runs_without_a_recorded_precision_read_the_bf16_flag():
    assert recorded_precision({"bf16": True}) == "bf16"
    assert recorded_precision({"bf16": False}) == "fp32"
    assert recorded_precision({"precision": "fp32", "bf16": True}) == "fp32"


def test_check_works_from_config_and_history_alone(tmp_path, capsys):
    """A committed run, as a fresh clone has it: no weights. The check rebuilds the recorded spec."""
    copy = tmp_path / "recorded"
    shutil.copytree(RECORDED, copy)
    assert sorted(p.name for p in copy.iterdir()) == ["config.json", "history.json"]
    assert main(["check", str(copy)]) == 0
    out = capsys.readouterr().out
    assert "19,602" in out and "Overall: PASS" in out
    run = load_run(copy, need_weights=False)
    assert run.finished and len(run.history) == 15


def test_commands_that_need_weights_say_they_are_not_committed(tmp_path, capsys):
    copy = tmp_path / "recorded"
    shutil.copytree(RECORDED, copy)
    for command in ("gallery", "saliency"):
        assert main([command, str(copy)]) == 2
        err = capsys.readouterr().err
        assert "is a recorded run" in err and "weights are not committed" in err
        assert "never finished" not in err
        assert "s6lab train --model s6 --epochs 15 --weight-decay 0.0 --precision bf16" in err
        assert f"--out {copy} --resume" in err


def test_the_printed_retrain_command_is_accepted_by_resume(tmp_path, no_bf16):
    """The suggested command resumes (retrains) the recorded run instead of being refused: run
    here on a tiny synthetic set with the recorded settings, 1 epoch."""
    out = tmp_path / "run"
    cfg = TrainConfig(epochs=1, batch_size=32, device="cpu", weight_decay=1e-4, precision="fp32")
    run = train_run("s6", out, cfg, data=synthetic(64), progress=False)
    (out / "model.pt").unlink()
    (out / "checkpoint.pt").unlink()
    with pytest.raises(RunError, match="recorded run") as e:
        load_run(out)
    command = str(e.value).split("`")[1]
    assert command == reproduce_command(run, resume=True) and "--weight-decay 0.0001" in command
    from s6lab.cli import build_parser, config_values

    words = shlex.split(command)
    while re.match(r"[A-Z_][A-Z0-9_]*=", words[0]):  # a run trained with instruction-set caps sets them first
        words.pop(0)
    assert words[:2] == ["s6lab", "train"]
    args = build_parser().parse_args(words[1:])
    again = train_run("s6", out, TrainConfig.from_dict({**TrainConfig().to_dict(), **config_values(args, TrainConfig)}),
                      data=synthetic(64), resume=True, progress=False)
    assert again.finished


def test_the_progress_says_which_variant_and_seed_is_training(tmp_path, capsys):
    """compare runs many trainings one after another: every bar and per-epoch line names its run."""
    train_run("s6-gap", tmp_path / "run", TrainConfig(epochs=1, batch_size=32, seed=3, device="cpu",
                                                      precision="fp32"), data=synthetic(64), progress=True)
    err = capsys.readouterr().err
    assert "s6-gap seed 3, epoch 1/1: test accuracy" in err


def test_machine_line_names_every_thread_count_a_resumed_run_trained_with():
    from s6lab.runs import machine_line

    machine = {"device": "cpu", "device_name": "X", "cpu_model": "Xeon", "threads": 1, "torch": "2.11"}
    meta = {"machine": machine, "machine_class": "AVX512, bf16",
            "trained_on": [{"threads": 2}, {"threads": 1}]}
    assert machine_line(meta) == "Xeon (AVX512, bf16), 1-2 threads, torch 2.11"
    assert machine_line({**meta, "trained_on": []}) == "Xeon (AVX512, bf16), 1 thread, torch 2.11"
    busy = {**meta, "machine": {**machine, "threads": 4}, "trained_on": [{"threads": 4, "fewest_threads": 3}]}
    assert machine_line(busy) == "Xeon (AVX512, bf16), 3-4 threads, torch 2.11"  # another program took a core
    upgraded = {**meta, "machine": {**machine, "torch": "2.14"},
                "trained_on": [{"threads": 3, "torch": "2.11"}, {"threads": 1, "torch": "2.14"}]}
    assert machine_line(upgraded) == "Xeon (AVX512, bf16), 1-3 threads, torch 2.11 then 2.14"  # resumed under another


def test_a_capped_run_names_its_caps_and_its_command_sets_them(tmp_path, monkeypatch):
    """A run trained as an AVX2 preview (`PREVIEW=avx2`): its machine line names the caps, and the command
    that trains it again sets them (other kernels round differently)."""
    from s6lab.runs import machine_line, train_command

    run = train_run("s6", tmp_path / "run", TrainConfig(epochs=1, batch_size=32, device="cpu", precision="fp32"),
                    data=synthetic(64), progress=False)
    meta = json.loads((tmp_path / "run" / "config.json").read_text())
    caps = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    capped = {**meta, "machine": {**meta["machine"], "isa_caps": caps},
              "machine_class": "AVX2, no bf16, capped on AVX512"}
    assert "(AVX2, no bf16, capped on AVX512: ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2)" in machine_line(capped)
    command = train_command(run.recipe, capped, tmp_path / "run")
    assert command.startswith("ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 s6lab train ")
    assert reproduce_command(run).startswith("s6lab train ") is (not meta["machine"]["isa_caps"])  # as it trained here


def test_machine_line_of_a_gpu_run_names_the_gpu_once_and_its_host_cpu():
    from s6lab.runs import machine_line

    meta = json.loads((Path(__file__).parents[1] / "results/runs/s6/e18-s0-cuda-h100/config.json").read_text())
    assert machine_line(meta) == ("CUDA NVIDIA H100 80GB HBM3, host CPU Intel(R) Xeon(R) Processor (16 threads), "
                                  "torch 2.11.0+cu130")
