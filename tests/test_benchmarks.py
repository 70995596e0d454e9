"""The benchmark scripts run end to end (tiny windows) and explain a bad device."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def test_throughput_script_smoke_without_bf16(tmp_path):
    """Real MNIST, 2 batches per window, 1 window, bf16 reported unsupported (as on an AVX2 CPU,
    whatever this machine has): every setting reports, ratios are printed, no bf16 is timed."""
    out = tmp_path / "t.md"
    env = {**os.environ, "S6LAB_NATIVE_BF16": "0"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--steps", "2",
                           "--repeats", "1", "--eval-passes", "1", "--eval-images", "1000", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    text = out.read_text()
    for setting in ("typical-w0", "typical-w2", "s6lab"):
        assert f"| {setting} |" in text
    assert "vs faster typical" in text and "% of bf16 peak" in text and "round by round" in text
    assert "bf16 not supported here (no native bf16: skipped)" in text and "no bf16" in text
    assert text.count("| not supported here |") == 3  # one bf16 share per setting
    raw = json.loads(text.split("```json")[1].split("```")[0])
    assert set(raw["results"]) == {"typical-w0", "typical-w2", "s6lab"}
    assert all(r["train_ips"] > 0 for r in raw["results"].values())
    assert "eval img/s of 1 passes over 1,000 test images" in text


def test_throughput_script_names_an_unknown_recipe():
    assert_refused_in_one_line("throughput.py", ["--recipe", "s7"], "s7")


def test_throughput_script_names_a_missing_gpu():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    assert_refused_in_one_line("throughput.py", ["--device", "cuda"], "CUDA is not available; use --device cpu")


def _benchmark_module(name: str):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        return __import__(name)
    finally:
        sys.path.pop(0)


def test_throughput_ratio_is_taken_round_by_round_against_the_faster_typical_setting():
    throughput = _benchmark_module("throughput")
    results = {"typical-w0": {"train_ips_runs": [100.0, 200.0]},
               "typical-w2": {"train_ips_runs": [150.0, 100.0]},
               "s6lab": {"train_ips_runs": [300.0, 500.0]}}
    assert throughput.round_ratios(results) == [2.0, 2.5]


def test_levers_tables_show_ratios():
    levers = _benchmark_module("levers")
    configs = {"a": {}, "b": {}}
    lines = levers.table("t", configs, {"a": [100.0, 110.0, 90.0], "b": [200.0, 190.0, 210.0]},
                         {"a": 1.0, "b": 2.0}, chained=True)
    assert lines[2] == "| a | 100 | 90-110 | 1.00x | 1.00x (1.00-1.00x) | 1.00x | 1.0 |"
    # round by round: 200/100, 190/110, 210/90
    assert lines[3] == "| b | 200 | 190-210 | 2.00x | 2.00x (1.73-2.33x) | 2.00x | 2.0 |"
    configs = {"a": {}, "b": {}, "c": {}}
    rates = {"a": [100.0, 50.0], "b": [110.0, 60.0], "c": [90.0, 40.0]}
    lines = levers.table("t", configs, rates, {"a": 1, "b": 1, "c": 1}, chained=False)  # against row 1, round by round
    assert lines[3].split(" | ")[4] == "1.15x (1.10-1.20x)" and lines[4].split(" | ")[4] == "0.85x (0.80-0.90x)"


def test_levers_parity_rows_are_picked_by_one_unambiguous_part_of_their_name(capsys):
    import argparse

    levers = _benchmark_module("levers")
    parser = argparse.ArgumentParser(prog="levers.py")
    assert levers.pick_rows(None, parser) is levers.PARITY
    picked = levers.pick_rows(["DEFAULTS", "warm-up 10%"], parser)
    assert list(picked) == ["s6lab defaults", "OneCycle warm-up 10% of steps (default 20%)"]
    assert picked["OneCycle warm-up 10% of steps (default 20%)"] == {"warmup": 0.1, "first_bn_from_patches": False}
    for bad, count in (("warm", 2), ("lamb", 0)):
        with pytest.raises(SystemExit):
            levers.pick_rows([bad], parser)
        err = capsys.readouterr().err
        assert f"--rows '{bad}' matches {count} parity rows; name one of: s6lab defaults; fp32" in err


def test_one_off_rows_are_picked_the_same_way(capsys):
    import argparse

    levers = _benchmark_module("levers")
    parser = argparse.ArgumentParser(prog="levers.py")
    picked = levers.pick_rows(["relu_after_pool"], parser, levers.ONE_OFF, "--one-off")
    assert picked == {"each ReLU in front of its max-pool, as built: 4x the elements (relu_after_pool off)":
                      {"relu_after_pool": False}}
    with pytest.raises(SystemExit):
        levers.pick_rows(["relu"], parser, levers.ONE_OFF, "--one-off")
    assert "--one-off 'relu' matches 3 one-off rows" in capsys.readouterr().err


def test_small_bn_nchw_changes_the_two_transitions_and_only_the_summation_order():
    """trans1 (8 channels) and trans2 (16) normalise channels-first; outputs, gradients and running statistics
    agree with the channels-last net to rounding, and the activations stay channels-last."""
    from s6lab import get_model

    levers = _benchmark_module("levers")
    x = torch.randn(32, 1, 28, 28, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    results, seen = [], []
    for first in (False, True):
        torch.manual_seed(0)
        model = get_model("s6").double().to(memory_format=torch.channels_last)
        if first:
            assert levers.small_bn_nchw(model) == 2
            assert [name for name, m in model.named_modules() if "forward" in vars(m)] == ["trans1.bn", "trans2.bn"]
            model.trans1.bn.register_forward_hook(
                lambda m, i, o: seen.append(o.is_contiguous(memory_format=torch.channels_last)))
        torch.manual_seed(1)  # the same dropout masks
        out = model(x)
        out.sum().backward()
        results.append((out, [p.grad for p in model.parameters()], model.trans1.bn.running_var.clone()))
    assert seen == [True]  # the hook fired, on a channels-last output
    (out_a, grads_a, var_a), (out_b, grads_b, var_b) = results
    assert torch.allclose(out_a, out_b, rtol=1e-10, atol=1e-12) and torch.allclose(var_a, var_b, rtol=1e-12)
    assert all(torch.allclose(a, b, rtol=1e-8, atol=1e-12) for a, b in zip(grads_a, grads_b))


def test_every_one_off_lever_is_a_trainconfig_field_or_one_the_benchmark_applies():
    """The patch-statistics row turns the library's TrainConfig.first_bn_from_patches off (the defaults have it
    on since session 16): the benchmark keeps no copy of it."""
    from s6lab import TrainConfig

    levers = _benchmark_module("levers")
    for overrides in levers.ONE_OFF.values():
        TrainConfig(**{k: v for k, v in overrides.items() if k not in levers.BENCHMARK_LEVERS})  # no unknown field
    assert {"first_bn_from_patches": False} in levers.ONE_OFF.values()


def test_compile_bn_relu_pairs_every_batchnorm_with_its_relu():
    from s6lab import get_model

    model = get_model("s6")
    assert _benchmark_module("levers").compile_bn_relu(model) == 5
    assert isinstance(model.conv1.relu, torch.nn.Identity)
    assert sum(isinstance(m, torch.nn.ReLU) for m in model.modules()) == 5  # each inside its compiled pair


def test_levers_skip_bf16_rows_where_bf16_is_not_native():
    levers = _benchmark_module("levers")
    kept, notes = levers.without_bf16_rows(levers.LADDER, native=False)
    assert "+ bf16 autocast" not in kept and len(kept) == len(levers.LADDER) - 1
    assert notes == ["*+ bf16 autocast: bf16 not supported here (no native bf16): skipped*"]
    kept, notes = levers.without_bf16_rows(levers.PARITY, native=False)
    assert "fp32" not in kept and "s6lab defaults" in kept and len(notes) == 1
    assert levers.without_bf16_rows(levers.ONE_OFF, native=True) == (levers.ONE_OFF, [])
    assert all(name in {**levers.LADDER, **levers.ONE_OFF, **levers.PARITY} for name in levers.BF16_ROWS)


def test_recipe_rows_are_picked_by_one_part_and_bf16_is_skipped_without_native_support(tmp_path):
    """No training: bf16 on a machine without it is reported as not supported, with the machine named."""
    env = {**os.environ, "S6LAB_NATIVE_BF16": "0"}
    table = tmp_path / "r.md"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "recipe.py"), "--rows", "wd 5e-4, 18",
                           "--precision", "bf16", "--out", str(tmp_path), "--table", str(table)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    text = table.read_text()
    assert "| wd 5e-4, 18 epochs | bf16 | 0 of 3 | not supported here, none recorded |" in text
    assert "no bf16" in text
    assert_refused_in_one_line("recipe.py", ["--rows", "wd"], "--rows 'wd' matches 4 rows")


def test_speedrun_rows_are_picked_apart_from_the_margin_screen(capsys):
    import argparse

    recipe = _benchmark_module("recipe")
    parser = argparse.ArgumentParser(prog="recipe.py")
    assert recipe.pick_rows(["all"], parser) is recipe.ROWS  # the margin screen trains no speedrun row
    assert recipe.pick_rows(["speedrun"], parser) is recipe.SPEEDRUN_ROWS
    assert recipe.pick_rows(["batch 128, lr 0.05"], parser) == {
        "speedrun: 6 epochs, batch 128, lr 0.05": {"first_bn_from_patches": False, "epochs": 6, "batch_size": 128,
                                                   "lr": 0.05}}
    assert all(row["epochs"] < 20 for row in recipe.SPEEDRUN_ROWS.values())  # the assignment's rule
    with pytest.raises(SystemExit):
        recipe.pick_rows(["batch 128"], parser)
    several = sum("batch 128" in name for name in {**recipe.ROWS, **recipe.SPEEDRUN_ROWS})
    assert several > 1 and f"--rows 'batch 128' matches {several} rows" in capsys.readouterr().err


def test_machines_table_has_one_row_per_class_from_recorded_throughput_files():
    """The committed recordings parse; each row names its class, CPU, torch and the command."""
    machines = _benchmark_module("machines")
    text = (ROOT / "benchmarks" / "results" / "throughput-avx2-no-bf16.md").read_text()
    parsed = machines.parse_throughput(text)
    assert parsed["capability"] == "AVX2" and parsed["cpu_model"] and parsed["threads"] >= 1
    row = machines.row_from(parsed, machine_class="AVX2, no bf16", cpu_model=parsed["cpu_model"],
                            source="benchmarks/results/throughput-avx2-no-bf16.md", command="cmd", precision="fp32")
    assert row["s6lab_img_s"] > 0 and row["ratio_range"][0] <= row["ratio_median"] <= row["ratio_range"][1]
    table = machines.render({"AVX2, no bf16": row, "AVX512, bf16": {**row, "machine_class": "AVX512, bf16"}}, 18)
    assert table.count("| AVX2, no bf16 |") == 1 and table.count("| AVX512, bf16 |") == 1
    assert "(18 epochs)" in table and "s6lab doctor" in table


def test_machines_import_of_a_file_without_raw_results_is_one_clear_line(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "x.md"
    bad.write_text("no json here")
    assert_refused_in_one_line("machines.py", ["--import", str(bad)], "that file has no raw JSON block; pass a file")
    machines = _benchmark_module("machines")
    good = tmp_path / "cuda.md"
    good.write_text((ROOT / "benchmarks" / "results" / "throughput-cuda-nvidia-h100-80gb-hbm3.md").read_text())
    for path, message in ((tmp_path / "n", "no such file"), (good, "copy it into benchmarks/results/ first")):
        monkeypatch.setattr(sys, "argv", ["machines.py", "--import", str(path)])
        with pytest.raises(SystemExit) as e:
            machines.main()
        assert e.value.code == 2 and message in capsys.readouterr().err


def test_a_capped_recording_keeps_its_caps_in_the_class_and_the_command():
    """The capped AVX-512 VM's recording (an AVX2 preview) parses as capped, never as a real AVX2 CPU."""
    machines = _benchmark_module("machines")
    parsed = machines.parse_throughput(
        (ROOT / "benchmarks" / "results" / "throughput-avx2-no-bf16-capped-on-avx512.md").read_text())
    assert parsed["capped"] == "capped on AVX512" and parsed["capability"] == "AVX2"
    assert parsed["command"].startswith(
        "ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 python ")
    uncapped = machines.parse_throughput((ROOT / "benchmarks" / "results" / "throughput-avx2-no-bf16.md").read_text())
    assert uncapped["capped"] is None


