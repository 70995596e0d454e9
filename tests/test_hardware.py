"""What machine is this: precision resolution, the no-bf16 override, and what fit says at its start."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from s6lab import hardware
from s6lab.data import MNISTTensors, TensorSplit
from s6lab.hardware import (
    AVX2_PREVIEW,
    ISA_CAP_VARIABLES,
    describe_machine,
    machine_info,
    native_bf16,
    resolve_precision,
)
from s6lab.train import TrainConfig, fit, use_bf16

CPU = torch.device("cpu")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_bf16(monkeypatch):
    """Behave as an AVX2 CPU without native bf16, whatever this machine has."""
    monkeypatch.setenv("S6LAB_NATIVE_BF16", "0")


def test_the_override_reports_no_native_bf16(no_bf16):
    assert native_bf16(CPU) is False
    assert machine_info().native_bf16 is False and "no bf16" in machine_info().machine_class


def test_auto_trains_in_fp32_without_native_bf16_and_says_why(no_bf16):
    p = resolve_precision("auto", CPU)
    assert p.precision == "fp32" and not p.emulated
    assert "has no native bf16: training in fp32" in p.reason
    assert use_bf16(TrainConfig(), CPU) is False


def test_bf16_without_native_support_is_marked_emulated(no_bf16):
    p = resolve_precision("bf16", CPU)
    assert p.precision == "bf16" and p.emulated and "emulated" in p.reason


@pytest.mark.parametrize("bad", ["maybe", "1", "", "no", "false", "00"])
def test_a_bad_native_bf16_setting_is_refused_in_one_line_not_ignored(monkeypatch, bad):
    """Only 0 means anything (and unset): fit and the s6lab command refuse the rest through `environment_error`."""
    from s6lab import threads
    from s6lab.errors import ConfigError

    monkeypatch.setattr(threads, "_BAD_ENVIRONMENT", ())  # no thread setting problem from this shell
    monkeypatch.setenv("S6LAB_NATIVE_BF16", f" {bad} ")
    problem = (f"S6LAB_NATIVE_BF16={bad!r}: give 0 (treat this machine as one without native bf16), or unset it to "
               "let the hardware decide")
    assert threads.environment_error() == f"{problem} (in the environment)"
    for read in (lambda: native_bf16(CPU), hardware.bf16_switched_off, hardware.command_prefix):
        with pytest.raises(ConfigError) as refused:
            read()
        assert str(refused.value) == problem
    monkeypatch.setenv("S6LAB_NATIVE_BF16", " 0 ")
    assert threads.environment_error() is None and native_bf16(CPU) is False
    assert hardware.command_prefix({"S6LAB_NATIVE_BF16": " 0 "}) == "S6LAB_NATIVE_BF16=0 "


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


@pytest.fixture
def no_caps(monkeypatch):
    """No instruction-set cap in this process's environment, whatever the shell set."""
    for name in (*ISA_CAP_VARIABLES, "S6LAB_NATIVE_BF16"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def avx512_bf16_cpu(monkeypatch, no_caps):
    """An AVX-512 CPU with native bf16, as s6lab.hardware sees it (torch's own dispatch level is patched too)."""
    monkeypatch.setattr(hardware, "hardware_capability", lambda: "AVX512")
    monkeypatch.setattr(hardware, "cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(hardware, "_cpu_has_bf16", lambda: True)


def test_a_capped_cpu_says_so_in_its_class_and_names_its_caps():
    """`make ... PREVIEW=avx2` in a fresh process (the caps act before torch starts): an AVX-512 CPU runs AVX2's
    kernels in fp32 and says it is capped; on an AVX2 CPU the same caps lower nothing, and it says nothing."""
    own = hardware.hardware_capability()
    if own not in ("AVX2", "AVX512"):
        pytest.skip(f"this CPU's own level is {own}: AVX2's caps would lower it differently")
    code = ("import json; from s6lab.hardware import describe_machine, machine_info, native_bf16; import torch; "
            "i = machine_info(); print(json.dumps([i.machine_class, i.cpu_capability, i.isa_caps, "
            "native_bf16(torch.device('cpu')), describe_machine()]))")
    env = {k: v for k, v in os.environ.items() if k not in ISA_CAP_VARIABLES}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**env, **CAPPED})
    assert done.returncode == 0, done.stderr[-2000:]
    machine_class, capability, caps, native, line = json.loads(done.stdout)
    assert capability == "AVX2" and native is False
    if own == "AVX512":
        assert machine_class == "AVX2, no bf16, capped on AVX512" and caps == CAPPED
        assert "(AVX2, no bf16, capped on AVX512: ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 " \
               "MKL_ENABLE_INSTRUCTIONS=AVX2)" in line
    else:
        assert machine_class == "AVX2, no bf16" and caps == {} and "capped" not in line


