"""The `s6lab` command, called in-process through main(argv) and once as a subprocess."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from s6lab.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_models_lists_the_reference(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0
    assert "s6" in out and "19,602" in out


def test_models_with_no_match(capsys):
    code, _, err = run(capsys, "models", "zzz*")
    assert code == 2 and "no model matches 'zzz*'" in err


def test_summary(capsys):
    code, out, _ = run(capsys, "summary", "--model", "s6")
    assert code == 0 and "Total params: 19,602" in out


def test_summary_diagram(capsys, tmp_path):
    from tests.conftest import png_is_not_blank

    code, out, _ = run(capsys, "summary", "--model", "s6-gap", "--diagram", str(tmp_path / "d.png"))
    assert code == 0 and "Total params: 17,202" in out
    assert "head    GAPHead        10            4->1       170" in out and "global (28)" in out
    assert f"diagram: {tmp_path / 'd.png'}" in out and png_is_not_blank(tmp_path / "d.png")
    code, _, err = run(capsys, "summary", "--diagram", str(tmp_path / "no" / "such" / "dir" / "d.png"))
    assert code == 0  # folders are made, as for every --out


def test_summary_override_and_bad_override(capsys):
    code, out, _ = run(capsys, "summary", "--set", "batchnorm=false")
    assert code == 0 and "BatchNorm2d" not in out
    code, _, err = run(capsys, "summary", "--set", "dropout")
    assert code == 2 and "--set expects KEY=VALUE" in err
    code, _, err = run(capsys, "summary", "--set", "colour=red")
    assert code == 2 and "unknown override(s) colour" in err


def test_unknown_model(capsys):
    code, _, err = run(capsys, "summary", "--model", "resnet50")
    assert code == 2 and "unknown model 'resnet50'; known models:" in err


def test_data_verify_only(capsys):
    code, out, _ = run(capsys, "data", "--verify-only")
    assert code == 0 and "MNIST root:" in out and "t10k-images-idx3-ubyte  ok" in out


def test_data_verify_only_on_an_empty_root(capsys, tmp_path):
    code, _, err = run(capsys, "data", "--verify-only", "--root", str(tmp_path))
    assert code == 2 and "is missing" in err and "Fix:" in err


def test_train_then_check(capsys, tmp_path):
    """Real MNIST subset: 600 training / 300 test images, 1 epoch."""
    out_dir = tmp_path / "run"
    code, out, _ = run(capsys, "train", "--epochs", "1", "--train-size", "600", "--test-size", "300",
                       "--out", str(out_dir), "--quiet", "--batch-size", "64")
    assert code == 0, out
    assert "parameters" in out and "Overall: FAIL" in out  # one epoch on 600 images cannot reach 99.4%
    assert (out_dir / "report.md").exists() and (out_dir / "history.json").exists()
    code, out, _ = run(capsys, "check", str(out_dir), "--markdown")
    assert code == 1 and "| BatchNorm | used | yes | PASS |" in out
    code, _, err = run(capsys, "train", "--epochs", "1", "--train-size", "600", "--test-size", "300",
                       "--out", str(out_dir), "--quiet")
    assert code == 2 and "already holds a run; add --resume" in err


def test_train_rejects_bad_arguments(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--epochs", "0", "--out", str(tmp_path / "x"))
    assert code == 2 and "epochs must be a positive integer" in err
    with pytest.raises(SystemExit) as e:  # choices are checked while parsing, before any work
        main(["train", "--optimizer", "rmsprop", "--out", str(tmp_path / "x")])
    assert e.value.code == 2 and "invalid choice: 'rmsprop' (choose from 'sgd', 'adam', 'adamw')" in \
        capsys.readouterr().err
    code, _, err = run(capsys, "train", "--warmup", "1.5", "--out", str(tmp_path / "x"))
    assert code == 2 and "warmup must be in [0, 1), got 1.5" in err
    code, _, err = run(capsys, "train", "--ema", "1", "--out", str(tmp_path / "x"))
    assert code == 2 and "ema must be in [0, 1), got 1.0" in err and "Traceback" not in err


def test_check_missing_directory(capsys, tmp_path):
    code, _, err = run(capsys, "check", str(tmp_path / "missing"))
    assert code == 2 and "is not a run directory" in err


def test_argparse_errors_exit_nonzero():
    with pytest.raises(SystemExit) as e:
        main(["train", "--epochs", "three"])
    assert e.value.code == 2


def test_python_dash_m():
    done = subprocess.run([sys.executable, "-m", "s6lab", "models"], capture_output=True, text=True)
    assert done.returncode == 0 and "19,602" in done.stdout
    done = subprocess.run([sys.executable, "-m", "s6lab"], capture_output=True, text=True)
    assert done.returncode == 2 and "give a command, one of models" in done.stderr


def test_reader_leaving_early_is_not_an_error():
    """`s6lab models | head -1`: the pipe closes under us; exit quietly, no traceback."""
    import os

    read_end, write_end = os.pipe()
    os.close(read_end)  # every write now fails with EPIPE
    done = subprocess.run([sys.executable, "-m", "s6lab", "models"], stdout=write_end, stderr=subprocess.PIPE,
                          text=True, timeout=120)
    os.close(write_end)
    assert done.returncode == 0 and "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


def test_every_speed_lever_has_a_switch(capsys, tmp_path):
    """Each lever's flag reaches the run's recorded config (tiny real-MNIST subset, 1 epoch)."""
    import json

    out_dir = tmp_path / "levers"
    code, out, _ = run(capsys, "train", "--no-report", "--epochs", "1", "--train-size", "256", "--test-size", "100",
                       "--quiet",
                       "--out", str(out_dir), "--no-fast-dropout", "--no-retain-memory",
                       "--no-channels-last", "--eval-batch-size", "50", "--precision", "fp32",
                       "--batch-size", "64", "--lr", "0.05", "--warmup", "0.3")
    assert code == 0, out
    config = json.loads((out_dir / "config.json").read_text())["train"]
    assert {k: config[k] for k in ("fast_dropout", "retain_memory", "channels_last",
                                   "eval_batch_size", "precision", "batch_size", "lr", "warmup")} == {
        "fast_dropout": False, "retain_memory": False, "channels_last": False,
        "eval_batch_size": 50, "precision": "fp32", "batch_size": 64, "lr": 0.05, "warmup": 0.3}


@pytest.mark.parametrize("flag", ["--compile", "--no-fused", "--inplace-relu"])
def test_a_retired_lever_flag_says_in_one_line_why_it_left(capsys, flag):
    with pytest.raises(SystemExit) as e:
        main(["train", "--model", "s6", flag])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"s6lab: error: {flag} is no longer an s6lab option: ")
    assert "benchmarks/levers.py still measures it" in err[0] and "AVX2" in err[0]


def test_every_trainconfig_field_has_an_option_with_help_and_default(capsys):
    """The train options are derived from TrainConfig: a new field gets a flag for free."""
    from dataclasses import fields

    from s6lab.train import TrainConfig

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        assert flag in text, flag
    assert "--weight-decay WEIGHT_DECAY L2 penalty (decoupled for adamw)" in text and "(default: 0.0005)" in text
    assert "--augment, --no-augment batched random rotation and translation (default: on)" in text


def test_recipe_fields_reach_the_config(capsys, tmp_path):
    import json

    out_dir = tmp_path / "r"
    code, out, _ = run(capsys, "train", "--no-report", "--epochs", "1", "--train-size", "256", "--test-size", "100",
                       "--quiet",
                       "--out", str(out_dir), "--batch-size", "64", "--weight-decay", "5e-4", "--momentum", "0.8",
                       "--label-smoothing", "0.05", "--rotation", "5", "--translate", "0.1", "--schedule", "step",
                       "--step-epochs", "2", "--gamma", "0.5", "--precision", "fp32", "--ema", "0.99")
    assert code == 0, out
    config = json.loads((out_dir / "config.json").read_text())["train"]
    assert {k: config[k] for k in ("weight_decay", "momentum", "label_smoothing", "rotation", "translate",
                                   "schedule", "step_epochs", "gamma", "ema")} == {
        "weight_decay": 5e-4, "momentum": 0.8, "label_smoothing": 0.05, "rotation": 5.0, "translate": 0.1,
        "schedule": "step", "step_epochs": 2, "gamma": 0.5, "ema": 0.99}


def test_bad_choice_is_refused_before_training(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--precision", "fp16"])
    assert e.value.code == 2 and "invalid choice: 'fp16'" in capsys.readouterr().err


def test_patch_statistics_on_a_net_without_batchnorm_is_one_line_and_exit_2(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--model", "s6-no-bn", "--first-bn-from-patches", "--epochs", "1",
                       "--train-size", "64", "--test-size", "50", "--out", str(tmp_path / "r"))
    assert code == 2 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert "first_bn_from_patches=True needs a net whose first block is a ConvBN" in line
    assert "--no-first-bn-from-patches" in line and "this net starts with ConvBN(conv, relu)" in line
    assert not (tmp_path / "r" / "checkpoint.pt").exists()  # refused before anything trained


def test_train_in_emulated_bf16_warns_in_one_line(capsys, tmp_path, monkeypatch):
    """Real MNIST subset (64 training / 50 test images), 1 epoch, bf16 asked for on a CPU 'without' it."""
    monkeypatch.setenv("S6LAB_NATIVE_BF16", "0")
    code, out, err = run(capsys, "train", "--no-report", "--epochs", "1", "--train-size", "64", "--test-size", "50",
                         "--batch-size", "32", "--precision", "bf16", "--device", "cpu", "--out", str(tmp_path / "r"))
    assert code == 0, err
    assert "s6lab train: warning: bf16 was asked for, but this CPU" in err and "emulated" in err
    assert "UserWarning" not in err and "training on" in err


def test_quiet_train_still_says_machine_and_precision(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("S6LAB_NATIVE_BF16", "0")
    code, _, err = run(capsys, "train", "--no-report", "--epochs", "1", "--train-size", "64", "--test-size", "50",
                       "--batch-size", "32", "--quiet", "--out", str(tmp_path / "r"))
    assert code == 0 and "training on" in err and "no native bf16: training in fp32 (auto)" in err


def test_json_output_for_grading_scripts(capsys):
    import json

    assert main(["models", "s6", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"name": "s6", "params": 19602, "receptive_field": 16,
                                                    "description": s6lab_description()}]
    assert main(["rf", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["name"] == "conv1.conv" and rows[0]["rf_out"] == 3 and rows[-1]["status"] == "global"
    assert main(["budget", "--json", "--max-params", "19602"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["budget"]["total_params"] == 19602 and report["check"]["ok"] is False
    assert "remove at least 1" in report["check"]["message"]


def test_budget_bound_is_said_in_words_and_bad_bounds_fail_first(capsys):
    assert main(["budget", "--max-params", "-5"]) == 2
    out, err = capsys.readouterr()
    assert "--max-params must be a positive integer, got -5" in err and out == ""
    assert main(["budget", "--max-params", "20000"]) == 0
    assert "fewer than 20,000, as the rule asks (397 more would still fit)" in capsys.readouterr().out


def s6lab_description() -> str:
    from s6lab import get_spec

    return get_spec("s6").description


def test_a_bug_is_not_reported_as_a_user_error(monkeypatch):
    """Only the errors a user can fix become one line; a ValueError or KeyError from a bug keeps its traceback."""
    from s6lab import cli

    def buggy(args):
        raise KeyError("internal")

    monkeypatch.setitem(cli.COMMANDS, "models", buggy)
    with pytest.raises(KeyError, match="internal"):
        main(["models"])


def test_user_errors_are_typed_and_still_value_or_key_errors():
    from s6lab import get_model
    from s6lab.errors import ConfigError, UnknownNameError
    from s6lab.train import TrainConfig

    with pytest.raises(ConfigError):
        TrainConfig(epochs=0)
    with pytest.raises(UnknownNameError) as e:
        get_model("resnet50")
    assert isinstance(e.value, KeyError) and str(e.value).startswith("unknown model 'resnet50'")


def test_every_option_of_every_command_has_help():
    from s6lab.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, command in sub.choices.items():
        for action in command._actions:
            if action.dest != "help":
                assert action.help, f"{name} {action.option_strings or action.dest}"


def test_verbose_after_the_command():
    from s6lab.cli import build_parser

    assert build_parser().parse_args(["models", "-v"]).verbose is True
    assert build_parser().parse_args(["-v", "models"]).verbose is True
    assert build_parser().parse_args(["models"]).verbose is False


def test_no_report_skips_the_report_and_says_how_to_write_it(capsys, tmp_path):
    out_dir = tmp_path / "r"
    code, out, _ = run(capsys, "train", "--no-report", "--epochs", "1", "--train-size", "64", "--test-size", "50",
                       "--batch-size", "32", "--precision", "fp32", "--quiet", "--out", str(out_dir))
    assert code in (0, 1) and f"no report: write it with `s6lab report {out_dir} --html`" in out
    assert (out_dir / "history.json").exists() and not (out_dir / "report.md").exists()


@pytest.mark.parametrize("argv, message", [
    (["train", "--epochs", "abc"], "s6lab train: error: argument --epochs: invalid int value: 'abc'; see `s6lab train "
                                   "--help`"),
    (["train", "--optimizer", "rmsprop"], "s6lab train: error: argument --optimizer: invalid choice: 'rmsprop'"),
    (["train", "--frob"], "s6lab train: error: unrecognized arguments: --frob; see `s6lab train --help`"),
    (["models", "--json", "--frob"], "s6lab models: error: unrecognized arguments: --frob; see `s6lab models --help`"),
    (["--frobnicate"], "s6lab: error: unrecognized arguments: --frobnicate; give a command, one of models,"),
    ([], "s6lab: error: give a command, one of models, summary,"),
    (["inside", "run", "-n", "100000"], "argument -n: must be 1 to 64 (maps per block), got 100000"),
    (["saliency", "run", "-n", "0"], "argument -n: must be 1 to 32 (rows of one figure), got 0"),
    (["mistakes", "run", "-n", "x"], "argument -n: invalid int value: 'x'"),
    (["preview", "-n", "101"], "argument -n: must be 1 to 100 (digits in one figure), got 101"),
    (["summary", "--diagram", "d.xyz"], "argument --diagram: the figure is a PNG: give a file name ending in .png"),
    (["rf", "--plot", "rf.jpg"], "argument --plot: the figure is a PNG: give a file name ending in .png"),
    (["compare", "s6", "--name", ""], "argument --name: give a plain file name (letters, digits, - _ .), not a path"),
    (["train", "--model", "", "--print-config"], "s6lab train: error: --model is empty; give a value, or leave the "
                                                 "option out for its default"),  # it trained s6
    (["preview", "--out", ""], "--out is empty"),  # it wrote into the current folder
    (["compare", "s6", "--results-dir="], "s6lab compare: error: --results-dir is empty"),
    (["check", ""], "s6lab check: error: run_dir is empty; give one"),
    (["compare", "s6", "--name", "../../proc/x"],
     "not a path or empty, got '../../proc/x'; --results-dir chooses the folder"),
])
def test_a_mistyped_command_line_is_one_line_naming_the_help(capsys, argv, message):
    """argparse's errors without the usage block above them (24 lines for `train`), and an unknown option
    refused by its command, with that command's --help, not by the top-level parser."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and err.count("\n") == 1, err