def test_machines_row_of_a_gpu_recording_names_the_gpu_and_its_host_cpu():
    machines = _benchmark_module("machines")
    parsed = machines.parse_throughput(
        (ROOT / "benchmarks" / "results" / "throughput-cuda-nvidia-h100-80gb-hbm3.md").read_text())
    assert parsed["gpu"] == "NVIDIA H100 80GB HBM3" and parsed["host_cpu"] == "Intel(R) Xeon(R) Processor"
    row = machines.row_from(parsed, machine_class="CUDA " + parsed["gpu"], cpu_model="host CPU " + parsed["host_cpu"],
                            source="benchmarks/results/throughput-cuda-nvidia-h100-80gb-hbm3.md", command="cmd",
                            precision="bf16")
    table = machines.render({"CUDA": row}, 18)
    assert "| CUDA NVIDIA H100 80GB HBM3 (host CPU Intel(R) Xeon(R) Processor, torch 2.11.0+cu130) | bf16 |" in table


def test_levers_bn_folded_copy_predicts_what_the_model_predicts():
    levers = _benchmark_module("levers")
    from s6lab import get_model

    torch.manual_seed(0)
    model = get_model("s6")
    model.train()
    for _ in range(3):  # move the BN running statistics away from their initial values
        model(torch.randn(64, 1, 28, 28))
    model.eval()
    folded = levers.bn_folded(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    x = torch.randn(16, 1, 28, 28)
    with torch.inference_mode():
        assert torch.allclose(model(x), folded(x), atol=1e-4)


def _synthetic(n: int = 64):
    from s6lab.data import MNISTTensors, TensorSplit

    g = torch.Generator().manual_seed(0)
    split = TensorSplit(torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g))
    return MNISTTensors(split, split.subset(32))