def test_an_uncapped_cpu_has_no_caps_and_its_class_is_unchanged(no_caps):
    assert hardware.isa_caps() == {} and hardware.effective_caps() == {} and hardware.command_prefix() == ""
    assert "capped" not in machine_info().machine_class and "capped" not in describe_machine()


@pytest.mark.parametrize("caps, effective", [
    (CAPPED, CAPPED),
    ({"ATEN_CPU_CAPABILITY": "AVX2"}, {}),  # torch ignores an uppercase value: it still dispatches AVX512 here
    ({"ONEDNN_MAX_CPU_ISA": "DEFAULT", "MKL_ENABLE_INSTRUCTIONS": "AVX512"}, {}),  # no limit; this CPU's own level
    ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16", "DNNL_MAX_CPU_ISA": "AVX2"}, {}),  # oneDNN reads ONEDNN_ first
    ({"DNNL_MAX_CPU_ISA": "AVX2"}, {"DNNL_MAX_CPU_ISA": "AVX2"}),
    ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}),  # AVX-512 without its bf16
    ({"ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "AVX"},
     {"ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "AVX"}),
    ({"ONEDNN_MAX_CPU_ISA": "bogus"}, {}),
])
def test_only_the_caps_that_lower_this_cpu_count(avx512_bf16_cpu, monkeypatch, caps, effective):
    if caps.get("ATEN_CPU_CAPABILITY") == "avx2":
        monkeypatch.setattr(hardware, "cpu_capability", lambda: "AVX2")  # what torch does with it at start-up
    for name, value in caps.items():
        monkeypatch.setenv(name, value)
    assert hardware.effective_caps() == effective
    assert ("capped" in machine_info().machine_class) is bool(effective)


def test_on_an_avx2_cpu_the_avx2_caps_lower_nothing(monkeypatch, no_caps):
    monkeypatch.setattr(hardware, "hardware_capability", lambda: "AVX2")
    monkeypatch.setattr(hardware, "cpu_capability", lambda: "AVX2")
    monkeypatch.setattr(hardware, "_cpu_has_bf16", lambda: False)
    for name, value in CAPPED.items():
        monkeypatch.setenv(name, value)
    assert hardware.effective_caps() == {} and machine_info().machine_class == "AVX2, no bf16"


def test_where_the_cpus_own_level_is_unknown_every_cap_set_counts(monkeypatch, no_caps):
    monkeypatch.setattr(hardware, "hardware_capability", lambda: None)
    monkeypatch.setenv("MKL_ENABLE_INSTRUCTIONS", "AVX2")
    assert hardware.effective_caps() == {"MKL_ENABLE_INSTRUCTIONS": "AVX2"}
    assert machine_info().machine_class.endswith(", capped")


@pytest.mark.parametrize("onednn, native", [("AVX2", False), ("AVX512_CORE", False), ("AVX512_CORE_BF16", True),
                                            ("AVX512_CORE_AMX", True), ("DEFAULT", True), ("ALL", True)])
def test_convolutions_capped_below_bf16_mean_no_native_bf16(avx512_bf16_cpu, monkeypatch, onednn, native):
    assert native_bf16(CPU) is True  # the patched CPU, uncapped
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", onednn)
    assert native_bf16(CPU) is native
    if not native:
        assert "capped" in resolve_precision("auto", CPU).reason and resolve_precision("auto", CPU).precision == "fp32"
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    monkeypatch.setenv("DNNL_MAX_CPU_ISA", onednn)  # the older name, alone, counts the same
    assert native_bf16(CPU) is native


def test_the_recorded_command_carries_the_caps_set_quoted(monkeypatch, no_caps):
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    monkeypatch.setenv("DNNL_MAX_CPU_ISA", "AVX2")
    monkeypatch.setenv("S6LAB_NATIVE_BF16", "0")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", " ")  # blank: not a cap
    monkeypatch.setenv("MKL_ENABLE_INSTRUCTIONS", "AVX2 x")
    assert hardware.command_prefix() == \
        "ATEN_CPU_CAPABILITY=avx2 DNNL_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS='AVX2 x' S6LAB_NATIVE_BF16=0 "
    assert hardware.preview_name() is None
    assert hardware.preview_name(CAPPED) == "avx2"
    assert hardware.preview_name({**CAPPED, "MKL_ENABLE_INSTRUCTIONS": "AVX"}) is None


@pytest.mark.parametrize("flags, level", [
    ({"avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq"}, "AVX512"),
    ({"avx2", "fma", "avx512f"}, "AVX2"),  # AVX-512 foundation alone: torch does not dispatch AVX512 to it
    ({"avx2", "fma"}, "AVX2"), ({"avx2"}, "DEFAULT"), (set(), "DEFAULT")])
def test_the_cpus_own_level_from_its_flags(flags, level):
    assert hardware.capability_from_flags(flags) == level


def test_the_cpus_own_level_is_unknown_without_proc_cpuinfo_or_its_flags(monkeypatch, tmp_path):
    import builtins

    real_open = builtins.open
    read = hardware.hardware_capability.__wrapped__  # past the cache
    monkeypatch.setattr(builtins, "open", lambda *a, **k: (_ for _ in ()).throw(OSError("no /proc")))
    assert read() is None
    (tmp_path / "cpuinfo").write_text("processor : 0\nmodel name : ARM\n")
    monkeypatch.setattr(builtins, "open", lambda path, *a, **k: real_open(tmp_path / "cpuinfo", *a, **k))
    assert read() is None


@pytest.mark.parametrize("effective, caps_set, expected", [
    (CAPPED, CAPPED, ["capped by ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 "
                      "(this CPU's own level: AVX512)",
                      "numbers measured this way preview an AVX2 CPU; they are not measurements of one"]),
    ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "AVX2"},
     ["ATEN_CPU_CAPABILITY=AVX2 is ignored: torch reads it in lowercase (avx2)",
      "to preview an AVX2 CPU also set ATEN_CPU_CAPABILITY=avx2 (ATen's kernels: BatchNorm, ReLU, pooling, the "
      "optimizer), MKL_ENABLE_INSTRUCTIONS=AVX2 (MKL's: the matmuls)"]),
    ({"ATEN_CPU_CAPABILITY": "avx2", "DNNL_MAX_CPU_ISA": "AVX2"}, {"ATEN_CPU_CAPABILITY": "avx2",
                                                                  "DNNL_MAX_CPU_ISA": "AVX2"},
     ["also set MKL_ENABLE_INSTRUCTIONS=AVX2 (MKL's: the matmuls)"]),
    ({}, {"ONEDNN_MAX_CPU_ISA": "DEFAULT"},
     ["not capped (this CPU's own level: AVX512)", "ONEDNN_MAX_CPU_ISA=DEFAULT is ignored: it lowers nothing"]),
    ({}, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16", "DNNL_MAX_CPU_ISA": "AVX2"},
     ["DNNL_MAX_CPU_ISA=AVX2 is ignored: oneDNN reads ONEDNN_MAX_CPU_ISA instead"]),
])
def test_doctor_says_what_each_cap_does_and_what_is_missing(effective, caps_set, expected):
    from s6lab.doctor import isa_cap_line

    capability = "AVX2" if effective.get("ATEN_CPU_CAPABILITY") == "avx2" else "AVX512"
    info = hardware.MachineInfo("cpu", "x", "x", capability, False, 2, "2", isa_caps=effective,
                                hardware_capability="AVX512")
    line = isa_cap_line(info, caps_set)
    assert all(part in line for part in expected), line