@pytest.mark.parametrize("where, message", [
    ("file/d.png", "file is a file, not a folder: {tmp}/file/d.png; a file is in the way: move it, or choose"),
    ("folder.png", "Is a directory: {tmp}/folder.png; give a file name, not a folder"),
])
def test_a_figure_path_that_cannot_be_written_names_the_path_typed(capsys, tmp_path, where, message):
    """Not the temporary `.d.png.x1y2.part` beside it, and no --resume advice: only a training resumes."""
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder.png").mkdir()
    code, _, err = run(capsys, "summary", "--diagram", str(tmp_path / where))
    assert code == 2 and message.format(tmp=tmp_path) in err and err.count("\n") == 1, err
    assert ".part" not in err and "--resume" not in err


@pytest.mark.parametrize("command, going_on", [("train", "run the same command with --resume"),
                                               ("compare", "finished runs are kept and reused"),
                                               ("doctor", None)])
def test_an_interrupt_says_how_to_go_on_only_where_there_is_a_way(capsys, monkeypatch, command, going_on):
    import s6lab.cli as cli

    def stopped(args):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.COMMANDS, command, stopped)
    assert cli._run(argparse.Namespace(command=command)) == 130
    err = capsys.readouterr().err
    assert ("--resume" in err or "reused" in err) == (going_on is not None)
    if going_on:
        assert going_on in err


def test_a_data_root_that_cannot_hold_mnist_is_one_line(capsys, tmp_path):
    from s6lab.data import DataError, ensure_mnist

    (tmp_path / "MNIST").write_text("x")
    root = str(tmp_path)
    for argv in (["data", "--root", root, "--verify-only"], ["doctor", "--root", root, "--no-measure"]):
        code, _, err = run(capsys, *argv)
        assert code == 2 and "MNIST is a file, not a directory" in err and err.count("\n") == 1, err
    with pytest.raises(SystemExit):  # the command line refuses an empty value before the library sees it
        main(["data", "--root", "", "--verify-only"])
    assert "--root is empty" in capsys.readouterr().err
    with pytest.raises(DataError, match="the data root is empty text"):  # and so does the library
        ensure_mnist("", download=False)


def test_refetch_and_verify_only_together_are_refused(capsys):
    code, _, err = run(capsys, "data", "--refetch", "--verify-only")
    assert code == 2 and "--refetch downloads the files again and --verify-only never downloads" in err