def test_levers_inplace_relu_matches_out_of_place_and_is_restored():
    """In-place ReLU left TrainConfig for the levers benchmark: same numbers, flags restored (also on error)."""
    import torch.nn as nn

    from s6lab import get_model, seed_everything

    levers = _benchmark_module("levers")
    results = []
    for flag in (False, True):
        seed_everything(0)
        model = get_model("s6")
        levers.train_window(model, _synthetic(), {"inplace_relu": flag, "batch_size": 32, "precision": "fp32"})
        assert not any(m.inplace for m in model.modules() if isinstance(m, nn.ReLU))
        results.append(model.head.fc.weight.detach().clone())
    assert torch.allclose(results[0], results[1], atol=1e-6)
    model = get_model("s6")
    with pytest.raises(RuntimeError, match="boom"), levers.inplace_relu(model):
        assert all(m.inplace for m in model.modules() if isinstance(m, nn.ReLU))
        raise RuntimeError("boom")
    assert not any(m.inplace for m in model.modules() if isinstance(m, nn.ReLU))


def test_levers_fused_optimizer_matches_foreach_and_is_restored():
    import s6lab.train
    from s6lab import get_model, seed_everything

    levers = _benchmark_module("levers")
    make = s6lab.train.make_optimizer
    results, kinds = [], []
    for flag in (False, True):
        seed_everything(0)
        model = get_model("s6")
        with levers.fused_optimizer(flag):
            kinds.append(s6lab.train.make_optimizer(model, s6lab.TrainConfig()).defaults["fused"])
        levers.train_window(model, _synthetic(), {"fused": flag, "batch_size": 32, "precision": "fp32",
                                                  "augment": False})
        results.append(model.head.fc.weight.detach().clone())
    assert kinds == [None, True] and s6lab.train.make_optimizer is make
    assert torch.allclose(results[0], results[1], atol=1e-5)


