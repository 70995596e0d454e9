"""`s6lab doctor`: versions, machine, data and a short timing, as text and as JSON."""

from __future__ import annotations

import json

import pytest

from s6lab.cli import main
from s6lab.doctor import diagnose, estimate_epoch_seconds, format_doctor


def test_report_names_versions_machine_and_data():
    report = diagnose(measure=False)
    assert report.versions["torch"] and report.versions["captum"] and report.versions["torchvision"]
    assert report.machine.threads >= 1 and report.machine.cpu_capability
    assert report.precision in ("bf16", "fp32") and report.data_ok and report.estimate is None
    text = format_doctor(report)
    for label in ("torch", "captum", "CPU", "native bf16", "precision (auto)", "threads", "CUDA devices",
                  "MNIST root", "MNIST files"):
        assert label in text
    if report.machine.device == "cpu":  # the default folds layer 1's BatchNorm on a CPU, and says how to stop it
        assert "layer 1's BatchNorm  from patch statistics (auto: " in text and "--no-first-bn-from-patches" in text


def test_the_estimate_is_measured_and_plausible():
    e = estimate_epoch_seconds("cpu", budget_seconds=0.5)
    assert e.train_images_per_second > 50 and e.seconds_per_epoch == pytest.approx(
        60_000 / e.train_images_per_second, rel=0.5)
    assert e.images_timed >= 3 * 2560 and e.precision in ("bf16", "fp32")
    with pytest.raises(ValueError, match="budget_seconds must be > 0"):
        estimate_epoch_seconds("cpu", budget_seconds=0)


def test_doctor_without_bf16_says_fp32_and_why(monkeypatch, capsys):
    monkeypatch.setenv("S6LAB_NATIVE_BF16", "0")
    assert main(["doctor", "--no-measure", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "no (bf16 would be emulated: slow)" in out and "fp32: this CPU" in out


def test_doctor_json(capsys):
    assert main(["doctor", "--json", "--seconds", "0.5"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) >= {"versions", "machine", "precision", "cuda_devices", "data_root", "data_ok", "estimate"}
    assert report["estimate"]["seconds_per_epoch"] > 0 and report["machine"]["cpu_model"]


def test_doctor_on_an_empty_data_root_tells_how_to_fetch(capsys, tmp_path):
    assert main(["doctor", "--no-measure", "--root", str(tmp_path)]) == 0
    assert "not ready" in capsys.readouterr().out and "s6lab data" in format_doctor(diagnose(root=tmp_path,
                                                                                          measure=False))


def test_doctor_bad_input(capsys):
    assert main(["doctor", "--seconds", "0"]) == 2
    assert "--seconds must be > 0, got 0.0" in capsys.readouterr().err
