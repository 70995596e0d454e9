#!/usr/bin/env bash
# The second call on a lent GPU machine, after fixes for what benchmarks/gpu_check.sh found:
#   1. the tests that failed there, and the trainer's and recipe's tests, on CUDA;
#   2. benchmarks/cuda_determinism.py: the same recipe twice, bit for bit, with and without cuDNN's
#      deterministic algorithms;
#   3. the whole suite with CUDA hidden: the host CPU's own class (with native bf16 where it has it);
#   4. the bf16 row of `make recipe-confirm` (seeds 0-9): on the host CPU with CUDA hidden where it has
#      native bf16 (AVX-512 bf16 or AMX), else not at all. Ten runs at once, 1-2 threads each; runs resume,
#      so whatever the time limit leaves unfinished continues on the next bf16 machine.
# Each step has its own time limit and writes its own file under $OUT (at most 8 come back).
set -u
OUT=${OUT:-/tmp/s6lab-gpu-recheck}
source "$(dirname "$0")/gpu_setup.sh"
flags=$(grep -o -E -w "avx512_bf16|amx_bf16|avx512f|avx2" /proc/cpuinfo | sort -u | tr '\n' ' ')
{ step host; lscpu | grep -E "Model name|^CPU\(s\)"; echo "flags: $flags"; } > "$OUT/host.txt"

step "tests on CUDA"
timeout 100 python3 -m pytest -q --timeout 80 tests/test_train.py tests/test_recipe.py \
  tests/test_doctor.py tests/test_callbacks.py tests/test_cli.py::test_train_in_emulated_bf16_warns_in_one_line \
  "tests/test_faults.py::test_kill_9_at_random_points_then_resume_ends_exactly_like_an_uninterrupted_run" \
  > "$OUT/tests-cuda.log" 2>&1
echo "rc $?" >> "$OUT/tests-cuda.log"

step determinism
timeout 60 python3 benchmarks/cuda_determinism.py > "$OUT/determinism.md" 2>&1
echo "rc $?" >> "$OUT/determinism.md"

step "suite with CUDA hidden"
CUDA_VISIBLE_DEVICES= S6LAB_THREADS=2 timeout 120 python3 -m pytest -q -n 8 --dist loadfile --timeout 110 \
  --ignore=tests/test_notebooks.py > "$OUT/tests-host-cpu.log" 2>&1
echo "rc $?" >> "$OUT/tests-host-cpu.log"

step "bf16 recipe confirmation on the host CPU"
if [[ $flags == *bf16* ]]; then
  for seed in 0 1 2 3 4 5 6 7 8 9; do
    threads=$(( seed < 6 ? 2 : 1 ))
    CUDA_VISIBLE_DEVICES= S6LAB_THREADS=$threads timeout "${CONFIRM_SECONDS:-220}" python3 benchmarks/recipe.py \
      --rows "wd 5e-4, 18 epochs" --precision bf16 --seeds $seed --out /tmp/recipe > "/tmp/confirm-s$seed.log" 2>&1 &
  done
  wait
  cat /tmp/confirm-s*.log > "$OUT/confirm.log"
  tar -czf "$OUT/recipe-bf16-runs.tar.gz" -C /tmp/recipe runs
else
  echo "the host CPU has no native bf16 ($flags): not run" > "$OUT/confirm.log"
fi
step done