def test_levers_compile_row_trains_the_compiled_module_with_s6lab_dropout():
    """torch.compile traces the model; s6lab's Dropout hands over to the compiler's own dropout (dynamo's
    tracing is what this checks: the eager backend skips inductor's minutes of code generation)."""
    import math

    from s6lab import get_model

    levers = _benchmark_module("levers")
    model = get_model("s6")
    h = levers.train_window(torch.compile(model, backend="eager"), _synthetic(), {"compile": True, "batch_size": 32})
    assert len(h) == 1 and math.isfinite(h.epochs[0].train_loss)


def test_recipe_table_lists_the_runs_that_stopped_before_their_last_epoch(tmp_path):
    recipe = _benchmark_module("recipe")
    from s6lab.runs import read_json

    name = "wd 5e-4, 18 epochs"
    recorded = ROOT / "results" / "recipe" / "runs" / recipe.slug(name) / "fp32-s0"
    for seed, epochs in ((0, 18), (1, 11)):
        run = tmp_path / "runs" / recipe.slug(name) / f"fp32-s{seed}"
        run.mkdir(parents=True)
        (run / "config.json").write_text((recorded / "config.json").read_text())
        (run / "history.json").write_text(json.dumps(read_json(recorded / "history.json")[:epochs]))
    left = recipe.unfinished(name, "fp32", [0, 1, 2], tmp_path)
    assert left == ["seed 1 (11 of 18 epochs)"]
    lines = recipe.table({(name, "fp32"): []}, [0, 1, 2], {(name, "fp32"): left})
    assert any("Started and not finished" in line for line in lines)
    assert f"- {name}, fp32: seed 1 (11 of 18 epochs)" in lines


