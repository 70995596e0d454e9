#!/usr/bin/env bash
# The third call on a lent GPU machine (after gpu_check.sh and gpu_recheck.sh), in one call of at most ~9.5 min:
#   1. the machine: GPU, torch, and the host CPU's cores and flags;
#   2. benchmarks/load.py on the host CPU with CUDA hidden: the load benchmark on many cores, where one busy
#      core slows a whole fixed team of threads and the load follower (S6LAB_FOLLOW_LOAD=1) should pay;
#   3. the test suite with CUDA present (today's code; not the notebook tests, which need Jupyter), then the
#      failures again one at a time;
#   4. benchmarks/throughput.py --device cuda: the CUDA row of the throughput table with today's code.
# Every step has its own time limit and writes its own file under $OUT (at most 8 come back).
# Needs .whl/ and .mnist/ (benchmarks/gpu_setup.sh says how to make them).
set -u
OUT=${OUT:-/tmp/s6lab-gpu-many-cores}
source "$(dirname "$0")/gpu_setup.sh"

{
  step machine
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import sys, torch; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name(0))"
  lscpu | grep -E "Model name|^CPU\(s\)|Thread\(s\) per core|Core\(s\) per socket|Socket\(s\)"
  echo "flags: $(grep -o -E -w "avx512_bf16|amx_bf16|avx512f|avx2" /proc/cpuinfo | sort -u | tr '\n' ' ')"
  CUDA_VISIBLE_DEVICES= timeout 60 python3 -m s6lab doctor
} > "$OUT/machine.txt" 2>&1

step "load benchmark on the host CPU"
CUDA_VISIBLE_DEVICES= timeout "${LOAD_SECONDS:-200}" python3 benchmarks/load.py --images 8192 --rounds 5 \
  --out "$OUT/load-host.md" > "$OUT/load.log" 2>&1
echo "load rc $?" >> "$OUT/load.log"

step tests
export S6LAB_THREADS=2
timeout 170 python3 -m pytest -q -n 8 --dist loadfile --timeout 120 --ignore=tests/test_notebooks.py \
  > "$OUT/pytest.log" 2>&1
echo "pytest rc $?" >> "$OUT/pytest.log"
step "failures again, one at a time"
timeout 50 python3 -m pytest -q --lf --lfnf none --timeout 45 --ignore=tests/test_notebooks.py >> "$OUT/pytest.log" 2>&1
echo "pytest --lf rc $?" >> "$OUT/pytest.log"

step throughput
timeout 100 python3 benchmarks/throughput.py --device cuda --repeats 5 --out "$OUT/throughput-cuda.md" \
  > "$OUT/throughput.log" 2>&1
echo "throughput rc $?" >> "$OUT/throughput.log"
step done
