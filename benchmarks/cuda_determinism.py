"""Is training on CUDA repeatable? The same recipe trained twice, with and without `s6lab.train.reproducible`.

For each model and precision: two `fit` runs of 2 epochs on the first 8,192 real MNIST training images,
same seed, compared bit for bit (every epoch's training loss and test accuracy), once as `fit` trains
(cuDNN deterministic) and once with `reproducible` switched off (cuDNN's defaults). Then one run under
``torch.use_deterministic_algorithms(True, warn_only=True)`` lists any operation torch still calls
nondeterministic. Seconds per run are printed beside, for the cost of determinism. Needs a GPU.

    python benchmarks/cuda_determinism.py
"""

from __future__ import annotations

import contextlib
import time
import warnings

from _args import Parser, run_main


def run(model: str, precision: str, data) -> tuple[list, float]:
    from s6lab import TrainConfig, fit, get_model

    started = time.perf_counter()
    h = fit(get_model(model), data, TrainConfig(epochs=2, seed=1, precision=precision, device="cuda"),
            progress=False)
    return [(e.train_loss, e.test_acc) for e in h.epochs], time.perf_counter() - started


def same(a: list, b: list) -> str:
    """``yes``, or where two histories of (train loss, test accuracy) first part."""
    if a == b:
        return "yes"
    epoch = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
    return f"no: epoch {epoch + 1} loss {a[epoch][0]:.6f} vs {b[epoch][0]:.6f}"


def main() -> None:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.parse_args()  # it takes no arguments: --help prints the description, anything else is refused

    import torch

    import s6lab.train
    from s6lab.data import load_mnist

    if not torch.cuda.is_available():
        parser.error("needs a GPU (CUDA is not available here); run it on a machine with one")
    data = load_mnist(train_size=8192, test_size=2000)
    deterministic = s6lab.train.reproducible
    print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    print("| model | precision | cuDNN | same bits twice | seconds per run |")
    print("|---|---|---|---|---|")
    run("s6", "fp32", data)  # warm-up: CUDA context, cuDNN handles
    for model in ("s6", "s6-gap"):
        for precision in ("fp32", "bf16"):
            for mode in ("deterministic (fit)", "defaults"):
                s6lab.train.reproducible = deterministic if mode.startswith("det") else \
                    (lambda device: contextlib.nullcontext())
                (a, ta), (b, tb) = run(model, precision, data), run(model, precision, data)
                print(f"| {model} | {precision} | {mode} | {same(a, b)} | {ta:.2f} / {tb:.2f} |", flush=True)
    s6lab.train.reproducible = deterministic
    torch.use_deterministic_algorithms(True, warn_only=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for model in ("s6", "s6-gap"):
            run(model, "fp32", data)
    flagged = sorted({str(w.message).split(".")[0] for w in caught if "deterministic" in str(w.message)})
    print("operations torch calls nondeterministic, with fit's settings:", flagged or "none")


if __name__ == "__main__":
    run_main(main)