def test_data_parallel_script_trains_ddp_replicas_in_step_and_writes_its_table(tmp_path):
    """Tiny run: each setting reports, and the DDP processes end every request with equal weights
    (their gradients were all-reduced; shards of different images would otherwise pull them apart)."""
    out = tmp_path / "dp.md"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "data_parallel.py"), "--rounds", "1",
                           "--images", "512", "--batch", "64", "--cores", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    text = out.read_text()
    assert "processes x 1 thread, DDP (gloo)" in text and "(s6lab)" in text and "| 1 process x 1 thread |" in text
    assert "vs s6lab quiet" in text and "loaded / quiet" in text
    raw = json.loads(text.split("```json")[1].split("```")[0])
    assert all(v and all(r > 0 for r in v) for v in raw.values())
    assert "(the weights' sum, bit for bit): yes." in text


def assert_refused_in_one_line(script: str, args: list[str], message: str, timeout: int = 60, *,
                               in_process: bool = True) -> None:
    """``benchmarks/SCRIPT args`` as its ``__main__`` runs it (``_args.run_main(main)``), in this process: exit 2
    and one stderr line with ``message`` as the only output, never a traceback. In-process, because a
    subprocess pays ~1.5 s for ``import torch`` per case (the suite has to fit 10 minutes on a 2-core AVX2
    laptop); a refusal that regressed and started the benchmark is stopped after ``timeout`` seconds. A case
    decided outside ``main`` (levers' ``--worker``) or by a child process (scaling's ``s6lab compare``) runs as
    a subprocess (``in_process=False``)."""
    if not in_process:
        done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args],
                              capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
        assert done.stderr.strip().count("\n") == 0 and message in done.stderr and not done.stdout, done.stderr
        return
    import contextlib
    import io
    import signal

    module, runner = _benchmark_module(script.removesuffix(".py")), _benchmark_module("_args")
    out, err, argv = io.StringIO(), io.StringIO(), sys.argv

    def too_long(*_):
        raise TimeoutError(f"{script} {' '.join(args)} ran for {timeout} s instead of refusing")

    previous = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(timeout)
    sys.argv = [str(ROOT / "benchmarks" / script), *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as e:
            runner.run_main(module.main)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        sys.argv = argv
    said = err.getvalue()
    assert e.value.code == 2 and "Traceback" not in said, said[-2000:]
    assert said.strip().count("\n") == 0 and message in said and not out.getvalue(), said


def assert_main_refuses(script: str, args: list[str], message: str, work: tuple[str, ...], monkeypatch,
                        capsys) -> None:
    """``main()`` of ``benchmarks/SCRIPT`` in this process, for a script that imports torch itself (a subprocess
    would pay for that again): exit 2 and one stderr line with ``message``, before any of the script's ``work``
    functions runs (each is replaced by one that fails the test, so that a missed refusal starts nothing)."""
    module = _benchmark_module(script.removesuffix(".py"))

    def started(*_, **__):
        raise AssertionError(f"{script} {' '.join(args)} started its work instead of refusing")

    for name in work:
        monkeypatch.setattr(module, name, started)
    monkeypatch.setattr(sys, "argv", [f"benchmarks/{script}", *args])
    with pytest.raises(SystemExit) as e:
        module.main()
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.strip().count("\n") == 0 and message in err, err


def _paths(args: list[str], tmp_path: Path) -> list[str]:
    """``args`` with ``{dir}`` an existing folder and ``{file}`` a regular file, both in ``tmp_path``."""
    (tmp_path / "file").write_text("x")
    return [a.format(dir=tmp_path, file=tmp_path / "file") for a in args]


#: what `_args.writable` says of an --out it cannot write at the end
A_FOLDER, UNDER_A_FILE = "is a folder; name a file in it instead", "is a file, not a folder; choose another path"


@pytest.mark.parametrize("args, message", [(["--batch", "1"], "--batch >="),
                                           (["--cores", "0"], "--cores must be 1 to")])
def test_data_parallel_script_refuses_bad_sizes_in_one_line(args, message):
    assert_refused_in_one_line("data_parallel.py", args, message)


def test_load_script_times_every_policy_quiet_and_loaded(tmp_path):
    """Tiny run (one round, 256 images, no settling epochs): each row with its quiet and loaded rate, the
    loaded share and the round-by-round ratio to PASSIVE, and the threads s6lab trained on following the load."""
    out = tmp_path / "load.md"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "load.py"), "--rounds", "1", "--images", "256",
                           "--settle", "0", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "img/s" not in line]
    assert [row.split(" | ")[0] for row in rows] == [
        "| OpenMP default", "| s6lab (PASSIVE)", "| s6lab, 1 thread (S6LAB_THREADS=1)",
        "| s6lab following the load (S6LAB_FOLLOW_LOAD=1)"]
    assert all(row.count("%") == 2 and row.endswith("x) |") for row in rows)
    assert "| s6lab (PASSIVE) |" in text and "| 1.00x (1.00-1.00x) |" in text  # PASSIVE against itself
    assert re.search(r"Following the load, s6lab trained on \d+ thread\(s\) at the fewest in the quiet rounds and "
                     r"\d+ in the loaded ones; loaded, it kept \d+% of its own quiet throughput", text)


