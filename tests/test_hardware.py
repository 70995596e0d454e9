"""What machine is this: precision resolution, the no-bf16 override, and what fit says at its start."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from s6lab.data import MNISTTensors, TensorSplit
from s6lab.hardware import AVX2_PREVIEW, describe_machine, machine_info, native_bf16, resolve_precision
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


CAPPED = AVX2_PREVIEW


def test_a_capped_cpu_says_so_in_its_class_and_names_its_caps():
    """An AVX-512 machine previewing an AVX2 laptop: ATen and oneDNN capped before torch starts (a fresh
    process), and its numbers never pass for a real AVX2 CPU's."""
    code = ("import json; from s6lab.hardware import describe_machine, machine_info, native_bf16; import torch; "
            "i = machine_info(); print(json.dumps([i.machine_class, i.cpu_capability, i.hardware_capability, "
            "native_bf16(torch.device('cpu')), describe_machine()]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **CAPPED})
    assert done.returncode == 0, done.stderr[-2000:]
    machine_class, capability, hardware, native, line = json.loads(done.stdout)
    assert capability == "AVX2" and native is False
    assert machine_class.startswith("AVX2, no bf16, capped")
    if hardware == "AVX512":  # an AVX-512 CPU: the class names what it really is
        assert machine_class == "AVX2, no bf16, capped on AVX512"
    assert "ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2" in line


def test_an_uncapped_cpu_has_no_caps_and_its_class_is_unchanged(monkeypatch):
    from s6lab.hardware import command_prefix, isa_caps

    for name in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS",
                 "S6LAB_NATIVE_BF16"):
        monkeypatch.delenv(name, raising=False)
    assert isa_caps() == {} and command_prefix() == ""
    assert "capped" not in machine_info().machine_class and "capped" not in describe_machine()


def test_convolutions_capped_below_bf16_mean_no_native_bf16(monkeypatch):
    monkeypatch.delenv("S6LAB_NATIVE_BF16", raising=False)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert native_bf16(CPU) is False
    assert "capped" in resolve_precision("auto", CPU).reason
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")  # a cap that keeps bf16: the hardware decides
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    from s6lab.hardware import cpu_capability

    assert native_bf16(CPU) is (cpu_capability() in ("AVX512", "AMX") and torch.cpu._is_avx512_bf16_supported())


def test_the_recorded_command_carries_the_settings_that_change_the_measurement(monkeypatch):
    from s6lab.hardware import command_prefix

    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    monkeypatch.setenv("DNNL_MAX_CPU_ISA", "AVX2")
    monkeypatch.setenv("S6LAB_NATIVE_BF16", "0")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", " ")  # blank: not a cap
    assert command_prefix() == "ATEN_CPU_CAPABILITY=avx2 DNNL_MAX_CPU_ISA=AVX2 S6LAB_NATIVE_BF16=0 "


def test_the_cpus_own_capability_is_read_from_its_flags():
    from s6lab.hardware import hardware_capability

    assert hardware_capability() in ("AVX512", "AVX2", "DEFAULT", None)


@pytest.mark.parametrize("caps, expected", [
    (AVX2_PREVIEW, "numbers measured so preview a CPU of that class, they are not one"),
    ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, "also set ATEN_CPU_CAPABILITY=avx2 (ATen's kernels: BatchNorm, ReLU, pooling), "
                                     "MKL_ENABLE_INSTRUCTIONS=AVX2 (MKL's: the matmuls)"),
    ({"ATEN_CPU_CAPABILITY": "avx2", "DNNL_MAX_CPU_ISA": "AVX2"}, "also set MKL_ENABLE_INSTRUCTIONS=AVX2 (MKL's"),
    ({"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
     "also set ONEDNN_MAX_CPU_ISA=AVX2 (oneDNN's: the convolutions)"),
])
def test_doctor_says_what_a_cap_does_and_what_is_missing(caps, expected):
    from s6lab.doctor import isa_cap_line
    from s6lab.hardware import MachineInfo

    info = MachineInfo("cpu", "x", "x", "AVX2", False, 2, "2", isa_caps=caps, hardware_capability="AVX512")
    line = isa_cap_line(info)
    assert expected in line and "(this CPU offers AVX512)" in line
    assert all(f"{name}={value}" in line for name, value in caps.items())


def test_make_preview_avx2_writes_capped_results_under_their_own_class():
    """`make TARGET PREVIEW=avx2` caps torch's libraries for the target and names its result file by the capped
    class; any other preview is one line and make's exit 2."""
    if shutil.which("make") is None:
        pytest.skip("no make")
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k not in AVX2_PREVIEW and k != "DNNL_MAX_CPU_ISA"}
    done = subprocess.run(["make", "-n", "bench-fusion", "PREVIEW=avx2"], cwd=root, capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert re.search(r"--out benchmarks/results/fusion-avx2-no-bf16-capped(-on-avx512)?\.md", done.stdout)
    plain = subprocess.run(["make", "-n", "bench-fusion"], cwd=root, capture_output=True, text=True, timeout=120,
                           env=env)
    assert "capped" not in plain.stdout
    bad = subprocess.run(["make", "-n", "machines", "PREVIEW=avx"], cwd=root, capture_output=True, text=True,
                         timeout=120, env=env)
    assert bad.returncode == 2 and "PREVIEW=avx is not a preview: use PREVIEW=avx2" in bad.stderr
    assert bad.stderr.strip().count("\n") == 0