def test_doctor_names_an_unknown_own_level_as_unknown():
    from s6lab.doctor import isa_cap_line

    info = hardware.MachineInfo("cpu", "x", "x", "AVX2", False, 2, "2", isa_caps={"MKL_ENABLE_INSTRUCTIONS": "AVX2"})
    assert "(this CPU's own level: unknown)" in isa_cap_line(info, {"MKL_ENABLE_INSTRUCTIONS": "AVX2"})


def _make(*args: str) -> subprocess.CompletedProcess:
    """``make -n`` as a user types it: no caps and no make of ours around it, this test's Python as the venv's."""
    env = {k: v for k, v in os.environ.items()
           if k not in ISA_CAP_VARIABLES and k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "PREVIEW")}
    return subprocess.run(["make", "-n", *args, f"BIN={Path(sys.executable).parent}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=env)


def test_make_preview_avx2_writes_capped_results_under_their_own_class():
    """`make TARGET PREVIEW=avx2` caps torch's libraries for a benchmark that names its results by the machine
    class, and names them by the capped class; other targets and other previews are one line and exit 2."""
    if shutil.which("make") is None:
        pytest.skip("no make")
    done = _make("bench-fusion", "PREVIEW=avx2")
    assert done.returncode == 0, done.stderr
    if hardware.hardware_capability() == "AVX512":
        assert "--out benchmarks/results/fusion-avx2-no-bf16-capped-on-avx512.md" in done.stdout
    assert "capped" not in _make("bench-fusion").stdout
    confirm = _make("recipe-confirm-patch-statistics", "PREVIEW=avx2").stdout  # runs and table of its own
    assert "--out results/recipe-avx2-preview " in confirm
    assert "--table results/recipe-confirm-patch-statistics-avx2-preview.md" in confirm
    for args, message in ((["machines", "PREVIEW=avx"], "PREVIEW=avx is not a preview: use PREVIEW=avx2"),
                          (["train", "PREVIEW=avx2"], "train would write over this machine's uncapped results"),
                          (["test", "machines", "PREVIEW=avx2"], "test would write over")):
        bad = _make(*args)
        assert bad.returncode == 2 and message in bad.stderr and bad.stderr.strip().count("\n") == 0, bad.stderr


def _benchmarks_machines():
    """``benchmarks/machines.py``, imported as the benchmarks import it."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        return __import__("machines")
    finally:
        sys.path.pop(0)


def test_a_benchmark_with_one_results_file_writes_a_capped_preview_beside_it(avx512_bf16_cpu, monkeypatch):
    """scaling.py and load.py record to benchmarks/results/NAME.md; with caps that lower this CPU they default to
    the capped class's own file, so a preview set by hand never replaces the real machine's result."""
    machines = _benchmarks_machines()
    results = ROOT / "benchmarks" / "results"
    assert machines.results_file("scaling") == results / "scaling.md"
    # load.md holds the AVX2 VM's recording: another class writes its own file
    assert machines.results_file("load", home_class="AVX2, no bf16") == results / "load-avx512-bf16.md"
    assert machines.results_file("load", home_class="AVX512, bf16") == results / "load.md"
    monkeypatch.setenv("S6LAB_NATIVE_BF16", "0")  # bf16 switched off: another class, its own file
    assert hardware.bf16_switched_off()
    assert machines.results_file("scaling") == results / "scaling-avx512-no-bf16.md"
    assert machines.results_file("load", home_class="AVX512, bf16") == results / "load-avx512-no-bf16.md"
    monkeypatch.delenv("S6LAB_NATIVE_BF16")
    for name, value in CAPPED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(hardware, "cpu_capability", lambda: "AVX2")  # what torch does with the ATen cap
    assert machines.results_file("scaling") == results / "scaling-avx2-no-bf16-capped-on-avx512.md"
    assert machines.results_file("load", home_class="AVX2, no bf16") == \
        results / "load-avx2-no-bf16-capped-on-avx512.md"  # the capped class is not the AVX2 class
    assert machines.class_results_file("profile") == results / "profile-avx2-no-bf16-capped-on-avx512.md"  # this CPU's


def test_caps_that_lower_nothing_keep_the_benchmarks_own_file(monkeypatch, no_caps):
    """AVX2 caps on an AVX2 CPU change no kernel: the result is that CPU's own, under the usual name."""
    machines = _benchmarks_machines()
    monkeypatch.setattr(hardware, "hardware_capability", lambda: "AVX2")
    monkeypatch.setattr(hardware, "cpu_capability", lambda: "AVX2")
    monkeypatch.setattr(hardware, "_cpu_has_bf16", lambda: False)
    for name, value in CAPPED.items():
        monkeypatch.setenv(name, value)
    results = ROOT / "benchmarks" / "results"
    assert machines.results_file("scaling") == results / "scaling.md"
    assert machines.results_file("load", home_class="AVX2, no bf16") == results / "load.md"
    monkeypatch.setenv("S6LAB_NATIVE_BF16", "0")  # nor does switching off a bf16 this CPU lacks
    assert not hardware.bf16_switched_off()
    assert machines.results_file("scaling") == results / "scaling.md"