def test_a_spincount_row_runs_openmps_default_policy_with_that_spin_count():
    load = _benchmark_module("load")
    name, config = load.spin_config(3000)
    assert name == "OpenMP default, GOMP_SPINCOUNT=3000"
    mine = {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "7", "S6LAB_THREADS": "1", "PATH": "/bin"}
    env = load.worker_env(config, 2, mine)
    assert env == {"PATH": "/bin", "OMP_NUM_THREADS": "2", "GOMP_SPINCOUNT": "3000"}  # no wait policy: the default
    assert load.worker_env(load.CONFIGS["s6lab (PASSIVE)"], 2, mine)["OMP_WAIT_POLICY"] == "PASSIVE"


def test_the_following_row_runs_as_a_user_does_who_set_only_follow_load():
    """The following row sets no OpenMP variable and no thread count, only S6LAB_FOLLOW_LOAD=1: s6lab chooses."""
    load = _benchmark_module("load")
    mine = {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "7", "S6LAB_THREADS": "1", "S6LAB_FOLLOW_LOAD": "0",
            "GOMP_SPINCOUNT": "7", "PATH": "/bin"}
    assert load.worker_env(load.CONFIGS[load.FOLLOWING], 2, mine) == {"PATH": "/bin", "S6LAB_FOLLOW_LOAD": "1"}
    # with --threads, it starts from that count, as the fixed rows do
    assert load.worker_env(load.CONFIGS[load.FOLLOWING], 4, mine, asked=True) == {
        "PATH": "/bin", "S6LAB_FOLLOW_LOAD": "1", "S6LAB_THREADS": "4"}


@pytest.mark.parametrize("args, message", [(["--rounds", "0"], "--rounds must be >= 1"),
                                           (["--settle", "-1"], "--settle >= 0"),
                                           (["--spincount", "-5"], "--spincount values must be >= 0"),
                                           (["--threads", "100000"], "--threads must be 1 to")])
def test_load_script_refuses_bad_input_in_one_line(args, message):
    assert_refused_in_one_line("load.py", args, message, timeout=60)


def test_bn_layout_script_times_every_shape_in_both_layouts(tmp_path):
    out = tmp_path / "bn.md"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bn_layout.py"), "--reps", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in out.read_text().splitlines() if line.startswith("| (256")]
    assert len(rows) in (4, 8) and all(line.endswith("x |") for line in rows)  # 8 where bf16 is native
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bn_layout.py"), "--reps", "0"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip() == "benchmarks/bn_layout.py: --reps must be >= 1, got 0"


def test_step_profile_groups_the_steps_time_by_kind_of_work(tmp_path):
    """Real MNIST, 2 batches: every kind of work has a row, the shares add up to 100%, the top operators
    are listed, and the machine and the command are named."""
    out = tmp_path / "p.md"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "step_profile.py"), "--batches", "2", "--top", "3",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    text = out.read_text()
    assert text.startswith("Command: `") and "python benchmarks/step_profile.py --batches 2 --top 3" in text
    assert "Machine: " in text and ("recipe s6 (batch 256, bf16)" in text or "recipe s6 (batch 256, fp32)" in text)
    rows = [line for line in text.splitlines() if line.startswith("| ") and line.endswith("% |")]
    groups = [row.split(" | ")[0][2:] for row in rows]
    assert groups[-1] == "other" and {"convolutions", "BatchNorm", "ReLU", "max-pool"} <= set(groups)
    assert abs(sum(float(row.split(" | ")[1].rstrip(" %|")) for row in rows) - 100) < 0.5
    assert float(rows[0].split(" | ")[1].rstrip(" %|")) > 0  # the largest share is a real one
    assert text.count("| `aten::") == 3


@pytest.mark.parametrize("args, message", [(["--batches", "0"], "--batches must be >= 1, got 0"),
                                           (["--top", "0"], "--top must be >= 1, got 0"),
                                           (["--recipe", "s7"], "s7"),
                                           (["--batches", "235"], "--batches must be at most 234 (batches of 256")])
def test_step_profile_refuses_bad_input_in_one_line(args, message):
    assert_refused_in_one_line("step_profile.py", args, message)


