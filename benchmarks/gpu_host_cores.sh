#!/usr/bin/env bash
# The fourth call on a lent GPU machine, after gpu_many_cores.sh found on its 16-core host that PASSIVE, s6lab's
# OpenMP wait policy, trained at about half the default's speed on a quiet machine (one round), where 2 cores
# had measured 88%. A learner's laptop has 4-8 cores, so this runs the load benchmark as such a laptop: the
# process and its spinning neighbour confined to 4, then 8, of the host's CPUs (taskset), with CUDA hidden.
# First the tests that failed there on 16 cores, after their fixes. At most ~5.5 minutes in all.
# Needs .whl/ and .mnist/ (benchmarks/gpu_setup.sh says how to make them).
set -u
OUT=${OUT:-/tmp/s6lab-gpu-host-cores}
source "$(dirname "$0")/gpu_setup.sh"

step "the tests that failed on 16 cores"
timeout 60 python3 -m pytest -q -n 4 --timeout 55 tests/test_load_follower.py \
  "tests/test_benchmarks.py::test_load_script_times_every_policy_quiet_and_loaded" \
  "tests/test_benchmarks.py::test_data_parallel_script_trains_ddp_replicas_in_step_and_writes_its_table" \
  > "$OUT/pytest.log" 2>&1
echo "pytest rc $?" >> "$OUT/pytest.log"

for cpus in 0-3 0-7; do
  step "load benchmark on CPUs $cpus"
  CUDA_VISIBLE_DEVICES= timeout "${LOAD_SECONDS:-125}" taskset -c $cpus python3 benchmarks/load.py --images 3072 \
    --rounds 3 --spincount 30000 --out "$OUT/load-cpus-$cpus.md" > "$OUT/load-cpus-$cpus.log" 2>&1
  echo "load rc $?" >> "$OUT/load-cpus-$cpus.log"
done
step done
