#!/usr/bin/env bash
# The checks a lent GPU machine runs, in one call of at most ~9.5 minutes:
#   1. the machine (nvidia-smi, torch, the GPU) and `s6lab doctor --device cuda`;
#   2. benchmarks/throughput.py --device cuda: the CUDA row of the throughput table;
#   3. `s6lab train` of the reference net on CUDA with its default recipe and report;
#   4. the test suite with CUDA present (the notebook tests need Jupyter, which the GPU image lacks),
#      then the failures again, one at a time, so a failure caused by running files side by side
#      is told apart from one caused by CUDA.
# Every step has its own time limit and writes its own file under $OUT (at most 8 come back).
# Needs .whl/ and .mnist/ (benchmarks/gpu_setup.sh says how to make them).
set -u
OUT=${OUT:-/tmp/s6lab-gpu-check}
source "$(dirname "$0")/gpu_setup.sh"

{
  step machine
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  python3 -c "import sys, torch, torchvision; print(sys.version.split()[0], torch.__version__, torchvision.__version__, \
torch.version.cuda, torch.cuda.get_device_name(0), torch.cuda.get_device_capability(0), \
torch.cuda.is_bf16_supported(including_emulation=False))"
  lscpu | grep -E "Model name|^CPU\(s\)"
  step doctor
  timeout 60 python3 -m s6lab doctor --device cuda
} > "$OUT/machine.txt" 2>&1

step throughput
timeout 120 python3 benchmarks/throughput.py --device cuda --repeats 5 --out "$OUT/throughput-cuda.md" \
  > "$OUT/throughput.log" 2>&1
echo "throughput rc $?" >> "$OUT/throughput.log"

step train
timeout 130 python3 -m s6lab train --model s6 --device cuda --seed 0 --out /tmp/s6-cuda --strict \
  > "$OUT/train.log" 2>&1
echo "train rc $?" >> "$OUT/train.log"
tar -czf "$OUT/run-s6-cuda.tar.gz" --exclude='*.pt' -C /tmp s6-cuda 2>/dev/null

step tests
export S6LAB_THREADS=2
timeout 230 python3 -m pytest -q -n 8 --dist loadfile --timeout 150 --ignore=tests/test_notebooks.py \
  --junitxml="$OUT/junit.xml" > "$OUT/pytest.log" 2>&1
echo "pytest rc $?" >> "$OUT/pytest.log"
step "failures again, one at a time"
timeout 60 python3 -m pytest -q --lf --lfnf none --timeout 50 --ignore=tests/test_notebooks.py >> "$OUT/pytest.log" 2>&1
echo "pytest --lf rc $?" >> "$OUT/pytest.log"
step done