def test_every_benchmark_records_its_command_through_one_helper():
    """A recorded command must paste back as it ran: each benchmark that writes a ``Command:`` line builds it with
    ``hardware.recorded_command`` (caps, then every argument shell-quoted), none by joining ``sys.argv`` itself."""
    scripts = [p for p in sorted((ROOT / "benchmarks").glob("*.py")) if "Command:" in p.read_text()]
    assert len(scripts) >= 9
    for script in scripts:
        text = script.read_text()
        assert "recorded_command(" in text, script.name
        assert not re.search(r"join\(sys\.argv", text), script.name


@pytest.mark.parametrize("script", ["scaling.py", "bn_layout.py", "data_parallel.py", "load.py", "step_profile.py"])
@pytest.mark.parametrize("out, message", [("{dir}", A_FOLDER), ("{file}/x.md", UNDER_A_FILE)])
def test_every_writer_refuses_an_out_it_cannot_write_before_it_starts(script, out, message, tmp_path):
    """Checked when the script starts (these refuse before they import torch), not found out at the end."""
    assert_refused_in_one_line(script, _paths(["--out", out], tmp_path), message, timeout=60)


@pytest.mark.parametrize("args, message", [
    (["--images", "0"], "--images must be >= 1, got 0"), (["--rounds", "0"], "--rounds must be >= 1, got 0"),
    (["--processes", "0"], "--processes must be >= 1, got 0"),
    (["--images", "60001"], "--images must be at most 60,000 (MNIST's training images)"),
    (["--rows", "bogus"], "--rows 'bogus' matches 0 parity rows; name one of: s6lab defaults; fp32"),
    (["--one-off", "bogus"], "--one-off 'bogus' matches 0 one-off rows; name one of: s6lab defaults; fp32"),
    (["--parity-only", "--seeds", "-1"], "--seeds: TrainConfig.seed must be an integer in [0, 2**63 - 1), got -1"),
    (["--parity-only", "--parity-runs", "{file}"], "--parity-runs {file} is a file; name a folder instead"),
    (["--out", "{dir}"], A_FOLDER), (["--out", "{file}/x.md"], UNDER_A_FILE)])
def test_levers_refuses_bad_input_before_it_starts(args, message, tmp_path, monkeypatch, capsys):
    message = _paths([message], tmp_path)[0]
    assert_main_refuses("levers.py", _paths(args, tmp_path), message, ("throughput_tables", "parity"), monkeypatch,
                        capsys)


@pytest.mark.parametrize("args, message", [
    (["--steps", "0"], "--steps must be >= 1, got 0"), (["--repeats", "0"], "--repeats must be >= 1, got 0"),
    (["--epochs", "0"], "--epochs must be >= 1, got 0"), (["--eval-passes", "0"], "--eval-passes must be >= 1"),
    (["--steps", "235"], "--steps must be at most 234 (batches of 256 in MNIST's 60,000 training images)"),
    (["--eval-images", "10001"], "--eval-images must be at most 10,000"),
    (["--seed", "-1"], "--seed: TrainConfig.seed must be"), (["--seeds", "0", "-1"], "--seeds: TrainConfig.seed"),
    (["--only", "bogus"], "invalid choice: 'bogus' (choose from 'typical-w0', 'typical-w2', 's6lab')"),
    (["--out", "{dir}"], A_FOLDER), (["--out", "{file}/x.md"], UNDER_A_FILE)])
def test_throughput_refuses_bad_input_before_it_starts(args, message, tmp_path, monkeypatch, capsys):
    assert_main_refuses("throughput.py", _paths(args, tmp_path), message, ("matmul_peak", "start_worker"),
                        monkeypatch, capsys)


def test_machines_refuses_zero_repeats_before_it_measures(monkeypatch, capsys):
    assert_main_refuses("machines.py", ["--repeats", "0"], "--repeats must be >= 1, got 0", ("class_results_file",),
                        monkeypatch, capsys)


