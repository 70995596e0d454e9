"""What machine is this: precision resolution, the no-bf16 override, and what fit says at its start."""

from __future__ import annotations

import pytest
import torch

from s6lab.data import MNISTTensors, TensorSplit
from s6lab.hardware import describe_machine, machine_info, native_bf16, resolve_precision
from s6lab.train import TrainConfig, fit, use_bf16

CPU = torch.device("cpu")


@pytest.fixture
def no_bf16(monkeypatch):
    """Behave as an AVX2 CPU without native bf16, whatever this machine has."""
    monkeypatch.setenv("S6LAB_NATIVE_BF16", "0")


def test_the_override_reports_no_native_bf16(no_bf16):
    assert native_bf16(CPU) is False
    assert machine_info().native_bf16 is False and machine_info().machine_class.endswith("no bf16")


def test_auto_trains_in_fp32_without_native_bf16_and_says_why(no_bf16):
    p = resolve_precision("auto", CPU)
    assert p.precision == "fp32" and not p.emulated
    assert "has no native bf16: training in fp32" in p.reason
    assert use_bf16(TrainConfig(), CPU) is False


def test_bf16_without_native_support_is_marked_emulated(no_bf16):
    p = resolve_precision("bf16", CPU)
    assert p.precision == "bf16" and p.emulated and "emulated" in p.reason


def test_auto_follows_the_hardware(monkeypatch):
    monkeypatch.delenv("S6LAB_NATIVE_BF16", raising=False)
    expected = "bf16" if native_bf16(CPU) else "fp32"
    assert resolve_precision("auto", CPU).precision == expected
    assert resolve_precision("fp32", CPU).precision == "fp32"


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be auto, bf16 or fp32, got 'fp16'"):
        resolve_precision("fp16", CPU)


def test_machine_description_names_cpu_capability_threads_and_torch():
    info = machine_info()
    text = describe_machine()
    assert info.cpu_capability in text and f"{torch.get_num_threads()} threads" in text
    assert torch.__version__ in text and info.cpu_model in text


def _tiny_data() -> MNISTTensors:
    g = torch.Generator().manual_seed(0)
    split = TensorSplit(torch.randn(16, 1, 28, 28, generator=g), torch.randint(0, 10, (16,), generator=g))
    return MNISTTensors(split, split)


def test_fit_states_machine_and_precision_at_the_start(no_bf16, capsys):
    from s6lab import get_model

    fit(get_model("s6"), _tiny_data(), TrainConfig(epochs=1, batch_size=8, device="cpu"), progress=True)
    err = capsys.readouterr()
    text = err.out + err.err
    assert "training on" in err.err and "no native bf16: training in fp32" in err.err
    assert f"{torch.get_num_threads()} threads" in text


def test_fit_warns_when_bf16_is_emulated(no_bf16):
    from s6lab import get_model

    with pytest.warns(UserWarning, match="emulated.*use precision='fp32'"):
        fit(get_model("s6"), _tiny_data(), TrainConfig(epochs=1, batch_size=8, precision="bf16", device="cpu"),
            progress=False)


def test_fit_prints_one_line_per_epoch_and_no_widget_warning(no_bf16, capsys, recwarn):
    from s6lab import get_model

    fit(get_model("s6"), _tiny_data(), TrainConfig(epochs=2, batch_size=8, device="cpu"), progress=True)
    err = capsys.readouterr().err
    assert "epoch 1/2: test accuracy" in err and "epoch 2/2: test accuracy" in err and " s\n" in err
    assert not [w for w in recwarn if "IProgress" in str(w.message)]


def test_a_gpu_that_only_emulates_bf16_trains_in_fp32(monkeypatch):
    """A T4 (sm_75) 'supports' bf16 by emulation, slower than fp32 there: auto must not pick it."""
    monkeypatch.delenv("S6LAB_NATIVE_BF16", raising=False)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    gpu = torch.device("cuda")
    assert native_bf16(gpu) is False
    assert resolve_precision("auto", gpu).precision == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)  # an A100
    assert native_bf16(gpu) is True and resolve_precision("auto", gpu).precision == "bf16"
