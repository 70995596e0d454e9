"""BatchNorm2d forward and backward in training mode, channels-last against channels-first, for the
reference net's BatchNorm shapes at batch 256, in fp32 and (where the CPU has it natively) bf16.

    python benchmarks/bn_layout.py [--reps 50] [--out FILE]    (or: make bench-bn-layout)

Why: a profile of the default bf16 training step on an AVX-512 CPU put trans1's 8-channel BatchNorm
backward at about half the time of conv2's 32-channel one, on a sixteenth of the elements. PyTorch's
channels-last BatchNorm kernels on a CPU vectorise over the channels, so few channels leave most of a
vector register empty. This times each kernel alone (median of ``--reps`` calls after 5 warm-up calls,
one process, the torch default threads); ``benchmarks/levers.py``'s ``small_bn_nchw`` row measures what a
channels-first copy of the small BatchNorms buys in the whole step (``make bench-fusion``).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _args import Parser, at_least, refuse_bad_environment, run_main, writable  # noqa: E402
from machines import class_results_file  # noqa: E402

#: the reference net's BatchNorm inputs at batch 256 (layer 1's, 32x26x26, is folded into conv1 on a CPU)
SHAPES = ((256, 32, 24, 24), (256, 8, 12, 12), (256, 32, 8, 8), (256, 16, 4, 4))


def time_batchnorm(shape: tuple[int, ...], dtype, channels_last: bool, reps: int) -> tuple[float, float]:
    """Median milliseconds of one training-mode forward and of its backward."""
    import torch

    x = torch.randn(shape, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    bn = torch.nn.BatchNorm2d(shape[1])
    grad = torch.randn_like(x)
    forward, backward = [], []
    for i in range(5 + reps):
        started = time.perf_counter()
        y = bn(x)
        middle = time.perf_counter()
        y.backward(grad)
        ended = time.perf_counter()
        if i >= 5:
            forward.append(middle - started)
            backward.append(ended - middle)
    return 1e3 * statistics.median(forward), 1e3 * statistics.median(backward)


def main() -> None:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=50, help="timed calls per kernel (after 5 warm-up calls)")
    parser.add_argument("--out")
    args = parser.parse_args()
    at_least(parser, 1, args, "--reps")
    out = writable(parser, args.out or class_results_file("bn-layout"))

    import torch

    from s6lab._io import atomic_write_text

    refuse_bad_environment()
    from s6lab.hardware import describe_machine, native_bf16, recorded_command

    bf16 = native_bf16(torch.device("cpu"))
    dtypes = [torch.float32] + ([torch.bfloat16] if bf16 else [])
    lines = [f"Command: `{recorded_command('benchmarks/bn_layout.py', sys.argv[1:])}`", "",
             f"Machine: {describe_machine()}; BatchNorm2d in training mode, median of {args.reps} calls per kernel."
             + ("" if bf16 else " bf16: not native here, skipped."), "",
             "| input (N, C, H, W) | dtype | channels-last fwd ms | channels-first fwd ms | channels-last bwd ms "
             "| channels-first bwd ms | bwd channels-last / channels-first |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for shape in SHAPES:
        for dtype in dtypes:
            (last_f, last_b), (first_f, first_b) = (time_batchnorm(shape, dtype, cl, args.reps) for cl in (True, False))
            lines.append(f"| {shape} | {str(dtype).removeprefix('torch.')} | {last_f:.3f} | {first_f:.3f} | "
                         f"{last_b:.3f} | {first_b:.3f} | {last_b / first_b:.1f}x |")
    text = "\n".join(lines) + "\n"
    atomic_write_text(out, text)
    print(text)


if __name__ == "__main__":
    run_main(main)