@pytest.mark.parametrize("script, args, message", [
    ("recipe.py", ["--no-train", "--seeds", "-1"], "--seeds: TrainConfig.seed must be an integer in [0, 2**63 - 1)"),
    ("recipe.py", ["--no-train", "--out", "{file}"], "--out {file} is a file; name a folder instead"),
    ("recipe.py", ["--no-train", "--out", "{file}/runs"], UNDER_A_FILE),
    ("recipe.py", ["--no-train", "--table", "{file}/x.md"], UNDER_A_FILE),
    pytest.param("recipe.py", ["--no-train", "--table", "/proc/x.md"], "--table /proc/x.md: cannot write in /proc",
                 marks=pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="no /proc")),
    ("machines.py", ["--import", "{dir}"], "--import {dir} is a folder; pass a file written by"),
    ("machines.py", ["--import", "{dir}/x.md"], "--import {dir}/x.md: no such file; pass a file written by"),
    ("machines.py", ["--import", "{dir}/x.bin"], "--import {dir}/x.bin is not a text file; pass a file written by"),
    ("levers.py", ["--worker"], "--worker is internal"),
    ("cuda_determinism.py", ["--frob"], "unrecognized arguments: --frob; see `python benchmarks/cuda_determinism.py "
                                        "--help`"),
    # the refusal of the `s6lab compare` it runs: that one line, with its status
    ("scaling.py", ["--epochs", "0", "--out", "{dir}/sc.md"], "s6lab compare: error: TrainConfig.epochs must be"),
])
def test_benchmarks_refuse_bad_input_in_one_line(script, args, message, tmp_path):
    (tmp_path / "x.bin").write_bytes(bytes(range(256)))
    in_process = script != "scaling.py" and args != ["--worker"]
    assert_refused_in_one_line(script, _paths(args, tmp_path), _paths([message], tmp_path)[0], timeout=60,
                               in_process=in_process)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "x.bin"]  # nothing written, no folder made


def test_cuda_determinism_has_help_instead_of_starting():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cuda_determinism.py"), "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Is training on CUDA repeatable?" in done.stdout


def test_an_out_is_checked_without_creating_anything(tmp_path):
    """`_args.writable` probes the nearest existing folder and leaves it as it was: an interrupted benchmark
    leaves no empty result and no new folders."""
    _args = _benchmark_module("_args")
    parser = _args.Parser(description="d", prog="benchmarks/x.py")
    assert _args.writable(parser, tmp_path / "a" / "b" / "x.md") == tmp_path / "a" / "b" / "x.md"
    assert _args.writable(parser, tmp_path / "runs", folder=True) == tmp_path / "runs"
    assert list(tmp_path.iterdir()) == []


def test_s6labs_errors_a_user_can_fix_are_one_line_and_a_bug_keeps_its_traceback(monkeypatch, capsys):
    """What `s6lab` raises for a bad value (ConfigError, UnknownNameError, DataError, RunError) mid-benchmark."""
    from s6lab.errors import ConfigError
    from s6lab.runs import RunError

    _args = _benchmark_module("_args")
    monkeypatch.setattr(sys, "argv", ["benchmarks/recipe.py"])
    for error in (ConfigError("TrainConfig.seed must be ..."), RunError("x is not the row; delete it")):
        def main(error=error):
            raise error
        with pytest.raises(SystemExit) as e:
            _args.run_main(main)
        assert e.value.code == 2 and capsys.readouterr().err == f"benchmarks/recipe.py: {error}\n"
    with pytest.raises(ZeroDivisionError):
        _args.run_main(lambda: 1 / 0)


@pytest.mark.parametrize("script, work", [("throughput.py", ("matmul_peak", "start_worker")),
                                          ("levers.py", ("throughput_tables", "parity"))])
def test_a_bad_thread_setting_is_refused_not_measured_as_s6labs_choice(script, work, tmp_path, monkeypatch, capsys):
    """`import s6lab` drops S6LAB_THREADS=abc and goes on with its own choice; the workers inherit the
    environment without it, so the benchmark would have recorded s6lab's choice under the user's name."""
    import s6lab.threads

    monkeypatch.setattr(s6lab.threads, "_BAD_ENVIRONMENT", ("S6LAB_THREADS='abc': give a positive number",))
    assert_main_refuses(script, ["--out", str(tmp_path / "x.md")], "S6LAB_THREADS='abc': give a positive number",
                        work, monkeypatch, capsys)


def test_a_bad_thread_setting_stops_a_benchmark_that_imports_s6lab_first(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bn_layout.py"), "--out", str(tmp_path / "b.md")],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "S6LAB_THREADS": "abc"})
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0, done.stderr
    assert "S6LAB_THREADS='abc'" in done.stderr and not (tmp_path / "b.md").exists()


def test_ctrl_c_is_one_line_and_exit_130_not_a_traceback(capsys):
    runner = _benchmark_module("_args")

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as e:
        runner.run_main(interrupted)
    assert e.value.code == 130 and "interrupted; nothing was left half written" in capsys.readouterr().err


def test_machines_cpu_model_without_an_import_is_refused_before_measuring():
    assert_refused_in_one_line("machines.py", ["--cpu-model", "X"], "--cpu-model names the CPU of an --import file")
